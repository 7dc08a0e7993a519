"""Metrics across seeds, from the stored tables only (``runs.parquet``, ``traces.parquet``).

Every number a figure or the report shows is a statistic over random seeds, given with its
uncertainty. The inputs are the results-store tables (docs/CONTRACTS.md): ``runs`` has one row
per run (``run_id``, ``task``, ``method``, ``outcome``, cost totals ``evals`` / ``fwd_equiv`` /
``wall_s``, ``final_loss``, ``best_loss``, ``solved_at_*``, ``grid.<key>`` ...), ``traces`` one row
per stored trace point (``run_id``, ``evals``, ``fwd_equiv``, ``wall_s``, ``best_loss`` ...).

Metrics
-------
* :func:`cost_to_target` -- per run, the cost (``fwd_equiv``, ``evals`` or ``wall_s``) at which a
  target was first reached; runs that never reach it are kept, *censored* at the cost they spent.
  ``target=None`` means success by the task's published criterion (outcome in
  :data:`SUCCESS_OUTCOMES`), otherwise a loss level on ``best_loss``. Trace points are
  log-spaced (5 % apart), so a hitting cost read from the traces is an upper bound within 5 %.
* :func:`ert_table` -- expected running time as in COCO (Hansen et al. 2016, "COCO: performance
  assessment"): the total cost of all runs until they reach the target or stop, divided by the
  number of runs that reached it (inf when none did), with a percentile-bootstrap CI over runs
  (COCO itself reports percentiles of bootstrapped simulated-restart run lengths; resampling
  runs gives an interval for the ERT itself, and the same draws give the ERT-ratio CI).
* :func:`runtime_ecdf` -- COCO's runtime ECDF: the fraction of (run, target) pairs reached as a
  function of cost, for log-spaced loss targets shared by all methods of a panel.
* :func:`success_rate` -- with a Wilson score interval (:func:`wilson_interval`).
* :func:`final_loss_stats` -- median, interquartile mean (IQM) and quartiles with
  (stratified) bootstrap CIs (Agarwal et al. 2021, "Deep RL at the edge of the statistical
  precipice").
* :func:`count_basins` / :func:`basins` -- how many distinct final-loss levels the seeds end in:
  single-linkage clustering of log10(loss) with a gap threshold (a new level starts wherever two
  consecutive sorted values are more than ``gap`` decades apart; default 0.5 decade, a factor of
  about 3.2). Losses below ``floor`` count as ``floor`` (all "zero" losses are one level);
  non-finite losses (diverged runs) are counted apart, not as a level. A heuristic: runs still
  descending when their budget ran out can bridge two levels.
* :func:`ert_ratio`, :func:`mann_whitney_u`, :func:`compare_methods` -- the "method A is N times
  faster than B" number with a bootstrap CI, and a two-sided Mann-Whitney U test on per-seed
  costs in which censored runs are ranked after every run that reached the target (tied with
  each other), as in Gehan's generalisation of the Wilcoxon test.
* :func:`diff_interval`, :func:`fisher_exact` -- the difference of two success rates with
  Newcombe's hybrid score interval (hand-written, tested against statsmodels'
  ``confint_proportions_2indep(method="newcomb")``), and Fisher's exact test (scipy).
* :func:`ert_at_cap`, :func:`best_cap_ert`, :func:`ert_curve` -- the restart-aware expected
  cost to a first success, ERT(b) = E[min(cost, b)] / P(cost <= b) (COCO's simulated
  restarts with restart period b), and its best cap.
* :func:`family_ert_ratio` -- the (best-cap) ERT ratio of two families with the best variant
  of each re-selected inside every bootstrap resample, its CI and a bootstrap p-value.
* :func:`holm` -- Holm-Bonferroni adjusted p-values; :func:`interaction` -- the method x
  architecture interaction of success rates with a bootstrap CI and p-value.

Randomness: every bootstrap takes ``seed`` (int, or a ``numpy.random.Generator``). With an int,
each group draws from its own generator derived from (seed, group key), so a group's interval
does not depend on which other groups are in the table.

Grouping: functions take ``by``, a list of columns whose last entry is the *series* (usually
``method``) and whose other entries define a *panel* (usually ``task``). :func:`annotate` adds the
columns ``condition`` (a readable panel label: task plus every setting that varies) and
``variant`` (method plus every method setting that varies), so ``by=("condition", "variant")``
splits a table by everything that was swept.
"""

from __future__ import annotations

import json
import math
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

SUCCESS_OUTCOMES = ("solved", "target")
COSTS = ("fwd_equiv", "evals", "wall_s")
COST_LABELS = {
    "fwd_equiv": "cost (forward-pass equivalents)",
    "evals": "cost (loss evaluations, batches)",
    "wall_s": "wall time (s, compile excluded)",
    "fwd_steps": "forward sequence-steps",
    "grad_steps": "forward+backward sequence-steps",
}
COST_UNITS = {
    "fwd_equiv": "forward-pass equivalents",
    "evals": "loss evaluations",
    "wall_s": "wall seconds",
}
DEFAULT_BY = ("task", "method")

__all__ = [
    "SUCCESS_OUTCOMES",
    "annotate",
    "basins",
    "bootstrap",
    "compare_methods",
    "convergence_curves",
    "cost_to_target",
    "count_basins",
    "default_targets",
    "describe_config",
    "diff_interval",
    "ert",
    "ert_ratio",
    "ert_table",
    "final_loss_stats",
    "family_ert_ratio",
    "best_cap_ert",
    "ert_at_cap",
    "ert_curve",
    "holm",
    "interaction",
    "fisher_exact",
    "hitting_costs",
    "iqm",
    "mann_whitney_u",
    "param_values",
    "quantile",
    "runtime_ecdf",
    "success_rate",
    "wilson_interval",
]


