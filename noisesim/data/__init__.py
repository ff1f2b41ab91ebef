"""Datasets: the bundled SST-2 splits, user files (``--data``), tokenise-once and length-sorted batches."""

from __future__ import annotations

import csv
import io
import re
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch

from noisesim.errors import UserError
from noisesim.textio import read_utf8

BUNDLED = {"sst2-train": "train.tsv", "sst2-dev": "dev.tsv"}
REQUIRED_COLUMNS = ("sentence", "label")
MAX_BYTES = 256 * 2**20  # a data file is read whole; SST-2 train is 3.8 MB
MAX_LABEL = 9_999  # labels are class indices 0 .. 9999 (a head with more classes is not a noise study)
_LABEL = re.compile(r"([0-9]+)(?:\.0*)?")  # 1 or 1.0 (an exact integer); not 1.5, -1, 1e0, True, ""
_HINT = "give a TSV/CSV with 'sentence' and 'label' columns, or one of " + ", ".join(BUNDLED)


def bundled_path(name: str) -> Path:
    """Path of a bundled split (``sst2-train`` or ``sst2-dev``)."""
    return Path(str(resources.files("noisesim.data").joinpath("sst2", BUNDLED[name])))


def _show(text: str, limit: int = 40) -> str:
    """A field quoted for an error message: one line, at most ``limit`` characters."""
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, a BOM dropped), or a UserError saying why it cannot be data."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"data file not found: {path} ({_HINT})") from None
    except (OSError, ValueError) as exc:  # permission on a parent, name too long, NUL in the name
        raise UserError(f"cannot read data file {path}: {getattr(exc, 'strerror', None) or exc} ({_HINT})") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"data file {path} is a folder ({_HINT})")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"data file {path} is not a regular file ({_HINT})")
    if info.st_size > MAX_BYTES:
        raise UserError(f"data file {path} is larger than {MAX_BYTES >> 20} MB, the limit (use a sample of it)")
    text = read_utf8(path, "data file", MAX_BYTES)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise UserError(f"{path}, line {line}: NUL byte in the text (a binary file? give a UTF-8 TSV/CSV)")
    return text


def _label(field: str, where: str) -> int:
    """A class index from a label field: digits, or an exact integer written with a decimal point (1.0)."""
    match = _LABEL.fullmatch(field.strip())
    if match is None:
        raise UserError(f"{where}: label {_show(field)} is not a class index"
                        f" (labels must be 0, 1, ... up to {MAX_LABEL}, written as digits)")
    digits = match.group(1).lstrip("0") or "0"
    if len(digits) > len(str(MAX_LABEL)) or int(digits) > MAX_LABEL:
        raise UserError(f"{where}: label {_show(field)} is out of range (labels are class indices 0 .. {MAX_LABEL})")
    return int(digits)


def load_table(source: str | Path) -> datasets.Dataset:
    """Load a bundled split by name, or a TSV/CSV file with ``sentence`` and ``label`` columns.

    Strict: UTF-8 text of at most ``MAX_BYTES``; a header with unique names; every row with exactly the
    header's number of fields (blank lines are skipped); a non-blank sentence; a label that is a class index
    0 .. ``MAX_LABEL`` written as digits (``1.0`` is read as 1; ``1.5``, ``-1``, ``True`` are refused).
    ``.csv`` files are comma-separated with standard double-quote quoting; any other file is tab-separated
    with no quoting (a ``"`` is an ordinary character). Any violation is a one-line ``UserError`` naming
    the file and, for a row, its line number.
    """
    if not str(source).strip():
        raise UserError(f"no data file named (an empty --data; {_HINT})")
    if isinstance(source, str) and source in BUNDLED and Path(source).exists():
        raise UserError(f"{source!r} is both a bundled data set and a file here: write ./{source} for the file,"
                        " or rename it")
    path = bundled_path(source) if str(source) in BUNDLED else Path(source)
    text = _read_text(path)
    is_csv = path.suffix.lower() == ".csv"
    sep_name = "comma" if is_csv else "tab"
    stream = io.StringIO(text, newline="")
    if is_csv:
        reader = csv.reader(stream, delimiter=",", quoting=csv.QUOTE_MINIMAL, strict=True)
    else:
        reader = csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
    header, sentences, labels, known = None, [], [], {}
    s_col = l_col = 0
    line = 1  # where the next row starts (a quoted CSV field may span lines)
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if header is not None and len(row) == len(header):
                sentence, field = row[s_col], row[l_col]
                if not sentence or sentence.isspace():
                    raise UserError(f"{path}, line {start}: empty sentence (remove the row or write its text)")
                label = known.get(field)
                if label is None:
                    label = known[field] = _label(field, f"{path}, line {start}")
                sentences.append(sentence)
                labels.append(label)
                continue
            if not row or row == [""]:
                continue  # a blank line
            where = f"{path}, line {start}"
            if header is not None:
                if len(row) < len(header):
                    fix = f"each row needs all {len(header)} columns, {sep_name}-separated"
                elif is_csv:
                    fix = "put double quotes around a sentence that holds a comma"
                else:
                    fix = "a sentence cannot hold a tab here; use a .csv file with quotes for that"
                raise UserError(f"{where}: {len(row)} {sep_name}-separated field(s) where the header has"
                                f" {len(header)} ({fix})")
            header = [name.strip() for name in row]
            dupes = sorted({name for name in header if header.count(name) > 1})
            if dupes:
                raise UserError(f"{where}: duplicate column name(s) {', '.join(map(_show, dupes))}"
                                " (give each column a unique name)")
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                found = ", ".join(_show(n, 20) for n in header[:8]) + (", …" if len(header) > 8 else "")
                raise UserError(f"{path} lacks column(s) {', '.join(missing)}; found {found}"
                                f" (the first line must name the {sep_name}-separated columns 'sentence'"
                                " and 'label')")
            s_col, l_col = header.index("sentence"), header.index("label")
    except csv.Error as exc:
        fix = ("shorten it" if "field limit" in str(exc) else
               'put double quotes around a field that holds a comma, and write a quote inside one as ""')
        raise UserError(f"{path}, line {line}: cannot parse it as {'CSV' if is_csv else 'TSV'}: {exc} ({fix})"
                        ) from None
    if header is None:
        raise UserError(f"data file {path} is empty (write a header line naming the 'sentence' and 'label'"
                        " columns, then rows)")
    if not sentences:
        raise UserError(f"{path} has no rows (add labelled rows under the header)")
    return datasets.Dataset(pa.table({"sentence": pa.array(sentences, pa.string()),
                                      "label": pa.array(labels, pa.int64())}))


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


