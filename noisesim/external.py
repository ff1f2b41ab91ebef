"""External checkpoints: any Hugging Face sequence classifier, or a PEFT (LoRA / IA3) adapter on a local base, swept
like a noisesim checkpoint.

- A **Hugging Face folder** (``save_pretrained`` of a BERT / RoBERTa / DistilBERT / MiniLM
  ``…ForSequenceClassification``: config.json, model.safetensors, tokenizer files) is loaded offline with
  ``AutoModelForSequenceClassification``; its encoder's linear layers (those ``--layers`` selects) are the analog
  layers, each wrapped in a ``FrozenLinear`` whose programmed weight is the fine-tuned W; its own pooler and
  classifier stay digital.
- A **PEFT folder** (adapter_config.json, adapter_model.safetensors; LoRA or IA3, task SEQ_CLS) is loaded onto its
  ``base_model_name_or_path`` (a local folder or the bundled all-MiniLM-L6-v2; nothing is downloaded). LoRA is
  merged: the programmed weight is W + B·A·α/r, as noisesim's own ``lora`` by default. IA3's scales stay digital:
  each selected layer with scales is an ``IA3Linear`` around peft's layer, the others ``FrozenLinear``.

The data's labels are the classifier's class ids (0 .. num_labels-1). ``read_external`` checks a folder without
loading weights; ``load_external`` loads the model (the engine caches it); ``build_external`` wraps its analog layers
and ``release`` unwraps them again, every weight bit-exactly as it was.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from noisesim.configs import DEFAULT_BACKBONE, LAYER_PRESETS, parse_layers
from noisesim.errors import UserError
from noisesim.methods import FrozenLinear, IA3Linear, adapters_of, remove
from noisesim.models import FAMILY_ROLES, Backbone, check_safetensors_only, resolve_backbone

HF_CONFIG = "config.json"
NOISESIM_WEIGHTS = "adapter.safetensors"  # a noisesim checkpoint's tensors: a folder holding them is never external
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_PICKLE = ("adapter_model.bin", "adapter_model.pt")
PEFT_METHODS = {"LORA": "peft-lora", "IA3": "peft-ia3"}  # supported peft_type → the rows' method
PEFT_PREFIX = "base_model.model."  # how peft names the base model's tensors in adapter_model.safetensors
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")
HEAD_SUFFIXES = ("classifier.weight", "classifier.out_proj.weight", "score.weight")  # a saved head's last layer
MAX_JSON_BYTES = 16 * 2**20
CLASSIFIER = "ForSequenceClassification"


def _json(path: Path, where: str) -> dict | None:
    """A JSON object from ``path``: None when the file is missing, a one-line UserError when it is not JSON."""
    try:
        if not path.is_file():
            return None
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UserError(f"{where}: {path.name} is larger than {MAX_JSON_BYTES >> 20} MiB (not a model config)")
        raw = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_not_finite, parse_float=_finite)
    except OSError as exc:
        raise UserError(f"{where}: {path.name} cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{where}: {path.name} is not valid JSON ({first})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{where}: {path.name} is not a JSON object")
    return raw


def _not_finite(text: str):
    raise ValueError(f"{text} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value


def architectures(folder: Path) -> list[str]:
    """The ``architectures`` a Hugging Face config.json names ([] when there is none, or it cannot be read)."""
    try:
        raw = _json(Path(folder) / HF_CONFIG, str(folder))
    except UserError:
        return []
    archs = (raw or {}).get("architectures")
    return [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []


def check_not_mixed(folder: str | Path) -> None:
    """Refuse (UserError) a folder that holds a noisesim checkpoint (adapter.safetensors) and also a PEFT adapter
    (adapter_config.json) or a Hugging Face model (a config.json naming ``architectures``): which one a --ckpt
    means would depend on how it is spelled."""
    folder = Path(folder)
    if not (folder / NOISESIM_WEIGHTS).exists():
        return
    if (folder / PEFT_CONFIG).exists():
        other = f"a PEFT adapter ({PEFT_CONFIG}" + (f", {PEFT_WEIGHTS})" if (folder / PEFT_WEIGHTS).exists() else ")")
    elif archs := architectures(folder):
        other = f"a Hugging Face {archs[0]} ({HF_CONFIG} names its architectures)"
    else:
        return
    raise UserError(f"{folder} holds both a noisesim checkpoint ({NOISESIM_WEIGHTS}) and {other}: which one to sweep"
                    " is ambiguous; put them in separate folders")


def kind_of(folder: str | Path) -> str | None:
    """'peft' for a folder holding adapter_config.json; 'hf' for one whose config.json names a
    …ForSequenceClassification architecture; None otherwise (a noisesim checkpoint, or no checkpoint). A folder
    that also holds a noisesim checkpoint's adapter.safetensors is refused (UserError, ``check_not_mixed``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    check_not_mixed(folder)
    if (folder / PEFT_CONFIG).is_file():
        return "peft"
    if (folder / NOISESIM_WEIGHTS).exists():
        return None
    _json(folder / HF_CONFIG, str(folder))  # a config.json that is not JSON: say so (not "no checkpoint here")
    return "hf" if any(a.endswith(CLASSIFIER) for a in architectures(folder)) else None


