"""Least squares of one measured value on a few others, from running sums: how much of the
header's air flow the machines' work (their power, a part rate) explains.

Its own module because the air-use rise (air_use.py) keeps one set of sums per learned window
and fits a production mode on the sum of its windows: the sums add, the samples need not be
kept. A handful of regressors (the cell's machines) is solved by Gaussian elimination on the
centred normal equations; the daemon has no numerical library and needs none for this.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# A regressor whose spread is under this share of its mean (or of 1 when its mean is near nil)
# is taken as constant: an idle or stopped machine's steady power explains no wander, and its
# slope would be the noise's.
_STEADY = 1e-3
_PIVOT = 1e-12


@dataclass(slots=True)
class Moments:
    """Running sums of `x` (the regressors) and `y`: count, sums and cross products."""

    size: int
    n: int = 0
    sx: list[float] = field(default_factory=list)
    sy: float = 0.0
    sxx: list[list[float]] = field(default_factory=list)
    sxy: list[float] = field(default_factory=list)
    top: list[float] = field(default_factory=list)  # the highest value of each x

    def __post_init__(self) -> None:
        if not self.sx:
            self.sx = [0.0] * self.size
            self.sxx = [[0.0] * self.size for _ in range(self.size)]
            self.sxy = [0.0] * self.size
            self.top = [-math.inf] * self.size

    def add(self, x: Sequence[float], y: float) -> None:
        self.n += 1
        self.sy += y
        for i, xi in enumerate(x):
            self.sx[i] += xi
            self.sxy[i] += xi * y
            self.top[i] = max(self.top[i], xi)
            row = self.sxx[i]
            for j, xj in enumerate(x):
                row[j] += xi * xj

    def merge(self, other: Moments) -> None:
        self.n += other.n
        self.sy += other.sy
        for i in range(self.size):
            self.sx[i] += other.sx[i]
            self.sxy[i] += other.sxy[i]
            self.top[i] = max(self.top[i], other.top[i])
            for j in range(self.size):
                self.sxx[i][j] += other.sxx[i][j]

    def means(self) -> tuple[float, ...]:
        return tuple(s / self.n for s in self.sx) if self.n else (0.0,) * self.size

    def slopes(self) -> tuple[float, ...]:
        """The least-squares slopes of y on x (an intercept fitted too); a steady regressor
        (or one the others already explain) gets 0."""
        k, n = self.size, self.n
        if n < k + 2:
            return (0.0,) * k
        mean = self.means()
        my = self.sy / n
        cov = [[self.sxx[i][j] / n - mean[i] * mean[j] for j in range(k)] for i in range(k)]
        cxy = [self.sxy[i] / n - mean[i] * my for i in range(k)]
        used = [i for i in range(k) if cov[i][i] > (_STEADY * max(abs(mean[i]), 1.0)) ** 2]
        solved = _solve([[cov[i][j] for j in used] for i in used], [cxy[i] for i in used])
        slopes = [0.0] * k
        for i, b in zip(used, solved, strict=True):
            slopes[i] = b
        return tuple(slopes)


def combined(moments: Iterable[Moments], size: int) -> Moments:
    total = Moments(size)
    for m in moments:
        total.merge(m)
    return total


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """a x = b by Gaussian elimination with partial pivoting; an unknown whose pivot vanishes
    (collinear with the others) is 0."""
    n = len(b)
    m = [[*row, rhs] for row, rhs in zip(a, b, strict=True)]
    scale = max((abs(m[i][i]) for i in range(n)), default=0.0)
    x = [0.0] * n
    pivots: list[int | None] = [None] * n
    row = 0
    for col in range(n):
        best = max(range(row, n), key=lambda r: abs(m[r][col]), default=None)
        if best is None or abs(m[best][col]) <= _PIVOT * max(scale, 1e-300):
            continue
        m[row], m[best] = m[best], m[row]
        for r in range(n):
            if r != row:
                factor = m[r][col] / m[row][col]
                if factor:
                    m[r] = [vr - factor * vp for vr, vp in zip(m[r], m[row], strict=True)]
        pivots[col] = row
        row += 1
    for col, at in enumerate(pivots):
        if at is not None:
            x[col] = m[at][n] / m[at][col]
    return x
