"""Datasets: the bundled SST-2, RTE and CoLA splits, user files (``--data``), tokenise-once and length-sorted
batches."""

from __future__ import annotations

import csv
import difflib
import io
import json
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


@dataclass(frozen=True)
class Task:
    """A bundled task: its folder under noisesim/data, its columns, label names (class i is the i-th), metric and
    file format (``quoted``: TSV with CSV double-quote quoting; ``names``: the columns of a file without a header)."""

    folder: str
    text: str = "sentence"
    pair: str | None = None
    label: str = "label"
    labels: tuple[str, ...] | None = None
    metric: str = "accuracy"
    quoted: bool = False
    names: tuple[str, ...] | None = None


TASKS = {"sst2": Task("sst2"),
         "rte": Task("rte", "sentence1", "sentence2", labels=("entailment", "not_entailment"), quoted=True),
         "cola": Task("cola", labels=("unacceptable", "acceptable"), metric="mcc", names=("sentence", "label"))}
BUNDLED = {f"{task}-{split}": f"{split}.tsv" for task in TASKS for split in ("train", "dev")}
SUFFIXES = (".tsv", ".csv", ".jsonl", ".parquet")
MAX_BYTES = 256 * 2**20  # a data file is read whole; SST-2 train is 3.8 MB
MAX_LABEL = 9_999  # labels are class indices 0 .. 9999 (a head with more classes is not a noise study)
_LABEL = re.compile(r"([0-9]+)(?:\.0*)?")  # 1 or 1.0 (an exact integer); not 1.5, -1, 1e0, True, ""
_HINT = ("give a TSV/CSV, .jsonl or .parquet file, or a folder saved by datasets' save_to_disk, or one of "
         + ", ".join(BUNDLED))


@dataclass(frozen=True)
class Columns:
    """Which columns hold the sentence, the optional second sentence of a pair and the label, and the label names
    string labels map to (class i is the i-th; None: labels are class indices)."""

    text: str = "sentence"
    pair: str | None = None
    label: str = "label"
    labels: tuple[str, ...] | None = None

    def key(self) -> dict | None:
        """What joins a sweep cell's key: None for the default (sentence, label, integer labels), so the cells of
        such data keep their keys; else every setting."""
        if self == Columns():
            return None
        return {"text": self.text, "pair": self.pair, "label": self.label,
                "labels": list(self.labels) if self.labels is not None else None}


def task_of(source: str | Path) -> Task | None:
    """The bundled task a data name belongs to (``rte-dev`` → RTE), None for a file."""
    return TASKS[str(source).rsplit("-", 1)[0]] if str(source) in BUNDLED else None


def columns_for(source: str | Path, text: str | None = None, pair: str | None = None, label: str | None = None,
                labels: list[str] | tuple[str, ...] | None = None) -> Columns:
    """The columns of ``source``: each one given, else the bundled task's own, else sentence / none / label."""
    task = task_of(source) or Task("")
    columns = Columns(text or task.text, pair if pair is not None else task.pair, label or task.label,
                      tuple(labels) if labels is not None else task.labels)
    named = [(flag, name) for flag, name in (("--text-column", columns.text), ("--text-pair-column", columns.pair),
                                             ("--label-column", columns.label)) if name is not None]
    for i, (flag, name) in enumerate(named):
        if clash := next((other for other, n in named[:i] if n == name), None):
            raise UserError(f"{flag} and {clash} both name the column {name!r} of {source}: give each role its own"
                            " column")
    return columns


def metric_for(source: str | Path, metric: str | None = None) -> str:
    """The metric a data set is scored with: ``metric`` when given, else the bundled task's, else accuracy."""
    return metric or (task_of(source) or Task("")).metric


def bundled_path(name: str) -> Path:
    """Path of a bundled split (``sst2-train``, ``rte-dev``, …)."""
    return Path(str(resources.files("noisesim.data").joinpath(task_of(name).folder, BUNDLED[name])))