# ------------------------------------------------------------------------------------------
# small statistics
# ------------------------------------------------------------------------------------------
def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level: expected a confidence level in (0, 1), got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes, n, level: float = 0.95):
    """Wilson score interval for a binomial proportion (Wilson 1927).

    successes, n: ints or arrays (broadcast). Returns (lo, hi) as floats or arrays; NaN where
    n == 0. Unlike the Wald interval it stays inside [0, 1] and is sensible at 0 and n.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("successes: expected 0 <= successes <= n")
    z = _z(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    # exact ends: k = 0 gives lo = 0, k = n gives hi = 1 (avoid 1e-17 rounding noise)
    lo = np.where((k == 0) & (n > 0), 0.0, lo)
    hi = np.where((k == n) & (n > 0), 1.0, hi)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def quantile(a, q, axis: int = -1):
    """Linear-interpolation quantile (numpy's default, type 7) that copes with +inf.

    Where the two order statistics around the quantile are equal (also both inf) that value is
    returned; an interpolation towards +inf gives +inf. NaN entries are treated as +inf (the
    worst loss). ``a`` may be 2-D (rows are samples along ``axis``).
    """
    a = np.asarray(a, dtype=np.float64)
    a = np.where(np.isnan(a), np.inf, a)
    a = np.sort(np.moveaxis(a, axis, -1), axis=-1)
    n = a.shape[-1]
    if n == 0:
        return np.nan
    pos = float(q) * (n - 1)
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    frac = pos - lo
    x0, x1 = a[..., lo], a[..., hi]
    with np.errstate(invalid="ignore"):
        out = np.where((x0 == x1) | (frac == 0), x0, x0 + frac * (x1 - x0))
    return float(out) if np.ndim(out) == 0 else out


def iqm(a, axis: int = -1):
    """Interquartile mean: the mean of the middle 50 % of the sorted values, cutting
    ``int(0.25 n)`` from each end (= scipy.stats.trim_mean(a, 0.25), as in Agarwal et al. 2021).
    NaN counts as +inf."""
    a = np.asarray(a, dtype=np.float64)
    a = np.where(np.isnan(a), np.inf, a)
    a = np.sort(np.moveaxis(a, axis, -1), axis=-1)
    n = a.shape[-1]
    if n == 0:
        return np.nan
    cut = int(0.25 * n)
    out = a[..., cut : n - cut].mean(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def _rng_for(seed, key) -> np.random.Generator:
    """A Generator for one group: derived from (seed, key) when seed is an int, else ``seed``."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed: expected an int or a numpy.random.Generator, got {seed!r}")
    return np.random.default_rng([int(seed), zlib.crc32(repr(key).encode())])


