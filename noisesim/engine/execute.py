"""Running cells: in this process, in local worker processes, or as Ray tasks — the same function each time.

Every cell is deterministic given its seeds, so the backend changes only the speed, not the numbers.
A process keeps its loaded backbones (``_BACKBONES``) and tokenised data (``_BATCHES``) between cells.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import torch

from noisesim import __version__, checkpoints
from noisesim.configs import MethodConfig, TrainConfig, effective_settings
from noisesim.data import Columns, EvalBatches, encode, load_table
from noisesim.devices import Profile, format_time
from noisesim.engine.analog import analog_layers, is_default, resolve
from noisesim.engine.config import DEFAULT_ANALOG
from noisesim.engine.grid import Cell, backbone_fingerprint, data_fingerprint, folder_hash, read_cell_checkpoint
from noisesim.engine.program import ProgrammedWeights
from noisesim.errors import UserError
from noisesim.evaluate import accuracy, measure
from noisesim.external import ExternalCheckpoint, build_external, load_external, release
from noisesim.hardware import autocast, device_label
from noisesim.models import load_backbone, max_positions

_BACKBONES: dict[tuple, object] = {}  # (backbone id, labels, pooling) or an external folder's content → backbone
_BATCHES: dict[tuple, EvalBatches] = {}  # (backbone id, data, max_length, batch size[, device]) → tokenised batches


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The noisesim checkout's commit, when it runs from a git checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _backbone(ckpt: checkpoints.Checkpoint, data: str, max_length: int, batch_size: int,
              expect: dict | None = None, device: str = "cpu", columns: Columns | None = None):
    """The checkpoint's backbone (loaded once per process) and ``data`` tokenised for it (once per data set) and
    put on ``device`` (once per device), both cached by content, not by name: a changed data file or backbone
    folder is loaded anew. With ``expect`` (a cell's provenance), the contents must be the ones the cell's key was
    made from. ``columns``: where the data's sentence(s) and label are (default: the data set's own)."""
    name = ckpt.meta["backbone"]
    model_id = backbone_fingerprint(name)
    table = load_table(data, columns)
    data_id = data_fingerprint(table)
    if expect is not None and (expect["backbone_sha256"], expect["data_sha256"]) != (model_id, data_id):
        what = "backbone " + name if expect["backbone_sha256"] != model_id else "data set " + data
        raise UserError(f"the {what} changed while this sweep ran; rerun it (finished cells are kept)")
    if isinstance(ckpt, ExternalCheckpoint):  # its own model and tokenizer: cached by the folder's content
        files = expect["checkpoint_sha256"] if expect is not None else folder_hash(ckpt.path)
        kind = ("external", str(ckpt.path), files, model_id)
        if kind not in _BACKBONES:
            for other in [k for k in _BACKBONES if k[0] == "external"]:  # one external model held at a time
                del _BACKBONES[other]
            _BACKBONES[kind] = load_external(ckpt)
        name = str(kind)
    else:
        kind = (name, model_id, ckpt.meta.get("num_labels", 2), ckpt.meta.get("pooling", "mean"))
        if kind not in _BACKBONES:
            _BACKBONES[kind] = load_backbone(kind[0], num_labels=kind[2], pooling=kind[3])
    backbone = _BACKBONES[kind]
    tokens = (name, model_id, data_id, max_length, batch_size)
    if tokens not in _BATCHES:
        tok = backbone.tokenizer
        encoded = encode(table, tok, max_length, data)
        check_lengths(encoded, backbone, ckpt, data, max_length)
        _BATCHES[tokens] = EvalBatches.build(encoded, tok.pad_token_id, batch_size)
    if torch.device(device).type == "cpu":
        return backbone, _BATCHES[tokens]
    if (*tokens, str(device)) not in _BATCHES:
        _BATCHES[(*tokens, str(device))] = _BATCHES[tokens].to(device)
    return backbone, _BATCHES[(*tokens, str(device))]


def check_lengths(encoded, backbone, ckpt, data: str, max_length: int) -> None:
    """Refuse data whose longest tokenised sentence (cut at ``max_length``) is longer than the backbone's position
    embeddings allow: the model would fail on it mid-sweep."""
    limit = max_positions(backbone)
    longest = max((len(ids) for ids in encoded.input_ids), default=0)
    if limit is not None and longest > limit:
        raise UserError(f"--data {data}: its longest sentence is {longest} tokens (with --max-length {max_length}),"
                        f" but the backbone of {ckpt.name!r} ({ckpt.meta['backbone']}) takes at most {limit};"
                        f" give --max-length {limit} or less")


def preflight(loaded: list[checkpoints.Checkpoint], sources: list[str], max_length: int, batch_size: int,
              analog: tuple[list[str], bool] = ([DEFAULT_ANALOG], False),
              columns: dict[str, Columns | None] | None = None) -> None:
    """Load each backbone, tokenise each data set and build each checkpoint once before any cell runs, so a
    broken backbone or checkpoint, or an --analog selection that selects nothing of it, is refused before the sweep
    starts (kept for in-process cells)."""
    selections, head = analog
    for ckpt in loaded:
        for source in sources:
            backbone, _ = _backbone(ckpt, source, max_length, batch_size, columns=(columns or {}).get(source))
        model = build(ckpt, backbone)
        try:
            for selection in selections:
                if not is_default(selection, head):
                    resolve(model.model, model.family, selection, head, f"checkpoint {ckpt.name!r}")
        finally:
            release(model)


def build(ckpt, backbone):
    """A checkpoint's analog layers wrapped in ``backbone`` (undone by ``external.release``)."""
    if isinstance(ckpt, ExternalCheckpoint):
        return build_external(ckpt, backbone)
    return checkpoints.build(ckpt, backbone)


