"""Training loop: task loss plus StochGRASP's σ-target term (paper Eq. 6), hardware-aware training noise on
the programmed weights, periodic dev evaluation."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from noisesim.configs import MethodConfig, TrainConfig, parse_train_noise
from noisesim.data import EvalBatches, columns_for, encode, load_table, metric_for, train_batches
from noisesim.devices import Profile, load_profile
from noisesim.errors import UserError
from noisesim.evaluate import accuracy, measure
from noisesim.hardware import autocast
from noisesim.methods import (
    AdapterLinear,
    adapters_of,
    backbone_parameters,
    count_parameters,
    set_training_noise,
    trainable_state,
)
from noisesim.models import Backbone, max_positions
from noisesim.seeds import derive_seed, generator


@dataclass
class TrainResult:
    state: dict[str, torch.Tensor]
    dev_accuracy: float
    best_step: int
    trainable: int
    total: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    interrupted: bool = False
    written: bool = True  # False: interrupted, and the target's earlier checkpoint was kept (nothing written)
    dev_metric: str = "accuracy"  # what selected the best step
    dev_score: float | None = None  # its value at the best step (None: the accuracy)

    def __post_init__(self):
        if self.dev_score is None:
            self.dev_score = self.dev_accuracy

    @property
    def percent_trainable(self) -> float:
        return 100.0 * self.trainable / self.total


def ramp_at(step: int, cfg: TrainConfig) -> float:
    """0 → 1 linearly over the first ``target_warmup`` of the steps (1 throughout without warm-up)."""
    if cfg.target_warmup == 0:
        return 1.0
    return min(1.0, step / (cfg.target_warmup * cfg.steps))


def sigma_target_at(step: int, cfg: TrainConfig, sigma_init: float) -> float:
    """σ_target for this step under the linear warm-up."""
    return sigma_init + ramp_at(step, cfg) * (cfg.sigma_target - sigma_init)


class TrainingNoise:
    """Hardware-aware training: each step, every analog layer's programmed weight P (frozen W plus the method's
    weight-space part) is replaced by a device realization P̃, scaled in by the warm-up ramp r:
    W + r·(P̃ − P) goes into the layer's ``base`` (``AdapterLinear.perturb``), so forward sees P + r·(P̃ − P)
    and the gradient passes straight through to the clean parameters.

    ``gaussian:σ`` per step: one N(0, σ²) draw per weight, shared by the batch. Per token: no weight draw; each
    token's output gets the exact equivalent, N(0, (rσ)²·‖x‖²) per output (local reparameterisation). A device
    profile: the step's realization is chip ``step`` of the profile (programming 0, read 0, at its time), its
    run-time read noise included as one draw. Everything is drawn from the ``train``/``hwa`` stream, on ``device``
    (where the model lives)."""

    def __init__(self, cfg: TrainConfig, device: torch.device | str = "cpu"):
        kind, what, self.t = parse_train_noise(cfg.train_noise)
        self.sigma = float(what) if kind == "gaussian" else None
        self.profile: Profile | None = None if kind == "gaussian" else load_profile(what)
        self.per_token = cfg.train_noise_per == "token"
        self.seed = derive_seed(cfg.seed, "train", "hwa") % 2**62  # a profile takes a 62-bit seed
        self.gen = generator(cfg.seed, "train", "hwa", device=device)
        self.hooks: list = []
        self.fired: set[int] = set()
        self.scale = 0.0

    def step(self, adapters: dict[str, AdapterLinear], step: int, ramp: float) -> None:
        """Put this step's realization into every analog layer (per token: set the scale the hooks use)."""
        self.scale = ramp
        if self.per_token:
            if not self.hooks:
                self.hooks = [a.base.register_forward_hook(self._token_noise) for a in adapters.values()]
            self.fired = set()
            return
        for name, adapter in adapters.items():
            clean = adapter.programmed_weight()
            if self.profile is None:
                offset = torch.randn(clean.shape, generator=self.gen, dtype=clean.dtype, device=clean.device)
                offset.mul_(self.sigma * ramp)
            else:
                out = self.profile.realize(clean, t=self.t, chip=step, program=0, read=0, seed=self.seed, layer=name)
                noisy = out.weight if out.runtime_read is None else out.runtime_read.sample(out.weight, self.gen)
                offset = noisy.sub_(clean).mul_(ramp)
            adapter.perturb(offset)

    def _token_noise(self, module, args, out):
        if not module.training:
            return None
        self.fired.add(id(module))
        if self.scale == 0:
            return None
        norm = args[0].detach().norm(dim=-1, keepdim=True)
        eps = torch.randn(out.shape, generator=self.gen, dtype=out.dtype, device=out.device)
        return out + eps * norm * (self.sigma * self.scale)

    def clear(self, adapters: dict[str, AdapterLinear], check: bool = False) -> None:
        """Every analog layer holds its frozen W again (bit-exactly). ``check`` (after a training forward pass): per
        token, every analog layer's noise hook must have fired, else its noise would silently be missing."""
        for adapter in adapters.values():
            adapter.perturb(None)
        if check and self.per_token and (missed := [n for n, a in adapters.items() if id(a.base) not in self.fired]):
            raise RuntimeError(f"per-token training noise never reached analog layer {missed[0]}: its forward does not"
                               " call its base layer (AdapterLinear's contract)")

    def close(self, adapters: dict[str, AdapterLinear]) -> None:
        self.clear(adapters)
        for hook in self.hooks:
            hook.remove()
        self.hooks = []


