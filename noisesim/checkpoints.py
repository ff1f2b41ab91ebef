"""Adapter-only checkpoints (safetensors + JSON) and the named checkpoint store.

A checkpoint is a folder with exactly ``adapter.safetensors`` (adapter tensors, groupings, head) and
``config.json`` (method config, backbone id, training config, clean dev accuracy, version).
Names resolve against the bundled store (``noisesim/shipped``) and the user store
(``$NOISESIM_HOME/checkpoints``, default ``~/.noisesim/checkpoints``); anything with a ``/`` (or a
leading ``.``) is a path. Reading is strict: the config is validated by a schema and every tensor's
name, shape, dtype and values are checked. Writing never replaces anything but a checkpoint, and is
atomic: a kill at any moment leaves the old or the new checkpoint, complete.
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import errno
import json
import os
import re
import secrets
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import load_file, save

from noisesim import __version__
from noisesim.configs import MethodConfig, TrainConfig, describe_error
from noisesim.errors import UserError
from noisesim.methods import LAYERS, inject, load_trainable_state, remove, saved_names, trainable_state, trains_backbone
from noisesim.models import Backbone, load_backbone, resolve_backbone
from noisesim.textio import expand_user, unwritable

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locks; leftovers are removed once a day old
    fcntl = None

WEIGHTS = "adapter.safetensors"
CONFIG = "config.json"
MAX_CONFIG_BYTES = 16 * 2**20
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
# Temporary and backup folders of ``write``, beside the target: never listed, removed when stale.
LEFTOVER_RE = re.compile(r"\.(?P<name>.+)\.noisesim-(?P<kind>tmp|old)-[0-9a-f]{8}")
HEAD_KEYS = ("head.dense.weight", "head.dense.bias", "head.out.weight", "head.out.bias")
# Per-layer tensor names of each method and the noise parameters (stored as float16), as the layer classes
# declare them (``AdapterLinear.adapter_parameter_names`` etc.).
METHOD_KEYS = {name: layer.saved_names() for name, layer in LAYERS.items()}
NOISE_KEYS = frozenset(n for layer in LAYERS.values() for n in layer.noise_parameter_names)
INT_DTYPES = (torch.int16, torch.int32, torch.int64)


class CheckpointMeta(BaseModel):
    """Schema of ``config.json``."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    backbone: str = Field(min_length=1)
    num_labels: int = Field(ge=2, le=100_000)
    pooling: Literal["mean", "cls"]
    method: MethodConfig
    training: TrainConfig | None = None
    dev_accuracy: float | None = Field(None, ge=0, le=1)
    dev_metric: Literal["accuracy", "f1", "f1-macro", "mcc"] | None = None  # what selected the best step
    dev_score: float | None = Field(None, ge=-1, le=1)  # its value there (MCC lies in [-1, 1])
    best_step: int | None = Field(None, ge=0)
    trainable_parameters: int | None = Field(None, ge=0)
    total_parameters: int | None = Field(None, ge=0)
    percent_trainable: float | None = Field(None, ge=0, le=100)
    train_seconds: float | None = Field(None, ge=0)
    history: list[dict[str, float | int]] = []
    twin: str | None = Field(None, min_length=1)
    recipe: str | None = Field(None, min_length=1, max_length=200)
    interrupted: bool = False
    sigma_learned: dict[str, float] | None = None
    notes: list[str] = []  # what the user should know about how it was trained
    device: str | None = Field(None, min_length=1, max_length=200)  # where it trained (provenance, not the recipe)
    dtype: Literal["float32", "bf16"] | None = None  # bf16: trained under mixed precision
    noisesim_version: str = Field(min_length=1)


def bundled_store() -> Path:
    return Path(str(resources.files("noisesim").joinpath("shipped")))


def user_store() -> Path:
    return Path(os.environ.get("NOISESIM_HOME") or Path.home() / ".noisesim").expanduser() / "checkpoints"