def evaluate_cells(cells: list[Cell], max_length: int, batch_size: int, seed: int, device: str = "cpu",
                   dtype: str = "float32") -> Iterator[dict]:
    """Evaluate cells in order on ``device`` (resolved: cpu, cuda:N) in ``dtype``, yielding one result row per
    cell as soon as it is done. The model and the batches are put on the device once per checkpoint and data set;
    the realizations are drawn there."""
    for (ckpt_path, data), group in itertools.groupby(cells, key=lambda c: (c.ckpt_path, c.data)):
        group = list(group)
        ckpt = read_cell_checkpoint(group[0])
        if folder_hash(ckpt.path) != group[0].provenance["checkpoint_sha256"]:
            raise UserError(f"checkpoint {ckpt_path} changed on disk while this sweep ran; rerun it (finished"
                            " cells are kept)")
        backbone, batches = _backbone(ckpt, data, max_length, batch_size, expect=group[0].provenance,
                                      device=device, columns=group[0].columns)
        n = sum(len(labels) for labels in batches.labels)
        model = build(ckpt, backbone)
        model.model.to(device)  # the adapters just built, and the backbone once per process
        profiles: dict[str, Profile] = {}  # validated once per profile content, not once per cell
        try:
            for (selection, head), part in itertools.groupby(group, key=lambda c: (c.analog, c.analog_head)):
                with (analog_layers(model.model, model.family, selection, head, f"checkpoint {ckpt.name!r}")
                      as layers, ProgrammedWeights(layers) as weights):
                    for cell in part:
                        start = time.perf_counter()
                        sha = cell.provenance["profile_sha256"]
                        if sha not in profiles:
                            profiles[sha] = cell.profile()
                        weights.realize(profiles[sha], t=cell.t, chip=cell.chip, program=cell.program,
                                        read=cell.read, seed=seed)
                        with autocast(device, dtype):
                            acc, score = measure(model.model, batches, cell.metric, accuracy)
                        yield row_of(cell, ckpt, acc, n, seed, time.perf_counter() - start, device, dtype, score)
        finally:
            release(model)


def recipe_of(cell: Cell, ckpt: checkpoints.Checkpoint) -> tuple[str, int | None]:
    """The checkpoint's recipe (its config's ``recipe``, else its label: a recipe of one seed) and training seed
    (None when its config records no training, e.g. an old or external checkpoint). Provenance of the checkpoint,
    not part of a cell's key: the key already hashes the checkpoint's files, config.json included."""
    recipe = ckpt.meta.get("recipe")
    training = ckpt.meta.get("training")
    seed = training.get("seed") if isinstance(training, dict) else None
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    if ckpt.meta.get("interrupted") is True:  # a run stopped early is no training seed of its recipe
        return f"{cell.checkpoint} (interrupted)", seed
    return (recipe if isinstance(recipe, str) and recipe else cell.checkpoint), seed


RECIPE_ID_DIGITS = 16


def recipe_id_of(cell: Cell, ckpt: checkpoints.Checkpoint) -> str:
    """What makes checkpoints training seeds of one recipe: for a noisesim checkpoint whose config names a recipe,
    a hash of that name, the method and training settings that act for the method (``configs.effective_settings``:
    no training seed, no other method's fields, the learning rate as used), the backbone, pooling and number of
    labels; otherwise (no recipe, an external folder, a run interrupted before its last step) its files' hash, so
    that it is a recipe of its own."""
    recipe = ckpt.meta.get("recipe")
    if (isinstance(ckpt, ExternalCheckpoint) or not isinstance(recipe, str) or not recipe
            or ckpt.meta.get("interrupted") is True):
        return cell.provenance["checkpoint_sha256"]
    method = MethodConfig.from_dict(ckpt.meta["method"])  # defaults filled in: old and new configs compare equal
    training = ckpt.meta.get("training")
    if isinstance(training, dict):
        parsed = TrainConfig.from_dict(training)
        training = parsed.to_dict() | {"lr": parsed.lr_for(method.method)}
    settings = effective_settings(method.to_dict(), training)  # what acts for the method; no training seed
    what = [recipe, settings, ckpt.meta.get("backbone"), ckpt.meta.get("pooling"), ckpt.meta.get("num_labels")]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:RECIPE_ID_DIGITS]