def _check_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"n_boot: expected an int >= 1, got {n_boot!r}")
    return int(n_boot)


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap draws; NaN draws (undefined statistics) are dropped,
    +inf is kept (order statistics, no interpolation towards inf)."""
    d = np.asarray(draws, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    lo = np.quantile(d, alpha, method="inverted_cdf")
    hi = np.quantile(d, 1 - alpha, method="inverted_cdf")
    return float(lo), float(hi)


def bootstrap(
    samples: Sequence[np.ndarray] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int = 2000,
    seed=0,
    level: float = 0.95,
    key=None,
):
    """Stratified percentile bootstrap (Efron & Tibshirani 1993; Agarwal et al. 2021).

    samples: one 1-D array, or a list of 1-D arrays (strata, e.g. one per task); each stratum is
    resampled with replacement on its own and the resamples are concatenated. statistic maps a
    (n_boot, n) matrix to (n_boot,) values (and a (1, n) matrix to the point estimate).
    Returns (estimate, lo, hi).
    """
    n_boot = _check_boot(n_boot)
    strata = (
        [np.asarray(samples, dtype=np.float64)]
        if isinstance(samples, np.ndarray)
        else [np.asarray(s, dtype=np.float64) for s in samples]
    )
    strata = [s for s in strata if s.size]
    if not strata:
        return math.nan, math.nan, math.nan
    rng = _rng_for(seed, key)
    full = np.concatenate(strata)[None, :]
    est = float(np.asarray(statistic(full)).ravel()[0])
    parts = [s[rng.integers(0, s.size, size=(n_boot, s.size))] for s in strata]
    draws = np.asarray(statistic(np.concatenate(parts, axis=1)), dtype=np.float64)
    lo, hi = _interval(draws, level)
    return est, lo, hi


# ------------------------------------------------------------------------------------------
# table helpers
# ------------------------------------------------------------------------------------------
def _require(df: pd.DataFrame, cols: Iterable[str], name: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")


def _by(by) -> list[str]:
    if isinstance(by, str):
        return [by]
    by = list(by)
    if not by:
        raise ValueError("by: expected at least one column (the series, e.g. 'method')")
    return by


def _groups(df: pd.DataFrame, by: list[str]):
    """(key tuple, sub-frame) in sorted key order; NaN keys kept."""
    for key, sub in df.groupby(by, sort=True, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), sub


def _json(s) -> dict:
    if isinstance(s, dict):
        return s
    if s is None or (isinstance(s, float) and math.isnan(s)) or s == "":
        return {}
    try:
        out = json.loads(s)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return "-"
        if float(v).is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    return str(v)


def _hashable(v):
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def param_values(runs: pd.DataFrame, name: str) -> pd.Series:
    """The value of setting ``name`` per run: the column ``grid.<name>`` if present, else the
    key in ``method_params`` or ``task_params`` (JSON), else a plain column ``name``.
    Returns an object Series (None where a run has no such setting)."""
    col = f"grid.{name}"
    out = pd.Series([None] * len(runs), index=runs.index, dtype=object)
    if col in runs.columns:
        out = runs[col].astype(object).where(runs[col].notna(), None)
    for params in ("method_params", "task_params"):
        if params in runs.columns:
            vals = runs[params].map(lambda s: _json(s).get(name))
            out = out.where(out.notna(), vals)
    if name in runs.columns:
        out = out.where(out.notna(), runs[name])
    return out


def annotate(runs: pd.DataFrame, *, exclude: Iterable[str] = ()) -> pd.DataFrame:
    """Copy of ``runs`` with helper columns for grouping and labels:

    * ``condition`` -- panel label: the task plus every task setting, network setting
      (n_hidden, hidden, output) and non-method grid key that varies between the task's runs,
      e.g. ``"adding (T=50, n_hidden=8)"``;
    * ``variant`` -- series label: the method plus every method setting that varies between
      the method's runs (e.g. ``"bptt_adam (lr=0.01)"``); equal to ``method`` when none does;
    * ``success`` -- bool, outcome in :data:`SUCCESS_OUTCOMES`.

    ``exclude``: setting names to leave out of both labels (the x-axis of a figure, say "T").
    The returned frame has a fresh RangeIndex.
    """
    _require(runs, ["task", "method"], "runs")
    out = runs.reset_index(drop=True)
    exclude = set(exclude)
    tparams = out["task_params"].map(_json) if "task_params" in out else pd.Series([{}] * len(out))
    mparams = (
        out["method_params"].map(_json) if "method_params" in out else pd.Series([{}] * len(out))
    )
    tparams.index = mparams.index = out.index
    method_keys = set().union(*mparams.tolist()) if len(out) else set()
    task_keys = set().union(*tparams.tolist()) if len(out) else set()
    net_cols = [
        c
        for c in ("cell", "n_hidden", "hidden", "recurrent", "window", "output")
        if c in out.columns
    ]

    def setting_name(grid_col: str) -> str:
        """'grid.task.params.T' -> 'T', 'grid.net.n_hidden' -> 'n_hidden', 'grid.methods.m.lr'
        -> 'lr': the setting a grid key varies, as it is stored elsewhere in the row."""
        parts = grid_col[5:].split(".")
        if parts[0] == "task" and len(parts) == 3 and parts[1] == "params":
            return parts[2]
        if parts[0] == "net" and len(parts) == 2:
            return parts[1]
        if parts[0] == "methods" and len(parts) == 3:
            return parts[2]
        return grid_col[5:]

    stored = method_keys | task_keys | {"method", "task", "seed", "replicate"} | set(net_cols)
    grid_cols = [c for c in out.columns if c.startswith("grid.") and setting_name(c) not in stored]

    def varying(sub_idx, getter, keys):
        found = []
        for k in sorted(keys):
            if k in exclude:
                continue
            vals = {_hashable(getter(i, k)) for i in sub_idx}
            if len(vals) > 1:
                found.append(k)
        return found

    cond = pd.Series("", index=out.index, dtype=object)
    for task, idx in out.groupby("task", sort=True).groups.items():
        idx = list(idx)
        tkeys = varying(idx, lambda i, k: tparams[i].get(k), task_keys)
        nkeys = varying(idx, lambda i, k: out.at[i, k], net_cols)
        gkeys = varying(idx, lambda i, k: out.at[i, k], grid_cols)
        for i in idx:
            parts = [f"{k}={_fmt(tparams[i].get(k))}" for k in tkeys]
            parts += [f"{k}={_fmt(out.at[i, k])}" for k in nkeys]
            parts += [f"{k[5:]}={_fmt(out.at[i, k])}" for k in gkeys if k[5:] not in exclude]
            cond[i] = f"{task} ({', '.join(parts)})" if parts else str(task)
    var = pd.Series("", index=out.index, dtype=object)
    for method, idx in out.groupby("method", sort=True).groups.items():
        idx = list(idx)
        mkeys = varying(idx, lambda i, k: mparams[i].get(k), method_keys)
        for i in idx:
            parts = [f"{k}={_fmt(mparams[i].get(k))}" for k in mkeys]
            var[i] = f"{method} ({', '.join(parts)})" if parts else str(method)
    out["condition"] = cond
    out["variant"] = var
    if "outcome" in out.columns:
        out["success"] = out["outcome"].isin(SUCCESS_OUTCOMES)
    return out


_CELL_NAMES = {"elman": "Elman", "a1": "A1", "lstm": "LSTM", "gru": "GRU"}


def _cell_name(runs: pd.DataFrame) -> str:
    """The network cell of ``runs`` as the report names it ("Elman" for results without the
    column, or with more than one cell)."""
    if "cell" in runs.columns and runs["cell"].nunique() == 1:
        c = str(runs["cell"].iloc[0])
        return _CELL_NAMES.get(c, c)
    return "Elman"


def describe_config(runs: pd.DataFrame) -> str:
    """A short description of what is constant in ``runs``: network, seeds per series.

    E.g. ``"Elman H=8 tanh/linear, 97 weights, 20 seeds per method"``.
    """
    parts = []
    if "n_hidden" in runs.columns and runs["n_hidden"].nunique() == 1:
        h = runs["n_hidden"].iloc[0]
        act = ""
        if "hidden" in runs.columns and runs["hidden"].nunique() == 1:
            act = f" {runs['hidden'].iloc[0]}"
            if "output" in runs.columns and runs["output"].nunique() == 1:
                act += f"/{runs['output'].iloc[0]}"
        s = f"{_cell_name(runs)} H={_fmt(h)}{act}"
        if "n_params" in runs.columns and runs["n_params"].nunique() == 1:
            s += f", {_fmt(runs['n_params'].iloc[0])} weights"
        parts.append(s)
    if len(runs) and "method" in runs.columns:
        keys = [c for c in ("task", "task_params", "method", "method_params") if c in runs]
        keys += [c for c in runs.columns if c.startswith("grid.")]
        sizes = runs.groupby(keys, dropna=False).size()
        lo, hi = int(sizes.min()), int(sizes.max())
        seeds = f"{lo} seed{'s' if lo != 1 else ''}" if lo == hi else f"{lo}-{hi} seeds"
        parts.append(f"{seeds} per setting")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------
# cost to target
# ------------------------------------------------------------------------------------------
def _curves(traces: pd.DataFrame, cost: str) -> dict:
    """run_id -> (cost array ascending, running-min best loss array)."""
    _require(traces, ["run_id", "evals", cost, "best_loss"], "traces")
    t = traces.sort_values(["run_id", "evals"], kind="mergesort")
    out = {}
    rid = t["run_id"].to_numpy()
    c = t[cost].to_numpy(dtype=np.float64)
    b = t["best_loss"].to_numpy(dtype=np.float64)
    b = np.where(np.isnan(b), np.inf, b)
    if len(rid) == 0:
        return out
    starts = np.flatnonzero(np.r_[True, rid[1:] != rid[:-1]])
    ends = np.r_[starts[1:], len(rid)]
    for s, e in zip(starts, ends, strict=True):
        cc = np.maximum.accumulate(c[s:e])  # cost never decreases (guards wall_s jitter)
        out[rid[s]] = (cc, np.minimum.accumulate(b[s:e]))
    return out


def hitting_costs(
    runs: pd.DataFrame, traces: pd.DataFrame, targets, *, cost: str = "fwd_equiv"
) -> tuple[np.ndarray, np.ndarray]:
    """Cost at which each run first reaches each loss target (best_loss <= target).

    Returns (H, spent): H (n_runs, n_targets) with +inf where the target was not reached, and
    spent (n_runs,) the run's total cost (from ``runs[cost]``, or its last trace point).
    Row order follows ``runs``.
    """
    _require(runs, ["run_id"], "runs")
    targets = np.atleast_1d(np.asarray(targets, dtype=np.float64))
    curves = _curves(traces, cost)
    n = len(runs)
    H = np.full((n, targets.size), np.inf)
    spent = np.full(n, np.nan)
    if cost in runs.columns:
        spent = runs[cost].to_numpy(dtype=np.float64).copy()
    for i, rid in enumerate(runs["run_id"].to_numpy()):
        if rid not in curves:
            continue
        cc, bb = curves[rid]
        idx = np.searchsorted(-bb, -targets, side="left")  # first i with bb[i] <= target
        ok = idx < len(bb)
        H[i, ok] = cc[idx[ok]]
        if not np.isfinite(spent[i]):
            spent[i] = cc[-1]
    spent = np.where(np.isfinite(spent), spent, 0.0)
    return H, spent


def cost_to_target(
    runs: pd.DataFrame,
    traces: pd.DataFrame | None = None,
    *,
    target: float | None = None,
    cost: str = "fwd_equiv",
) -> pd.DataFrame:
    """Per run, the cost of reaching a target, censored runs kept.

    target None: success by the task's criterion (outcome in :data:`SUCCESS_OUTCOMES`); the
    cost is ``solved_at_<cost>`` where the store has it (``evals``, ``fwd_equiv``), else the
    run's total cost (a run stops when it succeeds); for ``wall_s`` it is read from the trace
    point at ``solved_at_evals`` when traces are given.
    target a float: first trace point with best_loss <= target (needs ``traces``).

    Returns a copy of ``runs`` with columns ``cost`` (cost until the target, or until the run
    ended when it was not reached), ``reached`` (bool) and ``censored`` (= not reached).
    """
    if cost not in COSTS:
        raise ValueError(f"cost: expected one of {COSTS}, got {cost!r}")
    _require(runs, ["run_id", cost], "runs")
    out = runs.copy()
    total = out[cost].to_numpy(dtype=np.float64)
    total = np.where(np.isfinite(total), total, 0.0)
    if target is None:
        _require(runs, ["outcome"], "runs")
        reached = out["outcome"].isin(SUCCESS_OUTCOMES).to_numpy()
        c = total.copy()
        col = f"solved_at_{cost}"
        if col in out.columns:
            at = out[col].to_numpy(dtype=np.float64)
            use = reached & np.isfinite(at)
            c[use] = at[use]
        elif cost == "wall_s" and traces is not None and "solved_at_evals" in out.columns:
            t = traces[["run_id", "evals", "wall_s"]]
            look = dict(zip(zip(t["run_id"], t["evals"], strict=True), t["wall_s"], strict=True))
            for i, (rid, ev) in enumerate(zip(out["run_id"], out["solved_at_evals"], strict=True)):
                if reached[i] and pd.notna(ev) and (rid, ev) in look:
                    c[i] = look[(rid, ev)]
    else:
        if traces is None:
            raise ValueError("traces: needed to find when a run reached a loss target")
        if not math.isfinite(target):
            raise ValueError(f"target: expected a finite loss level, got {target!r}")
        H, spent = hitting_costs(out, traces, [target], cost=cost)
        reached = np.isfinite(H[:, 0])
        c = np.where(reached, H[:, 0], spent)
    out["cost"] = c
    out["reached"] = reached
    out["censored"] = ~reached
    return out


# ------------------------------------------------------------------------------------------
# ERT
# ------------------------------------------------------------------------------------------
def ert(cost, reached) -> float:
    """Expected running time (COCO): sum of costs over all runs / number that reached the
    target; +inf when none did, NaN for no runs."""
    cost = np.asarray(cost, dtype=np.float64)
    reached = np.asarray(reached, dtype=bool)
    if cost.size == 0:
        return math.nan
    k = int(reached.sum())
    return math.inf if k == 0 else float(cost.sum() / k)


def _ert_draws(cost, reached, n_boot, rng) -> np.ndarray:
    n = cost.size
    idx = rng.integers(0, n, size=(n_boot, n))
    s = cost[idx].sum(axis=1)
    k = reached[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(k > 0, s / np.maximum(k, 1), np.inf)


def ert_table(
    ctt: pd.DataFrame,
    *,
    by: Sequence[str] = DEFAULT_BY,
    n_boot: int = 2000,
    seed=0,
    level: float = 0.95,
) -> pd.DataFrame:
    """ERT per group of :func:`cost_to_target` output, with a percentile-bootstrap CI
    (runs resampled with replacement; a resample without a success has ERT = inf).

    Columns: ``by`` + n_runs, n_reached, success_rate, ert, ert_lo, ert_hi, total_cost,
    median_cost_reached.
    """
    by = _by(by)
    _require(ctt, [*by, "cost", "reached"], "ctt")
    n_boot = _check_boot(n_boot)
    rows = []
    for key, sub in _groups(ctt, by):
        c = sub["cost"].to_numpy(dtype=np.float64)
        r = sub["reached"].to_numpy(dtype=bool)
        draws = _ert_draws(c, r, n_boot, _rng_for(seed, key))
        lo, hi = _interval(draws, level)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n_runs": len(c),
                "n_reached": int(r.sum()),
                "success_rate": float(r.mean()) if len(r) else math.nan,
                "ert": ert(c, r),
                "ert_lo": lo,
                "ert_hi": hi,
                "total_cost": float(c.sum()),
                "median_cost_reached": float(np.median(c[r])) if r.any() else math.nan,
            }
        )
    return pd.DataFrame(rows)


def ert_ratio(
    cost_a, reached_a, cost_b, reached_b, *, n_boot: int = 2000, seed=0, level: float = 0.95
) -> dict:
    """ERT(a) / ERT(b) with a percentile-bootstrap CI (both samples resampled independently).

    A ratio above 1 means a is slower (costlier) than b: "b is <ratio> times faster".
    inf/inf is undefined (NaN, dropped from the draws); x/inf = 0; inf/x = inf.
    Returns dict(ratio, lo, hi, ert_a, ert_b).
    """
    n_boot = _check_boot(n_boot)
    ca, ra = np.asarray(cost_a, float), np.asarray(reached_a, bool)
    cb, rb = np.asarray(cost_b, float), np.asarray(reached_b, bool)
    if ca.size == 0 or cb.size == 0:
        raise ValueError("ert_ratio: both samples need at least one run")
    rng = _rng_for(seed, "ert_ratio")
    da = _ert_draws(ca, ra, n_boot, rng)
    db = _ert_draws(cb, rb, n_boot, rng)

    def ratio(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(np.isinf(a) & np.isinf(b), np.nan, a / b)

    ea, eb = ert(ca, ra), ert(cb, rb)
    lo, hi = _interval(ratio(da, db), level)
    return {"ratio": float(ratio(ea, eb)), "lo": lo, "hi": hi, "ert_a": ea, "ert_b": eb}


# ------------------------------------------------------------------------------------------
# Mann-Whitney U
# ------------------------------------------------------------------------------------------
def _rankdata(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties get the mean of their ranks; inf ties with inf."""
    a = np.asarray(a, dtype=np.float64)
    sorter = np.argsort(a, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size)
    s = a[sorter]
    obs = np.r_[True, s[1:] != s[:-1]]
    dense = np.cumsum(obs)[inv]
    count = np.r_[np.flatnonzero(obs), len(obs)]
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def _u_exact_cdf(m: int, n: int) -> np.ndarray:
    """Counts of the null distribution of U for sample sizes (m, n), no ties: c[u] = number of
    arrangements with U = u (recursion c(u; m, n) = c(u - n; m - 1, n) + c(u; m, n - 1))."""
    # table[j] holds the counts for (i, j) as i grows
    table = [np.ones(1) for _ in range(n + 1)]  # i = 0: U = 0 in one way
    for i in range(1, m + 1):
        new = [np.ones(1)]  # j = 0: one way
        for j in range(1, n + 1):
            c = np.zeros(i * j + 1)
            a = table[j]  # (i - 1, j), shifted by j
            c[j : j + a.size] += a
            b = new[j - 1]  # (i, j - 1)
            c[: b.size] += b
            new.append(c)
        table = new
    return table[n]


