"""Which layers of a built model are analog in a cell: the ``--analog`` selection (``config.normalize_analog``)
and ``--analog-head``, resolved on the model's module names.

- ``adapted`` (the default): the checkpoint's own analog layers, exactly as before this option existed (a
  noisesim checkpoint's ``MethodConfig.layers``, an external folder's ``--layers``);
- ``all``: every encoder linear layer (q, k, v, o, ff1, ff2 of every block);
- a list: roles (that layer type in every block), ``blockN`` (every linear layer of block N), ``blockN.ROLE`` (one
  layer) and module-name patterns (``fnmatch``; a pattern also matches a name's tail after a dot, so
  ``encoder.layer.0.*`` matches ``encoder.encoder.layer.0.attention.self.query``).

A selected layer that the checkpoint already holds as an analog layer keeps its class (its programmed weight is the
method's: W plus a weight-space mean, or W); a selected plain linear layer is wrapped in a ``FrozenLinear`` for the
cells of that selection (programmed from its frozen W) and unwrapped afterwards, its module, tensors and
``requires_grad`` flags as they were. Analog layers the selection leaves out stay digital: their method computes
them from the clean weights. ``--analog-head`` adds the classifier head's linear layers (noisesim's head: ``head.*``;
a Hugging Face classifier: every linear layer outside the encoder blocks, e.g. BERT's pooler and classifier).

A layer's device draws come from streams keyed by its module name, so a layer gets the same realization whatever
else is analog: a sensitivity unit's noise is the noise that layer gets in the full sweep.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterator

from torch import nn

from noisesim.configs import LAYER_PRESETS
from noisesim.engine.config import DEFAULT_ANALOG
from noisesim.errors import UserError
from noisesim.methods import AdapterLinear, FrozenLinear, adapters_of
from noisesim.models import FAMILY_ROLES, SequenceClassifier

HEAD = "+head"  # the suffix of a selection's label with --analog-head
TYPES = LAYER_PRESETS["all"]


def label(selection: str, head: bool) -> str:
    """The ``analog`` column of a row: the selection, with ``+head`` when the head is analog too."""
    return selection + (HEAD if head else "")


def is_default(selection: str, head: bool) -> bool:
    return selection == DEFAULT_ANALOG and not head


def _programmable(module: nn.Module) -> bool:
    if isinstance(module, AdapterLinear | nn.Linear):
        return True
    try:
        from peft.tuners.ia3 import Linear as PeftIA3Linear
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(module, PeftIA3Linear)


def encoder_layers(model: nn.Module, family: str) -> dict[str, tuple[str, int]]:
    """Module name → (role, block) of every encoder linear layer, in model order (wrapped or not)."""
    names = FAMILY_ROLES[family]
    by_suffix = {names[r]: r for r in TYPES}
    pattern = re.compile(rf"\.layers?\.(\d+)\.({'|'.join(re.escape(names[r]) for r in TYPES)})$")
    return {name: (by_suffix[m.group(2)], int(m.group(1))) for name, module in model.named_modules()
            if (m := pattern.search(name)) and _programmable(module)}


def head_layers(model: nn.Module, family: str) -> list[str]:
    """The classifier head's linear layers: noisesim's ``head.*``; otherwise every linear layer outside the encoder
    blocks (and not inside an analog layer)."""
    encoder = encoder_layers(model, family)
    inside = tuple(f"{n}." for n, m in model.named_modules() if n in encoder or isinstance(m, AdapterLinear))
    if isinstance(model, SequenceClassifier):
        return [n for n, m in model.named_modules() if n.startswith("head.") and _programmable(m)
                and not n.startswith(inside)]
    return [n for n, m in model.named_modules() if n and n not in encoder and _programmable(m)
            and not n.startswith(inside) and not _replaced_copy(model, n)]


def _replaced_copy(model: nn.Module, name: str) -> bool:
    """True for a layer inside peft's ``ModulesToSaveWrapper.original_module`` (a PEFT adapter's classifier): the
    forward pass runs the trained copy (``modules_to_save.<adapter>``), so the original computes nothing."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part == "original_module":
            wrapper = model.get_submodule(".".join(parts[:i])) if i else model
            saved = getattr(wrapper, "modules_to_save", None)
            active = getattr(wrapper, "active_adapter", None)
            active = active if isinstance(active, list | tuple) else [active]
            if saved is not None and not getattr(wrapper, "disable_adapters", False) and any(
                    a in saved for a in active if isinstance(a, str)):
                return True
    return False


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*." + pattern)


