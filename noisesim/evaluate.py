"""Accuracy (and a task's metric) of a classifier over pre-built evaluation batches."""

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
    """Fraction of correct argmax predictions (``evaluate`` with accuracy)."""
    return evaluate(model, batches)[0]


@torch.inference_mode()
def evaluate(model: nn.Module, batches: EvalBatches, metric: str = "accuracy") -> tuple[float, float]:
    """(accuracy, ``metric``) of the argmax predictions (``noisesim.metrics``; for accuracy both are the fraction
    correct); the model is put in eval mode. The counts (and, for another metric, the predictions) stay on the
    batches' device until the end: one transfer per evaluation, not one per batch.

    Raises UserError when any logit is NaN or infinite, or when there is nothing to evaluate."""
    model.eval()
    correct = not_finite = 0
    total = 0
    predictions = []
    for batch, labels in zip(batches.batches, batches.labels, strict=True):
        logits = model(**batch).logits
        not_finite = (~torch.isfinite(logits)).any(-1).sum() + not_finite
        predicted = logits.argmax(-1)
        correct = (predicted == labels).sum() + correct
        total += len(labels)
        if metric != "accuracy":
            predictions.append(predicted)
    if total == 0:
        raise UserError("no examples to evaluate (the data set is empty): give data with at least one row")
    if bad := int(not_finite):
        raise UserError(f"the model's outputs are not finite (NaN or inf logits for {bad} of {total}"
                        " examples), so no accuracy is reported: check the checkpoint's tensors"
                        " and the noise settings (a weight became NaN or inf)")
    acc = int(correct) / total
    if metric == "accuracy":
        return acc, acc
    from noisesim.metrics import score

    return acc, score(metric, torch.cat(batches.labels).cpu().numpy(), torch.cat(predictions).cpu().numpy())


def measure(model: nn.Module, batches: EvalBatches, metric: str = "accuracy", count=None) -> tuple[float, float]:
    """(accuracy, ``metric``): ``count`` (default ``accuracy``, looked up by the caller so tests can watch it) for
    accuracy alone, ``evaluate`` for another metric."""
    if metric == "accuracy":
        acc = (count or accuracy)(model, batches)
        return acc, acc
    return evaluate(model, batches, metric)


@torch.inference_mode()
def logits(model: nn.Module, batches: EvalBatches) -> torch.Tensor:
    """All logits, in batch order (length-sorted); UserError if any is not finite."""
    model.eval()
    return check_finite(torch.cat([model(**batch).logits for batch in batches.batches]))
