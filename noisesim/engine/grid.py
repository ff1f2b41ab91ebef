"""Sweep grid: device settings, checkpoints (with twins), and the keyed cells they span.

Every cell has one identity: its key hashes everything that can change its number (all checkpoint files
and the checkpoint's name, the backbone, the validated profile, time, chip / programming / read, base
seed, data content, evaluation settings; for an external Hugging Face or PEFT folder also its analog layers and,
for PEFT, the base model's fingerprint as its backbone). Two cells never share a key, and two cells never share their
axis values and realization indices: a duplicate is removed or refused, never counted as a realization.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noisesim import checkpoints, external
from noisesim.configs import LAYER_PRESETS, canonical_roles, parse_layers
from noisesim.data import BATCHING, Columns, columns_for, metric_for
from noisesim.devices import Profile, builtin_profile, load_profile, user_profiles
from noisesim.engine.config import DEFAULT_ANALOG, SweepConfig
from noisesim.errors import UserError

MAX_CELLS = 200_000
PROTOCOL = ("ideal", "gaussian")  # the profiles that define the protocol: always the shipped ones


def protocol_profile(name: str, notices: list[str]) -> Profile:
    """The shipped ``ideal`` or ``gaussian`` profile; a user file of that name is ignored, with a notice."""
    shadow = user_profiles() / f"{name}.yaml"
    if shadow.exists():
        note = f"{shadow} is ignored: {name!r} is noisesim's own protocol profile (rename that file to use it)"
        if note not in notices:
            notices.append(note)
    return builtin_profile(name)


def non_default_analog(config: SweepConfig) -> bool:
    """True when some cell of the sweep has another analog selection than the checkpoint's own layers."""
    return config.analog != [DEFAULT_ANALOG] or config.analog_head


def sweep_columns(config: SweepConfig, source: str) -> Columns:
    """The columns of data set ``source`` under the sweep's --text-column / --text-pair-column / --label-column /
    --labels (each not given: the bundled task's, else sentence / none / label)."""
    return columns_for(source, config.text_column, config.text_pair_column, config.label_column, config.labels)


def sweep_metric(config: SweepConfig, source: str) -> str:
    """The metric data set ``source`` is scored with: --metric, else the bundled task's, else accuracy."""
    return metric_for(source, config.metric)


def axes_of(config: SweepConfig) -> list[str]:
    """The axis columns of a sweep's rows, in table order (``analog`` only when a selection is not the default, and
    ``metric`` only when some data set is scored by another metric than accuracy, so default sweeps keep their
    axes)."""
    analog = ["analog"] if non_default_analog(config) else []
    other = any(sweep_metric(config, s) != "accuracy" for s in config.data)
    metric = ["metric"] if other else []
    return ["data", *metric, "checkpoint", *analog, "profile", "sigma",
            *[p for p in config.set if p != "gaussian.sigma"], "time"]


@dataclass
class Setting:
    """One device configuration: a profile with some parameters set (the axis values of its rows)."""

    profile: Profile
    values: dict[str, Any]

    @property
    def spec_hash(self) -> str:
        """Hash of the validated profile: what determines the physics, whatever the spelling."""
        return hashlib.sha256(self.profile.spec.model_dump_json(serialize_as_any=True).encode()).hexdigest()[:16]


def random_stages(profile: Profile, t: float | None = None) -> set[str]:
    """The seed streams whose draws change this profile's weights ('chip', 'program', 'read'), at any time or
    at time ``t``: at t = 0 a drift's exponents ν (drawn at programming) change nothing."""
    stages: set[str] = set()
    for comp in profile.components:
        if comp.noiseless or comp.key == "levels":
            continue
        if not (comp.key == "drift" and t == 0):
            stages.add(comp.stage)
        if comp.key == "drift" and ((comp.spec.read_noise is not None and comp.spec.read_noise.scale > 0)
                                    or comp.spec.reference_reads > 0):
            stages.add("read")
    if profile.periphery is not None and profile.periphery.draws:
        stages.add("read")
    return stages


