"""Anatomy of failures: what the end point (theta) of a failed run is.

:func:`classify_end_point` labels an end point *local minimum*, *saddle*, *plateau* or *slow*
from the final loss (against the task's known optimum, 0), the norm of the exact gradient,
the Hessian spectrum at the end point (central finite differences of the exact gradient; fine
for up to a few dozen weights) and the fraction of saturated hidden units (|h| > 0.99 on the
training set; given by the caller, e.g. from the net's hidden states). Dauphin et al. (2014)
for saddles vs minima from Hessian spectra.

Rules (thresholds below), in this order:

* *solved*: loss <= LOSS_TOL (not a failure);
* *slow*: gradient norm > GRAD_TOL (still descending: not at a critical point);
* *plateau*: largest |eigenvalue| < FLAT_TOL, or saturated fraction >= SAT_FRAC (flat);
* *saddle*: at least one eigenvalue < -NEG_TOL * largest |eigenvalue|;
* *local minimum*: otherwise (a critical point with loss above the optimum, no descent
  direction).

Only the analysis part exists: rendering a table for the local_optima experiment from stored
thetas, and continuing failed runs (5x budget) to test whether they are stuck for good, are
not done.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LOSS_TOL = 1e-3  # at or below: the optimum (0) is reached
GRAD_TOL = 1e-4  # above: still descending ("slow")
FLAT_TOL = 1e-6  # largest |Hessian eigenvalue| below: flat ("plateau")
NEG_TOL = 1e-3  # eigenvalues below -NEG_TOL * max|eig| count as negative
SAT_FRAC = 0.9  # saturated hidden-unit fraction at or above: "plateau"
FD_STEP = 1e-5  # finite-difference step of the Hessian


def hessian_fd(grad: Callable[[np.ndarray], np.ndarray], theta, h: float = FD_STEP):
    """Symmetrised Hessian by central differences of the exact gradient: column j =
    (g(theta + h e_j) - g(theta - h e_j)) / (2 h). Shape (n, n)."""
    theta = np.asarray(theta, dtype=np.float64)
    n = theta.size
    H = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        H[:, j] = (np.asarray(grad(theta + e)) - np.asarray(grad(theta - e))) / (2 * h)
    return (H + H.T) / 2


def classify_end_point(
    loss_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    theta,
    *,
    saturated: float = 0.0,
) -> dict:
    """Label the end point ``theta`` (rules in the module docstring).

    loss_and_grad: theta -> (loss, gradient) (e.g. ``lambda t: net.loss_and_grad(t, x, y)``).
    saturated: fraction of hidden units with |h| > 0.99 on the training set.
    Returns dict(label, loss, grad_norm, eig_min, eig_max, n_negative, saturated)."""
    theta = np.asarray(theta, dtype=np.float64)
    loss, g = loss_and_grad(theta)
    gn = float(np.linalg.norm(g))
    H = hessian_fd(lambda t: loss_and_grad(t)[1], theta)
    ev = np.linalg.eigvalsh(H)
    scale = float(np.abs(ev).max()) if ev.size else 0.0
    n_neg = int((ev < -NEG_TOL * max(scale, FLAT_TOL)).sum())
    if loss <= LOSS_TOL:
        label = "solved"
    elif gn > GRAD_TOL:
        label = "slow"
    elif scale < FLAT_TOL or saturated >= SAT_FRAC:
        label = "plateau"
    elif n_neg > 0:
        label = "saddle"
    else:
        label = "local minimum"
    return {
        "label": label,
        "loss": float(loss),
        "grad_norm": gn,
        "eig_min": float(ev.min()),
        "eig_max": float(ev.max()),
        "n_negative": n_neg,
        "saturated": float(saturated),
    }