@dataclass(frozen=True)
class ExternalMethod:
    """What a row's ``method`` says of an external checkpoint: hf, peft-lora or peft-ia3."""

    method: str


@dataclass
class ExternalCheckpoint:
    """A checked external folder: where the engine uses a ``checkpoints.Checkpoint`` (``path``, ``name``, ``meta``
    with backbone and num_labels, ``method.method``, ``twin``). ``meta['layers']`` are the analog roles."""

    path: Path
    meta: dict

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> ExternalMethod:
        return ExternalMethod(self.meta["method"])

    @property
    def twin(self) -> None:
        return None

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.meta["layers"])


def read_external(path: str | Path, layers: str | tuple[str, ...] = "all") -> ExternalCheckpoint:
    """Check an external folder (no weights are loaded) and describe it; ``layers`` picks its analog layers."""
    chosen = set(parse_layers(layers))
    roles = tuple(r for r in LAYER_PRESETS["all"] if r in chosen)  # one spelling per selection: model order
    folder = Path(path).expanduser()
    kind = kind_of(folder)
    if kind is None:
        raise UserError(f"{path} is neither a Hugging Face sequence classifier folder (config.json naming a"
                        f" …{CLASSIFIER}, model.safetensors, tokenizer files) nor a PEFT adapter folder"
                        f" ({PEFT_CONFIG}, {PEFT_WEIGHTS})")
    folder = folder.absolute()
    return _read_peft(folder, roles) if kind == "peft" else _read_hf(folder, roles)


def _auto_config(path: str, where: str):
    _quiet_transformers()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # any failure reading a user's config is a one-line error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{where}: its config.json cannot be read ({first})") from None


def _family(config, where: str) -> str:
    family = getattr(config, "model_type", "")
    if family not in FAMILY_ROLES:
        supported = ", ".join(sorted(FAMILY_ROLES))
        raise UserError(f"{where}: model type {family!r} is not supported (supported: {supported})")
    return family


def _labels(num_labels, where: str) -> int:
    if not isinstance(num_labels, int) or num_labels < 2:
        raise UserError(f"{where} has num_labels={num_labels!r}: noisesim measures the accuracy of classifiers with"
                        " 2 or more classes")
    return num_labels


def _has_tokenizer(folder: Path) -> bool:
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES)


def _read_hf(folder: Path, roles: tuple[str, ...]) -> ExternalCheckpoint:
    where = f"Hugging Face model {folder}"
    try:
        check_safetensors_only(str(folder), str(folder))
    except UserError as exc:  # the conversion must keep the classifier head
        raise UserError(str(exc).replace("AutoModel.from_pretrained", f"AutoModel{CLASSIFIER}.from_pretrained")
                        ) from None
    config = _auto_config(str(folder), where)
    family = _family(config, where)
    if not _has_tokenizer(folder):
        raise UserError(f"{where} holds no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, …): save the"
                        " tokenizer into it (tokenizer.save_pretrained(folder))")
    arch = next(a for a in architectures(folder) if a.endswith(CLASSIFIER))
    meta = {"kind": "hf", "method": "hf", "backbone": str(folder), "num_labels": _labels(config.num_labels, where),
            "family": family, "architecture": arch, "layers": list(roles), "tokenizer": str(folder)}
    return ExternalCheckpoint(folder, meta)


def _base_folder(name, where: str) -> tuple[str, str]:
    """(the base's id as rows show it, its local folder): the bundled MiniLM by name, or an existing folder."""
    if isinstance(name, str) and name.strip():
        resolved = resolve_backbone(name)
        if resolved != name:
            return name, resolved
        folder = Path(name).expanduser()
        if folder.is_dir():
            return str(folder.absolute()), str(folder.absolute())
    raise UserError(f"{where}: its base model {name!r} (base_model_name_or_path in {PEFT_CONFIG}) is not here: the"
                    f" base must be a local folder or the bundled {DEFAULT_BACKBONE}; nothing is downloaded (write"
                    " the base's folder there)")