def row_of(cell: Cell, ckpt: checkpoints.Checkpoint, acc: float, n: int, seed: int, seconds: float,
           device: str = "cpu", dtype: str = "float32", score: float | None = None) -> dict:
    """One cell's result row: ``accuracy`` is the accuracy; ``metric`` names the cell's metric and ``score`` is its
    value (the accuracy again for accuracy)."""
    recipe, train_seed = recipe_of(cell, ckpt)
    return {"key": cell.key, "checkpoint": cell.checkpoint, "method": ckpt.method.method, "recipe": recipe,
            "recipe_id": recipe_id_of(cell, ckpt), "train_seed": train_seed, "layers": cell.layers,
            "analog": cell.analog_label,
            "profile": cell.profile_name, "sigma": cell.values.get("gaussian.sigma", float("nan")),
            **{k: v for k, v in cell.values.items() if k != "gaussian.sigma"},
            "time": format_time(cell.t), "time_s": cell.t, "chip": cell.chip, "program": cell.program,
            "read": cell.read, "seed": seed, "clean": cell.clean, "accuracy": acc, "metric": cell.metric,
            "score": acc if score is None else score, "n": n, "data": cell.data,
            "backbone": ckpt.meta["backbone"], "checkpoint_path": str(Path(cell.ckpt_path).resolve()),
            "seconds": round(seconds, 3), **cell.provenance,
            "noisesim_version": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "device": device_label(device), "dtype": dtype}


def chunk_rows(cells: list[Cell], **kw) -> Iterator[dict]:
    """A Ray task: evaluate a chunk of cells, streaming each row back as soon as it is done."""
    yield from evaluate_cells(cells, **kw)


def chunks(cells: list[Cell], size: int) -> list[list[Cell]]:
    """Consecutive runs of at most ``size`` cells that share a checkpoint and data set."""
    out: list[list[Cell]] = []
    for _, group in itertools.groupby(cells, key=lambda c: (c.ckpt_path, c.data)):
        group = list(group)
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


_ROWS = None  # in a local worker process: the queue each finished row is put on


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the sweep's process dies (kill -9, SIGTERM), so no worker
    is left running, or blocked, without a parent. Elsewhere: nothing (the pool's own shutdown applies)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_worker(rows, threads: int) -> None:
    global _ROWS
    _die_with_parent()
    _ROWS = rows
    rows.cancel_join_thread()  # the parent takes every row before it shuts the pool down
    torch.set_num_threads(threads)


def _send_rows(cells: list[Cell], **kw) -> int:
    """A local worker's task: evaluate a chunk of cells, putting each row on the queue as soon as it is done."""
    count = 0
    for row in evaluate_cells(cells, **kw):
        _ROWS.put(row)
        count += 1
    return count


def _next_row(rows, futures: list, poll: float = 0.2) -> dict:
    """The next finished row from the workers; a worker's error once every row sent before it is taken."""
    import queue

    while True:
        try:
            return rows.get(timeout=poll)
        except queue.Empty:
            for future in futures:
                if future.done() and not future.cancelled() and future.exception() is not None:
                    future.result()  # raises the worker's error


def run_local(cells: list[Cell], workers: int, on_row: Callable[[dict], None], **kw) -> None:
    """``workers`` spawned processes, each with cores/workers torch threads; each takes chunks of cells that
    share a checkpoint (its backbone stays loaded in the process) and sends every row as soon as it is done,
    so ``on_row`` is called once per finished cell."""
    import concurrent.futures as cf
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // workers)
    size = max(1, min(8, len(cells) // (2 * workers) or 1))
    context = mp.get_context("spawn")
    rows = context.Queue()
    with cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                initargs=(rows, threads)) as pool:
        futures = [pool.submit(_send_rows, chunk, **kw) for chunk in chunks(cells, size)]
        try:
            for _ in range(len(cells)):
                on_row(_next_row(rows, futures))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def check_ray(address: str | None) -> None:
    """Fail fast (UserError) when Ray is missing or a HOST:PORT address does not answer."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install -e '.[ray]'") from None
    if address and address != "auto" and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
        except (OSError, ValueError):
            raise UserError(f"cannot reach the Ray cluster at {address!r} (nothing answers there); start one with"
                            " `ray start --head` or check --ray-address (HOST:PORT or auto)") from None


def run_ray(cells: list[Cell], address: str | None, on_row: Callable[[dict], None], **kw) -> None:
    """Cells as Ray tasks on an existing cluster (``address``: 'auto' or HOST:PORT) or a local instance."""
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install -e '.[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError, depending on how it failed
            raise UserError(f"cannot reach the Ray cluster at {address!r} ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160]}); start one with `ray start --head` or check"
                            " --ray-address") from None
    try:
        task = ray.remote(num_cpus=1)(chunk_rows)  # a generator: each row comes back as soon as it is done
        pending = [task.remote(chunk, **kw) for chunk in chunks(cells, 4)]
        while pending:
            (ready, *_), _ = ray.wait(pending, num_returns=1)
            try:
                ref = next(ready)
            except StopIteration:
                pending = [g for g in pending if g is not ready]
                continue
            on_row(ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()
