"""Adapter-only checkpoints (safetensors + JSON) and the named checkpoint store.

A checkpoint is a folder with ``adapter.safetensors`` (adapter tensors, groupings, head) and
``config.json`` (method config, backbone id, training config, clean dev accuracy, version).
Names resolve against the bundled store (``noisesim/store``) and the user store
(``$NOISESIM_HOME/checkpoints``, default ``~/.noisesim/checkpoints``); anything else is a path.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from noisesim import __version__
from noisesim.errors import UserError
from noisesim.methods import MethodConfig, inject, trainable_state
from noisesim.models import Backbone, load_backbone

WEIGHTS = "adapter.safetensors"
CONFIG = "config.json"


def bundled_store() -> Path:
    return Path(str(resources.files("noisesim").joinpath("store")))


def user_store() -> Path:
    return Path(os.environ.get("NOISESIM_HOME", Path.home() / ".noisesim")) / "checkpoints"


def stores() -> list[Path]:
    return [user_store(), bundled_store()]


def known_checkpoints() -> dict[str, Path]:
    """Name → folder for every checkpoint in the stores (the user store shadows the bundled one)."""
    found: dict[str, Path] = {}
    for store in reversed(stores()):
        if store.is_dir():
            for folder in sorted(store.iterdir()):
                if (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file():
                    found[folder.name] = folder
    return found


def resolve(name_or_path: str) -> Path:
    """A checkpoint folder from a store name or a path."""
    path = Path(name_or_path)
    if (path / CONFIG).is_file() and (path / WEIGHTS).is_file():
        return path
    known = known_checkpoints()
    if name_or_path in known:
        return known[name_or_path]
    close = difflib.get_close_matches(name_or_path, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UserError(
        f"unknown checkpoint {name_or_path!r}: {hint}known: {', '.join(known) or 'none'}"
        " (or give a folder holding config.json and adapter.safetensors)"
    )


@dataclass
class Checkpoint:
    """A loaded checkpoint: its folder, metadata and tensors."""

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


def read(name_or_path: str) -> Checkpoint:
    folder = resolve(name_or_path)
    try:
        meta = json.loads((folder / CONFIG).read_text())
        tensors = load_file(folder / WEIGHTS)
    except (OSError, ValueError) as exc:
        raise UserError(f"checkpoint {folder} is unreadable: {exc} (re-train or re-copy it)") from None
    return Checkpoint(folder, meta, tensors)


def build(ckpt: Checkpoint, backbone: Backbone | None = None) -> Backbone:
    """Load (or reuse an untouched) backbone, inject the method and load the adapter tensors."""
    backbone = backbone or load_backbone(ckpt.meta["backbone"], num_labels=ckpt.meta.get("num_labels", 2),
                                         pooling=ckpt.meta.get("pooling", "mean"))
    inject(backbone, ckpt.method)
    expected = trainable_state(backbone)
    missing = sorted(set(expected) - set(ckpt.tensors))
    extra = sorted(set(ckpt.tensors) - set(expected))
    if missing or extra:
        raise UserError(
            f"checkpoint {ckpt.path} does not fit backbone {backbone.name!r}:"
            f" missing {missing[:3]}, unexpected {extra[:3]} (was it trained on another model?)"
        )
    backbone.model.load_state_dict(ckpt.tensors, strict=False)
    return backbone


def storage_form(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """Compact on-disk form: group ids as int16, StochGRASP's σ as float16 (it never enters the
    deterministic or swept evaluation, and 3 significant digits describe a noise scale); the rest as is."""
    if key.endswith(".group") and tensor.numel() and int(tensor.max()) < 2**15:
        return tensor.to(torch.int16)
    if key.endswith(".sigma_raw"):
        return tensor.to(torch.float16)
    return tensor


def write(folder: Path, state: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write a checkpoint atomically: into a temporary sibling folder, then rename."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    tmp.chmod(0o755)
    try:
        save_file({k: storage_form(k, v).contiguous() for k, v in state.items()}, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps({**meta, "noisesim_version": __version__}, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def out_folder(name_or_path: str) -> Path:
    """Where ``train --out`` writes: a bare name goes to the user store, anything with a slash is a path."""
    if "/" in name_or_path or name_or_path.startswith("."):
        return Path(name_or_path)
    return user_store() / name_or_path


def listing() -> list[dict]:
    """One row per known checkpoint: name, method, K, layers, clean dev accuracy, where."""
    rows = []
    for name, folder in known_checkpoints().items():
        meta = json.loads((folder / CONFIG).read_text())
        m = meta["method"]
        rows.append({"name": name, "method": m["method"], "k": m["k"], "layers": m["layers"],
                     "rows": m.get("rows"), "dev_accuracy": meta.get("dev_accuracy"),
                     "twin": meta.get("twin"), "path": str(folder)})
    return rows