def build_settings(config: SweepConfig, notices: list[str]) -> list[Setting]:
    """Every profile × every combination of σ / --set values; a clean reference first in a device sweep.
    Settings whose validated profiles are identical are evaluated once (with a notice)."""
    sigmas = config.sigma
    names = config.profile or (["gaussian"] if sigmas is not None else [])
    profiles: dict[str, Profile] = {}
    for name in names:
        prof = protocol_profile(name, notices) if name in PROTOCOL else load_profile(name)
        same = profiles.get(prof.name)
        if same is not None:
            if same.spec == prof.spec:
                notices.append(f"--profile {name!r} is the same profile as one listed before; evaluated once")
                continue
            raise UserError(f"two different profiles are both named {prof.name!r} ({same.source} and {prof.source});"
                            " give one of them another name: in its YAML")
        profiles[prof.name] = prof
    axes = dict(config.set)
    if sigmas is not None:
        axes["gaussian.sigma"] = sigmas
    settings: list[Setting] = []
    if sigmas is None:  # the clean reference of a device sweep
        settings.append(Setting(protocol_profile("ideal", notices), {}))
    for profile in profiles.values():
        if sigmas is not None and "gaussian" not in [c.key for c in profile.components]:
            raise UserError(f"--sigma needs a profile with a gaussian component; {profile.name!r} has none"
                            " (sweep its own parameters with --set COMPONENT.FIELD=V1,V2)")
        if any(t > 0 for t in config.time) and not profile.has_drift:
            raise UserError(f"--time needs a profile with a drift component; {profile.name!r} has none"
                            " (its weights do not change with time)")
        check_targets(profile, list(axes), sigmas is not None)
        seen: dict[str, dict] = {}
        for combo in itertools.product(*axes.values()):
            values = dict(zip(axes, combo, strict=True))
            setting = Setting(profile.with_values(values) if values else profile, values)
            if setting.profile.noiseless and sigmas is None and not setting.values:
                notices.append(f"profile {profile.name!r} has no noise: it is the clean reference")
                continue
            if setting.spec_hash in seen:
                notices.append(f"{profile.name} with {_show(values)} is the same device as with"
                               f" {_show(seen[setting.spec_hash])}; evaluated once")
                continue
            seen[setting.spec_hash] = values
            settings.append(setting)
    if sigmas is not None and not any(s.profile.noiseless for s in settings):
        # σ = 0 keeps other noise or a periphery: the ideal profile is the clean reference, σ = 0 a setting
        notices.append("σ = 0 keeps the profile's other noise or periphery: the ideal profile is added as the"
                       " clean reference")
        settings.insert(0, Setting(protocol_profile("ideal", notices), {}))
    return settings


def check_targets(profile: Profile, paths: list[str], by_sigma: bool) -> None:
    """Each swept path must name one field of one component, and no field twice (``programming.scale`` and
    ``noise[0].scale`` may be the same field; a kind listed twice needs ``noise[I]``)."""
    kinds = [c.key for c in profile.components]
    targets: dict[tuple, str] = {}
    for path in paths:
        flag = "--sigma" if by_sigma and path == "gaussian.sigma" else f"--set {path}"
        head, _, rest = path.partition(".")
        index: int | str | None = None
        if head == "mapping":
            index = "mapping"
        elif head.startswith("noise[") and head.endswith("]") and head[6:-1].isdigit():
            index = int(head[6:-1])
        elif kinds.count(head) > 1:
            where = ", ".join(f"noise[{i}]" for i, k in enumerate(kinds) if k == head)
            raise UserError(f"{flag}: profile {profile.name!r} has {kinds.count(head)} {head} components ({where});"
                            f" name one, e.g. --set noise[{kinds.index(head)}].{rest}=…")
        elif head in kinds:
            index = kinds.index(head)
        if index is None:
            continue  # a path the profile lacks: with_values says so
        if (index, rest) in targets:
            raise UserError(f"{flag} and {targets[index, rest]} set the same field of profile {profile.name!r};"
                            " give it once")
        targets[index, rest] = flag