def _show(text: str, limit: int = 40) -> str:
    """A field quoted for an error message: one line, at most ``limit`` characters."""
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def _stat(path: Path):
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"data file not found: {path} ({_HINT})") from None
    except (OSError, ValueError) as exc:  # permission on a parent, name too long, NUL in the name
        raise UserError(f"cannot read data file {path}: {getattr(exc, 'strerror', None) or exc} ({_HINT})") from None


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, a BOM dropped), or a UserError saying why it cannot be data."""
    info = _stat(path)
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


def _label(field: str, where: str, names: dict[str, int] | None = None) -> int:
    """A class index from a label field: a label name (with ``names``), or digits, or an exact integer written with
    a decimal point (1.0)."""
    if names is not None and field in names:
        return names[field]
    match = _LABEL.fullmatch(field.strip())
    if match is None:
        if names is not None:
            raise UserError(f"{where}: label {_show(field)} is not one of the labels {', '.join(names)}"
                            " (--labels lists them; class i is the i-th)")
        raise UserError(f"{where}: label {_show(field)} is not a class index"
                        f" (labels must be 0, 1, ... up to {MAX_LABEL}, written as digits; for label names give"
                        " --labels, e.g. --labels entailment,not_entailment)")
    digits = match.group(1).lstrip("0") or "0"
    limit = MAX_LABEL if names is None else len(names) - 1
    if len(digits) > len(str(MAX_LABEL)) or int(digits) > limit:
        raise UserError(f"{where}: label {_show(field)} is out of range (labels are class indices 0 .. {limit}"
                        + (f", one per name of --labels {','.join(names)})" if names is not None else ")"))
    return int(digits)


def _missing_column(path, header: list[str], columns: Columns, extra: str = "") -> None:
    """UserError naming the columns of ``columns`` the file lacks, the file's columns, a did-you-mean and the flags
    that choose columns."""
    wanted = ((columns.text, "--text-column"), (columns.pair, "--text-pair-column"), (columns.label, "--label-column"))
    missing = [(name, flag) for name, flag in wanted if name is not None and name not in header]
    if not missing:
        return
    found = ", ".join(_show(n, 20) for n in header[:8]) + (", …" if len(header) > 8 else "")
    close = [(n, difflib.get_close_matches(n, header, n=1, cutoff=0.6)) for n, _ in missing]
    hint = "; ".join(f"did you mean {c[0]!r} for {n!r}?" for n, c in close if c)
    flags = "/".join(flag for _, flag in missing)
    raise UserError(f"{path} lacks column(s) {', '.join(n for n, _ in missing)}; found {found or '(none)'} ("
                    + (f"{hint} " if hint else "") + f"choose columns with {flags})" + extra)


def load_table(source: str | Path, columns: Columns | None = None) -> datasets.Dataset:
    """Load a bundled split by name, or a data file: TSV/CSV, JSON lines (``.jsonl``), ``.parquet``, or a folder
    saved by HF ``datasets`` (``save_to_disk``). ``columns`` says where the sentence, the optional pair sentence
    and the label are (default: the bundled task's, else ``sentence`` and ``label``) and the label names string
    labels map to. Returns a table with columns ``sentence``, ``text_pair`` (pairs only) and ``label`` (int).

    Strict: UTF-8 text of at most ``MAX_BYTES``; a header with unique names; every row with exactly the
    header's number of fields (blank lines are skipped); a non-blank sentence; a label that is a class index
    0 .. ``MAX_LABEL`` written as digits (``1.0`` is read as 1; ``1.5``, ``-1``, ``True`` are refused), or one of
    the label names. ``.csv`` files are comma-separated with standard double-quote quoting; any other file is
    tab-separated with no quoting (a ``"`` is an ordinary character). Any violation is a one-line ``UserError``
    naming the file and, for a row, its line number.
    """
    if not str(source).strip():
        raise UserError(f"no data file named (an empty --data; {_HINT})")
    if isinstance(source, str) and source in BUNDLED and Path(source).exists():
        raise UserError(f"{source!r} is both a bundled data set and a file here: write ./{source} for the file,"
                        " or rename it")
    columns = columns if columns is not None else columns_for(source)
    task = task_of(source)
    path = bundled_path(source) if task is not None else Path(source)
    suffix = path.suffix.lower()
    if task is None and stat.S_ISDIR(_stat(path).st_mode):
        return _from_arrow(path, _saved_dataset(path), columns)
    if suffix == ".parquet":
        return _from_arrow(path, _parquet(path), columns)
    if suffix == ".jsonl":
        return _from_jsonl(path, columns)
    return _from_delimited(path, columns, quoted=task is not None and task.quoted,
                           names=task.names if task is not None else None)


def _from_delimited(path: Path, columns: Columns, quoted: bool = False,
                    names: tuple[str, ...] | None = None) -> datasets.Dataset:
    """A TSV or CSV file (``quoted``: a TSV with CSV quoting; ``names``: the columns of a file without a header)."""
    text = _read_text(path)
    is_csv = path.suffix.lower() == ".csv"
    sep_name = "comma" if is_csv else "tab"
    stream = io.StringIO(text, newline="")
    if is_csv or quoted:
        reader = csv.reader(stream, delimiter="," if is_csv else "\t", quoting=csv.QUOTE_MINIMAL, strict=True)
    else:
        reader = csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
    label_names = {n: i for i, n in enumerate(columns.labels)} if columns.labels is not None else None
    header, sentences, pairs, labels, known = None, [], [], [], {}
    s_col = l_col = 0
    p_col = None
    if names is not None:
        header = list(names)
        _missing_column(path, header, columns)
        s_col, l_col = header.index(columns.text), header.index(columns.label)
        p_col = header.index(columns.pair) if columns.pair is not None else None
    line = 1  # where the next row starts (a quoted CSV field may span lines)
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if header is not None and len(row) == len(header):
                sentence, field = row[s_col], row[l_col]
                if not sentence or sentence.isspace():
                    raise UserError(f"{path}, line {start}: empty sentence (remove the row or write its text)")
                if p_col is not None:
                    pair = row[p_col]
                    if not pair or pair.isspace():
                        raise UserError(f"{path}, line {start}: empty second sentence in column {columns.pair!r}"
                                        " (remove the row or write its text)")
                    pairs.append(pair)
                label = known.get(field)
                if label is None:
                    label = known[field] = _label(field, f"{path}, line {start}", label_names)
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
            _missing_column(path, header, columns, f"; the first line must name the {sep_name}-separated columns")
            s_col, l_col = header.index(columns.text), header.index(columns.label)
            p_col = header.index(columns.pair) if columns.pair is not None else None
    except csv.Error as exc:
        fix = ("shorten it" if "field limit" in str(exc) else
               'put double quotes around a field that holds a comma, and write a quote inside one as ""')
        raise UserError(f"{path}, line {line}: cannot parse it as {'CSV' if is_csv else 'TSV'}: {exc} ({fix})"
                        ) from None
    if header is None:
        raise UserError(f"data file {path} is empty (write a header line naming the {columns.text!r} and"
                        f" {columns.label!r} columns, then rows)")
    if not sentences:
        raise UserError(f"{path} has no rows (add labelled rows under the header)")
    return _table(sentences, pairs if p_col is not None else None, labels)


def _table(sentences: list[str], pairs: list[str] | None, labels: list[int]) -> datasets.Dataset:
    data = {"sentence": pa.array(sentences, pa.string())}
    if pairs is not None:
        data["text_pair"] = pa.array(pairs, pa.string())
    data["label"] = pa.array(labels, pa.int64())
    return datasets.Dataset(pa.table(data))


def _saved_dataset(path: Path) -> pa.Table:
    """The arrow table of a folder saved by ``datasets`` (``save_to_disk``; one split)."""
    if not (path / "dataset_info.json").is_file() and not (path / "dataset_dict.json").is_file():
        raise UserError(f"data file {path} is a folder, but not one saved by datasets' save_to_disk ({_HINT})")
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several types for a damaged folder
        raise UserError(f"{path}: cannot load it as a saved data set ({type(exc).__name__}:"
                        f" {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    if isinstance(loaded, datasets.DatasetDict):
        raise UserError(f"{path} holds the splits ({', '.join(loaded)}): give one, e.g. --data"
                        f" {path / next(iter(loaded))}")
    return loaded.data.table


def _parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    info = _stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"data file {path} is not a regular file ({_HINT})")
    if info.st_size > MAX_BYTES:
        raise UserError(f"data file {path} is larger than {MAX_BYTES >> 20} MB, the limit (use a sample of it)")
    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
        raise UserError(f"{path} is not a readable parquet file ({type(exc).__name__})") from None


def _from_jsonl(path: Path, columns: Columns) -> datasets.Dataset:
    """JSON lines: one object per line (blank lines skipped), every object with the columns."""
    rows, lines = [], []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{path}, line {number}: not JSON ({str(exc).splitlines()[0][:80]}; give one JSON object"
                            " per line)") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}, line {number}: a JSON {type(row).__name__}, not an object (give one object"
                            " per line, e.g. {\"sentence\": \"...\", \"label\": 1})")
        if not rows or row.keys() != rows[-1].keys():
            _missing_column(f"{path}, line {number},", list(row), columns)
        rows.append(row)
        lines.append(number)
    if not rows:
        raise UserError(f"{path} has no rows (write one JSON object per line)")
    return _from_values(path, [r[columns.text] for r in rows],
                        [r[columns.pair] for r in rows] if columns.pair is not None else None,
                        [r[columns.label] for r in rows], columns, lambda i: f"{path}, line {lines[i]}")


def _from_arrow(path: Path, table: pa.Table, columns: Columns) -> datasets.Dataset:
    _missing_column(path, table.column_names, columns)
    if not table.num_rows:
        raise UserError(f"{path} has no rows (add labelled rows)")
    get = lambda name: table.column(name).to_pylist()  # noqa: E731
    return _from_values(path, get(columns.text), get(columns.pair) if columns.pair is not None else None,
                        get(columns.label), columns, lambda i: f"{path}, row {i}")


def _from_values(path: Path, texts: list, pairs: list | None, raw: list, columns: Columns, where) -> datasets.Dataset:
    """Check typed values (JSON lines, parquet, saved data sets): strings for sentences; labels that are integers
    (not booleans), exact integral floats, or strings (label names or digits)."""
    names = {n: i for i, n in enumerate(columns.labels)} if columns.labels is not None else None
    limit = MAX_LABEL if names is None else len(names) - 1
    labels = []
    for i, (text, value) in enumerate(zip(texts, raw, strict=True)):
        for what, sentence in (("sentence", text), ("second sentence", pairs[i] if pairs is not None else "x")):
            if not isinstance(sentence, str) or not sentence.strip():
                raise UserError(f"{where(i)}: {what} {sentence!r} is not a non-empty string (remove the row or write"
                                " its text)")
        if isinstance(value, str):
            labels.append(_label(value, where(i), names))
        elif (isinstance(value, bool) or not isinstance(value, int | float)
              or (isinstance(value, float) and not value.is_integer()) or value < 0):
            raise UserError(f"{where(i)}: label {value!r} is not a class index (give 0, 1, ... or label names with"
                            " --labels)")
        elif int(value) > limit:
            raise UserError(f"{where(i)}: label {value!r} is out of range (labels are class indices 0 .. {limit})")
        else:
            labels.append(int(value))
    return _table(list(texts), list(pairs) if pairs is not None else None, labels)


@dataclass
class Encoded:
    """A tokenised dataset held as Python lists (token ids without padding) and labels."""

    input_ids: list[list[int]]
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(table: datasets.Dataset, tokenizer, max_length: int, source: str = "") -> Encoded:
    """Tokenise once (a sentence pair as a pair, cut longest first); padding happens per batch."""
    if "text_pair" in table.column_names:
        ids = tokenizer(list(table["sentence"]), list(table["text_pair"]), truncation="longest_first",
                        max_length=max_length)["input_ids"]
    else:
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