def _adapter_shapes(path: Path, where: str) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape of a safetensors file, read from its header."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            return {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{where}: {path.name} is damaged or not safetensors ({first})") from None


def _read_peft(folder: Path, roles: tuple[str, ...]) -> ExternalCheckpoint:
    where = f"PEFT adapter {folder}"
    raw = _json(folder / PEFT_CONFIG, where) or {}
    peft_type = raw.get("peft_type")
    if peft_type not in PEFT_METHODS:
        raise UserError(f"{where}: PEFT type {peft_type!r} is not supported (supported: {', '.join(PEFT_METHODS)},"
                        " with task_type SEQ_CLS)")
    if raw.get("task_type") != "SEQ_CLS":
        raise UserError(f"{where}: task_type {raw.get('task_type')!r} is not supported: noisesim sweeps sequence"
                        " classifiers (task_type SEQ_CLS)")
    if not (folder / PEFT_WEIGHTS).is_file():
        pickled = [f for f in PEFT_PICKLE if (folder / f).exists()]
        found = f"it holds only {pickled[0]}" if pickled else f"it holds no {PEFT_WEIGHTS}"
        raise UserError(f"cannot load {where}: {found}; noisesim loads safetensors weights only (convert it:"
                        " PeftModel.from_pretrained(base, folder).save_pretrained(folder, safe_serialization=True))")
    shapes = _adapter_shapes(folder / PEFT_WEIGHTS, where)
    backbone, base = _base_folder(raw.get("base_model_name_or_path"), where)
    check_safetensors_only(base, backbone)
    config = _auto_config(base, f"base model {backbone!r} of {where}")
    family = _family(config, f"base model {backbone!r} of {where}")
    head = [shape[0] for key, shape in shapes.items() if key.endswith(HEAD_SUFFIXES) and len(shape) == 2]
    num_labels = _labels(head[-1] if head else config.num_labels, where)
    tokenizer = folder if _has_tokenizer(folder) else Path(base)
    if not _has_tokenizer(tokenizer):
        raise UserError(f"{where}: neither it nor its base {backbone!r} holds tokenizer files: save the tokenizer"
                        " into the adapter folder (tokenizer.save_pretrained(folder))")
    meta = {"kind": "peft", "method": PEFT_METHODS[peft_type], "backbone": backbone, "base": base,
            "base_num_labels": config.num_labels, "num_labels": num_labels, "family": family, "peft_type": peft_type,
            "layers": list(roles), "tokenizer": str(tokenizer)}
    return ExternalCheckpoint(folder, meta)


# --- loading, wrapping, unwrapping ---------------------------------------------------------------------------


@dataclass
class ExternalBackbone(Backbone):
    """An external model as loaded (LoRA merged, IA3's peft layers in place), nothing wrapped yet: ``roles`` names
    every encoder linear layer (module name → role, model order), ``originals`` the module each name held then."""

    roles: dict[str, str] = field(default_factory=dict)
    originals: dict[str, nn.Module] = field(default_factory=dict)


def _quiet_transformers() -> None:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_external(ckpt: ExternalCheckpoint) -> ExternalBackbone:
    """The model of an external checkpoint, loaded offline from safetensors only (nothing wrapped yet)."""
    _quiet_transformers()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    meta, peft = ckpt.meta, ckpt.meta["kind"] == "peft"
    where = f"{'PEFT adapter' if peft else 'Hugging Face model'} {ckpt.path}"
    options = {}
    if peft and meta["num_labels"] != meta["base_num_labels"]:  # the adapter brings its own head
        options = {"num_labels": meta["num_labels"], "ignore_mismatched_sizes": True}
    try:
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")
            torch.manual_seed(0)  # weights a file lacks are refused below; seeded all the same
            model, info = AutoModelForSequenceClassification.from_pretrained(
                meta["base"] if peft else str(ckpt.path), use_safetensors=True, local_files_only=True,
                output_loading_info=True, **options)
            tokenizer = AutoTokenizer.from_pretrained(meta["tokenizer"], local_files_only=True)
            model.eval()
            roles = Backbone(model, tokenizer, meta["family"], meta["backbone"]).linear_roles("all")
            lacking = set(info.get("missing_keys") or ()) | {k[0] if isinstance(k, tuple) else k
                                                              for k in info.get("mismatched_keys") or ()}
            if peft:
                model, lacking = _apply_peft(model, ckpt, lacking, where)
    except UserError:
        raise
    except Exception as exc:  # any failure reading a user's model files is a one-line error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot load {where}: {first} (no downloads here)") from None
    if lacking:
        shown = ", ".join(sorted(lacking)[:3]) + (", …" if len(lacking) > 3 else "")
        raise UserError(f"cannot load {where}: its files hold no weights for {shown}, so they would be random"
                        f" (save the whole {CLASSIFIER} model)")
    if tokenizer.pad_token_id is None:
        raise UserError(f"cannot load {where}: its tokenizer has no padding token (set one and save it)")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    originals = {name: model.get_submodule(name) for name in roles}
    return ExternalBackbone(model, tokenizer, meta["family"], meta["backbone"], roles=roles, originals=originals)


