"""Stratified subsets and K-fold assignments: seeded index tensors."""

from __future__ import annotations

import torch


def stratified_indices(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` indices drawn per class in proportion to its frequency (seeded), sorted."""
    g = torch.Generator().manual_seed(seed)
    classes, counts = labels.unique(return_counts=True)
    n = len(labels)
    quotas = (counts.double() * count / n).floor().long()
    # hand out what rounding left over to the largest remainders
    remainder = counts.double() * count / n - quotas
    for i in remainder.argsort(descending=True)[: count - int(quotas.sum())]:
        quotas[i] += 1
    picked = []
    for c, q in zip(classes.tolist(), quotas.tolist(), strict=True):
        idx = (labels == c).nonzero().flatten()
        picked.append(idx[torch.randperm(len(idx), generator=g)[:q]])
    return torch.cat(picked).sort().values


def kfold_assignment(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """Fold number (0..folds-1) of every example: each class dealt round-robin after a
    seeded shuffle, so folds are disjoint, cover everything, and keep class balance."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(len(labels), dtype=torch.long)
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        out[idx] = torch.arange(len(idx)) % folds
    return out