def lr_factor(step: int, steps: int, warmup: float = 0.06) -> float:
    """Linear warm-up over the first 6 % of the steps, then linear decay to zero."""
    n_warm = max(1, int(warmup * steps))
    if step < n_warm:
        return (step + 1) / n_warm
    return max(0.0, (steps - step) / max(1, steps - n_warm))


def sigma_penalty(backbone: Backbone, target: float, reduction: str) -> torch.Tensor:
    total, count = None, 0
    for adapter in adapters_of(backbone.model).values():
        value, n = adapter.sigma_penalty(target, reduction)
        total = value if total is None else total + value
        count += n
    if total is None or count == 0:
        return torch.zeros(())
    return total / count if reduction == "mean" else total


def sigma_values(backbone: Backbone) -> torch.Tensor:
    """All learned σ of a StochGRASP model (empty for deterministic methods)."""
    sig = [a.sigma.detach().flatten() for a in adapters_of(backbone.model).values() if a.sigma is not None]
    return torch.cat(sig) if sig else torch.zeros(0)


def parameter_groups(backbone: Backbone, adapters: dict[str, AdapterLinear],
                     trains_backbone: bool = False) -> dict[str, list[torch.nn.Parameter]]:
    """The trained parameters by role, read from the declarations: ``adapter`` (μ, γ, β, LoRA's A and B, IA3's
    scales, full fine-tuning's ΔW), ``backbone`` (with ``trains_backbone``, the backbone parameters the method
    trains: BitFit's biases),
    ``noise`` (σ) and ``head``, each in the model's parameter order. TypeError if anything else would train."""
    noise = {id(p) for a in adapters.values() for p in a.noise_parameters().values()}
    adapter = {id(p) for a in adapters.values() for p in a.adapter_parameters().values()} - noise
    head = set(map(id, backbone.head_parameters().values()))
    trained = set(map(id, backbone_parameters(backbone).values())) if trains_backbone else set()
    groups: dict[str, list[torch.nn.Parameter]] = {"adapter": [], "backbone": [], "noise": [], "head": []}
    for name, p in backbone.model.named_parameters():
        role = ("noise" if id(p) in noise else "adapter" if id(p) in adapter else "head" if id(p) in head
                else "backbone" if id(p) in trained else None)
        if role is None and p.requires_grad:
            raise TypeError(f"parameter {name} requires grad but is neither the head nor a declared adapter parameter")
        if role is not None:
            groups[role].append(p)
    return groups


def diverged(step: int, what: str) -> UserError:
    return UserError(f"training diverged at step {step}: {what} is not finite; nothing written"
                     " (lower --lr, --head-lr or --sigma-lr, or --lambda)")


def data_columns(cfg: TrainConfig):
    """data name → its ``Columns`` under the training config's column settings."""
    return lambda source: columns_for(source, cfg.text_column, cfg.text_pair_column, cfg.label_column, cfg.labels)


