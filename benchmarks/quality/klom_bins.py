"""How many KLoM histogram bins an ensemble of n models can afford: a synthetic power study.

Per sample, n "oracle" margins and n "unlearned" margins are drawn from unit normals, the
unlearned ones shifted by 0, 0.5, 1, 2 or 4 standard deviations. The mean KLoM at shift 0 is
the floor (two draws of one distribution); the ratio of a shifted KLoM to it is how far a
difference of that size stands out. Chosen once, before any method was scored, and used for
every cell (``benchmarks/quality/instrument.py``'s DEFAULT_BINS).

    python -m benchmarks.quality.klom_bins
"""
from __future__ import annotations

import argparse
import torch

from benchmarks.harness import REPO, environment, write_json

from wsscl_fast.metrics import klom

SHIFTS = (0.0, 0.5, 1.0, 2.0, 4.0)


def study(models: int, bins: int, samples: int = 2000, seed: int = 0) -> list[float]:
    """Mean KLoM at each of :data:`SHIFTS`, ``models`` a side."""
    generator = torch.Generator().manual_seed(seed)

    def draw(shift):
        return torch.randn(models, samples, generator=generator, dtype=torch.float64) + shift

    oracle = draw(0.0)
    return [float(klom(draw(shift), oracle, bins).mean()) for shift in SHIFTS]


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    rows = []
    print("models bins  " + "  ".join(f"shift {s}" for s in SHIFTS) + "  ratio@1sd ratio@2sd")
    for models in (4, 8, 16):
        for bins in (2, 3, 4, 6, 10, 20):
            means = study(models, bins)
            rows.append(dict(models=models, bins=bins, mean_klom=means, ratio_1sd=means[2] / means[0],
                             ratio_2sd=means[3] / means[0]))
            print(f"{models:6d} {bins:4d}  " + "  ".join(f"{m:7.3f}" for m in means)
                  + f"  {means[2] / means[0]:9.1f} {means[3] / means[0]:9.1f}")
    write_json(dict(environment=environment(), shifts=SHIFTS, rows=rows), REPO / "benchmarks" / "results" / "klom_bins.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
