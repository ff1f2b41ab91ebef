"""What every method's layer shares: it wraps a frozen ``nn.Linear`` whose weight lives on devices."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from noisesim.configs import MethodConfig


class AdapterLinear(nn.Module, metaclass=abc.ABCMeta):
    """A frozen linear layer (``base``, the analog layer whose weight is programmed onto devices) plus a
    method's own tensors, declared by name on the class as Hugging Face PEFT's layers declare theirs:

    - ``adapter_parameter_names``: the trainable parameters the method adds (an attribute may be None when
      the config switches it off); with the classifier head, exactly these get gradients;
    - ``noise_parameter_names``: those of them that parametrise training noise (their own learning rate,
      the σ-target term of Eq. 6, stored as float16);
    - ``saved_buffer_names``: buffers a checkpoint stores besides the parameters (the grouping);
    - ``tensor_paths``: where a declared name lives when it is not an attribute of the layer itself (a peft
      layer inside: ``{"lora_A": "peft.lora_A.default.weight"}``).

    A checkpoint stores ``saved_state()``: the declared parameters that are on, then the saved buffers.

    Protocols with the rest of noisesim:

    - ``programmed_weight()``: what gets written to the devices (frozen W plus any weight-space mean);
      ``program(weight)`` puts a realization of it into ``base``, and forward then uses it as the whole
      weight-space part; ``unprogram()`` puts the frozen weight back, bit-exactly (the same tensor);
    - ``perturb(offset)``: hardware-aware training; ``base`` holds W + offset (a device realization of the
      programmed weight minus the programmed weight) while forward keeps the method's own parts, so the gradient
      passes straight through to the clean parameters;
    - ``use_noise_generator(gen)``: the generator training noise is drawn from (None: torch's global one).

    ``forward`` must apply the frozen W by calling ``self.base`` on the layer's (digitally modulated) input, once:
    programming and HWA put the device's weight there, and run-time read noise and per-token HWA noise are hooks on
    ``base`` (training checks that every analog layer's hook fired).
    """

    adapter_parameter_names: tuple[str, ...] = ()
    noise_parameter_names: tuple[str, ...] = ()
    saved_buffer_names: tuple[str, ...] = ()
    tensor_paths: dict[str, str] = {}
    init_stream = "grouping"  # seed stream of from_config's generator: grouping (--perm-seed) or train (--seed)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not set(cls.noise_parameter_names) <= set(cls.adapter_parameter_names):
            raise TypeError(f"{cls.__name__}: noise_parameter_names must be among adapter_parameter_names")

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self._frozen: torch.Tensor | None = None  # base's own weight while a realization is programmed
        self._perturbed = False  # base holds W + a training perturbation (HWA), not a programmed realization
        self._noise_generator: torch.Generator | None = None

    @classmethod
    @abc.abstractmethod
    def from_config(cls, base: nn.Linear, config: MethodConfig, gen: torch.Generator, role: str) -> AdapterLinear:
        """The layer ``config`` describes around ``base`` (an encoder's ``role`` layer: q, k, v, o, ff1, ff2);
        ``gen`` is the layer's own initialisation stream (its grouping, LoRA's A)."""

    @classmethod
    def saved_names(cls, config: MethodConfig | None = None) -> tuple[str, ...]:
        """Per-layer tensor names a checkpoint stores (for ``config``: only the parameters it switches on)."""
        return (*cls.adapter_parameter_names, *cls.saved_buffer_names)

    # --- declared tensors ---------------------------------------------------------------------------------

    def declared(self, name: str) -> torch.Tensor | None:
        """The tensor behind a declared name (None when the config switched it off)."""
        path = self.tensor_paths.get(name, name)
        module_path, _, attr = path.rpartition(".")
        return getattr(self.get_submodule(module_path) if module_path else self, attr)

    def adapter_parameters(self) -> dict[str, nn.Parameter]:
        """Name → parameter for the declared adapter parameters that are on."""
        return {n: p for n in self.adapter_parameter_names if (p := self.declared(n)) is not None}

    def noise_parameters(self) -> dict[str, nn.Parameter]:
        """Name → parameter for the declared noise parameters that are on."""
        return {n: p for n in self.noise_parameter_names if (p := self.declared(n)) is not None}

    def saved_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores of this layer (local names, live tensors)."""
        buffers = {n: b for n in self.saved_buffer_names if (b := self.declared(n)) is not None}
        return {**self.adapter_parameters(), **buffers}

    @torch.no_grad()
    def load_saved_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy a checkpoint's tensors (local declared names, as ``saved_state`` gives them) into the layer."""
        live = self.saved_state()
        if set(tensors) != set(live):
            raise KeyError(f"{type(self).__name__} stores {sorted(live)}, got {sorted(tensors)}")
        for name, tensor in tensors.items():
            live[name].copy_(tensor)

    def check_declarations(self) -> None:
        """TypeError unless the layer's own parameters and persistent buffers (``base``'s aside) are exactly the
        declared ones."""
        mine = {id(p) for p in self.base.parameters()} | {id(b) for b in self.base.buffers()}
        params = {n for n, p in self.named_parameters() if id(p) not in mine}
        persistent = set(self.state_dict(keep_vars=True))
        buffers = {n for n, b in self.named_buffers() if id(b) not in mine and n in persistent}
        want_params = {self.tensor_paths.get(n, n) for n in self.adapter_parameters()}
        want_buffers = {self.tensor_paths.get(n, n) for n in self.saved_state()} - want_params
        if params != want_params or buffers != want_buffers:
            raise TypeError(f"{type(self).__name__} holds parameters {sorted(params)} and buffers {sorted(buffers)},"
                            f" but declares {sorted(want_params)} and {sorted(want_buffers)}")

    @property
    def sigma(self) -> torch.Tensor | None:
        """The learned noise scale σ of a stochastic method; None for a deterministic one."""
        return None

    # --- programming: the analog layer holds a device realization ------------------------------------------

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def frozen_weight(self) -> torch.Tensor:
        """The frozen W, also while a realization is programmed."""
        return self.base.weight if self._frozen is None else self._frozen

    def programmed_weight(self) -> torch.Tensor:
        """The weight written to the devices (a new tensor)."""
        return self.frozen_weight.detach().clone()

    @property
    def is_programmed(self) -> bool:
        return self._frozen is not None and not self._perturbed

    def program(self, weight: torch.Tensor) -> None:
        """Make ``base`` hold ``weight`` (used as is, not copied), a device realization of
        ``programmed_weight()``: forward then reads the whole weight-space part from it."""
        current = self.base.weight
        if weight.shape != current.shape or weight.dtype != current.dtype or weight.device != current.device:
            raise ValueError(f"a programmed weight must match the layer's ({tuple(current.shape)}, {current.dtype},"
                             f" {current.device}), got ({tuple(weight.shape)}, {weight.dtype}, {weight.device})")
        if self._perturbed:
            raise RuntimeError("this layer holds a training perturbation: call perturb(None) before program")
        if self._frozen is None:
            self._frozen = current.data
        current.data = weight

    def perturb(self, offset: torch.Tensor | None) -> None:
        """Hardware-aware training: ``base`` holds W + ``offset`` (detached) until ``perturb(None)``; forward keeps
        the method's own parts (μ, B·A, scales), so its output is that of the device's weight and the gradient
        reaches the clean parameters unchanged (straight-through)."""
        if self._frozen is not None and not self._perturbed:
            raise RuntimeError("this layer holds a programmed realization: unprogram it before training")
        if offset is None:
            self.unprogram()
            return
        frozen = self.frozen_weight
        if offset.shape != frozen.shape:
            raise ValueError(f"a perturbation must have the weight's shape {tuple(frozen.shape)},"
                             f" got {tuple(offset.shape)}")
        self._frozen, self._perturbed = frozen.data, True
        self.base.weight.data = frozen.data + offset.detach().to(frozen.dtype)

    def unprogram(self) -> None:
        """Put the frozen weight back (the very tensor ``base`` held before ``program`` or ``perturb``); no-op if
        it holds it."""
        if self._frozen is not None:
            self.base.weight.data = self._frozen
            self._frozen = None
            self._perturbed = False

    # --- training noise ------------------------------------------------------------------------------------

    @property
    def noise_generator(self) -> torch.Generator | None:
        return self._noise_generator

    def use_noise_generator(self, gen: torch.Generator | None) -> None:
        """Draw this layer's training noise from ``gen`` (None: torch's global generator)."""
        if gen is not None and not isinstance(gen, torch.Generator):
            raise TypeError(f"gen must be a torch.Generator or None, got {type(gen).__name__}")
        self._noise_generator = gen

    def _randn(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self._noise_generator, dtype=like.dtype, device=like.device)

    def sigma_penalty(self, target: float, reduction: str) -> tuple[torch.Tensor, int]:
        """(penalty, number of group σ) for the σ-target term (``mean`` divides by the total number);
        zero for deterministic methods."""
        return self.base.weight.new_zeros(()), 0


class FrozenLinear(AdapterLinear):
    """An analog layer without an adapter: its frozen W is programmed, forward is the plain linear map. The analog
    layers of ``head`` and ``bitfit`` (whose biases train, digitally), and those a LoRA or IA3 leaves alone."""

    @classmethod
    def from_config(cls, base: nn.Linear, config: MethodConfig, gen: torch.Generator, role: str) -> FrozenLinear:
        return cls(base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x)


def _trains_no_backbone(name: str) -> bool:
    return False


@dataclass(frozen=True)
class Method:
    """A registered fine-tuning method (one file under ``methods/`` each): the layer its target analog layers
    get, which backbone parameters it trains besides the adapters and the head, and what runs where.

    ``trains_backbone(name)`` is asked for every encoder parameter name (``encoder.…``) but the analog layers'
    frozen weights; those it accepts train digitally at ``TrainConfig.lr`` and are stored in the checkpoint by
    their model names. ``analog`` / ``digital`` say what is programmed onto devices and what stays digital."""

    name: str
    layer: type[AdapterLinear]
    trained: str
    analog: str
    digital: str
    trains_backbone: Callable[[str], bool] = _trains_no_backbone
