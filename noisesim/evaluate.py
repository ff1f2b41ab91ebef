"""Accuracy of a classifier over pre-built evaluation batches."""

from __future__ import annotations

import torch
from torch import nn

from noisesim.data import EvalBatches


@torch.inference_mode()
def accuracy(model: nn.Module, batches: EvalBatches) -> float:
    """Fraction of correct argmax predictions; the model is put in eval mode."""
    model.eval()
    correct = total = 0
    for batch, labels in zip(batches.batches, batches.labels, strict=True):
        logits = model(**batch).logits
        correct += int((logits.argmax(-1) == labels).sum())
        total += len(labels)
    return correct / total


@torch.inference_mode()
def logits(model: nn.Module, batches: EvalBatches) -> torch.Tensor:
    """All logits, in batch order (length-sorted)."""
    model.eval()
    return torch.cat([model(**batch).logits for batch in batches.batches])