def mann_whitney_u(x, y, *, method: str = "auto") -> dict:
    """Two-sided Mann-Whitney U test (Mann & Whitney 1947) of x against y.

    ``u`` counts pairs with x_i > y_j (ties 1/2), so u / (n_x n_y) estimates P(X > Y).
    method "exact" (null distribution by recursion; only without ties) or "normal" (normal
    approximation with tie correction and continuity correction); "auto" is exact when there
    are no ties and both samples have at most 20 values. +inf values (censored costs) are
    allowed and tie with each other.
    Returns dict(u, p_value, p_x_less (= P(X < Y) + P(X = Y)/2), method, n_x, n_y).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("mann_whitney_u: NaN in the samples (use +inf for censored values)")
    m, n = x.size, y.size
    if m == 0 or n == 0:
        raise ValueError("mann_whitney_u: both samples need at least one value")
    if method not in ("auto", "exact", "normal"):
        raise ValueError(f"method: expected 'auto', 'exact' or 'normal', got {method!r}")
    allv = np.concatenate([x, y])
    ranks = _rankdata(allv)
    u = float(ranks[:m].sum() - m * (m + 1) / 2)
    _, counts = np.unique(allv, return_counts=True)
    ties = bool((counts > 1).any())
    if method == "auto":
        method = "exact" if (not ties and m <= 20 and n <= 20) else "normal"
    if method == "exact" and ties:
        raise ValueError("mann_whitney_u: method='exact' needs samples without ties")
    if method == "exact":
        c = _u_exact_cdf(m, n)
        total = c.sum()
        ui = int(round(u))
        p_le = c[: ui + 1].sum() / total
        p_ge = c[ui:].sum() / total
        p = min(1.0, 2 * min(p_le, p_ge))
    else:
        N = m + n
        mu = m * n / 2
        tie = float((counts**3 - counts).sum())
        var = m * n / 12 * ((N + 1) - tie / (N * (N - 1))) if N > 1 else 0.0
        if var <= 0:
            p = 1.0
        else:
            z = (abs(u - mu) - 0.5) / math.sqrt(var)
            p = 1.0 if z <= 0 else min(1.0, math.erfc(z / math.sqrt(2)))
    return {
        "u": u,
        "p_value": float(p),
        "p_x_less": 1.0 - u / (m * n),
        "method": method,
        "n_x": m,
        "n_y": n,
    }


def compare_methods(
    ctt: pd.DataFrame,
    *,
    by: Sequence[str] = DEFAULT_BY,
    reference: str | None = None,
    n_boot: int = 2000,
    seed=0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Every series against a reference, within each panel (``by[:-1]``).

    reference None: per panel, the ``bptt*`` series with the lowest finite ERT (else the
    series with the lowest ERT). Columns: panel keys, ``series`` (the other method),
    ``reference``, ert, ert_ref, ratio (= ERT(series) / ERT(reference): "the reference is
    <ratio> times faster"), ratio_lo, ratio_hi, u, p_value (Mann-Whitney on per-seed costs,
    censored = +inf), p_series_faster (P(cost_series < cost_ref), ties 1/2), n, n_ref.
    """
    by = _by(by)
    series_col, panel = by[-1], by[:-1]
    _require(ctt, [*by, "cost", "reached"], "ctt")
    rows = []
    parts = _groups(ctt, panel) if panel else [((), ctt)]
    for pkey, sub in parts:
        table = {}
        for (s,), g in _groups(sub, [series_col]):
            c = g["cost"].to_numpy(float)
            r = g["reached"].to_numpy(bool)
            table[s] = (c, r, ert(c, r))
        if not table:
            continue
        ref = reference
        if ref is None:
            cands = [s for s in table if str(s).startswith("bptt") and np.isfinite(table[s][2])]
            if not cands:
                cands = list(table)
            ref = min(cands, key=lambda s: (table[s][2], str(s)))
        if ref not in table:
            raise ValueError(f"reference: {ref!r} has no runs in panel {pkey}")
        cr, rr, er = table[ref]
        for s, (c, r, e) in table.items():
            if s == ref:
                continue
            rat = ert_ratio(
                c, r, cr, rr, n_boot=n_boot, seed=_rng_for(seed, (pkey, s)), level=level
            )
            mw = mann_whitney_u(np.where(r, c, np.inf), np.where(rr, cr, np.inf))
            rows.append(
                {
                    **dict(zip(panel, pkey, strict=True)),
                    "series": s,
                    "reference": ref,
                    "ert": e,
                    "ert_ref": er,
                    "ratio": rat["ratio"],
                    "ratio_lo": rat["lo"],
                    "ratio_hi": rat["hi"],
                    "u": mw["u"],
                    "p_value": mw["p_value"],
                    "p_series_faster": mw["p_x_less"],
                    "n": len(c),
                    "n_ref": len(cr),
                }
            )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------