def _show(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "no --set"


AnyCheckpoint = checkpoints.Checkpoint | external.ExternalCheckpoint


def _store_name(name: str) -> bool:
    """A bare name of a checkpoint in a store (a store name wins over a folder of that name here)."""
    return "/" not in name and not name.startswith((".", "~")) and name in checkpoints.known_checkpoints()


def read_checkpoint(name: str, layers: str | tuple[str, ...] = "all") -> AnyCheckpoint:
    """A noisesim checkpoint (store name or folder), or an external folder: a PEFT adapter (adapter_config.json)
    or a Hugging Face sequence classifier (config.json naming a …ForSequenceClassification, no adapter.safetensors),
    whose analog layers ``layers`` selects."""
    text = str(name)
    folder = Path(text).expanduser()
    if not _store_name(text) and external.kind_of(folder):
        return external.read_external(folder, layers)
    if folder.is_dir() and not (folder / checkpoints.WEIGHTS).exists():
        archs = external.architectures(folder)
        if archs:
            raise UserError(f"{text} holds a Hugging Face {archs[0]}, not a sequence classifier: --ckpt takes noisesim"
                            " checkpoints, …ForSequenceClassification folders and PEFT adapter folders")
    if _store_name(text):  # a store's folder may hold an external model too
        external.check_not_mixed(checkpoints.resolve(text))
    return checkpoints.read(name)


def read_cell_checkpoint(cell: Cell) -> AnyCheckpoint:
    """The checkpoint a cell was planned for, read again from its folder (as the kind it was planned as)."""
    if cell.layers is None:
        return checkpoints.read(cell.ckpt_path)
    return external.read_external(cell.ckpt_path, cell.layers)


def expand_checkpoints(names: list[str], twin: bool, notices: list[str],
                       layers: str | tuple[str, ...] = "all") -> list[AnyCheckpoint]:
    """Read the checkpoints; add each one's deterministic twin unless listed or ``twin`` is off. The same
    folder given twice is read once; two folders with one name are told apart by their paths. ``layers`` selects
    the analog layers of external folders (noisesim checkpoints carry their own)."""
    if not names:
        raise UserError(f"no checkpoint given (use --ckpt NAME; known: {', '.join(checkpoints.known_checkpoints())})")
    loaded: list[AnyCheckpoint] = []
    seen: dict[Path, str] = {}

    def add(ckpt: AnyCheckpoint, given: str) -> None:
        where = ckpt.path.resolve()
        if where in seen:
            notices.append(f"--ckpt {given!r} is the checkpoint {seen[where]!r} again; evaluated once")
            return
        seen[where] = given
        loaded.append(ckpt)

    for name in names:
        add(read_checkpoint(name, layers), name)
    for ckpt in list(loaded):
        if twin and ckpt.twin:
            try:
                other = checkpoints.read(ckpt.twin)
            except UserError:
                raise UserError(f"twin {ckpt.twin!r} of checkpoint {ckpt.name!r} is not available"
                                " (train it, or pass --no-twin)") from None
            if other.path.resolve() not in seen:
                seen[other.path.resolve()] = ckpt.twin
                loaded.append(other)
    if parse_layers(layers) != LAYER_PRESETS["all"]:
        own = [c.name for c in loaded if not isinstance(c, external.ExternalCheckpoint)]
        if len(own) == len(loaded):
            raise UserError("--layers selects the analog layers of Hugging Face and PEFT folders; noisesim checkpoints"
                            " carry their own (drop --layers)")
        if own:
            notices.append(f"--layers applies to the Hugging Face and PEFT folders only; {', '.join(own)} keep the"
                           " layers they were trained with")
    return loaded


def stored_labels(loaded: list[AnyCheckpoint], labels: dict[Path, str], stored: dict[str, dict], folder: Path,
                  notices: list[str]) -> dict[Path, str]:
    """Labels for a sweep into a results folder that already holds rows (``stored``, by key): a checkpoint whose
    folder, with the same files, is there under one other label keeps that label, so its cells are reused and it
    is never counted twice under two names (e.g. 'x', then its path once a second folder named x joins the
    sweep). Refused (UserError) when that label names another checkpoint of this sweep, the folder is there
    under several labels, or its label there names other files (another folder of that name, or this folder
    before its files changed), which would be pooled with it as one checkpoint. A copy (another folder) is another
    checkpoint; rows that do not record their folder (older tables) are not matched."""
    where: dict[tuple[str, str], set[str]] = {}
    for row in stored.values():
        sha, path, label = row.get("checkpoint_sha256"), row.get("checkpoint_path"), row.get("checkpoint")
        if isinstance(sha, str) and isinstance(path, str) and isinstance(label, str):
            where.setdefault((sha, path), set()).add(label)
    named: dict[str, dict[str, str]] = {}  # label → files' hash → a folder it was swept from
    for (sha, path), names in where.items():
        for name in names:
            named.setdefault(name, {})[sha] = path
    out = dict(labels)
    mine = set(labels.values())
    for ckpt in loaded:
        label = labels[ckpt.path]
        ident = (cached_folder_hash(ckpt.path), str(Path(ckpt.path).resolve()))
        if others := {sha: path for sha, path in named.get(label, {}).items() if sha != ident[0]}:
            path = sorted(others.values())[0]
            what = ("the files of that folder before they changed" if path == ident[1]
                    else f"another checkpoint ({path})")
            raise UserError(f"{folder} holds {label!r} as {what}: its rows would be pooled with {ckpt.path}'s; sweep"
                            " into a fresh --out")
        before = where.get(ident, set())
        if not before or label in before:
            continue
        if len(before) > 1:
            raise UserError(f"{folder} already holds checkpoint {ckpt.path} under several labels"
                            f" ({', '.join(sorted(before))}); sweep into a fresh --out")
        (old,) = before
        if old in mine:
            raise UserError(f"{folder} holds checkpoint {ckpt.path} as {old!r}, but {old!r} names another checkpoint"
                            f" of this sweep; sweep into a fresh --out")
        notices.append(f"{folder} holds checkpoint {ckpt.path} as {old!r}: it keeps that label (not {label!r}),"
                       " so its finished cells are reused")
        out[ckpt.path] = old
        mine.add(old)
    return out


def checkpoint_labels(loaded: list[AnyCheckpoint]) -> dict[Path, str]:
    """A unique label per checkpoint: its name, or its path where two share a name."""
    counts: dict[str, int] = {}
    for ckpt in loaded:
        counts[ckpt.name] = counts.get(ckpt.name, 0) + 1
    return {ckpt.path: ckpt.name if counts[ckpt.name] == 1 else str(ckpt.path) for ckpt in loaded}


def folder_hash(folder: Path) -> str:
    """SHA-256 over every file of a checkpoint folder (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


_HASHES: dict[tuple, str] = {}  # (folder, its files' names, sizes, mtimes) → folder_hash: once per process


def _files_state(folder: Path) -> tuple:
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
                        if p.is_file() and not p.name.startswith(".")))


def cached_folder_hash(folder: str | Path) -> str:
    """``folder_hash``, computed again only when a file's size or modification time changed (planning a sweep
    reads each folder once; the check that a checkpoint did not change while cells ran uses ``folder_hash``)."""
    folder = Path(folder).resolve()
    state = (str(folder), _files_state(folder))
    if state not in _HASHES:
        if len(_HASHES) > 256:
            _HASHES.clear()
        _HASHES[state] = folder_hash(folder)
    return _HASHES[state]


def backbone_fingerprint(name: str) -> str:
    """The backbone's id plus the content of its folder (names and contents of its files, as ``folder_hash``):
    a changed model is a new sweep, a touched or copied one is not. Hashed once per process while no file's size
    or modification time changes (the bundled MiniLM's 91 MB: about 0.2 s)."""
    from noisesim.models import resolve_backbone

    try:
        folder = Path(resolve_backbone(name))
    except Exception:  # a backbone that cannot be resolved fails later, with its own message
        return name
    if not folder.is_dir():
        return name
    try:
        files = cached_folder_hash(folder)
    except OSError:  # unreadable: loading it fails later, with its own message
        return name
    return hashlib.sha256(json.dumps([name, files]).encode()).hexdigest()[:16]


@dataclass
class Cell:
    """One evaluation: a checkpoint under one device setting, at one time, for one (chip, programming, read).

    Plain data (the profile travels as its validated YAML mapping), so it can go to another process.
    """

    index: int
    checkpoint: str
    ckpt_path: str
    profile_name: str
    profile_data: dict
    values: dict
    t: float
    chip: int
    program: int
    read: int
    key: str = ""
    provenance: dict = field(default_factory=dict)
    data: str = "sst2-dev"
    clean: bool = False
    layers: str | None = None  # an external checkpoint's analog roles (q,k,...); None: a noisesim checkpoint's own
    analog: str = DEFAULT_ANALOG  # the --analog selection (config.normalize_analog's spelling)
    analog_head: bool = False  # --analog-head: the classifier head's linear layers are analog too
    columns: Columns | None = None  # where the data's sentence(s) and label are; None: sentence and label
    metric: str = "accuracy"  # the row's score: accuracy, f1, f1-macro or mcc

    @property
    def analog_label(self) -> str:
        """The row's ``analog`` column: the selection, with ``+head`` when the head is analog too."""
        return self.analog + ("+head" if self.analog_head else "")

    def profile(self) -> Profile:
        return Profile(self.profile_data, f"<{self.profile_name}>", name=self.profile_name)


def count_cells(n_data: int, n_ckpts: int, settings: list[Setting], config: SweepConfig) -> int:
    noisy = sum(not s.profile.noiseless for s in settings)
    per = len(config.time) * config.chips * config.programs * config.reads
    return n_data * n_ckpts * len(config.analog) * (len(settings) - noisy + noisy * per)


def realizations(setting: Setting, config: SweepConfig, notices: list[str]) -> list[tuple[float, int, int, int]]:
    """(time, chip, programming, read) of one setting; levels whose streams the profile never draws from
    collapse to one (they would repeat the same evaluation), with a notice."""
    if setting.profile.noiseless:
        return [(0.0, 0, 0, 0)]
    def levels(stages: set[str]) -> tuple[int, int, int]:
        return (config.chips if stages & {"chip", "program"} else 1, config.programs if "program" in stages else 1,
                config.reads if "read" in stages else 1)

    chips, programs, reads = levels(random_stages(setting.profile))
    name = f"{setting.profile.name}" + (f" with {_show(setting.values)}" if setting.values else "")
    for flag, asked, kept, what in (("--chips", config.chips, chips, "chip-to-chip variation"),
                                    ("--programs", config.programs, programs, "programming noise"),
                                    ("--reads", config.reads, reads, "read noise")):
        if kept < asked:
            note = f"{name} has no {what}: {flag} {asked} would repeat one evaluation; evaluated once"
            if note not in notices:
                notices.append(note)
    at = {t: levels(random_stages(setting.profile, t)) for t in config.time}  # fewer at t = 0 for pure drift
    fewer = at.get(0.0, (chips, programs, reads)) != (chips, programs, reads)
    idle = 0.0 in at and random_stages(setting.profile, 0.0) != random_stages(setting.profile)
    if fewer or (idle and not any(t > 0 for t in config.time)):
        note = (f"{name}: drift acts only at t > 0; at time 0 the weights are as programmed"
                + (", so realizations that differ only in the drift's draws are evaluated once there" if fewer else "")
                + ("" if any(t > 0 for t in config.time) else "; give --time, e.g. --time 1d,1y"))
        if note not in notices:
            notices.append(note)
    return [(t, c, p, r) for c, p in itertools.product(range(chips), range(programs))
            for t in config.time for r in range(reads) if c < at[t][0] and p < at[t][1] and r < at[t][2]]


def build_cells(loaded: list[AnyCheckpoint], settings: list[Setting], config: SweepConfig,
                data: dict[str, str], notices: list[str], labels: dict[Path, str] | None = None,
                device_type: str = "cpu") -> list[Cell]:
    """Every data set × checkpoint × setting × chip × programming × time × read, in a fixed order, each keyed
    by a hash of what determines its number; noise-free settings get a single cell. ``data`` maps each data
    set to its content fingerprint; ``labels`` each checkpoint's label (default: ``checkpoint_labels``).
    ``device_type`` (cuda, …) and ``config.dtype`` join the key when they are not cpu and float32: a GPU draws
    other numbers, so its cells are other cells, and the keys of CPU float32 cells stay as they always were. So do
    the data's columns and label names (``Columns.key``) and the metric, when they are not sentence / label /
    integer labels and accuracy."""
    total = count_cells(len(data), len(loaded), settings, config)
    if total > MAX_CELLS:
        raise UserError(f"this sweep has {total:,} cells (more than {MAX_CELLS:,}; about 3.5 s each for MiniLM on"
                        " 2 cores): use fewer --chips / --programs / --reads, times or values")
    cells: list[Cell] = []
    labels = labels or checkpoint_labels(loaded)
    ckpt_ids = {c.path: [labels[c.path], cached_folder_hash(c.path), backbone_fingerprint(c.meta["backbone"])]
                for c in loaded}
    evaluation = {"max_length": config.max_length, "batch_size": config.batch_size, "batching": BATCHING}
    identities: set = set()
    for source, data_hash in data.items():
        columns, metric = sweep_columns(config, source), sweep_metric(config, source)
        for ckpt in loaded:
            label, files, backbone = ckpt_ids[ckpt.path]
            layers = canonical_roles(ckpt.layers) if isinstance(ckpt, external.ExternalCheckpoint) else None
            for analog, setting in itertools.product(config.analog, settings):  # one selection's cells together
                profile = setting.profile
                for t, chip, program, read in realizations(setting, config, notices):
                    what = [label, files, backbone, profile.name, setting.spec_hash, t, chip, program, read,
                            config.seed, source, data_hash, evaluation]
                    if layers is not None:  # which layers of an external model are analog changes its numbers
                        what.append({"layers": layers})
                    if analog != DEFAULT_ANALOG or config.analog_head:  # the default keeps the keys it always had
                        what.append({"analog": analog, "analog_head": config.analog_head})
                    if device_type != "cpu" or config.dtype != "float32":
                        what.append({"device": device_type, "dtype": config.dtype})
                    if columns.key() is not None:  # other columns or label names: other data, whatever its content
                        what.append({"columns": columns.key()})
                    if metric != "accuracy":  # another number in the row's score
                        what.append({"metric": metric})
                    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]
                    identity = (source, metric, label, analog, profile.name,
                                json.dumps(setting.values, sort_keys=True, default=str), t, chip, program, read)
                    if identity in identities:  # cannot happen after the de-duplication above; never count twice
                        raise UserError(f"internal: two cells share {identity}; please report this sweep")
                    identities.add(identity)
                    cells.append(Cell(len(cells), label, str(ckpt.path), profile.name, profile.data,
                                      setting.values, t, chip, program, read, key,
                                      {"checkpoint_sha256": files, "profile_sha256": setting.spec_hash,
                                       "backbone_sha256": backbone, "data_sha256": data_hash},
                                      source, profile.noiseless, layers, analog, config.analog_head,
                                      columns if columns.key() is not None else None, metric))
    if len({c.key for c in cells}) != len(cells):
        raise UserError("internal: two cells share a key; please report this sweep")
    return cells


def data_fingerprint(table) -> str:
    """Content hash of a labelled table (sentences, the pairs' second sentences, labels), so a changed file is a new
    sweep (a table of single sentences hashes as it always did)."""
    digest = hashlib.sha256()
    if "text_pair" in table.column_names:
        for sentence, pair, label in zip(table["sentence"], table["text_pair"], table["label"], strict=True):
            digest.update(f"{sentence}\x1e{pair}\x1f{label}\n".encode())
    else:
        for sentence, label in zip(table["sentence"], table["label"], strict=True):
            digest.update(f"{sentence}\x1f{label}\n".encode())
    return digest.hexdigest()[:16]