def stores() -> list[Path]:
    return [user_store(), bundled_store()]


def _candidates(store: Path) -> list[Path]:
    """Visible folders of a store holding both checkpoint files (hidden ones are temporary)."""
    try:
        entries = sorted(store.iterdir())
    except OSError:
        return []
    return [f for f in entries if not f.name.startswith(".") and (f / CONFIG).is_file() and (f / WEIGHTS).is_file()]


def shipped_names() -> set[str]:
    return {f.name for f in _candidates(bundled_store())}


def known_checkpoints() -> dict[str, Path]:
    """Name → folder for every usable checkpoint: the shipped ones, then the user store's.

    A user checkpoint named like a shipped one is not listed here (``resolve`` refuses that name)."""
    recover(user_store())
    found = {f.name: f for f in _candidates(bundled_store())}
    for folder in _candidates(user_store()):
        found.setdefault(folder.name, folder)
    return found


def is_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in text or os.sep in text or text.startswith((".", "~"))


def _has_files(path: Path) -> bool:
    return (path / CONFIG).is_file() and (path / WEIGHTS).is_file()


def resolve(name_or_path: str | Path) -> Path:
    """A checkpoint folder from a store name or a path (``./x``, ``/abs/x``; a bare name is a store name
    first, a folder in the current directory otherwise). Never a temporary folder, never a shadowed name."""
    if not isinstance(name_or_path, str | Path):
        raise TypeError(f"checkpoint must be a name or a path (str), got {type(name_or_path).__name__}")
    text = str(name_or_path)
    if not text.strip():
        raise UserError("empty checkpoint name: give a name from `noisesim ckpts` or a checkpoint folder")
    if is_path(name_or_path):
        path = expand_user(text)
        recover(path.parent, only=path.name)
        if _has_files(path):
            return path
        raise UserError(f"{text} is not a checkpoint folder (it needs {CONFIG} and {WEIGHTS};"
                        " see `noisesim ckpts` for the known names)")
    shadow = user_store() / text
    if text in shipped_names() and _has_files(shadow):
        raise UserError(f"{shadow} has the name of the shipped checkpoint {text!r} and is never used:"
                        " rename or remove that folder (shipped names cannot be shadowed)")
    known = known_checkpoints()
    local = Path(text)
    if text in known:
        if _has_files(local) and local.resolve() != known[text].resolve():
            raise UserError(f"{text!r} is both a checkpoint name ({known[text]}) and a folder here:"
                            f" write ./{text} for the folder, or rename it")
        return known[text]
    if _has_files(local):
        return local
    close = difflib.get_close_matches(text, known, n=3)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    raise UserError(f"unknown checkpoint {text!r}: {hint}known: {', '.join(known) or 'none'}"
                    " (or give a folder holding config.json and adapter.safetensors)")


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint: its folder, metadata (config.json as written) and tensors."""

    path: Path
    meta: dict
    tensors: dict[str, torch.Tensor]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> MethodConfig:
        return MethodConfig.from_dict(self.meta["method"])

    @property
    def twin(self) -> str | None:
        return self.meta.get("twin")


def _no_duplicates(pairs: list[tuple]) -> dict:
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ValueError(f"key {dup!r} appears twice")
    return dict(pairs)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def validate_meta(raw, where: str) -> dict:
    """``raw`` checked against the config.json schema; returns it unchanged."""
    try:
        CheckpointMeta.model_validate(raw)
    except ValidationError as exc:
        problem = describe_error(exc, where, flags=False)
        raise UserError(f"{problem} (fix the file or re-train the checkpoint)") from None
    return raw


def load_meta(folder: Path) -> dict:
    """config.json of a checkpoint folder: UTF-8, valid JSON without duplicate keys or NaN, schema-valid."""
    path = Path(folder) / CONFIG
    where = f"checkpoint {folder}: {CONFIG}"
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise UserError(f"{where} is larger than {MAX_CONFIG_BYTES >> 20} MiB (not a noisesim config)")
        raw = json.loads(path.read_bytes().decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_constant=_no_constant)
    except OSError as exc:
        raise UserError(f"{where} cannot be read ({exc.strerror or exc}): check its permissions") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{where} is not UTF-8 text (byte {exc.start}): re-train or re-copy the checkpoint") from None
    except (ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{where} is not valid JSON ({first}): re-train or re-copy the checkpoint") from None
    if isinstance(raw, dict) and "architectures" in raw and "noisesim_version" not in raw:
        raise UserError(f"checkpoint {folder}: {CONFIG} is a Hugging Face model config next to a noisesim"
                        f" {WEIGHTS}: the folder mixes two kinds of checkpoint; put them in separate folders")
    return validate_meta(raw, where)


def _is_noise(key: str) -> bool:
    """A stored adapter tensor that is a declared noise parameter (StochGRASP's σ)."""
    return key.rpartition(".")[2] in NOISE_KEYS


def check_tensors(tensors: dict[str, torch.Tensor], meta: dict, where: str) -> None:
    """Tensors against the config: known names for the method, dtypes, shapes, finite values, group ids in [0, K)."""
    method = MethodConfig.from_dict(meta["method"])
    allowed = set(saved_names(method))
    backbone_keys = trains_backbone(method)
    k, labels = method.k, meta["num_labels"]

    def bad(key: str, what: str) -> UserError:
        return UserError(f"{where}: tensor {key} {what} (the checkpoint is damaged or does not match its"
                         f" {CONFIG}: re-train or re-copy it)")

    layers: dict[str, set[str]] = {}
    for key, t in tensors.items():
        if key.startswith("head."):
            if key not in HEAD_KEYS:
                raise bad(key, f"is not part of the head (expected {', '.join(HEAD_KEYS)})")
        else:
            layer, _, kind = key.rpartition(".")
            if (kind not in allowed or not layer) and backbone_keys and key.startswith("encoder."):
                if t.dtype != torch.float32 or not torch.isfinite(t).all():
                    raise bad(key, f"must hold finite float32 values, got {t.dtype}")
                continue  # a trained backbone parameter: its name and shape are checked against the model
            if kind not in allowed or not layer:
                expected = f"names ending in {', '.join(sorted(allowed))}" if allowed else "no per-layer tensors"
                raise bad(key, f"is not a {method.method} parameter (expected {expected}"
                          f"{' or encoder parameter names' if backbone_keys else ''})")
            layers.setdefault(layer, set()).add(kind)
        if key.endswith(".group"):
            if t.dtype not in INT_DTYPES or t.ndim != 1 or not t.numel():
                raise bad(key, f"must be a 1-D integer tensor, got {t.dtype} of shape {tuple(t.shape)}")
            low, high = int(t.min()), int(t.max())
            if low < 0 or high >= k:
                raise bad(key, f"holds group id {low if low < 0 else high}, outside 0 .. K-1 = {k - 1}")
            continue
        floats = (torch.float32, torch.float16) if _is_noise(key) else (torch.float32,)
        if t.dtype not in floats:
            raise bad(key, f"has dtype {t.dtype}, expected {' or '.join(map(str, floats))}")
        if not torch.isfinite(t).all():
            raise bad(key, "holds NaN or infinite values")
        shape = {"gamma": (k,), "beta": (k,)}.get(key.rpartition(".")[2])
        if key.endswith(".mu") or _is_noise(key):
            ok = t.ndim == 2 and t.shape[1] == k and (method.rows == "per-row" or t.shape[0] == 1)
            if not ok:
                raise bad(key, f"has shape {tuple(t.shape)}, expected (rows, K={k}) with rows"
                          f" {'= input width' if method.rows == 'per-row' else '= 1'}")
        elif shape is not None and tuple(t.shape) != shape:
            raise bad(key, f"has shape {tuple(t.shape)}, expected {shape} (K={k})")
        if key.endswith(".gamma") and (t == 0).any():
            raise bad(key, "holds a zero scale γ (GRASP divides by it)")
    if key := next((h for h in HEAD_KEYS if h not in tensors), None):
        raise bad(key, "is missing")
    if tensors["head.out.weight"].shape[0] != labels or tuple(tensors["head.out.bias"].shape) != (labels,):
        raise bad("head.out.weight", f"has {tensors['head.out.weight'].shape[0]} outputs, but num_labels={labels}")
    for layer, kinds in layers.items():
        if kinds != allowed:
            raise bad(f"{layer}.{sorted(allowed - kinds)[0]}", "is missing")
    if not layers and allowed:
        raise bad("(adapters)", "are missing: the file holds no adapter layer")


def read(name_or_path: str | Path) -> Checkpoint:
    """Resolve, then read and validate a checkpoint (config schema, tensor names, dtypes, shapes, values)."""
    folder = resolve(name_or_path)
    if (folder / "adapter_config.json").exists():
        raise UserError(f"{folder} holds both a noisesim checkpoint ({CONFIG}, {WEIGHTS}) and a PEFT adapter"
                        " (adapter_config.json): which one to sweep is ambiguous; put them in separate folders")
    meta = load_meta(folder)
    try:
        tensors = load_file(folder / WEIGHTS)
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"checkpoint {folder}: {WEIGHTS} is damaged or not safetensors ({first}):"
                        " re-train or re-copy the checkpoint") from None
    check_tensors(tensors, meta, f"checkpoint {folder}")
    backbone = meta["backbone"]
    if not Path(backbone).is_absolute() and Path(backbone).exists() and resolve_backbone(backbone) == backbone:
        raise UserError(f"checkpoint {folder}: config.json names its backbone by the relative path {backbone!r},"
                        " which means another model from another folder; write the absolute path there")
    return Checkpoint(folder.absolute(), meta, tensors)


