"""Reading a user's text file: bounded in size, strictly UTF-8, every problem a one-line ``UserError``."""

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