def resolve(model: nn.Module, family: str, selection: str, head: bool, where: str = "the model") -> list[str]:
    """The module names a selection makes analog, in model order; an item that selects nothing is a UserError."""
    encoder = encoder_layers(model, family)
    if selection == DEFAULT_ANALOG:
        chosen = set(adapters_of(model))
    elif selection == "all":
        chosen = set(encoder)
    else:
        chosen = set()
        blocks = sorted({b for _, b in encoder.values()})
        for item in selection.split(","):
            if item in TYPES:
                hit = {n for n, (r, _) in encoder.items() if r == item}
            elif m := re.fullmatch(r"block(\d+)(?:\.(\w+))?", item):
                n_block, role = int(m.group(1)), m.group(2)
                if n_block not in blocks:
                    raise UserError(f"--analog {item}: {where} has blocks {blocks[0]}–{blocks[-1]}" if blocks else
                                    f"--analog {item}: {where} has no encoder blocks")
                hit = {n for n, (r, b) in encoder.items() if b == n_block and role in (None, r)}
            else:
                hit = {n for n in encoder if _matches(n, item)}
                if not hit:
                    example = next(iter(encoder), "encoder.layer.0.attention.self.query")
                    raise UserError(f"--analog {item} matches no encoder linear layer of {where} (names look like"
                                    f" {example}; the head is --analog-head)")
            if not hit:
                raise UserError(f"--analog {item} selects no encoder linear layer of {where}")
            chosen |= hit
    if head:
        heads = head_layers(model, family)
        if not heads:
            raise UserError(f"--analog-head: {where} has no linear head layer to program")
        chosen |= set(heads)
    order = [n for n, _ in model.named_modules()]
    return [n for n in order if n in chosen]


@contextlib.contextmanager
def analog_layers(model: nn.Module, family: str, selection: str, head: bool,
                  where: str = "the model") -> Iterator[dict[str, AdapterLinear]]:
    """Name → analog layer for one selection, for ``ProgrammedWeights``. The default selection is
    ``adapters_of(model)``, untouched; otherwise selected plain layers are wrapped (``FrozenLinear``, or ``IA3Linear``
    on a peft IA3 layer) while the block runs and put back on leaving it (also on an error)."""
    if is_default(selection, head):
        yield adapters_of(model)
        return
    names = resolve(model, family, selection, head, where)
    added: dict[str, tuple[nn.Module, dict]] = {}
    try:
        layers: dict[str, AdapterLinear] = {}
        for name in names:
            module = model.get_submodule(name)
            if not isinstance(module, AdapterLinear):
                flags = {id(p): (p, p.requires_grad) for p in module.parameters()}
                if isinstance(module, nn.Linear):
                    wrapper = FrozenLinear(module)
                else:
                    from noisesim.methods import IA3Linear

                    wrapper = IA3Linear.wrap(module)
                wrapper.train(module.training)
                parent, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent) if parent else model, child, wrapper)
                added[name] = (module, flags)
                module = wrapper
            layers[name] = module
        yield layers
    finally:
        for name, (original, flags) in added.items():
            wrapper = model.get_submodule(name)
            if isinstance(wrapper, AdapterLinear):
                wrapper.unprogram()
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, original)
            for p, flag in flags.values():
                p.requires_grad_(flag)


def units(model: nn.Module, family: str, by: str) -> list[dict]:
    """The sensitivity units of a model: one per encoder linear layer (``blockN.ROLE``), block (``blockN``) or layer
    type (``q`` … ``ff2``), each an --analog selection, with its block, type and number of layers."""
    encoder = encoder_layers(model, family)
    if not encoder:
        raise UserError("the model has no encoder linear layers to test")
    if by == "layer":
        return [{"unit": f"block{b}.{r}", "block": b, "type": r, "layers": 1} for r, b in encoder.values()]
    if by == "block":
        blocks = sorted({b for _, b in encoder.values()})
        return [{"unit": f"block{b}", "block": b, "type": None,
                 "layers": sum(1 for _, x in encoder.values() if x == b)} for b in blocks]
    present = [r for r in TYPES if any(x == r for x, _ in encoder.values())]
    return [{"unit": r, "block": None, "type": r, "layers": sum(1 for x, _ in encoder.values() if x == r)}
            for r in present]