# success rate
# ------------------------------------------------------------------------------------------
def success_rate(
    runs: pd.DataFrame,
    *,
    by: Sequence[str] = DEFAULT_BY,
    traces: pd.DataFrame | None = None,
    target: float | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Fraction of runs that succeeded, with a Wilson score interval.

    Success: outcome in :data:`SUCCESS_OUTCOMES` (target None) or best_loss reaching ``target``
    (read from ``traces`` when given, else from ``runs.best_loss``).
    Columns: ``by`` + n, successes, rate, lo, hi.
    """
    by = _by(by)
    _require(runs, by, "runs")
    if target is None:
        _require(runs, ["outcome"], "runs")
        ok = runs["outcome"].isin(SUCCESS_OUTCOMES)
    elif traces is not None:
        ok = pd.Series(
            cost_to_target(runs, traces, target=target)["reached"].to_numpy(), index=runs.index
        )
    else:
        ok = runs["best_loss"] <= target
    df = runs[by].copy()
    df["_ok"] = ok.to_numpy()
    rows = []
    for key, sub in _groups(df, by):
        n, k = len(sub), int(sub["_ok"].sum())
        lo, hi = wilson_interval(k, n, level)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": n,
                "successes": k,
                "rate": k / n,
                "lo": lo,
                "hi": hi,
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------
# final-loss distributions and basins
# ------------------------------------------------------------------------------------------
def _stats_matrix(m: np.ndarray) -> dict:
    return {
        "median": quantile(m, 0.5),
        "iqm": iqm(m),
        "q25": quantile(m, 0.25),
        "q75": quantile(m, 0.75),
    }


def final_loss_stats(
    runs: pd.DataFrame,
    *,
    by: Sequence[str] = DEFAULT_BY,
    column: str = "final_loss",
    strata: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed=0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Median, IQM and quartiles of ``column`` per group with bootstrap CIs.

    strata: columns within which runs are resampled separately (stratified bootstrap of
    Agarwal et al. 2021, e.g. ``["task"]`` when a group pools several tasks); None = plain
    bootstrap over the group's runs. Non-finite losses (diverged runs) count as +inf, so they
    rank worst and a statistic is +inf only when it reaches into them.
    Columns: ``by`` + n, n_nonfinite, and for s in (median, iqm, q25, q75): s, s_lo, s_hi.
    """
    by = _by(by)
    _require(runs, [*by, column], "runs")
    n_boot = _check_boot(n_boot)
    strata = list(strata or [])
    rows = []
    for key, sub in _groups(runs, by):
        v = sub[column].to_numpy(dtype=np.float64)
        v = np.where(np.isfinite(v), v, np.inf)
        if strata:
            parts = [g[column].to_numpy(float) for _, g in _groups(sub, strata)]
            parts = [np.where(np.isfinite(p), p, np.inf) for p in parts]
        else:
            parts = [v]
        rng = _rng_for(seed, key)
        draws = np.concatenate(
            [p[rng.integers(0, p.size, size=(n_boot, p.size))] for p in parts], axis=1
        )
        point = _stats_matrix(v)
        boot = _stats_matrix(draws)
        row = {
            **dict(zip(by, key, strict=True)),
            "n": v.size,
            "n_nonfinite": int(np.isinf(v).sum()),
        }
        for s in ("median", "iqm", "q25", "q75"):
            lo, hi = _interval(boot[s], level)
            row[s], row[f"{s}_lo"], row[f"{s}_hi"] = float(point[s]), lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def count_basins(values, *, gap: float = 0.5, floor: float = 1e-12) -> tuple[int, np.ndarray]:
    """Number of distinct loss levels among ``values`` and a label per value.

    Single-linkage clustering on log10(max(value, floor)): sort, and start a new level where
    consecutive values are more than ``gap`` decades apart. Labels count from 0 at the lowest
    level; non-finite values get label -1 and are not counted.
    """
    if not gap > 0:
        raise ValueError(f"gap: expected a positive number of decades, got {gap!r}")
    if not floor > 0:
        raise ValueError(f"floor: expected a positive loss, got {floor!r}")
    v = np.asarray(values, dtype=np.float64).ravel()
    labels = np.full(v.size, -1, dtype=np.int64)
    fin = np.isfinite(v)
    if not fin.any():
        return 0, labels
    lv = np.log10(np.maximum(v[fin], floor))
    order = np.argsort(lv, kind="mergesort")
    new = np.r_[False, np.diff(lv[order]) > gap]
    lab = np.empty(lv.size, dtype=np.int64)
    lab[order] = np.cumsum(new)
    labels[fin] = lab
    return int(lab.max()) + 1, labels


def basins(
    runs: pd.DataFrame,
    *,
    by: Sequence[str] = DEFAULT_BY,
    column: str = "final_loss",
    gap: float = 0.5,
    floor: float = 1e-12,
) -> pd.DataFrame:
    """Distinct final-loss levels per group (:func:`count_basins`).

    Columns: ``by`` + n, n_basins, n_nonfinite, levels (list of each level's median loss,
    lowest first), sizes (list of seeds per level), share_lowest (fraction of the group's
    seeds in the lowest level).
    """
    by = _by(by)
    _require(runs, [*by, column], "runs")
    rows = []
    for key, sub in _groups(runs, by):
        v = sub[column].to_numpy(dtype=np.float64)
        k, lab = count_basins(v, gap=gap, floor=floor)
        levels = [float(np.median(v[lab == j])) for j in range(k)]
        sizes = [int((lab == j).sum()) for j in range(k)]
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": v.size,
                "n_basins": k,
                "n_nonfinite": int((lab < 0).sum()),
                "levels": levels,
                "sizes": sizes,
                "share_lowest": sizes[0] / v.size if k else 0.0,
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------
# ECDF and convergence curves
# ------------------------------------------------------------------------------------------
def default_targets(
    runs: pd.DataFrame, traces: pd.DataFrame, *, n_targets: int = 31, span: float = 1e-8
) -> np.ndarray:
    """Log-spaced loss targets for one panel, from the median first recorded best loss of the
    runs (the typical start) down to the lowest best loss any run reached (but at most
    ``span`` times the start), ``n_targets`` of them, highest first."""
    if n_targets < 1:
        raise ValueError(f"n_targets: expected an int >= 1, got {n_targets!r}")
    t = traces[traces["run_id"].isin(runs["run_id"])]
    t = t.sort_values(["run_id", "evals"], kind="mergesort")
    first = t.groupby("run_id", sort=True)["best_loss"].first().to_numpy(float)
    first = first[np.isfinite(first) & (first > 0)]
    best = t["best_loss"].to_numpy(float)
    best = best[np.isfinite(best) & (best > 0)]
    if first.size == 0 or best.size == 0:
        return np.array([], dtype=np.float64)
    hi = float(np.median(first))
    lo = max(float(best.min()), hi * span)
    if lo >= hi:
        return np.array([hi])
    return np.logspace(math.log10(hi), math.log10(lo), n_targets)


def runtime_ecdf(
    runs: pd.DataFrame,
    traces: pd.DataFrame,
    *,
    cost: str = "fwd_equiv",
    by: Sequence[str] = DEFAULT_BY,
    targets=None,
    n_targets: int = 31,
) -> pd.DataFrame:
    """COCO-style runtime ECDF: for each series, the fraction of (run, target) pairs with
    hitting cost <= c, as a step function of c.

    Targets: an array shared by every panel, or None for :func:`default_targets` computed per
    panel (``by[:-1]``) over all of the panel's runs, so all series in a panel face the same
    targets. Returns a long frame with ``by`` + cost, fraction, n_pairs, target_hi, target_lo,
    n_targets, max_cost (the largest budget any run of the series spent); each series starts
    at (smallest cost, 0) and has one row per reached pair (in cost order).
    """
    by = _by(by)
    _require(runs, [*by, "run_id"], "runs")
    if cost not in COSTS:
        raise ValueError(f"cost: expected one of {COSTS}, got {cost!r}")
    panel = by[:-1]
    out = []
    parts = _groups(runs, panel) if panel else [((), runs)]
    for pkey, psub in parts:
        tg = (
            default_targets(psub, traces, n_targets=n_targets)
            if targets is None
            else np.atleast_1d(np.asarray(targets, float))
        )
        if tg.size == 0:
            continue
        H, spent = hitting_costs(psub, traces, tg, cost=cost)
        ser = psub[by[-1]].to_numpy()
        c0 = H[np.isfinite(H) & (H > 0)]
        cmin = float(c0.min()) if c0.size else 1.0
        for s in sorted(set(ser), key=str):
            rows = ser == s
            h = H[rows].ravel()
            n_pairs = h.size
            hs = np.sort(h[np.isfinite(h)])
            frac = np.arange(1, hs.size + 1) / n_pairs
            cst = np.r_[cmin, hs]
            fr = np.r_[0.0, frac]
            df = pd.DataFrame({"cost": cst, "fraction": fr})
            for col, val in zip(panel, pkey, strict=True):
                df[col] = val
            df[by[-1]] = s
            df["n_pairs"] = n_pairs
            df["target_hi"] = float(tg.max())
            df["target_lo"] = float(tg.min())
            df["n_targets"] = tg.size
            df["max_cost"] = float(spent[rows].max()) if rows.any() else math.nan
            out.append(df)
    cols = [*by, "cost", "fraction", "n_pairs", "target_hi", "target_lo", "n_targets", "max_cost"]
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


def convergence_curves(
    runs: pd.DataFrame,
    traces: pd.DataFrame,
    *,
    cost: str = "fwd_equiv",
    by: Sequence[str] = DEFAULT_BY,
    n_grid: int = 64,
) -> pd.DataFrame:
    """Median and interquartile range across runs of the best loss so far, on a log-spaced
    cost grid shared by the panel (``by[:-1]``).

    A run's best loss at cost c is that of its last trace point with cost <= c; before its
    first point it is missing; after its last point (it stopped: solved, diverged or out of
    budget) its last value is carried forward. Non-finite best losses count as missing.
    Columns: ``by`` + cost, median, q25, q75, n_runs (runs with a value), n_active (runs that
    had not yet stopped).
    """
    by = _by(by)
    _require(runs, [*by, "run_id"], "runs")
    curves = _curves(traces, cost)
    panel = by[:-1]
    out = []
    parts = _groups(runs, panel) if panel else [((), runs)]
    for pkey, psub in parts:
        ids = [r for r in psub["run_id"] if r in curves]
        if not ids:
            continue
        firsts = [curves[r][0][curves[r][0] > 0] for r in ids]
        firsts = [f[0] for f in firsts if f.size]
        lasts = [curves[r][0][-1] for r in ids]
        if not firsts:
            continue
        lo, hi = min(firsts), max(lasts)
        grid = np.array([lo]) if hi <= lo else np.logspace(np.log10(lo), np.log10(hi), n_grid)
        ser = psub[by[-1]].to_numpy()
        rid = psub["run_id"].to_numpy()
        for s in sorted(set(ser), key=str):
            vals, active = [], []
            for r in rid[ser == s]:
                if r not in curves:
                    continue
                cc, bb = curves[r]
                j = np.searchsorted(cc, grid, side="right") - 1
                v = np.where(j >= 0, bb[np.maximum(j, 0)], np.nan)
                vals.append(np.where(np.isfinite(v), v, np.nan))
                active.append(grid <= cc[-1])
            if not vals:
                continue
            V = np.vstack(vals)
            has = np.isfinite(V)
            with warnings.catch_warnings():  # all-NaN columns (before any run started)
                warnings.simplefilter("ignore", RuntimeWarning)
                q = np.nanquantile(V, [0.25, 0.5, 0.75], axis=0)
            df = pd.DataFrame(
                {
                    "cost": grid,
                    "median": q[1],
                    "q25": q[0],
                    "q75": q[2],
                    "n_runs": has.sum(axis=0),
                    "n_active": np.vstack(active).sum(axis=0),
                }
            )
            for col, val in zip(panel, pkey, strict=True):
                df[col] = val
            df[by[-1]] = s
            out.append(df)
    cols = [*by, "cost", "median", "q25", "q75", "n_runs", "n_active"]
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


# success-rate differences (claim b)
def diff_interval(k1: int, n1: int, k2: int, n2: int, level: float = 0.95):
    """Newcombe's hybrid score interval (1998, method 10) for p1 - p2 from two Wilson
    intervals. Returns (d, lo, hi); NaNs when a sample is empty."""
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan, math.nan
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(lo, -1.0), min(hi, 1.0)


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact test of k1/n1 against k2/n2 (``scipy.stats.fisher_exact``);
    NaN when a sample is empty."""
    if n1 == 0 or n2 == 0:
        return math.nan
    from scipy import stats

    return float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)


# ------------------------------------------------------------------------------------------
# restart-aware ERT (COCO's simulated restarts), bootstrap tests, Holm, interactions
# ------------------------------------------------------------------------------------------
def ert_at_cap(cost, reached, cap) -> float:
    """Expected cost to the first success when a run is restarted (independently) every time
    it has spent ``cap`` without success, or stops earlier without success (Auger & Hansen
    2005; COCO's simulated restarts):

        ERT(b) = E[min(cost, b)] / P(success with cost <= b)

    estimated from runs (``cost``: cost at success, or spent cost of a failed run, which is
    censored there). A failed run that stopped before b contributes its spent cost. With b at
    or above every run's cost it equals :func:`ert`. +inf when no run succeeds within b."""
    c = np.asarray(cost, dtype=np.float64)
    r = np.asarray(reached, dtype=bool)
    if c.size == 0:
        return math.nan
    k = int((r & (c <= cap)).sum())
    return math.inf if k == 0 else float(np.minimum(c, cap).sum() / k)


def _best_cap_rows(C: np.ndarray, Rm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise minimum over caps of ERT(cap) for samples C (m, n) with success flags Rm.

    ERT(b) only decreases at a success cost and grows in between, so it is enough to try every
    distinct cost (the success costs and the largest cost, the fixed budget, among them);
    ties are handled by evaluating each cap at the last of its equal values. Returns
    (best ERT, its cap) per row (inf, nan when a row has no success)."""
    m, n = C.shape
    order = np.argsort(C, axis=1, kind="mergesort")
    s = np.take_along_axis(C, order, axis=1)
    ok = np.take_along_axis(Rm, order, axis=1)
    pre = np.cumsum(s, axis=1)
    ks = np.cumsum(ok, axis=1)
    tail = (n - 1 - np.arange(n))[None, :]
    num = pre + tail * s
    last = np.ones_like(s, dtype=bool)
    last[:, :-1] = s[:, 1:] != s[:, :-1]
    valid = last & (ks > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(valid, num / np.maximum(ks, 1), np.inf)
    j = np.argmin(e, axis=1)
    best = e[np.arange(m), j]
    cap = np.where(np.isfinite(best), s[np.arange(m), j], np.nan)
    return best, cap


def best_cap_ert(cost, reached) -> tuple[float, float]:
    """(min over caps b <= budget of :func:`ert_at_cap`, the cap attaining it). The candidate
    caps are every success cost and the largest cost spent (the fixed budget: then the value
    is the ordinary ERT). (inf, nan) when nothing succeeded, (nan, nan) for no runs."""
    c = np.asarray(cost, dtype=np.float64)
    r = np.asarray(reached, dtype=bool)
    if c.size == 0:
        return math.nan, math.nan
    b, cap = _best_cap_rows(c[None, :], r[None, :])
    return float(b[0]), float(cap[0])


def ert_curve(cost, reached, caps) -> np.ndarray:
    """:func:`ert_at_cap` on a grid of caps (e.g. log-spaced up to the budget)."""
    return np.array([ert_at_cap(cost, reached, b) for b in np.atleast_1d(caps)], dtype=float)


def _boot_p(draws: np.ndarray, null: float = 0.0) -> float:
    """Two-sided percentile-bootstrap p-value for 'the statistic equals ``null``': twice the
    smaller share of draws on either side (with the +1 correction, so never 0). It agrees with
    the percentile CI: the CI at level 1 - a excludes ``null`` about when p < a. NaN draws
    are dropped."""
    d = np.asarray(draws, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return math.nan
    le = (np.count_nonzero(d <= null) + 1) / (d.size + 1)
    ge = (np.count_nonzero(d >= null) + 1) / (d.size + 1)
    return float(min(1.0, 2 * min(le, ge)))


def _family_best_draws(samples, n_boot, rng, restart: bool):
    """Per bootstrap resample, the lowest ERT over the family's variants (each resampled on
    its own): the selection of the best variant is repeated in every resample."""
    out = np.full(n_boot, np.inf)
    for c, r in samples:
        c = np.asarray(c, float)
        r = np.asarray(r, bool)
        idx = rng.integers(0, c.size, size=(n_boot, c.size))
        if restart:
            d, _ = _best_cap_rows(c[idx], r[idx])
        else:
            k = r[idx].sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.where(k > 0, c[idx].sum(axis=1) / np.maximum(k, 1), np.inf)
        out = np.minimum(out, d)
    return out


def family_ert_ratio(
    evo, grad, *, restart: bool = True, n_boot: int = 2000, seed=0, level: float = 0.95
) -> dict:
    """ERT(best of ``evo``) / ERT(best of ``grad``) with the best variant of each family
    re-selected inside every bootstrap resample, a percentile CI and a bootstrap p-value
    (:func:`_boot_p` on log ratio = 0), so the interval and the test speak of the same ratio.

    evo, grad: lists of (cost, reached) arrays, one pair per variant (a single pair = a
    declared pairing, no selection). restart True: each variant's ERT is its best-cap ERT
    (:func:`best_cap_ert`, the cap chosen again in each resample); False: the fixed-budget ERT.
    Returns dict(ratio, lo, hi, p, ert_evo, ert_grad, draws)."""
    n_boot = _check_boot(n_boot)
    if not evo or not grad or any(np.size(c) == 0 for c, _ in [*evo, *grad]):
        raise ValueError("family_ert_ratio: every variant needs at least one run")
    rng = _rng_for(seed, "family_ert_ratio")

    def point(samples):
        if restart:
            return min(best_cap_ert(c, r)[0] for c, r in samples)
        return min(ert(c, r) for c, r in samples)

    de = _family_best_draws(evo, n_boot, rng, restart)
    dg = _family_best_draws(grad, n_boot, rng, restart)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(np.isinf(de) & np.isinf(dg), np.nan, de / dg)
        logr = np.log(ratios)
    ee, eg = point(evo), point(grad)
    with np.errstate(invalid="ignore", divide="ignore"):
        rat = math.nan if (math.isinf(ee) and math.isinf(eg)) else ee / eg
    lo, hi = _interval(ratios, level)
    return {
        "ratio": float(rat),
        "lo": lo,
        "hi": hi,
        "p": _boot_p(logr),
        "ert_evo": ee,
        "ert_grad": eg,
        "draws": ratios,
    }


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979): sort the m p-values ascending, multiply
    the i-th smallest (i = 0..m-1) by m - i, take the running maximum, cap at 1. Rejecting
    where the adjusted p < alpha controls the family-wise error rate at alpha. NaN p-values
    (tests not made) stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.size, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    order = np.argsort(q, kind="mergesort")
    adj = np.minimum(1.0, np.maximum.accumulate(q[order] * (m - np.arange(m))))
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out


def interaction(
    k, n, *, n_boot: int = 2000, seed=0, level: float = 0.95, key="interaction"
) -> dict:
    """The method x architecture interaction of success rates,

        delta = (p_gr - p_gf) - (p_er - p_ef)

    (g: gradient method, e: evolutionary method; r: recurrent, f: feed-forward net), from
    four independent binomial arms: k, n = (k_gr, k_gf, k_er, k_ef), (n_gr, ...). Percentile
    bootstrap CI (each arm resampled on its own: binomial draws) and a two-sided bootstrap
    p-value centred under the null. Returns dict(delta, lo, hi, p, d_grad, d_evo).

    The p-value: the sampling distribution of delta is estimated by binomial draws at the
    rates (k + 1) / (n + 2) (so an arm at 0 or n still varies), centred at their own delta;
    p = share of draws at least |delta| away from the centre, with the +1 correction."""
    n_boot = _check_boot(n_boot)
    k = np.asarray(k, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    if k.shape != (4,) or n.shape != (4,) or np.any(n <= 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError("interaction: expected four arms with 0 <= k <= n and n > 0")
    p = k / n
    delta = (p[0] - p[1]) - (p[2] - p[3])
    rng = _rng_for(seed, key)

    def dd(rates):
        d = rng.binomial(n[None, :], rates[None, :], size=(n_boot, 4)) / n[None, :]
        return np.round((d[:, 0] - d[:, 1]) - (d[:, 2] - d[:, 3]), 12)

    lo, hi = _interval(dd(p), level)
    pt = (k + 1) / (n + 2)  # Agresti-Caffo-like rates: no arm without spread under the null
    d0 = dd(pt)
    dev = np.abs(d0 - ((pt[0] - pt[1]) - (pt[2] - pt[3])))
    pv = float(min(1.0, (np.count_nonzero(dev >= abs(delta) - 1e-12) + 1) / (n_boot + 1)))
    return {
        "delta": float(delta),
        "lo": lo,
        "hi": hi,
        "p": pv,
        "d_grad": float(p[0] - p[1]),
        "d_evo": float(p[2] - p[3]),
    }
