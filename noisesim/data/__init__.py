"""Datasets: the bundled SST-2 splits, user files (``--data``), tokenise-once and length-sorted batches."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import datasets
import pandas as pd
import torch

from noisesim.errors import UserError

BUNDLED = {"sst2-train": "train.tsv", "sst2-dev": "dev.tsv"}
REQUIRED_COLUMNS = ("sentence", "label")


def bundled_path(name: str) -> Path:
    """Path of a bundled split (``sst2-train`` or ``sst2-dev``)."""
    return Path(str(resources.files("noisesim.data").joinpath("sst2", BUNDLED[name])))


def load_table(source: str | Path) -> datasets.Dataset:
    """Load a bundled split by name, or a TSV/CSV file with ``sentence`` and ``label`` columns."""
    path = bundled_path(source) if str(source) in BUNDLED else Path(source)
    if not path.is_file():
        raise UserError(
            f"data file not found: {path} (give a TSV/CSV with 'sentence' and 'label' columns,"
            f" or one of {', '.join(BUNDLED)})"
        )
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    quoting = csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE
    try:
        frame = pd.read_csv(path, sep=sep, quoting=quoting, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"cannot parse {path}: {first} (expected a header line and {sep!r}-separated rows)") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path} lacks column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns)) or 'none'}"
            " (rename them to 'sentence' and 'label')"
        )
    if len(frame) == 0:
        raise UserError(f"{path} has no rows (add labelled rows under the header)")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    if labels.isna().any() or (labels % 1 != 0).any() or (labels < 0).any():
        bad = frame["label"][labels.isna() | (labels % 1 != 0) | (labels < 0)].iloc[0]
        raise UserError(f"{path}: label {bad!r} is not a class index (labels must be 0, 1, ...)")
    frame = pd.DataFrame({"sentence": frame["sentence"].astype(str), "label": labels.astype(int)})
    return datasets.Dataset.from_pandas(frame, preserve_index=False)


@dataclass
class Encoded:
    """A tokenised dataset held as Python lists (token ids without padding) and labels."""

    input_ids: list[list[int]]
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(table: datasets.Dataset, tokenizer, max_length: int, source: str = "") -> Encoded:
    """Tokenise once; padding happens per batch."""
    ids = tokenizer(list(table["sentence"]), truncation=True, max_length=max_length)["input_ids"]
    return Encoded(ids, torch.tensor(list(table["label"]), dtype=torch.long), source)


def collate(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of token-id lists to the longest one."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x)
        mask[row, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


@dataclass
class EvalBatches:
    """Length-sorted, dynamically padded batches for evaluation, built once and reused."""

    batches: list[dict[str, torch.Tensor]]
    labels: list[torch.Tensor]

    @classmethod
    def build(cls, data: Encoded, pad_id: int, batch_size: int = 128) -> EvalBatches:
        order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
        batches, labels = [], []
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batches.append(collate([data.input_ids[i] for i in chunk], pad_id))
            labels.append(data.labels[chunk])
        return cls(batches, labels)


def train_batches(data: Encoded, pad_id: int, batch_size: int, gen: torch.Generator, group: int = 50):
    """Endless shuffled training batches (epoch after epoch) from one generator.

    With ``group`` > 1 the batches are length-grouped: each epoch's shuffled order is cut into
    windows of ``group`` batches, each window is sorted by length and cut into batches, and the
    batches of the window are shuffled. Every example still appears once per epoch, but a batch
    pads to a width near its members' own lengths (SST-2 train, 2000 batches of 32: mean width
    40.0 → 13.9 tokens for sentences of 13.3 on average), which makes a step about twice as fast.
    """
    lengths = torch.tensor([len(x) for x in data.input_ids])
    window_size = batch_size * group
    while True:
        order = torch.randperm(len(data), generator=gen)
        usable = len(order) - len(order) % batch_size
        if group <= 1:  # the plain shuffle (and its random stream), as before length grouping
            chunks = list(order[:usable].split(batch_size))
        else:
            chunks = []
            for start in range(0, usable, window_size):
                window = order[start: min(usable, start + window_size)]
                cut = window[torch.argsort(lengths[window], stable=True)].split(batch_size)
                chunks.extend(cut[i] for i in torch.randperm(len(cut), generator=gen).tolist())
        for chunk in chunks:
            chunk = chunk.tolist()
            batch = collate([data.input_ids[i] for i in chunk], pad_id)
            batch["labels"] = data.labels[chunk]
            yield batch