MAX_PADDING = 0.02  # evaluation batches pad at most this fraction of the real tokens
BATCH_OVERHEAD_TOKENS = 24  # a forward's fixed cost (launches, reading every weight), in padded tokens (MiniLM, CPU)
BATCHING = f"least cost, padding <= {MAX_PADDING}, overhead {BATCH_OVERHEAD_TOKENS}"  # in cell keys: cuts fix draws


def plan_batches(lengths: list[int], max_rows: int, max_padding: float = MAX_PADDING,
                 overhead: float = BATCH_OVERHEAD_TOKENS) -> list[list[int]]:
    """Cut examples into evaluation batches: index lists, shortest first, each at most ``max_rows`` long.

    The examples are sorted by length (stable) and cut where the cost padded tokens + ``overhead`` × batches is
    least (exact dynamic programming over the sorted order); the overhead is lowered until the padding is at
    most ``max_padding`` of the real tokens (with no overhead every batch holds one length: no padding)."""
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sizes = [lengths[i] for i in order]
    real = sum(sizes)

    # Where a best batch can start: moving a start inside a run of equal lengths to the right never costs more
    # (the batch before keeps its width), until that batch is full; so starts are a run's first example plus
    # multiples of max_rows. With them the least cost is exact, in O(n · runs) instead of O(n · max_rows).
    mask = np.zeros(len(sizes), dtype=bool)
    for p in range(len(sizes)):
        if p == 0 or sizes[p] != sizes[p - 1]:
            mask[p::max_rows] = True
    runs = np.flatnonzero(mask)

    def cut(c: float) -> list[int]:
        n = len(sizes)
        best, start = np.zeros(n + 1), np.zeros(n + 1, dtype=np.int64)
        for j in range(1, n + 1):
            lo = max(0, j - max_rows)
            starts = np.concatenate(([lo], runs[np.searchsorted(runs, lo, "right"):np.searchsorted(runs, j)]))
            costs = best[starts] + (j - starts) * sizes[j - 1]
            i = int(np.argmin(costs))  # the first least: the longest batch
            best[j], start[j] = costs[i] + c, starts[i]
        ends, j = [], n
        while j:
            ends.append(j)
            j = start[j]
        return ends[::-1]

    c = float(overhead)
    while True:
        ends = cut(c)
        padded = sum((e - s) * sizes[e - 1] for s, e in zip([0, *ends[:-1]], ends, strict=True))
        if padded - real <= max_padding * real or c == 0:
            return [order[s:e] for s, e in zip([0, *ends[:-1]], ends, strict=True)]
        c = c / 2 if c > 1e-3 else 0.0


@dataclass
class EvalBatches:
    """Length-sorted, dynamically padded batches for evaluation, built once and reused (``plan_batches``)."""

    batches: list[dict[str, torch.Tensor]]
    labels: list[torch.Tensor]

    @classmethod
    def build(cls, data: Encoded, pad_id: int, batch_size: int = 128) -> EvalBatches:
        """At most ``batch_size`` sentences per batch, padding at most ``MAX_PADDING`` of the real tokens."""
        chunks = plan_batches([len(x) for x in data.input_ids], batch_size)
        return cls([collate([data.input_ids[i] for i in chunk], pad_id) for chunk in chunks],
                   [data.labels[chunk] for chunk in chunks])

    @property
    def tokens(self) -> tuple[int, int]:
        """(padded, real) tokens over all batches."""
        return (sum(b["input_ids"].numel() for b in self.batches),
                sum(int(b["attention_mask"].sum()) for b in self.batches))

    def to(self, device) -> EvalBatches:
        """The same batches on ``device`` (moved once, then reused by every cell)."""
        return EvalBatches([{k: v.to(device) for k, v in b.items()} for b in self.batches],
                           [labels.to(device) for labels in self.labels])


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