def train(backbone: Backbone, cfg: TrainConfig, sigma_init: float | None = None, progress: bool = True, *,
          method: MethodConfig | None = None, device: torch.device | str = "cpu", dtype: str = "float32"
          ) -> TrainResult:
    """Train what the injected ``method`` trains (adapters, backbone parameters it names, head); returns the best
    dev checkpoint's state (on the CPU). ``sigma_init`` defaults to the method's (0 without one). The model is
    moved to ``device`` (a resolved one: cpu, cuda:N) and stays there; every stream draws there. ``dtype`` bf16
    runs the forward passes under bf16 autocast.

    Raises UserError as soon as the loss or a trained parameter becomes non-finite."""
    from noisesim.methods import trains_backbone

    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if method is not None and not isinstance(method, MethodConfig):
        raise TypeError(f"method must be a MethodConfig, got {type(method).__name__}")
    if sigma_init is None:
        sigma_init = method.sigma_init if method is not None else 0.0
    if isinstance(sigma_init, bool) or not isinstance(sigma_init, int | float) or not math.isfinite(sigma_init):
        raise UserError(f"sigma_init={sigma_init!r} must be a finite number")
    device = torch.device(device)
    model, tok = backbone.model.to(device), backbone.tokenizer
    limit = max_positions(backbone)
    if cfg.dropout is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = cfg.dropout
    pad = tok.pad_token_id
    columns = data_columns(cfg)
    metric = metric_for(cfg.eval_data, cfg.metric)
    train_set = encode(load_table(cfg.train_data, columns(cfg.train_data)), tok, cfg.max_length, cfg.train_data)
    longest = max(map(len, train_set.input_ids), default=0)
    if limit is not None and longest > limit:
        raise UserError(f"--max-length {cfg.max_length} lets sentences of {longest} tokens through, but"
                        f" {backbone.name!r} takes at most {limit}: use --max-length {limit} or less")
    dev_length = min(128, limit) if limit is not None else 128
    dev = EvalBatches.build(encode(load_table(cfg.eval_data, columns(cfg.eval_data)), tok, dev_length, cfg.eval_data),
                            pad).to(device)
    adapters = adapters_of(model)
    if programmed := [n for n, a in adapters.items() if a.is_programmed]:
        raise RuntimeError(f"adapter {programmed[0]} holds a device realization: unprogram it before training")
    # StochGRASP's training noise: one seeded stream shared by every layer, drawn in forward order
    set_training_noise(model, generator(cfg.seed, "train", "noise", device=device))
    params = parameter_groups(backbone, adapters, trains_backbone=method is not None and trains_backbone(method))
    sigma = params["noise"]
    lr = cfg.lr_for(method.method if method is not None else "")
    groups = [{"params": params["adapter"] + params["backbone"], "lr": lr},
              {"params": params["head"], "lr": cfg.head_lr}]
    if sigma:
        groups.append({"params": sigma, "lr": cfg.sigma_lr})
    noise = TrainingNoise(cfg, device) if cfg.train_noise is not None else None
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps))
    trainable, total = count_parameters(backbone)
    batches = train_batches(train_set, pad, cfg.batch_size, generator(cfg.seed, "train", "batches"),
                            group=cfg.length_group)
    with autocast(device, dtype):
        acc, score = measure(model, dev, metric, accuracy)
        best = TrainResult(trainable_state(backbone), acc, 0, trainable, total, 0.0, dev_metric=metric,
                           dev_score=score)
    start = time.time()
    bar = tqdm(range(1, cfg.steps + 1), desc="train", disable=not progress, dynamic_ncols=True)
    try:
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(derive_seed(cfg.seed, "train", "dropout"))  # dropout: the device's own generator
            for step in bar:
                model.train()
                batch = {k: v.to(device) for k, v in next(batches).items()}
                labels = batch.pop("labels")
                if noise is not None:
                    noise.step(adapters, step, ramp_at(step, cfg))
                try:
                    with autocast(device, dtype):
                        loss = task = F.cross_entropy(model(**batch).logits.float(), labels)
                finally:
                    if noise is not None:
                        noise.clear(adapters)
                if noise is not None:
                    noise.clear(adapters, check=True)
                if sigma:
                    target = sigma_target_at(step, cfg, sigma_init)
                    loss = task + cfg.lam * sigma_penalty(backbone, target, cfg.sigma_reduction)
                if not torch.isfinite(loss.detach()):
                    raise diverged(step, f"the loss ({float(loss.detach())})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    bad = [n for n, p in model.named_parameters() if p.requires_grad and not p.isfinite().all()]
                    if bad:
                        raise diverged(step, f"parameter {bad[0]}")
                    with autocast(device, dtype):
                        acc, score = measure(model, dev, metric, accuracy)
                    row = {"step": step, "task_loss": float(task.detach()), "dev_accuracy": acc,
                           **({f"dev_{metric}": score} if metric != "accuracy" else {}),
                           "seconds": round(time.time() - start, 1)}
                    if noise is not None:
                        row["train_noise_scale"] = ramp_at(step, cfg)
                    if sigma:
                        s = sigma_values(backbone)
                        row |= {"sigma_target": target, "sigma_mean": float(s.mean()),
                                "sigma_median": float(s.median())}
                    best.history.append(row)
                    # A stochastic (or HWA) model is only selected once σ (the noise) has reached its target:
                    # an earlier one has seen less noise and would be picked for clean accuracy alone.
                    eligible = not (sigma or noise) or step >= cfg.target_warmup * cfg.steps
                    if eligible and (score >= best.dev_score or best.best_step == 0):
                        best.state, best.dev_accuracy, best.best_step = trainable_state(backbone), acc, step
                        best.dev_score = score
                    bar.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
                bar.set_postfix(loss=f"{float(task.detach()):.3f}")
    except KeyboardInterrupt:  # keep the best checkpoint so far; the caller decides what to write
        best.interrupted = True
    finally:
        bar.close()
        if noise is not None:
            noise.close(adapters)
    model.eval()
    best.state = {name: tensor.cpu() for name, tensor in best.state.items()}
    best.seconds = time.time() - start
    return best
