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
final theta of every failed run, on that run's own training set, into ``anatomy.parquet``
(column ``end_point``).

**Continuation test** (:func:`continue_runs`, ``[post.anatomy] continue_factor``, default
CONTINUE_FACTOR = 6): every run that failed on its budget (outcome ``budget``) is executed
again from its own spec (same seeds, same data) with ``continue_factor`` x its budget, i.e.
continued for (factor - 1) x its budget more (``continue_max`` > 0: only the first that many
failed runs by replicate per part and method, an outcome-blind sample that keeps a small
scale's time in bounds; the others keep their end point's label). This *is* the same run,
optimizer state included, not a restart from the stored theta: a run's trajectory does not
depend on its budget until the budget stops it -- Adam and plain BPTT with a constant (or
step) learning rate, and CMA-ES (its IPOP restarts fire on TolHistFun / TolX / ConditionCov
/ broken numerics, never on the budget; its population size depends only on the restart
count) -- so the longer run passes through the failed run's end point bit for bit (tested:
tests/test_anatomy.py). Two settings would break that, and their runs are not continued
(``continued_outcome`` = "not exact"): a cosine schedule whose decay_steps default to the
evals budget, and a wall-clock budget (where a run stops depends on the machine). Runs that
diverged are not continued either (a longer budget diverges at the same step). Whether the
continued run solves uses the task's own criterion at the sweep's log-spaced check points,
as in the original runs; ``continued_cost`` is the cost (forward-pass equivalents, counted
from the run's start) at which it was found solved, ``continued_cost_x`` that cost over the
failed run's cost. The continued runs are stored like sweep runs (one checked file per run
under ``<results>/continued/runs/``) and a stored one is reused, so the step resumes and a
rerun only re-reads them.

The final label (column ``class``) uses the continuation where it is decisive
(:func:`with_continuation`):

* solved when continued -> *slow*, whatever the end point looked like (the budget, not the
  landscape, stopped it; a "local minimum" or "saddle" that then solves was escaped);
* not solved, and the end point was *slow* (still descending) -> the label of the continued
  run's end point, classified by the same rules (where the descent led: a local minimum,
  saddle or plateau); *unsettled* if it is *slow* again: after (factor) x its budget the run
  has neither solved nor come to rest at a critical point (e.g. Adam with a large step
  bouncing between loss levels). Calling such a run *slow* would claim that more budget helps,
  which the continuation just measured it does not;
* not solved otherwise, or not continued -> the end point's label stands.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

LOSS_TOL = 1e-3  # at or below: the optimum (0) is reached
GRAD_TOL = 1e-4  # above: still descending ("slow")
FLAT_TOL = 1e-6  # largest |Hessian eigenvalue| below: flat ("plateau")
NEG_TOL = 1e-3  # eigenvalues below -NEG_TOL * max|eig| count as negative
SAT_FRAC = 0.9  # saturated hidden-unit fraction at or above: "plateau"
SAT_H = 0.99  # a tanh hidden activation with |h| > SAT_H is saturated
FD_STEP = 1e-5  # finite-difference step of the Hessian
CONTINUE_FACTOR = 6.0  # a failed run is continued to this x its budget (5x more); 1 = off
CONTINUED_DIR = "continued"  # the continued runs' store, under the experiment's results


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


# ------------------------------------------------------------------------------------------
# the continuation test
# ------------------------------------------------------------------------------------------
def with_continuation(end_point: str, solved: bool | None, continued_end_point=None) -> str:
    """The final label of a failed run (rules in the module docstring): ``end_point`` is the
    label of its stored end point, ``solved`` whether its continuation solved (None: not
    continued), ``continued_end_point`` the label of the continued run's end point (None:
    not classified)."""
    if solved is None:
        return end_point
    if solved:
        return "slow"
    if end_point == "slow" and continued_end_point is not None:
        if continued_end_point == "solved":
            return "slow"
        return "unsettled" if continued_end_point == "slow" else str(continued_end_point)
    return end_point


def not_continuable(spec: dict) -> str | None:
    """Why re-executing ``spec`` (a sweep run spec) with a larger budget would not follow the
    same path up to the old budget (module docstring), or None when it does."""
    budget, hyper = spec.get("budget") or {}, spec.get("method_params") or {}
    if budget.get("wall_s") is not None:
        return "a wall-clock budget stops a run at a machine-dependent point"
    if hyper.get("schedule") == "cosine" and hyper.get("decay_steps") is None:
        return "the cosine schedule's decay_steps default to the evals budget"
    return None


def continued_spec(spec: dict, factor: float) -> dict:
    """``spec`` with every budget limit multiplied by ``factor`` (evals rounded up); the
    seed, data and everything else unchanged."""
    out = dict(spec)
    b = {}
    for k, v in (spec.get("budget") or {}).items():
        if v is None:
            b[k] = None
        elif k == "evals":
            b[k] = int(math.ceil(int(v) * factor))
        else:
            b[k] = float(v) * factor
    out["budget"] = b
    return out


def continuation_columns(rec: dict | None, cost: float) -> dict:
    """The anatomy.parquet columns of one failed run's continuation record (from
    :func:`toolkit.suite.continue_runs`; None: not continued); ``cost``: the failed run's cost in
    forward-pass equivalents. continued_outcome is "" when the run was not continued."""
    from toolkit.analysis import SUCCESS_OUTCOMES

    nan = float("nan")
    if rec is None or "row" not in rec:
        return {
            "continued_outcome": "not exact" if rec is not None else "",
            "continued_solved": False,
            "continued_cost": nan,
            "continued_cost_x": nan,
            "continued_best_loss": nan,
        }
    row = rec["row"]
    solved = row["outcome"] in SUCCESS_OUTCOMES
    at = float(row.get("solved_at_fwd_equiv") or nan) if solved else nan
    return {
        "continued_outcome": str(row["outcome"]),
        "continued_solved": bool(solved),
        "continued_cost": at,
        "continued_cost_x": at / cost if cost and cost > 0 else nan,
        "continued_best_loss": float(row.get("best_loss", nan)),
    }
