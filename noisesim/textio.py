"""A user's files: text read bounded in size and strictly UTF-8, whether a path can be written, and
writing a file whole or not at all (a temporary file renamed into place)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from noisesim.errors import UserError, one_line


def expand_user(path: str | os.PathLike) -> Path:
    """``Path(path).expanduser()``, with a ``~user`` that names no user a UserError (not a RuntimeError)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise UserError(f"{os.fspath(path)!r}: {str(os.fspath(path)).split('/')[0]!r} names no user's home folder"
                        " (write ./ before a name that starts with ~, or give the full path)") from None


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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it into place (with the
    permissions a plain new file gets under the umask)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(path: Path, flag: str = "--out") -> None:
    """Refuse now, not after the work, a path that cannot be written: under a file, read-only, /proc."""
    problem = unwritable(path)
    if problem:
        raise UserError(f"{flag} {Path(path).absolute()}: {problem} (choose another path)")


# files noisesim writes into results and checkpoint folders: never a target for a plot or report the user names
RESERVED_NAMES = frozenset({"results.parquet", "results.csv", "summary.csv", "sweep.json", "config.json",
                            "adapter.safetensors", "adapter_config.json", "adapter_model.safetensors",
                            "model.safetensors"})


def check_output_file(text: str | Path, flag: str = "--out", suffixes: tuple[str, ...] = ("",),
                      replace: bool = False) -> Path:
    """A file path the user gave for a plot or report: not empty, not a folder, in a writable folder, not the name of
    a file noisesim keeps in results or checkpoint folders, and (unless ``replace``: noisesim's own default plot
    names) no file there yet at PATH + each of ``suffixes``: a file the user names is never overwritten."""
    raw = str(text)
    path = Path(raw)
    if not raw.strip() or raw.endswith(("/", os.sep)) or path.name in ("", ".", "..") or path.is_dir():
        raise UserError(f"{flag} {raw!r} is a folder or empty; give a file path such as results/fig6")
    if not path.parent.exists():
        raise UserError(f"{flag} {raw}: the folder {path.parent} does not exist (create it, or choose another path)")
    if (path.parent / "config.json").is_file() and any((path.parent / name).is_file() for name in (
            "adapter.safetensors", "adapter_config.json", "model.safetensors")):
        raise UserError(f"{flag} {raw}: {path.parent} is a checkpoint folder, whose every file is part of the"
                        " checkpoint; write the file elsewhere")
    for target in (Path(raw + suffix) for suffix in suffixes):
        if target.name in RESERVED_NAMES:
            raise UserError(f"{flag} {target} is a name noisesim keeps for its results and checkpoints; choose"
                            " another file name")
        if not replace and (target.exists() or target.is_symlink()):
            raise UserError(f"{flag} {target} exists and is never overwritten; remove it or choose another path")
    check_writable(path.parent if path.exists() else path, flag)
    return path
