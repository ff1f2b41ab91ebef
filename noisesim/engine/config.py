"""``SweepConfig``: every sweep option, its default and help text, validated in one place.

The CLI, a ``--config`` YAML file and the Python API all build a ``SweepConfig``, so they cannot
disagree. Validation parses the σ / time / ``--set`` lists, refuses flags that cannot take effect,
and removes duplicate axis values with a notice (a duplicate is never counted as a realization).
"""

from __future__ import annotations

import contextvars
import difflib
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from noisesim.configs import LAYER_PRESETS, check_column, check_metric, parse_labels, parse_layers
from noisesim.errors import UserError
from noisesim.hardware import DEVICE_CHOICES, is_device
from noisesim.units import parse_decimal, parse_time

DEFAULT_SIGMAS = [0.01, 0.02, 0.05]
MAX_SIGMA = 100.0  # weight units; MiniLM's weights are of order 0.05
MAX_REALIZATIONS = 100_000  # chips, programmings or reads per setting
MAX_TIME = 1000 * 365 * 86400.0  # seconds: a thousand years
_NOTICES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("sweep_notices", default=None)
FLAGS = {"set": "--set", "ckpt": "--ckpt", "profile": "--profile", "data": "--data", "time": "--time"}
ALIASES = {"seeds": "programs"}  # old name → option (the CLI keeps --seeds as an alias of --programs)


def flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _items(value: Any, what: str) -> list:
    """'a,b' → ['a', 'b']; a scalar → [it]; a list stays (its items are not split)."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        items = [x.strip() for x in value.split(",")]
        if any(not x for x in items) and any(items):
            raise UserError(f"{what} {value!r} has an empty item (remove the extra comma)")
        return [x for x in items if x]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    raise ValueError(f"give {what} as a comma-separated string or a list (got {value!r})")


def parse_sigmas(value: Any) -> list[float]:
    """'0.01,0.02' → [0.0, 0.01, 0.02]: finite, 0 <= σ <= 100, sorted, with σ=0 (clean) added."""
    items = _items(value, "σ values")
    if not items:
        raise UserError(f"--sigma {value!r} gives no σ value (give e.g. --sigma 0.01,0.02,0.05)")
    values = []
    for item in items:
        if isinstance(item, bool):
            raise UserError(f"σ value {item!r} is not a number (give e.g. --sigma 0.01,0.02,0.05)")
        try:
            number = parse_decimal(item) if isinstance(item, str) else float(item)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"σ value {item!r} is not a number (give e.g. --sigma 0.01,0.02,0.05)") from None
        if not math.isfinite(number) or not 0 <= number <= MAX_SIGMA:
            raise UserError(f"σ value {item!r} must be a finite number in [0, {MAX_SIGMA:g}] (weight units;"
                            " give e.g. --sigma 0.01,0.02,0.05)")
        values.append(number)
    values = [v + 0.0 for v in values]  # -0.0 is 0.0
    if not any(values):
        raise UserError(f"--sigma {value!r} gives only σ = 0, the clean reference, which every sweep has; give noise"
                        " levels > 0 (e.g. --sigma 0.01,0.02,0.05)")
    _note_repeats(values, items, "--sigma")
    return sorted(set(values) | {0.0})


def _note_repeats(values: list, items: list, flag_name: str) -> None:
    """A notice for each value given more than once (also when spelled differently: 0.01 and 1e-2)."""
    notes = _NOTICES.get()
    seen: dict = {}
    for value, item in zip(values, items, strict=True):
        if value in seen and notes is not None:
            notes.append(f"{flag_name} {item} repeats {seen[value]}; evaluated once")
        seen.setdefault(value, item)


def parse_times(value: Any) -> list[float]:
    """'1s,1h,1d,1y' → seconds, sorted and unique; None → [0.0] (read right after programming)."""
    if value is None:
        return [0.0]
    items = _items(value, "times")
    if not items:
        raise UserError(f"--time {value!r} gives no time (give e.g. --time 1s,1h,1d,1y)")
    try:
        seconds = [parse_time(item) for item in items]
    except (ValueError, OverflowError) as exc:
        raise UserError(f"--time: {exc}") from None
    for item, t in zip(items, seconds, strict=True):
        if t > MAX_TIME:
            raise UserError(f"--time {item}: at most 1000y (give times such as 1s,1h,1d,1y)")
    _note_repeats(seconds, items, "--time")
    return sorted(set(seconds))


def normalize_layers(value: str) -> str:
    """--layers as one spelling per selection: a preset name as it is, roles in model order ('k,q' → 'q,k'), each
    once; an empty item ('q,,k') or an unknown role is a UserError (a ValueError: a problem of --layers)."""
    if value in LAYER_PRESETS:
        return value
    items = [item.strip() for item in value.split(",")]
    if not value.strip() or any(not item for item in items):
        what = "no layer given" if not value.strip() else "an empty item between commas"
        raise UserError(f"{what}: give a preset ({', '.join(LAYER_PRESETS)}) or roles separated by single commas"
                        f" (e.g. q,k; roles: {','.join(LAYER_PRESETS['all'])})")
    roles = parse_layers(",".join(items))  # a UserError for an unknown role
    notes = _NOTICES.get()
    repeated = [r for i, r in enumerate(roles) if r in roles[:i]]
    if repeated and notes is not None:
        notes.append(f"--layers names {', '.join(dict.fromkeys(repeated))} more than once; taken once")
    chosen = set(roles)
    return ",".join(r for r in LAYER_PRESETS["all"] if r in chosen)


ANALOG_WHOLE = ("adapted", "all")  # --analog values that stand alone (not items of a list)
DEFAULT_ANALOG = "adapted"
_BLOCK = re.compile(r"^block(\d+)(?:\.([a-z0-9]+))?$")
_PATTERN_CHARS = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")


def normalize_analog(value: Any) -> str:
    """One --analog selection as its one spelling: ``adapted`` (the checkpoint's own analog layers), ``all`` (every
    encoder linear layer), or a comma-separated list of items, each a role (q, k, v, o, ff1, ff2: that layer of every
    block), ``blockN`` (block N's layers), ``blockN.ROLE`` (one layer) or a module-name pattern (``*``, ``?``,
    ``[…]``; e.g. ``encoder.layer.0.*``; it may match a name's tail at a dot). Items are kept once, roles in model
    order, then blocks by number and role, then patterns sorted. A bad item is a UserError naming the fix."""
    if not isinstance(value, str):
        raise UserError(f"--analog {value!r}: give adapted, all, or a list like q,k or block0.q (a string)")
    text = value.strip()
    if text in ANALOG_WHOLE:
        return text
    items = [item.strip() for item in text.split(",")]
    if not text or any(not item for item in items):
        what = "is empty" if not text else "has an empty item"
        raise UserError(f"--analog {value!r} {what}: give adapted, all, or items separated by single commas (roles"
                        f" {','.join(LAYER_PRESETS['all'])}, kvf2, blockN, blockN.ROLE or a module pattern like"
                        " encoder.layer.0.*)")
    roles, blocks, patterns = set(), set(), set()
    for item in items:
        if item in ANALOG_WHOLE:
            raise UserError(f"--analog {value!r}: {item} stands alone (give --analog {item}, or only roles, blocks"
                            " and patterns in a list)")
        elif item in LAYER_PRESETS["all"] or item in LAYER_PRESETS:
            roles.update(LAYER_PRESETS.get(item, (item,)))
        elif match := _BLOCK.match(item):
            role = match.group(2)
            if role is not None and role not in LAYER_PRESETS["all"]:
                hint = difflib.get_close_matches(role, LAYER_PRESETS["all"], n=1)
                raise UserError(f"--analog {item}: unknown layer type {role!r}" + (
                    f" (did you mean block{int(match.group(1))}.{hint[0]}?)" if hint else "")
                    + f"; types: {','.join(LAYER_PRESETS['all'])}")
            blocks.add((int(match.group(1)), role))
        elif any(c in item for c in ".*?[") and _PATTERN_CHARS.match(item):
            patterns.add(item)
        else:
            hint = difflib.get_close_matches(item.lower(), [*LAYER_PRESETS["all"], *ANALOG_WHOLE], n=1)
            if _BLOCK.match(item.lower()):  # Block0
                hint = [item.lower()]
            elif item.lower() == "block":
                hint = ["block0"]
            elif not hint and re.fullmatch(r"[A-Za-z0-9_]+", item):  # a module's own name, e.g. query: a pattern
                hint = [f"*.{item}"]
            raise UserError(f"--analog: unknown item {item!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                            + f"; give adapted, all, or roles ({','.join(LAYER_PRESETS['all'])}), blockN,"
                            " blockN.ROLE or a module pattern like encoder.layer.0.*")
    notes = _NOTICES.get()
    repeated = [item for i, item in enumerate(items) if item in items[:i]]
    for n in sorted({n for n, _ in blocks}):  # every layer type of block N is blockN
        if {r for b, r in blocks if b == n} >= set(LAYER_PRESETS["all"]):
            blocks = {(b, r) for b, r in blocks if b != n} | {(n, None)}
    covered = {(n, r) for n, r in blocks if r is not None and (r in roles or (n, None) in blocks)}
    if covered:  # block0.q next to q or block0: one layer named twice, one spelling
        blocks -= covered
        repeated += [f"block{n}.{r}" for n, r in sorted(covered)]
    if repeated and notes is not None:
        notes.append(f"--analog {text}: {', '.join(dict.fromkeys(repeated))} selected more than once; taken once")
    if roles == set(LAYER_PRESETS["all"]):  # every layer type of every block: all
        return "all"
    order = {r: i for i, r in enumerate(LAYER_PRESETS["all"])}
    shown = [r for r in LAYER_PRESETS["all"] if r in roles]
    ordered = sorted(blocks, key=lambda b: (b[0], order.get(b[1], -1)))
    shown += [f"block{n}" + (f".{r}" if r else "") for n, r in ordered]
    return ",".join(shown + sorted(patterns))


def parse_analog(value: Any) -> list[str]:
    """--analog as a list of selections (a string is one selection; a list, one per item), each in its one
    spelling (``normalize_analog``), each once (with a notice)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise UserError(f"--analog {value!r}: give adapted, all, or a list like q,k (several selections: a list of"
                        " them, or --analog repeated)")
    kept = [normalize_analog(v) for v in items]
    notes = _NOTICES.get()
    repeated = [v for i, v in enumerate(kept) if v in kept[:i]]
    if repeated and notes is not None:
        notes.append(f"--analog {repeated[0]} is given more than once; evaluated once")
    return list(dict.fromkeys(kept))


def _set_path(path: str) -> str:
    """A --set path, stripped; one that is not COMPONENT.FIELD (or holds a control character, which would break
    the one-line messages that name it) is a UserError."""
    path = path.strip()
    if "." not in path or not all(path.split(".")) or not path.isprintable():
        raise UserError(f"--set {path!r}: give COMPONENT.FIELD=V1,V2,… (e.g. --set programming.scale=0.5,1,2)")
    return path


def parse_sets(items: Any) -> dict[str, list[Any]]:
    """['programming.scale=0.5,1,2'] → {'programming.scale': [0.5, 1, 2]} (values read as YAML scalars)."""
    from noisesim.safeyaml import safe_scalar

    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    out: dict[str, list[Any]] = {}
    if isinstance(items, dict):
        pairs = [(str(k), v if isinstance(v, list | tuple) else [v]) for k, v in items.items()]
    elif isinstance(items, list | tuple):
        pairs = []
        for item in items:
            path, sep, values = str(item).partition("=")
            if not sep or not values.strip():
                raise UserError(f"--set {item!r}: give COMPONENT.FIELD=V1,V2,… (e.g. --set programming.scale=0.5,1,2)")
            path = _set_path(path)
            raw = [v.strip() for v in values.split(",") if v.strip()]
            if any(v.startswith(("[", "{")) for v in raw):
                raise UserError(f"--set {path.strip()}: a list or mapping cannot be swept (values are split at"
                                " commas); sweep a number such as programming.scale=0.5,1,2, or write a profile file")
            pairs.append((path, [safe_scalar(v, source=f"--set {path.strip()}") for v in raw]))
    else:
        raise UserError(f"--set must be a list of COMPONENT.FIELD=V1,V2 or a mapping (got {items!r})")
    for path, values in pairs:
        path = _set_path(path)
        if path in out:
            raise UserError(f"--set {path} is given twice (give all its values once: --set {path}=V1,V2)")
        if not values:
            raise UserError(f"--set {path}: no values (give --set {path}=V1,V2)")
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise UserError(f"--set {path}={v}: values must be finite numbers")
            if not isinstance(v, str | int | float | bool | type(None)):
                raise UserError(f"--set {path}: value {v!r} is not a scalar (give numbers or words)")
        out[path] = list(values)
    return out


def with_aliases(options: dict, where: str = "") -> dict:
    """Options with old names mapped to their option (``seeds`` → ``programs``); both given is an error."""
    options = dict(options)
    for old, new in ALIASES.items():
        if old in options:
            if new in options:
                raise UserError(f"{where}{new} and {old} are both given ({old} is the old name of {new}:"
                                f" give {new} only)")
            options[new] = options.pop(old)
    return options


def _dedupe(values: list, what: str, notices: list[str]) -> list:
    """Keep the first of equal values (1 and 1.0 are equal); a notice names what was dropped."""
    kept: list = []
    for v in values:
        if any(v == k and isinstance(v, bool) == isinstance(k, bool) for k in kept):
            notices.append(f"{what} {v!r} is given more than once; evaluated once")
        else:
            kept.append(v)
    return kept


class SweepConfig(BaseModel):
    """One sweep: what is evaluated, under which device settings, with how many realizations."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)

    ckpt: list[str] = Field(description="checkpoint name or folder (repeatable); also a Hugging Face sequence"
                            " classifier folder or a PEFT (LoRA, IA3) adapter folder")
    sigma: list[float] | None = Field(None, description="σ of per-weight Gaussian noise, comma-separated (the"
                                      " paper's protocol; σ = 0, the clean reference, is always added)")
    profile: list[str] = Field(default_factory=list, description="device profile name or YAML file (repeatable);"
                               " see `noisesim profiles list`")
    time: list[float] = Field(default_factory=lambda: [0.0], description="times since programming, e.g."
                              " 1s,1h,1d,1y (needs a profile with drift)")
    set: dict[str, list[Any]] = Field(default_factory=dict, description="sweep a profile parameter:"
                                      " COMPONENT.FIELD=V1,V2 (e.g. programming.scale=0.5,1,2; repeatable)")
    chips: int = Field(1, ge=1, le=MAX_REALIZATIONS, description="chips (device-to-device draws) per setting")
    programs: int = Field(3, ge=1, le=MAX_REALIZATIONS, description="programmings per chip (cycle-to-cycle"
                          " write-to-write draws; Fig. 6's 'seeds')")
    reads: int = Field(1, ge=1, le=MAX_REALIZATIONS, description="reads per programming (cycle-to-cycle"
                       " read-to-read draws)")
    seed: int = Field(0, ge=0, le=2**62, description="base seed of the chip/program/read streams (not the number of"
                      " programmings: that is --programs)")
    data: list[str] = Field(default_factory=lambda: ["sst2-dev"], description="a bundled split (sst2-dev, rte-dev,"
                            " cola-dev, …-train), or a TSV/CSV, .jsonl or .parquet file or a datasets save_to_disk"
                            " folder (repeatable: one axis value each)")
    text_column: str | None = Field(None, description="the data's sentence column (a bundled task"
                                    " brings its own)")
    text_pair_column: str | None = Field(None, description="the second sentence of a pair, tokenised as a"
                                         " pair (rte: sentence2)")
    label_column: str | None = Field(None, description="the data's label column")
    labels: list[str] | None = Field(None, description="label names, comma-separated, that string labels map to"
                                     " (class i is the i-th)")
    metric: str | None = Field(None, description="accuracy | f1 (binary, class 1 positive) | f1-macro | mcc;"
                               " results name it and its chance level")
    twin: bool = Field(True, description="also sweep each StochGRASP checkpoint's deterministic twin")
    layers: str = Field("all", description="the analog layers of Hugging Face / PEFT folders given to --ckpt: all |"
                        " kvf2 | ff2 | roles like k,v,ff2 (noisesim checkpoints carry their own)")
    analog: list[str] = Field(default_factory=lambda: [DEFAULT_ANALOG], description="which encoder linear layers"
                              " are on the devices: adapted (the checkpoint's analog layers) | all | a list of roles,"
                              " blockN, blockN.ROLE or module patterns (e.g. q,k or encoder.layer.0.*); repeat it"
                              " to sweep several selections")
    analog_head: bool = Field(False, description="also put the classifier head's linear layers on the devices")
    out: str | None = Field(None, description="results folder; rerunning into it skips finished cells")
    csv: bool = Field(False, description="also write results.csv")
    workers: int = Field(1, ge=1, le=256, description="local worker processes (1: in this process)")
    backend: Literal["local", "ray"] = Field("local", description="local | ray")
    ray_address: str | None = Field(None, description="Ray cluster: auto or HOST:PORT (needs --backend"
                                    " ray)")
    max_length: int = Field(128, ge=2, le=8192, description="evaluation: sentences cut at this many tokens")
    batch_size: int = Field(64, ge=1, le=65536, description="evaluation batch size")
    device: str = Field("auto", description="where the model runs: auto (CUDA when torch sees a GPU, else cpu) |"
                        " cpu | cuda | cuda:N; GPU draws differ from CPU draws")
    dtype: Literal["float32", "bf16"] = Field("float32", description="float32 | bf16 (opt-in mixed precision:"
                                              " autocast; recorded in the results)")
    _notices: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _collect_notices(cls, data: Any, handler) -> SweepConfig:
        notes: list[str] = []
        token = _NOTICES.set(notes)
        try:
            model = handler(data)
        finally:
            _NOTICES.reset(token)
        model._notices[:0] = notes
        return model

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("a sweep is a mapping of options")
        data = with_aliases({k: v for k, v in data.items() if v is not None or k in ("sigma",)})
        for key in ("ckpt", "profile", "data"):
            if isinstance(data.get(key), str | Path):
                data[key] = [str(data[key])]
            elif isinstance(data.get(key), list | tuple):
                data[key] = [str(v) if isinstance(v, Path) else v for v in data[key]]
        if isinstance(data.get("layers"), list | tuple):
            data["layers"] = ",".join(map(str, data["layers"]))
        if "analog" in data:
            data["analog"] = parse_analog(data["analog"])
        if isinstance(data.get("out"), Path):
            data["out"] = str(data["out"])
        if data.get("sigma") is not None:
            data["sigma"] = parse_sigmas(data["sigma"])
        if "time" in data:
            data["time"] = parse_times(data["time"])
        if "set" in data:
            data["set"] = parse_sets(data["set"])
        return data

    @field_validator("ckpt", "profile", "data")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for v in value:
            if not v.strip():
                raise ValueError("an empty name (give a name or a path)")
        return value

    @field_validator("layers")
    @classmethod
    def _layers(cls, value: str) -> str:
        return normalize_layers(value)

    @field_validator("text_column", "text_pair_column", "label_column")
    @classmethod
    def _column(cls, value: str | None, info) -> str | None:
        return check_column(value, flag(info.field_name))

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> list[str] | None:
        return parse_labels(value)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str | None) -> str | None:
        return None if value is None else check_metric(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not is_device(value):
            raise ValueError(f"is not a device: give {DEVICE_CHOICES}")
        return value.strip().lower()

    @field_validator("out")
    @classmethod
    def _out(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an empty path (give a folder, or leave it out for ./noisesim-sweep-<time>-<pid>)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SweepConfig:
        notes = self._notices
        if not self.ckpt:
            raise ValueError("no checkpoint given (use --ckpt NAME, or ckpt: in --config)")
        if not self.data:
            raise ValueError("no data set given (use --data sst2-dev or a TSV/CSV file)")
        if self.sigma is None and not self.profile:
            self.sigma = parse_sigmas(DEFAULT_SIGMAS)
        if self.sigma is not None and "gaussian.sigma" in self.set:
            raise ValueError("σ is given twice: by --sigma and by --set gaussian.sigma (use one of them)")
        if self.csv and self.out is None:
            raise ValueError("csv writes results.csv into the results folder: give out= too (or drop csv)")
        if self.ray_address is not None and self.backend != "ray":
            raise ValueError("--ray-address takes effect only with --backend ray (add it, or drop --ray-address)")
        if self.backend == "ray" and self.workers > 1:
            raise ValueError("--workers sets local processes; with --backend ray, Ray schedules the cells"
                             " (drop --workers)")
        self.ckpt = _dedupe(self.ckpt, "--ckpt", notes)
        self.profile = _dedupe(self.profile, "--profile", notes)
        self.data = _dedupe(self.data, "--data", notes)
        self.set = {path: _dedupe(values, f"--set {path} value", notes) for path, values in self.set.items()}
        return self

    @property
    def notices(self) -> list[str]:
        """What validation changed (duplicates removed), one line each."""
        return list(self._notices)

    @classmethod
    def build(cls, **options: Any) -> SweepConfig:
        """Validate options (as the CLI names them); a problem is a one-line ``UserError``."""
        try:
            return cls.model_validate(options)
        except ValidationError as exc:
            raise UserError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line for the first problem of a SweepConfig."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown sweep option {loc[0]!r}" + suggest(loc[0])
    if not loc:
        return msg
    name = flag(loc[0]) + "".join(f"[{p}]" for p in loc[1:])
    if isinstance(err.get("ctx", {}).get("error"), UserError) and msg.startswith(name + " "):
        return msg  # our own message, already naming the option
    for words, sign in (("greater than or equal to", ">="), ("less than or equal to", "<="), ("greater than", ">"),
                        ("less than", "<"), ("Input should be", "must be")):
        msg = msg.replace(words, sign)
    value = err.get("input")
    if err["type"] == "missing" or isinstance(value, dict | list):
        return f"{name}: {msg}"
    shown = value if isinstance(value, int | float) and not isinstance(value, bool) else repr(value)
    return f"{name} {shown}: {msg}"


def load_sweep_config(path: str | Path) -> dict:
    """Sweep options from a YAML mapping whose keys are the CLI's option names (checked when built)."""
    from noisesim.safeyaml import load_yaml

    config = load_yaml(Path(path), "--config")
    if not isinstance(config, dict):
        raise UserError(f"--config {path}: must be a YAML mapping of sweep options"
                        f" ({', '.join(SweepConfig.model_fields)})")
    for key in config:
        if key not in SweepConfig.model_fields and key not in ALIASES:
            raise UserError(f"--config {path}: unknown key {key!r}" + suggest(str(key)))
    return with_aliases(config, f"--config {path}: ")


def suggest(name: str) -> str:
    """' (did you mean 'x'?); allowed: …' for an unknown sweep option."""
    hint = difflib.get_close_matches(name, [*SweepConfig.model_fields, *ALIASES], n=1)
    hint = ALIASES.get(hint[0], hint[0]) if hint else None
    return (f" (did you mean {hint!r}?)" if hint else "") + f"; allowed: {', '.join(SweepConfig.model_fields)}"
