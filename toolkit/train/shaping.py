"""Fitness shaping shared by the natural-gradient strategies (rank-based, loss-minimising).

* :func:`centered_ranks` -- Salimans et al. 2017 (OpenAI-ES): ranks scaled to [-0.5, 0.5].
* :func:`nes_utilities` -- Wierstra et al. 2014, JMLR 15, eq. (8) / Table 1: the utility of the
  k-th best of lambda samples, max(0, ln(lambda/2 + 1) - ln k) / sum_j(...) - 1/lambda.

Both rank losses (lowest first); +inf (a non-finite loss) ranks last; ties are broken by order.
"""

from __future__ import annotations

import numpy as np


def centered_ranks(losses: np.ndarray) -> np.ndarray:
    """(P,) -> (P,): rank(loss) / (P - 1) - 0.5, so the lowest loss gets -0.5 and the highest
    +0.5 (the reference code's ``compute_centered_ranks``, on losses instead of returns)."""
    P = losses.shape[0]
    r = np.empty(P, dtype=np.float64)
    r[np.argsort(losses, kind="stable")] = np.arange(P, dtype=np.float64)
    return r / max(P - 1, 1) - 0.5


def nes_utilities(lam: int) -> np.ndarray:
    """(lambda,): the NES utilities of the best, 2nd best, ... sample (they sum to 0)."""
    k = np.arange(1, lam + 1, dtype=np.float64)
    u = np.maximum(0.0, np.log(lam / 2.0 + 1.0) - np.log(k))
    return u / u.sum() - 1.0 / lam
