"""Ablation statistics: a two-level bootstrap (seeds, then evaluation samples) for each arm's metric and for the
paired difference between two arms on the same evaluation samples, and a verdict in plain words.

Why two levels: in RL the run-to-run spread is often larger than the evaluation sampling error, and an interval
over evaluation samples alone calls seed noise an effect. Each replicate draws an arm's seeds with replacement and
one shared draw of evaluation samples, so a pair's difference keeps the pairing of samples (what makes a small
effect visible) while each arm's seed noise stays in. REC metrics (Acc@0.5, mean IoU) are per-sample means; OVD
mAP / AP50 are recomputed at dataset level on every resampled set of images (``vlmr1.rewards.dataset_map``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REC_METRICS = ("acc@0.5", "mean_iou")
OVD_METRICS = ("mAP", "AP50")


@dataclass(frozen=True)
class Outcomes:
    """One arm's evaluation of one split: ``values[s, i]`` is seed s's score on sample i (REC: per-sample metric);
    for OVD, ``metric_of(s, rows)`` gives seed s's dataset-level metric over the sample positions ``rows``."""

    values: np.ndarray | None = None
    metric_of: object = None
    n_seeds: int = 0
    n_samples: int = 0

    @classmethod
    def per_sample(cls, values) -> Outcomes:
        v = np.asarray(values, dtype=np.float64)
        return cls(values=v, n_seeds=v.shape[0], n_samples=v.shape[1])

    def point(self) -> float:
        if self.values is not None:
            return float(self.values.mean())
        rows = np.arange(self.n_samples)
        return float(np.mean([self.metric_of(s, rows) for s in range(self.n_seeds)]))

    def draw(self, seeds: np.ndarray, rows: np.ndarray) -> float:
        """The metric on one replicate: the mean over the drawn seeds of each seed's metric on the drawn rows."""
        if self.values is not None:
            return float(self.values[np.ix_(seeds, rows)].mean())
        return float(np.mean([self.metric_of(s, rows) for s in seeds]))


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def text(self, digits: int = 3) -> str:
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _replicates(n: int, ovd: bool) -> int:
    return n if not ovd else min(n, 400)  # a dataset-level AP per replicate costs milliseconds, not microseconds


def arm_interval(o: Outcomes, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """95% interval of one arm's metric over seeds and evaluation samples."""
    rng = np.random.default_rng(seed)
    reps = _replicates(n_boot, o.values is None)
    draws = [
        o.draw(rng.integers(0, o.n_seeds, o.n_seeds), rng.integers(0, o.n_samples, o.n_samples)) for _ in range(reps)
    ]
    return _interval(o.point(), draws, level)


def difference_interval(a: Outcomes, b: Outcomes, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """95% interval of metric(a) - metric(b) on the same evaluation samples (paired by sample, not by seed)."""
    if a.n_samples != b.n_samples:
        raise ValueError(f"arms were evaluated on different samples ({a.n_samples} vs {b.n_samples})")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(_replicates(n_boot, a.values is None)):
        rows = rng.integers(0, a.n_samples, a.n_samples)
        sa, sb = rng.integers(0, a.n_seeds, a.n_seeds), rng.integers(0, b.n_seeds, b.n_seeds)
        draws.append(a.draw(sa, rows) - b.draw(sb, rows))
    return _interval(a.point() - b.point(), draws, level)


def _interval(point: float, draws: list[float], level: float) -> Interval:
    lo, hi = np.quantile(np.asarray(draws), [(1 - level) / 2, 1 - (1 - level) / 2])
    return Interval(point, float(lo), float(hi))


def verdict(a: str, b: str, diff: Interval) -> str:
    """Plain words for a difference: which arm is better, or that this budget cannot tell them apart."""
    if diff.low > 0:
        return f"{a} > {b}"
    if diff.high < 0:
        return f"{b} > {a}"
    return "no detectable difference at this budget"
