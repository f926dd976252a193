"""Seeded slow disturbances (weather, load variation, grid voltage) that do not depend on the
step size: an Ornstein-Uhlenbeck process sampled exactly, so 1 s and 5 s steps agree in law."""

from __future__ import annotations

import math
import random


def seeded(seed: int, stream: str) -> random.Random:
    """A generator for one named stream of one seeded run. String seeds are hashed with SHA-512
    by `random`, so the streams are the same on every run and platform."""
    return random.Random(f"{seed}:{stream}")


class Disturbance:
    """Mean-reverting noise with standard deviation `sigma` and correlation time `tau` seconds."""

    def __init__(self, rng: random.Random, sigma: float, tau: float) -> None:
        self._rng = rng
        self.sigma = sigma
        self.tau = tau
        self.value = rng.gauss(0.0, sigma) if sigma > 0 else 0.0

    def step(self, dt: float) -> float:
        if self.sigma <= 0 or dt <= 0:
            return self.value
        decay = math.exp(-dt / self.tau)
        self.value = self.value * decay + self.sigma * math.sqrt(
            1 - decay * decay
        ) * self._rng.gauss(0.0, 1.0)
        return self.value
