"""A user's files: text read bounded in size and strictly UTF-8, and whether a path can be written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from noisesim.errors import UserError, one_line


def read_utf8(path: str | Path, what: str, max_bytes: int) -> str:
    """The text of ``path`` (a leading BOM dropped): at most ``max_bytes``, UTF-8 or refused with its line."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device would block or never end
            raise UserError(f"{path}: cannot read {what}: it is not a regular file (give a file)")
        with Path(path).open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} ({one_line(exc.strerror or exc)})") from None
    if len(raw) > max_bytes:
        raise UserError(f"{path}: {what} is larger than {max_bytes / (1 << 20):g} MiB; is it the right file?")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}: {what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line});"
                        " save it as UTF-8") from None


def unwritable(path: str | Path) -> str | None:
    """Why ``path`` (existing or to be created) cannot be written, or None: the nearest existing folder above
    it is a file, or is read-only. ``os.access`` lets root through everywhere, so a folder without any write
    bit (/proc, /sys) counts as read-only too."""
    path = Path(path).absolute()
    base = next(p for p in (path, *path.parents) if p.exists())
    if not base.is_dir():
        return f"{base} is a file, not a folder"
    if not os.access(base, os.W_OK | os.X_OK) or not base.stat().st_mode & 0o222:
        return f"{base} is not writable"
    return None