def build(ckpt: Checkpoint, backbone: Backbone | None = None) -> Backbone:
    """Load (or reuse an untouched) backbone, inject the method and load the adapter tensors.

    Every tensor must match the model's exactly in name and shape, and in dtype (group ids may be
    any integer type, StochGRASP's σ float16): nothing is cast or cut silently."""
    backbone = backbone or load_backbone(ckpt.meta["backbone"], num_labels=ckpt.meta["num_labels"],
                                         pooling=ckpt.meta["pooling"])
    try:
        inject(backbone, ckpt.method)
        expected = trainable_state(backbone)
        missing = sorted(set(expected) - set(ckpt.tensors))
        extra = sorted(set(ckpt.tensors) - set(expected))
        if missing or extra:
            raise UserError(f"checkpoint {ckpt.path} does not fit backbone {backbone.name!r}: missing"
                            f" {missing[:3]}, unexpected {extra[:3]} (was it trained on another model?)")
        for key, tensor in ckpt.tensors.items():
            want = expected[key]
            if tensor.shape != want.shape:
                raise UserError(f"checkpoint {ckpt.path}: tensor {key} has shape {tuple(tensor.shape)}, the"
                                f" model needs {tuple(want.shape)} (was it trained on another model or K?)")
            same_kind = (key.endswith(".group") and tensor.dtype in INT_DTYPES) or (
                _is_noise(key) and tensor.dtype == torch.float16)
            if tensor.dtype != want.dtype and not same_kind:
                raise UserError(f"checkpoint {ckpt.path}: tensor {key} has dtype {tensor.dtype}, the model needs"
                                f" {want.dtype} (re-train or re-copy the checkpoint)")
        load_trainable_state(backbone, ckpt.tensors)
    except BaseException:
        remove(backbone)  # leave a reused backbone as it was
        raise
    return backbone


