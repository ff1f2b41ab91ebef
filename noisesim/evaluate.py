"""Accuracy of a classifier over pre-built evaluation batches."""

from __future__ import annotations

import torch
from torch import nn

from noisesim.data import EvalBatches
from noisesim.errors import UserError


def check_finite(logits: torch.Tensor) -> torch.Tensor:
    """The logits, or UserError if any is NaN or infinite (an argmax over them would be meaningless)."""
    if not torch.isfinite(logits).all():
        bad = int((~torch.isfinite(logits)).any(-1).sum())
        raise UserError(f"the model's outputs are not finite (NaN or inf logits for {bad} of {len(logits)}"
                        " examples in a batch), so no accuracy is reported: check the checkpoint's tensors"
                        " and the noise settings (a weight became NaN or inf)")
    return logits


@torch.inference_mode()
def accuracy(model: nn.Module, batches: EvalBatches) -> float:
    """Fraction of correct argmax predictions; the model is put in eval mode. The counts stay on the batches'
    device until the end: one transfer per evaluation, not one per batch.

    Raises UserError when any logit is NaN or infinite, or when there is nothing to evaluate."""
    model.eval()
    correct = not_finite = 0
    total = 0
    for batch, labels in zip(batches.batches, batches.labels, strict=True):
        logits = model(**batch).logits
        not_finite = (~torch.isfinite(logits)).any(-1).sum() + not_finite
        correct = (logits.argmax(-1) == labels).sum() + correct
        total += len(labels)
    if total == 0:
        raise UserError("no examples to evaluate (the data set is empty): give data with at least one row")
    if bad := int(not_finite):
        raise UserError(f"the model's outputs are not finite (NaN or inf logits for {bad} of {total}"
                        " examples), so no accuracy is reported: check the checkpoint's tensors"
                        " and the noise settings (a weight became NaN or inf)")
    return int(correct) / total


@torch.inference_mode()
def logits(model: nn.Module, batches: EvalBatches) -> torch.Tensor:
    """All logits, in batch order (length-sorted); UserError if any is not finite."""
    model.eval()
    return check_finite(torch.cat([model(**batch).logits for batch in batches.batches]))
