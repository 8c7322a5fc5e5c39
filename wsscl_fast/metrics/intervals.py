"""95% bootstrap intervals over models, and the paired comparison of two methods.

A statistic is a function of ensembles (each ``(models, ...)``). The bootstrap redraws each
ensemble's models with replacement and recomputes the statistic; the interval is the 2.5th
and 97.5th percentile of the redraws. With ``replace=False`` a redraw is a permutation of the
models instead: for statistics that cut an ensemble into halves (cross-fitted KLoM), it draws
random disjoint half-splits, where a redraw with replacement would repeat models and bias a KL
between small ensembles upward. Ensembles that share models (method A's model i and
method B's model i both come from original i) are redrawn with the same indices: pass them in
one ``paired`` group. A difference is called "lower" or "higher" only when its interval
excludes 0; otherwise the two are "tied".
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def _draw(group: Sequence[torch.Tensor], generator: torch.Generator, replace: bool) -> list[torch.Tensor]:
    count = group[0].shape[0]
    if any(t.shape[0] != count for t in group):
        raise ValueError(f"paired ensembles must have the same number of models, got {[t.shape[0] for t in group]}")
    index = torch.randint(count, (count,), generator=generator) if replace else torch.randperm(count, generator=generator)
    return [t[index] for t in group]


def bootstrap(statistic: Callable[..., float], groups: Sequence[Sequence[torch.Tensor]], resamples: int = 1000,
              seed: int = 0, replace: bool = True) -> torch.Tensor:
    """``resamples`` values of ``statistic(*ensembles)``, each group's models redrawn together.

    ``groups`` lists the ensembles in the order ``statistic`` takes them, grouped by what is
    paired: ``[[a, b], [oracles]]`` redraws a and b with one set of indices, oracles with another."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(resamples):
        drawn = [t for group in groups for t in _draw(group, generator, replace)]
        values.append(float(statistic(*drawn)))
    return torch.tensor(values, dtype=torch.float64)


def interval(values: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap values."""
    tail = (1 - level) / 2
    low, high = torch.quantile(values.double(), torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return float(low), float(high)


def verdict(difference_interval: tuple[float, float]) -> str:
    """"lower" / "higher" when the interval of (A - B) excludes 0, else "tied"."""
    low, high = difference_interval
    if high < 0:
        return "lower"
    if low > 0:
        return "higher"
    return "tied"