def _apply_peft(model: nn.Module, ckpt: ExternalCheckpoint, lacking: set[str], where: str):
    """The base with the adapter loaded (LoRA merged into W), and the base's lacking weights the adapter does not
    bring; every adapter tensor must have found its place in the base."""
    from peft import PeftModel

    stored = set(_adapter_shapes(ckpt.path / PEFT_WEIGHTS, where))
    try:
        peft_model = PeftModel.from_pretrained(model, str(ckpt.path), is_trainable=False)
    except RuntimeError as exc:
        mismatch = SIZE_MISMATCH.search(str(exc))
        if mismatch is None and "size mismatch" not in str(exc):
            raise
        shown = ""
        if mismatch is not None:
            name, theirs, ours = mismatch.groups()
            name = name.replace(".default", "")  # as the adapter's file names it
            shown = f": tensor {name} has shape {_shape(theirs)} in the adapter, {_shape(ours)} in the base"
        raise UserError(f"{where} does not fit its base {ckpt.meta['backbone']!r}{shown}; the adapter was trained on"
                        f" another base: set base_model_name_or_path in {PEFT_CONFIG} to that base's folder") from None
    names = {k.replace(".modules_to_save.default", "").replace(".default", "") for k in peft_model.state_dict()}
    if unplaced := sorted(stored - names):
        raise UserError(f"{where}: tensor {unplaced[0]} has no place in its base {ckpt.meta['backbone']!r} (was it"
                        " trained on another model?)")
    lacking = lacking - {k.removeprefix(PEFT_PREFIX) for k in stored}
    model = peft_model.merge_and_unload() if ckpt.meta["peft_type"] == "LORA" else peft_model.get_base_model()
    return model, lacking


SIZE_MISMATCH = re.compile(r"size mismatch for (\S+?): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from"
                           r" checkpoint, the shape in current model is torch\.Size\(\[([\d, ]*)\]\)")


def _shape(text: str) -> str:
    return "(" + ", ".join(x.strip() for x in text.split(",") if x.strip()) + ")"


def build_external(ckpt: ExternalCheckpoint, backbone: ExternalBackbone | None = None) -> ExternalBackbone:
    """Load (or reuse an unwrapped) model and wrap the layers ``ckpt.meta['layers']`` selects as analog layers:
    ``FrozenLinear`` on a plain linear layer (programmed weight: its W, LoRA merged), ``IA3Linear`` on a peft IA3
    layer (programmed weight: its base W; the scales stay digital)."""
    from peft.tuners.ia3 import Linear as PeftIA3Linear

    backbone = backbone or load_external(ckpt)
    if adapters_of(backbone.model):
        raise RuntimeError("this model already holds analog layers: release() it first")
    selected = [name for name, role in backbone.roles.items() if role in ckpt.layers]
    if not selected:
        raise UserError(f"--layers {','.join(ckpt.layers)} selects no layer of {ckpt.path}")
    try:
        for name in selected:
            original = backbone.originals[name]
            if isinstance(original, nn.Linear):
                adapter = FrozenLinear(original)
            elif isinstance(original, PeftIA3Linear):
                adapter = IA3Linear.wrap(original)
            else:
                raise UserError(f"{ckpt.path}: layer {name} is a {type(original).__name__}, which noisesim cannot"
                                " program (supported: linear layers, peft's IA3 layers)")
            adapter.eval()
            parent, _, child = name.rpartition(".")
            setattr(backbone.model.get_submodule(parent), child, adapter)
    except BaseException:
        release(backbone)
        raise
    return backbone


def release(backbone: Backbone) -> None:
    """Undo ``build_external`` (or ``checkpoints.build``): every analog layer unprogrammed and unwrapped, and each
    module an external model held (peft's IA3 layers) back in its place; the model serves the next checkpoint."""
    remove(backbone)
    for name, original in getattr(backbone, "originals", {}).items():
        parent, _, child = name.rpartition(".")
        if backbone.model.get_submodule(name) is not original:
            setattr(backbone.model.get_submodule(parent), child, original)