def storage_form(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """Compact on-disk form: group ids as int16, StochGRASP's σ as float16 (it never enters the
    deterministic or swept evaluation, and 3 significant digits describe a noise scale); the rest as is."""
    if key.endswith(".group") and tensor.numel() and int(tensor.max()) < 2**15:
        return tensor.to(torch.int16)
    if _is_noise(key):
        return tensor.to(torch.float16)
    return tensor


# --- writing -------------------------------------------------------------------------------------------


def _safetensors_header_ok(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            return 0 < n < 100 * 2**20 and isinstance(json.loads(fh.read(n)), dict)
    except (OSError, ValueError, struct.error):
        return False


def is_checkpoint(folder: Path) -> bool:
    """True if ``folder`` holds exactly a noisesim checkpoint's two files, recognisably ours."""
    try:
        entries = sorted(p.name for p in Path(folder).iterdir())
        if entries != sorted((CONFIG, WEIGHTS)) or any((Path(folder) / e).is_symlink() for e in entries):
            return False
        meta = json.loads((Path(folder) / CONFIG).read_bytes()[:MAX_CONFIG_BYTES].decode("utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(meta, dict) and "noisesim_version" in meta and isinstance(meta.get("method"), dict)
            and _safetensors_header_ok(Path(folder) / WEIGHTS))


def _refuse(folder, reason: str) -> UserError:
    return UserError(f"will not write a checkpoint to {str(folder)!r}: {reason}; nothing was changed"
                     " (pick a new or empty folder, or one of your checkpoints to replace it)")


def check_target(folder: str | Path) -> Path:
    """``folder`` if a checkpoint may be written there: it is new, an empty folder, or a noisesim
    checkpoint (which is then replaced). Anything else is refused: user files are never destroyed."""
    if not isinstance(folder, str | Path):
        raise TypeError(f"out must be a checkpoint name or folder path (str), got {type(folder).__name__}")
    if not str(folder).strip():
        raise _refuse(folder, "the name is empty")
    folder = expand_user(folder)
    if folder.name in ("", ".", ".."):
        raise _refuse(folder, "it names the current, parent or root folder, not a checkpoint folder")
    if folder.name.startswith("."):
        raise _refuse(folder, "hidden names are reserved for temporary folders")
    real = folder.resolve()
    home = Path.home().resolve()
    protected = {Path(real.anchor), home, user_store().resolve(), user_store().resolve().parent}
    if real in protected or Path.cwd().resolve().is_relative_to(real):
        raise _refuse(folder, "it is the root, your home, the checkpoint store or a folder holding the current one")
    package = bundled_store().resolve().parent
    if real.is_relative_to(package):
        raise _refuse(folder, "it lies inside the installed noisesim package")
    if real.parent == user_store().resolve() and folder.name in shipped_names():
        raise _refuse(folder, f"{folder.name!r} is a shipped checkpoint's name and would shadow it; choose another"
                      " name")
    if folder.is_symlink():
        raise _refuse(folder, "it is a symbolic link")
    if folder.exists():
        if not folder.is_dir():
            raise _refuse(folder, "it is a file")
        try:
            entries = sorted(p.name for p in folder.iterdir())
        except OSError as exc:
            raise _refuse(folder, f"it cannot be read ({exc.strerror})") from None
        if entries and not is_checkpoint(folder):
            shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
            raise _refuse(folder, f"it holds files that are not a noisesim checkpoint ({shown})")
    _probe(folder)
    return folder


def _probe(folder: Path) -> None:
    """Refuse now, not after training, a target that cannot be created: under a file, read-only, /proc."""
    problem = unwritable(folder.absolute().parent)
    if problem:
        raise _refuse(folder, problem)


def out_folder(name_or_path: str) -> Path:
    """Where ``train --out`` writes: a bare name goes to the user store, anything with a slash (or a leading
    ``.`` or ``~``) is a path. Shipped names, empty and malformed names are refused."""
    if not isinstance(name_or_path, str | Path):
        raise TypeError(f"out must be a checkpoint name or folder path (str), got {type(name_or_path).__name__}")
    text = str(name_or_path)
    if not text.strip():
        raise UserError("--out is empty: give a checkpoint name (e.g. my-run) or a folder path (e.g. ./runs/my-run)")
    if is_path(name_or_path):
        return check_target(text)
    if not NAME_RE.fullmatch(text):
        raise UserError(f"--out {text!r} is not a checkpoint name (letters, digits and . _ + -, starting with a"
                        f" letter or digit, at most 100): use such a name, or a path like ./{text.strip()}")
    if text in shipped_names():
        raise UserError(f"--out {text!r} is the name of a shipped checkpoint: choose another name (a user checkpoint"
                        " cannot shadow a shipped one)")
    return check_target(user_store() / text)


@contextlib.contextmanager
def _dir_lock(path: Path, blocking: bool = True):
    """An exclusive flock on a directory; yields the open fd, or None if busy (non-blocking) or unsupported."""
    if fcntl is None:
        yield -1
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def claim(folder: Path):
    """Held by a training run from start to write: a second run that would write the same checkpoint at the
    same time is refused (the lock lives in the system's temporary folder, keyed by the target's absolute path,
    so nothing is added to the user's folders)."""
    import hashlib

    from filelock import FileLock, Timeout

    locks = Path(tempfile.gettempdir()) / f"noisesim-locks-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    locks.mkdir(exist_ok=True)
    lock = FileLock(locks / (hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:24] + ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"another noisesim train is writing {folder} right now; wait for it to finish or choose"
                        " another --out") from None
    try:
        yield
    finally:
        lock.release()


def recover(parent: Path, only: str | None = None, locked: bool = False) -> None:
    """Finish what interrupted writes left in ``parent``: put back a checkpoint whose replacement was cut
    between its two renames, delete temporary folders of writers that are no longer running.
    ``locked``: the caller holds ``parent``'s lock."""
    try:
        leftovers = [e for e in os.scandir(parent) if (m := LEFTOVER_RE.fullmatch(e.name)) and e.is_dir(
            follow_symlinks=False) and (only is None or m["name"] == only)]
    except OSError:
        return
    if not leftovers:
        return
    try:
        with contextlib.nullcontext(True) if locked else _dir_lock(parent, blocking=False) as held:
            if held is None:
                return  # a writer is swapping right now; the next call cleans up
            for entry in sorted(leftovers, key=lambda e: "-old-" not in e.name):  # backups first
                _recover_one(Path(entry.path), Path(parent) / LEFTOVER_RE.fullmatch(entry.name)["name"])
    except OSError:
        return  # a read-only or vanished folder: nothing to do


def _recover_one(leftover: Path, target: Path) -> None:
    with _dir_lock(leftover, blocking=False) as held:
        if held is None:
            return  # its writer is still running
        if fcntl is None and time.time() - leftover.stat().st_mtime < 86400:
            return
        if ".noisesim-old-" in leftover.name and not target.exists():
            if is_checkpoint(leftover):
                os.rename(leftover, target)
            return  # never delete the only copy
        shutil.rmtree(leftover, ignore_errors=True)


_RENAMEAT2 = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    global _RENAMEAT2
    if _RENAMEAT2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            _RENAMEAT2 = fn
        except (AttributeError, OSError):
            _RENAMEAT2 = False
    if not _RENAMEAT2:
        return False
    if _RENAMEAT2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _replace(tmp: Path, folder: Path) -> Path | None:
    """Put the complete ``tmp`` at ``folder``; returns the folder now holding the old checkpoint, if any."""
    if not folder.exists() or not any(folder.iterdir()):
        os.rename(tmp, folder)  # a new name, or an empty folder: one atomic rename
        return None
    if _exchange(tmp, folder):
        return tmp
    old = folder.with_name(f".{folder.name}.noisesim-old-{secrets.token_hex(4)}")
    os.rename(folder, old)  # a kill here leaves the old at ``old``: ``recover`` puts it back
    os.rename(tmp, folder)
    return old


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(folder: str | Path, state: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write a checkpoint atomically: into a temporary sibling folder, then swap it in.

    The target must be new, empty or a noisesim checkpoint (``check_target``); the state and config are
    validated as ``read`` would. A kill at any moment leaves the old or the new checkpoint, complete."""
    folder = check_target(folder)
    meta = validate_meta({**meta, "noisesim_version": __version__}, f"checkpoint {folder}: {CONFIG}")
    stored = {k: storage_form(k, v.detach().cpu()).contiguous() for k, v in state.items()}
    check_tensors(stored, meta, f"checkpoint {folder}")
    tmp = None
    try:
        with contextlib.ExitStack() as stack:
            folder.parent.mkdir(parents=True, exist_ok=True)
            with _dir_lock(folder.parent):
                recover(folder.parent, locked=True)
                tmp = folder.with_name(f".{folder.name}.noisesim-tmp-{secrets.token_hex(4)}")
                tmp.mkdir()  # the umask applies: normal permissions
                stack.enter_context(_dir_lock(tmp))  # held while this writer lives: ``recover`` skips it
            _write_and_swap(tmp, folder, stored, meta)
    except OSError as exc:
        raise UserError(f"cannot write checkpoint {folder}: {exc.strerror or exc}"
                        f"{f' ({exc.filename})' if exc.filename else ''}: check that the folder is writable"
                        ) from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _save_weights(tensors: dict[str, torch.Tensor], path: Path) -> None:
    path.write_bytes(save(tensors))  # through open(): the umask applies (safetensors' save_file makes 0600)


def _write_and_swap(tmp: Path, folder: Path, stored: dict[str, torch.Tensor], meta: dict) -> None:
    """Fill ``tmp``, flush it to disk, then swap it in under the parent's lock; delete the old one."""
    _save_weights(stored, tmp / WEIGHTS)
    (tmp / CONFIG).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    for path in (tmp / WEIGHTS, tmp / CONFIG, tmp):
        _fsync(path)
    with _dir_lock(folder.parent):
        check_target(folder)  # again: it may have changed while this one was written
        old = _replace(tmp, folder)
        _fsync(folder.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def listing() -> list[dict]:
    """One row per checkpoint folder in the stores: name, method, K, layers, clean dev accuracy, where,
    a ``note`` (a run interrupted before its last step) and a ``problem`` for one that cannot be used (invalid
    config, shadowing a shipped name)."""
    rows = []
    shipped = shipped_names()
    recover(user_store())
    for store in (bundled_store(), user_store()):
        for folder in _candidates(store):
            row = {"name": folder.name, "method": None, "k": None, "layers": None, "rows": None,
                   "dev_accuracy": None, "twin": None, "recipe": None, "path": str(folder), "note": None,
                   "problem": None}
            try:
                meta = load_meta(folder)
                m = meta["method"]
                name = m.get("method", MethodConfig().method)
                grouped = name in ("grasp", "grasp-w", "stochgrasp")  # K and rows mean nothing to the others
                row |= {"method": name, "k": m.get("k") if grouped else None,
                        "layers": m.get("layers", "all"),
                        "rows": m.get("rows", "per-row") if name in ("grasp-w", "stochgrasp") else None,
                        "dev_accuracy": meta.get("dev_accuracy"), "twin": meta.get("twin"),
                        "recipe": meta.get("recipe")}
                if meta.get("interrupted") is True:
                    row["note"] = (f"interrupted (best step {meta.get('best_step')}): swept as a recipe of its own,"
                                   " not pooled as a training seed")
            except UserError as exc:
                row["problem"] = str(exc)
            if store == user_store() and folder.name in shipped:
                row["problem"] = "has a shipped checkpoint's name, so it is never used: rename it"
            rows.append(row)
    return rows
