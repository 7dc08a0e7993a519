"""Anatomy of failures: what the end point (theta) of a failed run is.

:func:`classify_end_point` labels an end point *local minimum*, *saddle*, *plateau* or *slow*
from the final loss (against the task's known optimum, 0), the norm of the exact gradient,
the Hessian spectrum at the end point (central finite differences of the exact gradient; fine
for up to a few dozen weights) and the fraction of saturated hidden units (|h| > 0.99 on the
training set; given by the caller, e.g. from the net's hidden states). Dauphin et al. (2014)
for saddles vs minima from Hessian spectra.

Rules (thresholds below), in this order:

* *solved*: loss <= LOSS_TOL (not a failure);
* *slow*: still descending, not at a critical point: gradient norm > GRAD_TOL, and either
  the Newton decrement over the positive-curvature eigendirections (eigenvalue > FLAT_TOL),
  1/2 sum (v_i.g)^2 / lambda_i (the loss decrease a quadratic model predicts to the nearby
  critical point) exceeds LOSS_TOL, or the gradient along the other eigendirections has norm
  > GRAD_TOL. (An Adam run jittering around a minimum has a gradient norm of ~1e-4 on these
  summed losses but a decrement of ~1e-4 or less: it is at the minimum, not slow.)
* *plateau*: largest |eigenvalue| < FLAT_TOL, or saturated fraction >= SAT_FRAC (flat);
* *saddle*: at least one eigenvalue < -NEG_TOL * largest |eigenvalue|;
* *local minimum*: otherwise (a critical point with loss above the optimum, no descent
  direction).

The suite's ``[post.anatomy]`` step (:func:`toolkit.suite.write_anatomy`) applies this to the
final theta of every failed run, on that run's own training set, into ``anatomy.parquet``.
Continuing failed runs (5x budget) to test whether they are stuck for good is not done.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LOSS_TOL = 1e-3  # at or below: the optimum (0) is reached
GRAD_TOL = 1e-4  # above: still descending ("slow")
FLAT_TOL = 1e-6  # largest |Hessian eigenvalue| below: flat ("plateau")
NEG_TOL = 1e-3  # eigenvalues below -NEG_TOL * max|eig| count as negative
SAT_FRAC = 0.9  # saturated hidden-unit fraction at or above: "plateau"
SAT_H = 0.99  # a tanh hidden activation with |h| > SAT_H is saturated
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


def saturated_fraction(h, mask=None, *, level: float = SAT_H) -> float:
    """Fraction of hidden activations h (B,T,H) with |h| > ``level`` (tanh units), over every
    sequence, step and unit; with ``mask`` (B,T), only over the steps where mask > 0."""
    a = np.abs(np.asarray(h, dtype=np.float64)) > level
    if mask is not None:
        a = a[np.asarray(mask) > 0]
    return float(a.mean()) if a.size else 0.0


def classify_end_point(
    loss_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    theta,
    *,
    saturated: float = 0.0,
    loss_tol: float = LOSS_TOL,
    grad_tol: float = GRAD_TOL,
    flat_tol: float = FLAT_TOL,
    neg_tol: float = NEG_TOL,
    sat_frac: float = SAT_FRAC,
) -> dict:
    """Label the end point ``theta`` (rules in the module docstring; the thresholds default
    to the module's constants).

    loss_and_grad: theta -> (loss, gradient) (e.g. ``lambda t: net.loss_and_grad(t, x, y)``).
    saturated: fraction of hidden units with |h| > 0.99 on the training set
    (:func:`saturated_fraction`).
    Returns dict(label, loss, grad_norm, decrement, eig_min, eig_max, n_negative, saturated)."""
    theta = np.asarray(theta, dtype=np.float64)
    loss, g = loss_and_grad(theta)
    gn = float(np.linalg.norm(g))
    H = hessian_fd(lambda t: loss_and_grad(t)[1], theta)
    ev, V = np.linalg.eigh(H)
    scale = float(np.abs(ev).max()) if ev.size else 0.0
    n_neg = int((ev < -neg_tol * max(scale, flat_tol)).sum())
    c = V.T @ np.asarray(g, dtype=np.float64)
    pos = ev > flat_tol
    dec = float(0.5 * np.sum(c[pos] ** 2 / ev[pos]))
    g_other = float(np.linalg.norm(c[~pos]))
    if loss <= loss_tol:
        label = "solved"
    elif gn > grad_tol and (dec > loss_tol or g_other > grad_tol):
        label = "slow"
    elif scale < flat_tol or saturated >= sat_frac:
        label = "plateau"
    elif n_neg > 0:
        label = "saddle"
    else:
        label = "local minimum"
    return {
        "label": label,
        "loss": float(loss),
        "grad_norm": gn,
        "decrement": dec,
        "eig_min": float(ev.min()),
        "eig_max": float(ev.max()),
        "n_negative": n_neg,
        "saturated": float(saturated),
    }
