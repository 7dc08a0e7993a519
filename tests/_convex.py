"""A convex test problem for population methods: a "net" whose loss is a quadratic in theta.

``Quadratic(n, cond)``: f(theta) = sum_i d_i (theta_i - c_i)^2 with d log-spaced in [1, cond]
and c ~ U(-1, 1)^n (fixed by ``seed``); minimum 0 at c. It has what the ask/tell loop uses of a
network (``n_params``, ``init``, ``check_data``, ``population_loss``, ``warmup``), so every
strategy runs on it through ``toolkit.train.run`` exactly as on an Elman net.
"""

from __future__ import annotations

import numpy as np

from toolkit.tasks import Dataset


class Quadratic:
    n_in = n_out = n_hidden = 1
    output = "linear"
    has_gradient = False

    def __init__(self, n: int = 10, cond: float = 10.0, seed: int = 0):
        rng = np.random.default_rng([seed, 0xC0FFEE])  # not a run's stream (init != c)
        self.n_params = int(n)
        self.c = rng.uniform(-1.0, 1.0, n)
        self.d = np.logspace(0.0, np.log10(cond), n)

    def __repr__(self) -> str:
        return f"Quadratic(n={self.n_params})"

    def init(self, rng, scale=None):
        return rng.uniform(-1.0, 1.0, self.n_params) * (1.0 if scale is None else scale)

    def check_data(self, x, y=None, mask=None, h0=None):
        return x, y, mask, h0

    def population_loss(self, X, x=None, y=None, mask=None, h0=None, check=True):
        return ((X - self.c) ** 2 * self.d).sum(axis=1)

    def warmup(self) -> float:
        return 0.0


DATA = Dataset(np.zeros((1, 1, 1)), np.zeros((1, 1, 1)), np.ones((1, 1)))
