"""Claims: the analyses behind the report's verdicts, apart from their rendering.

The report (:mod:`toolkit.report`) states rules and renders numbers; this module computes them
from stored results (:class:`toolkit.store.Results`), with the statistics of
:mod:`toolkit.analysis`:

* :func:`core_tables` -- per experiment and (condition, variant): cost to success, ERT,
  comparisons with the best BPTT variant, success rates and final-loss statistics;
* :func:`speed_panels` and :func:`claim_a` -- claim (a): per condition, the declared primary
  pairing (BPTT (Adam) against CMA-ES): fixed-budget and best-cap (restart-aware) ERTs, the
  best-cap ERT ratio with its bootstrap CI and p, Holm-adjusted over the conditions, the
  outcome class; the best-of-family ratio (descriptive); the verdict label;
  :func:`cost_ratio_table` -- the same at other gradient/forward cost ratios, break-even;
* :func:`optima_tables`, :func:`optima_panels` and :func:`claim_b` -- claim (b): success
  rates and stalled failures per network architecture; (b1) BPTT against CMA-ES on
  the recurrent net (reported); (b2) the method x architecture interaction (the verdict),
  Holm-adjusted; the verdict label;
* :func:`verdict_a` / :func:`verdict_b` -- what a claim's section reports: the panels, the
  label, the seeds behind it and the same comparison in the other experiments;
* the report's other tables, each a DataFrame or dict the report only formats: per
  experiment :func:`results_table`, :func:`stuck_table`, :func:`lag_success`,
  :func:`scaling`, :func:`guess_ert`, :func:`anatomy_counts` and the special tables
  (:func:`fidelity_summary`, :func:`cliff_paths`, :func:`bistable_band`,
  :func:`interpolation_barriers`, :func:`parallel_speedup`); published rows matched to our
  runs (:func:`published_matches`); the setup's :func:`setting_usage`,
  :func:`applied_ratios`, :func:`seed_range`, :func:`run_counts`, :func:`sweep_times`.

The rules (thresholds below) are printed by the report in *How the verdicts are decided*.
Results are memoised in ``Results.cache``. Everything is deterministic: bootstraps are seeded
(:data:`SEED`, :data:`N_BOOT`). This module never imports plots or report.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from statistics import NormalDist

import numpy as np
import pandas as pd

from toolkit import analysis as A
from toolkit import anatomy as AN
from toolkit.store import Results

LEVEL = 0.95  # every interval in the report
N_BOOT = 2000  # bootstrap resamples
SEED = 0  # bootstrap seed
MIN_SEEDS = 10  # fewer seeds per condition: every verdict is "inconclusive at this scale"
PAPER_SEEDS = 30  # the paper scale's seeds per condition
EQUIV_RATIO = 2.0  # ERT ratios within [1/2, 2] count as "equally fast"
EQUIV_DIFF = 0.2  # success-rate differences within +-0.2 count as "equally often stuck"
ALPHA = 0.05  # significance level of the tests that accompany the CIs
STALL_TOL = 0.01  # a failed run "stalled": < 1 % best-loss improvement over its second half
GEN_FACTOR = 10  # CMA-ES with fewer than 10 n generations (n weights) is "budget-limited"
BUDGET_LIMITED = "CMA-ES budget-limited"


def natkey(s) -> list:
    """Sort key that orders embedded integers numerically ('T=5' before 'T=10')."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


def mdd(n: int) -> float:
    """Success-rate difference detectable with 80 % power at the two-sided 5 % level (p ~ 0.5)."""
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    return z * math.sqrt(0.5 / n) if n > 0 else math.inf


# ------------------------------------------------------------------------------------------
# per-experiment analysis (cached on the Results)
# ------------------------------------------------------------------------------------------
def family_of(runs: pd.DataFrame) -> pd.Series:
    fam = pd.Series(
        np.where(runs["method"].astype(str).str.startswith("bptt"), "gradient", "evolution"),
        index=runs.index,
        dtype=object,
    )
    if "family" in runs.columns:
        f = runs["family"].astype(object)
        fam = f.where(f.notna() & (f.astype(str) != ""), fam)
    return fam.astype(str)


def _clean(runs: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``runs`` without the grid columns that repeat a task, method or network setting
    stored elsewhere (task_params, method_params, n_hidden, hidden), so labels name each
    setting once; ``grid.net.<key>`` becomes ``grid.<key>`` (e.g. ``recurrent=False``)."""
    drop, ren = [], {}
    for c in runs.columns:
        if not str(c).startswith("grid."):
            continue
        k = str(c)[5:]
        if k.startswith(("task.params.", "methods.")) or k in ("net.n_hidden", "net.hidden"):
            drop.append(c)
        elif k.startswith("net.") and f"grid.{k[4:]}" not in runs.columns:
            ren[c] = f"grid.{k[4:]}"
    return runs.drop(columns=drop).rename(columns=ren)


def usable(exp: Results) -> pd.DataFrame | None:
    """Runs without software errors, with 'family' filled in; None when there are none."""
    r = exp.runs
    if r is None or not len(r):
        return None
    r = r[r["outcome"].astype(str) != "error"].reset_index(drop=True)
    if not len(r):
        return None
    r = _clean(r)
    r["family"] = family_of(r)
    for c in ("fwd_equiv", "evals", "wall_s", "final_loss", "best_loss"):
        if c not in r.columns:
            r[c] = np.nan
    return r


def core_tables(exp: Results) -> dict | None:
    """annotate + cost to success + ERT + comparisons + success + final loss, by
    (condition, variant)."""
    if "core" in exp.cache:
        return exp.cache["core"]
    runs = usable(exp)
    out = None
    if runs is not None:
        ann = A.annotate(runs)
        by = ("condition", "variant")
        ctt = A.cost_to_target(ann, exp.traces, cost="fwd_equiv")
        out = {
            "ann": ann,
            "ctt": ctt,
            "ert": A.ert_table(ctt, by=by, n_boot=N_BOOT, seed=SEED, level=LEVEL),
            "cmp": A.compare_methods(ctt, by=by, n_boot=N_BOOT, seed=SEED, level=LEVEL),
            "sr": A.success_rate(ann, by=by, level=LEVEL),
            "fl": A.final_loss_stats(ann, by=by, n_boot=N_BOOT, seed=SEED, level=LEVEL),
        }
    exp.cache["core"] = out
    return out


def cmaes_generations(ann: pd.DataFrame) -> pd.Series:
    """Per run: the generations a CMA-ES run made (loss evaluations / population size, the
    run's ``lambda_`` or the default 4 + floor(3 ln n)); NaN for other methods. With IPOP
    restarts the population grows, so this is an upper bound."""
    out = pd.Series(np.nan, index=ann.index)
    for i in ann.index[ann["method"] == "cmaes"]:
        n = int(ann.at[i, "n_params"])
        lam = A._json(ann.at[i, "method_params"]).get("lambda_")
        lam = int(lam) if lam else 4 + int(3 * math.log(n))
        out[i] = float(ann.at[i, "evals"]) / lam
    return out


def budget_limited(ann: pd.DataFrame, by) -> dict[tuple, tuple[float, int]]:
    """{key of ``by``: (median generations, n)} for the CMA-ES groups whose failed runs made a
    median of fewer than GEN_FACTOR n generations: the budget, not the surface, decided them
    (Hansen's CMA-ES needs on the order of 10 n generations to adapt its covariance)."""
    fail = ann[(ann["method"] == "cmaes") & ~ann["outcome"].isin(A.SUCCESS_OUTCOMES)]
    if not len(fail):
        return {}
    gens = cmaes_generations(fail)
    out = {}
    for key, g in fail.assign(_gens=gens).groupby(list(by), sort=True):
        med, n = float(g["_gens"].median()), int(g["n_params"].max())
        if med < GEN_FACTOR * n:
            out[key if isinstance(key, tuple) else (key,)] = (med, n)
    return out


# ------------------------------------------------------------------------------------------
# claim (a): speed panels
# ------------------------------------------------------------------------------------------
PRIMARY_GRAD = ("bptt_adam", "bptt_momentum", "bptt_online")  # declared before the runs
PRIMARY_EVO = (
    "cmaes", "cmaes_pycma", "openai_es", "snes", "xnes", "pgpe", "es_comma", "es_plus", "ga",
    "random",
)  # fmt: skip
COST_RATIOS = (1.5, 2.0, 2.5, 3.0)  # gradient/forward cost ratios of the sensitivity table


def method_of(variant) -> str:
    return str(variant).split(" (", 1)[0]


def primary(variants, prefer) -> str | None:
    """The declared primary variant among ``variants``: the first method of ``prefer`` that
    has a variant (the first such variant in natural order), else the first variant in
    natural order. Chosen by name only, never by the data."""
    vs = sorted({str(v) for v in variants}, key=natkey)
    for m in prefer:
        hit = [v for v in vs if method_of(v) == m]
        if hit:
            return hit[0]
    return vs[0] if vs else None


def _sample(ctt: pd.DataFrame, cond, v, col="cost"):
    s = ctt[(ctt["condition"] == cond) & (ctt["variant"] == v)]
    return s[col].to_numpy(float), s["reached"].to_numpy(bool)


def calibrated_ratio(runs: pd.DataFrame) -> float:
    """The gradient/forward cost ratio the stored fwd_equiv used: median over gradient runs of
    (fwd_equiv - fwd_steps) / grad_steps (fwd_equiv = fwd_steps + ratio * grad_steps)."""
    if not {"fwd_steps", "grad_steps", "fwd_equiv"} <= set(runs.columns):
        return math.nan
    g = runs[pd.to_numeric(runs["grad_steps"], errors="coerce").fillna(0) > 0]
    if g.empty:
        return math.nan
    r = (g["fwd_equiv"].astype(float) - g["fwd_steps"].astype(float)) / g["grad_steps"].astype(
        float
    )
    return float(np.median(r))


def cost_at_ratio(ctt: pd.DataFrame, ratio: float) -> np.ndarray:
    """Per run of :func:`toolkit.analysis.cost_to_target` output, its cost had one gradient
    step cost ``ratio`` forward steps: the run's own totals give the mix (fwd_equiv' =
    fwd_steps + ratio * grad_steps) and the cost to success is scaled by fwd_equiv' /
    fwd_equiv. A run stops when it succeeds, so its totals are its cost at success and the
    scaling is exact; runs without the step counts keep their cost."""
    c = ctt["cost"].to_numpy(float)
    if not {"fwd_steps", "grad_steps", "fwd_equiv"} <= set(ctt.columns):
        return c
    fs = pd.to_numeric(ctt["fwd_steps"], errors="coerce").to_numpy(float)
    gs = pd.to_numeric(ctt["grad_steps"], errors="coerce").to_numpy(float)
    fe = ctt["fwd_equiv"].to_numpy(float)
    ok = np.isfinite(fs) & np.isfinite(gs) & (fe > 0)
    scale = np.where(ok, (np.nan_to_num(fs) + ratio * np.nan_to_num(gs)) / np.where(ok, fe, 1), 1)
    return c * scale


def _classify_a(ratio, lo, hi, p_holm, solved: bool) -> str:
    if not solved:
        return "nothing solved"
    if not math.isnan(p_holm) and p_holm < ALPHA:
        if ratio > 1:
            return "BPTT faster"
        if ratio < 1:
            return "evolution faster"
    if not (math.isnan(lo) or math.isnan(hi)) and lo >= 1 / EQUIV_RATIO and hi <= EQUIV_RATIO:
        return "equally fast"
    return "undecided"


def informative(k, n) -> bool:
    """The pilot rule: a condition informs a verdict unless every method in it solved no seed
    or every method solved every seed (``k`` successes of ``n`` runs, one entry per method)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    return not (np.all(k == 0) or np.all(k == n))


def _holm_outcomes(rows: list[dict], pkey="p", prefix="") -> None:
    """Holm over the informative rows (the pilot rule); the others are *uninformative*."""
    live = [r for r in rows if r.get("informative", True)]
    for r in rows:
        r[f"{prefix}p_holm"], r[f"{prefix}outcome"] = math.nan, "uninformative"
    adj = A.holm([r[pkey] for r in live]) if live else []
    for r, q in zip(live, adj, strict=True):
        r[f"{prefix}p_holm"] = float(q)
        r[f"{prefix}outcome"] = _classify_a(
            r[f"{prefix}ratio"], r[f"{prefix}lo"], r[f"{prefix}hi"], q, r["_solved"]
        )


def _ratio(evo: list, grad: list) -> dict:
    """Best-cap ERT ratio of the best of ``evo`` over the best of ``grad`` ((cost, reached)
    samples), with bootstrap CI and p (:func:`toolkit.analysis.family_ert_ratio`)."""
    return A.family_ert_ratio(evo, grad, n_boot=N_BOOT, seed=SEED, level=LEVEL)


def _pair(ctt: pd.DataFrame, cond, vb: str, ve: str) -> dict:
    """The declared pair's best-cap ERT ratio ERT(ve) / ERT(vb) in one condition: ratio, lo,
    hi, p (NaN when neither solved any seed) and whether either did (_solved)."""
    (cb, rb), (ce, re_) = _sample(ctt, cond, vb), _sample(ctt, cond, ve)
    rat, solved = _ratio([(ce, re_)], [(cb, rb)]), bool(rb.any() or re_.any())
    p = rat["p"] if solved else math.nan
    return {"ratio": rat["ratio"], "lo": rat["lo"], "hi": rat["hi"], "p": p, "_solved": solved}


def _speed_row(ctt, ctt_w, cond, g: pd.DataFrame, e: pd.DataFrame) -> dict:
    """One condition of :func:`speed_panels` from its ERT rows of gradient (g) and
    evolutionary (e) variants."""
    vb, ve = primary(g["variant"], PRIMARY_GRAD), primary(e["variant"], PRIMARY_EVO)
    B = next(t for t in g.itertuples() if t.variant == vb)
    E = next(t for t in e.itertuples() if t.variant == ve)
    pair = _pair(ctt, cond, vb, ve)
    fam = _ratio(
        [_sample(ctt, cond, v) for v in e["variant"]], [_sample(ctt, cond, v) for v in g["variant"]]
    )
    wall = dict.fromkeys(("ratio", "lo", "hi", "p"), math.nan)
    if ctt_w is not None:
        wall = _pair(ctt_w, cond, vb, ve)
    (bc_b, cap_b), (bc_e, cap_e) = (A.best_cap_ert(*_sample(ctt, cond, v)) for v in (vb, ve))
    finite = math.isfinite(B.ert) or math.isfinite(E.ert)
    return {
        **pair,
        "condition": cond,
        "bptt": vb,
        "evo": ve,
        "ert_b": B.ert,
        "ert_b_lo": B.ert_lo,
        "ert_b_hi": B.ert_hi,
        "ert_e": E.ert,
        "ert_e_lo": E.ert_lo,
        "ert_e_hi": E.ert_hi,
        "fixed_ratio": E.ert / B.ert if finite else math.nan,
        **{"bc_b": bc_b, "cap_b": cap_b, "bc_e": bc_e, "cap_e": cap_e},
        **{"fam_ratio": fam["ratio"], "fam_lo": fam["lo"], "fam_hi": fam["hi"]},
        **{"wall_ratio": wall["ratio"], "wall_lo": wall["lo"], "wall_hi": wall["hi"]},
        "wall_p": wall["p"] if pair["_solved"] else math.nan,
        "n_min": int(min(B.n_runs, E.n_runs)),
    }


def speed_panels(exp: Results) -> pd.DataFrame:
    """Per condition, the declared primary pairing (:data:`PRIMARY_GRAD` against
    :data:`PRIMARY_EVO`: BPTT (Adam) against CMA-ES where both ran): fixed-budget ERTs, best-cap
    (restart-aware) ERTs and caps, the best-cap ERT ratio r = ERT(E) / ERT(B) with a bootstrap
    CI (caps re-chosen in every resample), its bootstrap p, the Holm-adjusted p over the
    conditions, the outcome of the claim (a) rules; the best-of-family ratio (best variant of
    each family re-selected in every resample; descriptive) and the ratio in wall seconds."""
    core = core_tables(exp)
    cols = [
        "condition", "bptt", "evo", "ert_b", "ert_b_lo", "ert_b_hi", "ert_e", "ert_e_lo",
        "ert_e_hi", "fixed_ratio", "bc_b", "cap_b", "bc_e", "cap_e", "ratio", "lo", "hi", "p",
        "p_holm", "fam_ratio", "fam_lo", "fam_hi", "wall_ratio", "wall_lo", "wall_hi",
        "wall_p_holm", "wall_outcome", "n_min", "informative", "outcome",
    ]  # fmt: skip
    if core is None:
        return pd.DataFrame(columns=cols)
    ann, ctt, ert_t = core["ann"], core["ctt"], core["ert"]
    fam = ann.groupby("variant", sort=True)["family"].first().to_dict()
    ctt_w = None
    if "wall_s" in ann.columns and ann["wall_s"].notna().any():
        try:
            ctt_w = A.cost_to_target(ann, exp.traces, cost="wall_s")
        except Exception:
            ctt_w = None
    rows = []
    for cond, sub in ert_t.groupby("condition", sort=True):
        grad = sub["variant"].map(fam) == "gradient"
        if grad.any() and not grad.all():
            rows.append(_speed_row(ctt, ctt_w, cond, sub[grad], sub[~grad]))
            rows[-1]["informative"] = informative(sub["n_reached"], sub["n_runs"])
    _holm_outcomes(rows)
    _holm_outcomes(rows, pkey="wall_p", prefix="wall_")
    for r in rows:
        if ctt_w is None:
            r["wall_outcome"] = "not measured"
    rows.sort(key=lambda r: natkey(r["condition"]))
    return pd.DataFrame(rows, columns=cols)


def _break_even(ctt: pd.DataFrame, cond, vb: str, ve: str) -> float:
    """The gradient/forward cost ratio at which the point best-cap ERT ratio of the pair is 1
    (bisection on log ratio in [0.01, 1000]; NaN when outside, or when either never solved)."""
    (_, rb), (ce, re_) = _sample(ctt, cond, vb), _sample(ctt, cond, ve)
    sub = ctt[(ctt["condition"] == cond) & (ctt["variant"] == vb)]
    ee = A.best_cap_ert(ce, re_)[0]
    if not (rb.any() and re_.any() and math.isfinite(ee)):
        return math.nan

    def f(r):
        return math.log(ee) - math.log(A.best_cap_ert(cost_at_ratio(sub, r), rb)[0])

    a, b = math.log(0.01), math.log(1000.0)
    fa, fb = f(math.exp(a)), f(math.exp(b))
    if fa * fb >= 0:
        return math.nan
    for _ in range(60):
        m = (a + b) / 2
        if f(math.exp(m)) * fa > 0:
            a = m
        else:
            b = m
    return math.exp((a + b) / 2)


def cost_ratio_table(exp: Results) -> tuple[pd.DataFrame, float]:
    """Claim (a)'s outcome per condition had one gradient step cost 1.5, 2, 2.5, 3 forward
    steps, and at the calibrated ratio, for the primary pairing (best-cap ERT ratio, bootstrap
    p Holm-adjusted over the conditions at each cost ratio), plus per condition the break-even
    cost ratio (:func:`_break_even`). Returns (table, calibrated ratio)."""
    core = core_tables(exp)
    cols = ["condition", "cost_ratio", "ratio", "lo", "hi", "p", "p_holm", "outcome", "break_even"]
    panels = speed_panels(exp)
    if core is None or panels.empty:
        return pd.DataFrame(columns=cols), math.nan
    ctt = core["ctt"]
    r0 = calibrated_ratio(ctt)
    be = {p.condition: _break_even(ctt, p.condition, p.bptt, p.evo) for p in panels.itertuples()}
    out = []
    for cr in sorted({*COST_RATIOS, *([round(r0, 4)] if math.isfinite(r0) else [])}):
        cc = ctt.assign(cost=cost_at_ratio(ctt, cr))
        rows = [
            {**_pair(cc, p.condition, p.bptt, p.evo), "condition": p.condition, "cost_ratio": cr}
            for p in panels.itertuples()
        ]
        _holm_outcomes(rows)
        out += [{**r, "break_even": be[r["condition"]]} for r in rows]
    return pd.DataFrame(out, columns=cols), r0


def claim_a(panels: pd.DataFrame, n_min: int) -> str:
    """The claim (a) verdict label from per-condition outcomes (rules in RULES_TEXT)."""
    if panels is None or panels.empty:
        return "not measured"
    if n_min < MIN_SEEDS:
        return "inconclusive at this scale"
    out = [o for o in panels["outcome"] if o not in ("nothing solved", "uninformative")]
    if not out:
        return "inconclusive at this scale"
    fast = sum(o == "BPTT faster" for o in out)
    if fast == len(out):
        return "supported"
    if fast:
        return "partly supported"
    if any(o == "evolution faster" for o in out) or all(o == "equally fast" for o in out):
        return "not supported"
    return "inconclusive at this scale"


# ------------------------------------------------------------------------------------------
# claim (b): local optima panels
# ------------------------------------------------------------------------------------------
ARCH_KEYS = (
    "recurrent",
    "window",
    "net.recurrent",
    "net.window",
    "grid.recurrent",
    "grid.window",
    "grid.net.recurrent",
    "grid.net.window",
)


def arch(runs: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(recurrent bool, window int) per run (the run record's columns; store.read_results
    fills them in for results written before they existed)."""
    return runs["recurrent"].map(bool), runs["window"].map(int)


def arch_label(rec: bool, win: int) -> str:
    if rec:
        return "recurrent" if win == 1 else f"recurrent, window {win}"
    return f"feed-forward, window {win}"


def optima_tables(exp: Results) -> dict | None:
    key = "optima"
    if key in exp.cache:
        return exp.cache[key]
    runs = usable(exp)
    out = None
    if runs is not None:
        ann = A.annotate(runs, exclude=ARCH_KEYS)
        rec, win = arch(ann)
        ann["recurrent_"] = rec.to_numpy()
        ann["arch"] = [arch_label(r, w) for r, w in zip(rec, win, strict=True)]
        by = ("condition", "arch", "variant")
        sr = A.success_rate(ann, by=by, level=LEVEL)
        out = {"ann": ann, "sr": sr, "stalled": stalled_failures(ann, exp.traces)}
    exp.cache[key] = out
    return out


def stalled_failures(ann: pd.DataFrame, traces: pd.DataFrame | None) -> pd.Series:
    """Per failed run: True when its best loss improved by less than STALL_TOL (relative)
    between half its spent cost and its end (from the traces); NaN without traces."""
    out = pd.Series(np.nan, index=ann.index, dtype=object)
    if traces is None or not len(traces) or "fwd_equiv" not in traces:
        return out
    fail = ~ann["outcome"].isin(A.SUCCESS_OUTCOMES)
    ids = set(ann.loc[fail, "run_id"])
    t = traces[traces["run_id"].isin(ids)].sort_values(["run_id", "evals"], kind="mergesort")
    res = {}
    for rid, g in t.groupby("run_id", sort=True):
        c = np.maximum.accumulate(g["fwd_equiv"].to_numpy(float))
        b = np.minimum.accumulate(np.where(np.isnan(g["best_loss"]), np.inf, g["best_loss"]))
        if not c.size or not np.isfinite(b[-1]):
            continue
        j = np.searchsorted(c, c[-1] / 2, side="right") - 1
        half = b[max(j, 0)]
        res[rid] = bool(half - b[-1] <= STALL_TOL * abs(half)) if np.isfinite(half) else False
    for i in ann.index[fail]:
        rid = ann.at[i, "run_id"]
        if rid in res:
            out[i] = res[rid]
    return out


B1_COLS = ["condition", "arch", "bptt", "k_b", "n_b", "other", "k_o", "n_o", "d", "lo", "hi", "p"]
B2_COLS = ["condition", "rec_arch", "ff_arch", "bptt", "evo", "k_gr", "n_gr", "k_gf", "n_gf"]
B2_COLS += ["k_er", "n_er", "k_ef", "n_ef", "d_grad", "d_evo", "delta", "lo", "hi", "p"]


def _b1_rows(cond, cells: dict, recs: list, vb: str, ve: str, limited=()) -> list[dict]:
    """b1 rows of one condition: per recurrent arch, success(BPTT) - success(CMA-ES) with
    Newcombe's CI and Fisher's p (NaN when neither solved any seed); 'limited' when
    (cond, arch, ve) is in ``limited`` (:func:`budget_limited`)."""
    rows = []
    for a in recs:
        B, O = cells.get((a, vb)), cells.get((a, ve))
        if B is None or O is None:
            continue
        d, lo, hi = A.diff_interval(*B, *O)
        p = A.fisher_exact(*B, *O) if B[0] + O[0] else math.nan
        row = dict(zip(B1_COLS, (cond, a, vb, *B, ve, *O, d, lo, hi, p), strict=True))
        rows.append({**row, "limited": (cond, a, ve) in limited})
    return rows


def _b2_rows(cond, cells: dict, rec: str, ffs: list, vb: str, ve: str) -> list[dict]:
    """b2 rows of one condition: per feed-forward arch, the interaction of method and
    architecture (:func:`toolkit.analysis.interaction`; p NaN when no method solved the
    feed-forward net)."""
    rows = []
    for ff in ffs:
        arms = [cells.get(k) for k in ((rec, vb), (ff, vb), (rec, ve), (ff, ve))]
        if any(c is None for c in arms):
            continue
        k, n = [c[0] for c in arms], [c[1] for c in arms]
        key = ("interaction", cond, ff)
        it = A.interaction(k, n, n_boot=N_BOOT, seed=SEED, level=LEVEL, key=key)
        p = it["p"] if k[1] + k[3] > 0 else math.nan
        vals = (*[x for c in arms for x in c], it["d_grad"], it["d_evo"], it["delta"])
        vals = (cond, rec, ff, vb, ve, *vals, it["lo"], it["hi"], p)
        rows.append({**dict(zip(B2_COLS, vals, strict=True)), "informative": informative(k, n)})
    return rows


def _holm_b(rows: list[dict], est: str, zero: tuple[str, str], labels: tuple) -> None:
    """Holm-adjust the rows' p and classify each: labels[0] when the counts ``zero`` are both
    0 (no information), labels[1] / labels[2] when significant with ``est`` < 0 / > 0, *equal*
    when the CI lies within +-EQUIV_DIFF, else *undecided*. Rows not informative (pilot rule)
    or budget-limited ('limited') are labelled so and left out of the Holm family."""
    live = [r for r in rows if r.get("informative", True) and not r.get("limited")]
    for r in rows:
        r["p_holm"], r["outcome"] = math.nan, "uninformative"
        if r.get("limited"):
            r["outcome"] = BUDGET_LIMITED
    for r, q in zip(live, A.holm([r["p"] for r in live]), strict=True):
        r["p_holm"] = float(q)
        if r[zero[0]] + r[zero[1]] == 0:
            r["outcome"] = labels[0]
        elif q < ALPHA:
            r["outcome"] = labels[1] if r[est] < 0 else labels[2]
        elif r["lo"] >= -EQUIV_DIFF and r["hi"] <= EQUIV_DIFF:
            r["outcome"] = "equal"
        else:
            r["outcome"] = "undecided"


def optima_panels(exp: Results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(b1, b2) tables for the declared primary pairing (:data:`PRIMARY_GRAD` against
    :data:`PRIMARY_EVO`: BPTT (Adam) against CMA-ES), chosen by name, never by the data.

    b1 (reported, not in the verdict): per (condition, recurrent arch), d = success(BPTT) -
    success(CMA-ES) with Newcombe's CI, Fisher's p and the Holm-adjusted p over the rows.
    b2 (the verdict): per (condition, feed-forward arch), the method x architecture
    interaction delta = (BPTT rec - BPTT ff) - (CMA-ES rec - CMA-ES ff) with a bootstrap CI
    and p (:func:`toolkit.analysis.interaction`), Holm-adjusted over the rows."""
    core = optima_tables(exp)
    c1 = [*B1_COLS, "limited", "p_holm", "outcome"]
    c2 = [*B2_COLS, "informative", "p_holm", "outcome"]
    if core is None:
        return pd.DataFrame(columns=c1), pd.DataFrame(columns=c2)
    ann, sr = core["ann"], core["sr"]
    fam = ann.groupby("variant", sort=True)["family"].first().to_dict()
    is_rec = ann.groupby("arch", sort=True)["recurrent_"].first().to_dict()
    sr = sr.assign(fam=sr["variant"].map(fam), unit=sr["variant"])
    limited = budget_limited(ann, ("condition", "arch", "variant"))
    # a method tuned per network has one variant per arch, each with its own chosen config: the
    # arms of the interaction are then paired by method (the unit), not by identical config
    meth = sr["variant"].map(method_of)
    if (sr.assign(m=meth).groupby(["condition", "arch", "m"])["variant"].nunique() == 1).all():
        sr["unit"] = meth
        limited = {(c, a, method_of(v)): x for (c, a, v), x in limited.items()}
    rows1, rows2 = [], []
    for cond, sub in sr.groupby("condition", sort=True):
        vb = primary(sub.loc[sub["fam"] == "gradient", "unit"], PRIMARY_GRAD)
        ve = primary(sub.loc[sub["fam"] != "gradient", "unit"], PRIMARY_EVO)
        if vb is None or ve is None:
            continue
        cols = ("arch", "unit", "successes", "n")
        cells = {(a, v): (int(k), int(n)) for a, v, k, n in sub[list(cols)].itertuples(False)}
        archs = sorted(sub["arch"].unique(), key=natkey)
        recs = [a for a in archs if is_rec.get(a, True)]
        rows1 += _b1_rows(cond, cells, recs, vb, ve, limited)
        rec = "recurrent" if "recurrent" in recs else (recs[0] if recs else None)
        if rec is not None:
            ffs = [a for a in archs if not is_rec.get(a, True)]
            rows2 += _b2_rows(cond, cells, rec, ffs, vb, ve)
    more, less = "BPTT more often stuck", "BPTT less often stuck"
    _holm_b(rows1, "d", ("k_b", "k_o"), ("nothing solved", more, less))
    _holm_b(
        rows2, "delta", ("k_gf", "k_ef"), ("not informative", "BPTT hurt more", "BPTT hurt less")
    )
    rows1.sort(key=lambda r: (natkey(r["condition"]), natkey(r["arch"])))
    rows2.sort(key=lambda r: (natkey(r["condition"]), natkey(r["ff_arch"])))
    b1, b2 = pd.DataFrame(rows1, columns=c1), pd.DataFrame(rows2, columns=c2)
    return _wilson(b1, ("b", "o")), _wilson(b2, ("gr", "gf", "er", "ef"))


def _wilson(df: pd.DataFrame, arms) -> pd.DataFrame:
    """``df`` with ci_<arm>: the Wilson interval (lo, hi) of k_<arm> successes of n_<arm>."""
    for a in arms:
        kn = zip(df[f"k_{a}"], df[f"n_{a}"], strict=True)
        df[f"ci_{a}"] = [A.wilson_interval(k, n, LEVEL) if n else (math.nan,) * 2 for k, n in kn]
    return df


def claim_b(b2: pd.DataFrame, n_min: int, *, has_b1: bool = False) -> str:
    """The claim (b) verdict label from the interaction outcomes (b2) alone (rules in
    RULES_TEXT); b1 is reported beside it and cannot change it."""
    if not len(b2):
        return "inconclusive at this scale" if has_b1 else "not measured"
    if n_min < MIN_SEEDS:
        return "inconclusive at this scale"
    o = [x for x in b2["outcome"] if x not in ("not informative", "uninformative")]
    pos, neg = "BPTT hurt more" in o, "BPTT hurt less" in o
    if pos and not neg:
        return "supported"
    if pos and neg:
        return "partly supported"
    if o and (neg or all(x == "equal" for x in o)):
        return "not supported"
    return "inconclusive at this scale"


# ------------------------------------------------------------------------------------------
# the verdict sections: what each reports
# ------------------------------------------------------------------------------------------
OTHERS_SKIP = ("parallel", "cliff")  # no run table a claim's comparison applies to


def _others(exps: dict[str, Results], skip: str, panels) -> pd.DataFrame:
    """``panels(exp)`` for every experiment but ``skip`` and :data:`OTHERS_SKIP`, one table
    with an 'experiment' column; an experiment whose analysis fails is left out."""
    parts = []
    for name, e in exps.items():
        if name == skip or name in OTHERS_SKIP:
            continue
        try:
            parts.append(panels(e).assign(experiment=name))
        except Exception:
            continue
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def outcome_counts(df: pd.DataFrame) -> dict[str, int]:
    """{outcome: number of rows}, outcomes sorted."""
    if not len(df):
        return {}
    oc = df["outcome"].value_counts()
    return {str(k): int(oc[k]) for k in sorted(oc.index)}


def verdict_a(exps: dict[str, Results]) -> dict:
    """Claim (a): the speed experiment's panels (:func:`speed_panels`), the verdict label,
    the seeds behind it (n_min, n_max), the outcome counts, how the same rule reads in wall
    seconds (wall_n conditions measured, wall_differ: those with another outcome) and the
    same comparison in the other experiments (others, supporting evidence)."""
    exp = exps.get("speed")
    panels = speed_panels(exp) if exp is not None else pd.DataFrame()
    n_min, n_max = (seed_range(exp) if exp is not None else None) or (0, 0)
    wall = panels[panels["wall_outcome"] != "not measured"] if len(panels) else panels
    return {
        "has_runs": exp is not None and exp.runs is not None,
        "panels": panels,
        "label": claim_a(panels, n_min),
        "n_min": n_min,
        "n_max": n_max,
        "counts": outcome_counts(panels),
        "wall_n": len(wall),
        "wall_differ": wall[wall["wall_outcome"] != wall["outcome"]] if len(wall) else wall,
        "others": _others(exps, "speed", speed_panels),
    }


def verdict_b(exps: dict[str, Results]) -> dict:
    """Claim (b): the local_optima experiment's (b1, b2) panels (:func:`optima_panels`), the
    verdict label, the seeds behind it, the outcome counts of b2 ('measured' False, label
    *not measured*, when local_optima has no results), and b1 in the other experiments
    (others, supporting evidence)."""
    others = _others(exps, "local_optima", lambda e: optima_panels(e)[0])
    exp = exps.get("local_optima")
    if exp is None or optima_tables(exp) is None:
        return {"measured": False, "label": "not measured", "others": others}
    b1, b2 = optima_panels(exp)
    n = optima_tables(exp)["sr"]["n"]
    n_min, n_max = (int(n.min()), int(n.max())) if len(n) else (0, 0)
    return {
        "measured": True,
        "b1": b1,
        "b2": b2,
        "label": claim_b(b2, n_min, has_b1=bool(len(b1))),
        "n_min": n_min,
        "n_max": n_max,
        "counts": outcome_counts(b2),
        "others": others,
    }


# ------------------------------------------------------------------------------------------
# the other tables of the report
# ------------------------------------------------------------------------------------------
def tuning_protocol(exp: Results) -> dict | None:
    """The tuning stage of ``exp`` from its tuning.json (and tuning.parquet): 'protocols'
    {part: configs, seeds, space, samples, conditions, ...} (:func:`toolkit.tuning.protocol`),
    'cost' per method (tuning runs and forward-pass equivalents, the evaluation runs' beside
    them, the tuning runs' CPU seconds when tuning.parquet is stored) and 'choices' (one row
    per part, condition and method: the chosen knob values, solved / runs on the tuning seeds,
    the best-cap ERT). None without tuning.json."""
    t = exp.tuning
    if not t:
        return None
    ch = pd.DataFrame(t["choices"])
    if not len(ch):
        return None
    if "part" not in ch:
        ch["part"] = ""
    ch["tuning_runs"] = ch["configs"] * ch["runs"]  # (every configuration, the same seeds)
    cost = ch.groupby("method", sort=False).agg(
        tuning_runs=("tuning_runs", "sum"), tuning_fwd=("tuning_cost", "sum")
    )
    runs = usable(exp)
    ev = runs.groupby("method")["fwd_equiv"].sum() if runs is not None else pd.Series(dtype=float)
    cost["eval_fwd"] = [float(ev.get(m, np.nan)) for m in cost.index]
    tt = exp.tables.get("tuning")
    if tt is not None and {"method", "cpu_s"} <= set(tt.columns):
        cpu = tt.groupby("method")["cpu_s"].sum()
        cost["tuning_cpu_s"] = [float(cpu.get(m, np.nan)) for m in cost.index]
    protocols = t.get("protocols") or {}
    return {"protocols": protocols, "cost": cost.reset_index(), "choices": ch}


def seed_range(exp: Results) -> tuple[int, int] | None:
    """(fewest, most) seeds per (condition, variant) of ``exp``; None without usable runs."""
    core = core_tables(exp)
    if core is None:
        return None
    n = core["sr"]["n"]
    return (int(n.min()), int(n.max())) if len(n) else (0, 0)


def run_counts(exp: Results) -> dict:
    """The stored runs: n, errors (left out of every statistic), {outcome: count} (sorted),
    tasks (sorted) and methods."""
    r = exp.runs
    if r is None or not len(r):
        return {"n": 0, "errors": 0, "outcomes": {}, "tasks": [], "methods": []}
    oc = r["outcome"].astype(str).value_counts()
    return {
        "n": len(r),
        "errors": int(oc.get("error", 0)),
        "outcomes": {str(k): int(oc[k]) for k in sorted(oc.index)},
        "tasks": sorted(r["task"].astype(str).unique()),
        "methods": list(r["method"].astype(str).unique()),
    }


def setting_usage(exps: list[Results], col: str, params_col: str) -> dict[str, dict]:
    """Per value of ``col`` ('task' or 'method') over the experiments with runs: the
    experiments that used it ('exps'), its runs' ``params_col`` JSON ('params') and their
    families ('family')."""
    out: dict[str, dict] = {}
    for e in exps:
        if e.runs is None or not len(e.runs):
            continue
        fam = family_of(e.runs)
        for v, sub in e.runs.groupby(col, sort=True):
            t = out.setdefault(str(v), {"exps": [], "params": [], "family": set()})
            t["exps"].append(e.name)
            t["family"].update(fam[sub.index].tolist())
            if params_col in sub:
                t["params"].extend(sub[params_col].tolist())
    return out


def applied_ratios(exps: list[Results]) -> pd.DataFrame:
    """Per hidden size: the gradient/forward cost ratio the stored runs were charged
    (:func:`calibrated_ratio` per experiment, median over experiments) and the experiments."""
    used = []
    for e in exps:
        if e.runs is None or "n_hidden" not in e.runs:
            continue
        for h, sub in e.runs.groupby("n_hidden", sort=True):
            v = calibrated_ratio(sub)
            if not math.isnan(v):
                used.append((int(h), v, e.name))
    df = pd.DataFrame(used, columns=["n_hidden", "ratio", "experiment"])
    g = df.groupby("n_hidden", sort=True)
    return pd.DataFrame(
        {"ratio": g["ratio"].median(), "experiments": g["experiment"].agg(lambda s: sorted(set(s)))}
    ).reset_index()


def sweep_times(exp: Results) -> tuple[float, float | None, int]:
    """(wall seconds, CPU seconds of the runs or None when not recorded, sessions) of the
    sweeps behind ``exp``: the sum over the sessions in meta.json's history (a suite
    experiment's merged meta holds every part's sessions), or, for the parallel experiment, over
    the timings in parallel.parquet (each a full sweep)."""
    par = exp.tables.get("parallel")
    if par is not None and "wall_s" in par.columns and len(par):
        cpu = None
        if "cpu_s" in par.columns and par["cpu_s"].notna().all():
            cpu = float(par["cpu_s"].sum())
        return float(par["wall_s"].sum()), cpu, len(par)
    hist = (exp.meta or {}).get("history")
    hist = [h for h in hist if isinstance(h, dict)] if isinstance(hist, list) else []
    wall, cpu, known = 0.0, 0.0, bool(hist)
    for h in hist:
        w = h.get("wall_s")
        if w is None:  # sessions written before wall_s was recorded: end - start
            try:
                t0 = datetime.fromisoformat(str(h["start"]))
                w = (datetime.fromisoformat(str(h["end"])) - t0).total_seconds()
            except (KeyError, TypeError, ValueError):
                w = 0.0
        wall += float(w)
        if h.get("cpu_s") is None:
            known = False
        else:
            cpu += float(h["cpu_s"])
    return wall, (cpu if known else None), len(hist)


def sweep_totals(exps: list[Results]) -> dict | None:
    """The sweeps behind ``exps`` together (:func:`sweep_times` of those with sessions): wall
    seconds, CPU seconds of those that recorded it (None if none did), the experiments that did
    not (no_cpu) and the experiments counted (exps); None when none has sessions."""
    times = [(e, *sweep_times(e)) for e in exps if e.meta]
    times = [t for t in times if t[3]]
    if not times:
        return None
    cpus = [t[2] for t in times if t[2] is not None]
    return {
        "wall": sum(t[1] for t in times),
        "cpu": sum(cpus) if cpus else None,
        "no_cpu": [t[0].name for t in times if t[2] is None],
        "exps": [t[0] for t in times],
    }


def results_table(exp: Results) -> pd.DataFrame | None:
    """Per (condition, variant): successes / n, median final loss, ERT (fwd-equiv) and the
    ERT ratio to the condition's reference (:func:`toolkit.analysis.compare_methods`: the best
    BPTT variant) with Mann-Whitney p, each with its CI; 'reference' names the reference of
    the row's condition; limited_gens / limited_n for budget-limited CMA-ES rows
    (:func:`budget_limited`). None without usable runs."""
    core = core_tables(exp)
    if core is None:
        return None
    sr, fl, ert_t, cmp = core["sr"], core["fl"], core["ert"], core["cmp"]
    key = ["condition", "variant"]
    t = sr.merge(fl[[*key, "median", "median_lo", "median_hi"]], on=key, how="left")
    t = t.merge(ert_t[[*key, "ert", "ert_lo", "ert_hi"]], on=key, how="left")
    if not len(cmp):
        t = t.assign(reference=None, ratio=np.nan, ratio_lo=np.nan, ratio_hi=np.nan)
        return _with_limited(t.assign(p_value=np.nan), core["ann"])
    c = cmp.rename(columns={"series": "variant"})[
        [*key, "ratio", "ratio_lo", "ratio_hi", "p_value"]
    ]
    t = t.merge(c, on=key, how="left")
    refs = cmp.groupby("condition", sort=True)["reference"].first()
    return _with_limited(t.assign(reference=t["condition"].map(refs)), core["ann"])


def _with_limited(t: pd.DataFrame, ann: pd.DataFrame) -> pd.DataFrame:
    """``t`` with 'limited_gens' and 'limited_n': the :func:`budget_limited` median
    generations and weights of the row's (condition, variant), NaN when not limited."""
    lim = budget_limited(ann, ("condition", "variant"))
    keys = list(zip(t["condition"], t["variant"], strict=True))
    gens = [lim[k][0] if k in lim else np.nan for k in keys]
    return t.assign(limited_gens=gens, limited_n=[lim[k][1] if k in lim else np.nan for k in keys])


def stuck_table(exp: Results) -> pd.DataFrame | None:
    """Per (condition, arch, variant) of :func:`optima_tables`: successes / n with the Wilson
    interval (lo, hi), failed runs
    (n_fail) and stalled ones among them (NaN when the traces cannot tell). None unless the
    experiment is local_optima or varies the architecture."""
    if exp.runs is None or not (exp.name == "local_optima" or arch(exp.runs)[0].nunique() > 1):
        return None
    core = optima_tables(exp)
    if core is None:
        return None
    ann, sr, stalled = core["ann"], core["sr"], core["stalled"]
    out = []
    for r in sr.itertuples():
        mask = (ann["condition"] == r.condition) & (ann["arch"] == r.arch)
        mask &= ann["variant"] == r.variant
        st = stalled[mask & stalled.notna()]
        n_fail = int((~ann.loc[mask, "outcome"].isin(A.SUCCESS_OUTCOMES)).sum())
        k = int(st.astype(bool).sum()) if len(st) or n_fail == 0 else math.nan
        out.append((r.condition, r.arch, r.variant, int(r.successes), int(r.n), r.lo, r.hi))
        out[-1] += (k, n_fail)
    cols = ["condition", "arch", "variant", "successes", "n", "lo", "hi", "stalled", "n_fail"]
    return pd.DataFrame(out, columns=cols)


ANATOMY_ORDER = (
    *("local minimum", "saddle", "plateau", "unsettled", "slow", "solved", "no end point"),
)


def anatomy_counts(df: pd.DataFrame | None) -> tuple[pd.DataFrame, dict] | None:
    """Claim (b): the class mix of failed runs' end points per task x method x network from
    anatomy.parquet (the [post.anatomy] step, :mod:`toolkit.anatomy`): one row per group with
    task, method, recurrent, window, network, n and a count per class present (in
    :data:`ANATOMY_ORDER`, then others); and the thresholds the step used (stored beside its
    rows, else the defaults). None without the table."""
    need = {"task", "method", "recurrent", "window", "class"}
    if df is None or not len(df) or not need <= set(df.columns):
        return None
    present = [c for c in ANATOMY_ORDER if (df["class"] == c).any()]
    present += sorted(set(df["class"].astype(str)) - set(present))
    rows = []
    for (task, m, rec, win), g in df.groupby(["task", "method", "recurrent", "window"], sort=False):
        counts = [int((g["class"] == c).sum()) for c in present]
        rows.append(
            (task, m, bool(rec), int(win), arch_label(bool(rec), int(win)), len(g), *counts)
        )
    cols = ["task", "method", "recurrent", "window", "network", "n", *present]
    thr = {}
    for col in ("loss_tol", "grad_tol", "flat_tol", "neg_tol", "sat_frac"):
        default = getattr(AN, col.upper())
        v = df[col].iloc[0] if col in df.columns else default
        thr[col] = float(v) if pd.notna(v) else default
    tab = pd.DataFrame(rows, columns=cols)
    cont = continued(df)
    if cont is not None:  # per group: (solved when continued, continued)
        keys = ["task", "method", "recurrent", "window"]
        solved = cont.groupby(keys, sort=False)["continued_solved"].agg(["sum", "size"])
        look = {
            (t, m, bool(r), int(w)): (int(k), int(n)) for (t, m, r, w), (k, n) in solved.iterrows()
        }
        tab["continued"] = [
            look.get((r.task, r.method, r.recurrent, r.window), (0, 0)) for r in tab.itertuples()
        ]
        thr["continue_factor"] = float(df["continue_factor"].iloc[0])
        if "continue_max" in df.columns:
            thr["continue_max"] = int(df["continue_max"].iloc[0])
    return tab, {**thr, "sat_h": AN.SAT_H}


def continued(df: pd.DataFrame) -> pd.DataFrame | None:
    """The anatomy rows whose run was continued ([post.anatomy] continue_factor), or None when
    the table has no continuation columns (written before the continuation test) or none was
    continued."""
    need = {"continued_outcome", "continued_solved", "continue_factor", "end_point"}
    if df is None or not need <= set(df.columns):
        return None
    c = df[~df["continued_outcome"].astype(str).isin(["", "not exact"])]
    return c if len(c) else None


def continuation_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """The continuation test per method and end-point label (before continuing): continued
    runs n, solved k, and the median cost when solved as a multiple of the failed run's."""
    cont = continued(df)
    if cont is None:
        return None
    order = [c for c in ANATOMY_ORDER if (cont["end_point"] == c).any()]
    order += sorted(set(cont["end_point"].astype(str)) - set(order))
    rows = []
    for m in dict.fromkeys(cont["method"].astype(str)):
        for e in order:
            g = cont[(cont["method"].astype(str) == m) & (cont["end_point"] == e)]
            if len(g):
                ok = g["continued_solved"].astype(bool)
                cx = g.loc[ok, "continued_cost_x"].dropna()
                med = float(cx.median()) if len(cx) else math.nan
                rows.append((m, e, int(ok.sum()), len(g), med))
    return pd.DataFrame(rows, columns=["method", "end_point", "k", "n", "median_cost_x"])


def lag_success(exp: Results, params) -> list[tuple[str, pd.DataFrame]]:
    """For every setting in ``params`` that some (task, method) sweeps over at least two
    values: (setting, successes / n per condition, variant and value 'x')."""
    runs = usable(exp)
    if runs is None:
        return []
    out = []
    for p in params:
        v = pd.to_numeric(A.param_values(runs, p), errors="coerce")
        df = pd.DataFrame({"t": runs["task"], "m": runs["method"], "v": v}).dropna()
        if not len(df) or not (df.groupby(["t", "m"])["v"].nunique() >= 2).any():
            continue
        ann = A.annotate(runs, exclude=[p, f"grid.task.params.{p}", f"task.params.{p}"])
        ann["x"] = pd.to_numeric(A.param_values(ann, p), errors="coerce").to_numpy()
        ann = ann[np.isfinite(ann["x"].astype(float))]
        out.append((p, A.success_rate(ann, by=("condition", "variant", "x"), level=LEVEL)))
    return out


def scaling(exp: Results) -> dict | None:
    """ERT (fwd-equiv) against the number of weights, when some (task, method) ran two or more
    hidden sizes: 'ert' per (condition, variant, n_params); 'slope' per (condition, variant),
    the least-squares slope of log ERT on log n_params over the finite ERTs (NaN with fewer
    than two); 'by_size': the claim (a) outcome per condition with its n_params, by size;
    'first': the smallest size at which BPTT is significantly faster (None if none)."""
    runs = usable(exp)
    if runs is None or "n_params" not in runs or "n_hidden" not in runs:
        return None
    if not (runs.groupby(["task", "method"])["n_hidden"].nunique() >= 2).any():
        return None
    ann = A.annotate(runs, exclude=("n_hidden", "grid.n_hidden"))
    ctt = A.cost_to_target(ann, exp.traces, cost="fwd_equiv")
    et = A.ert_table(ctt, by=("condition", "variant", "n_params"), n_boot=N_BOOT, seed=SEED)
    slopes = {}
    for key, sub in et.groupby(["condition", "variant"], sort=True):
        fin = sub[np.isfinite(sub["ert"].astype(float))]
        x, y = np.log(fin["n_params"].astype(float)), np.log(fin["ert"].astype(float))
        slopes[key] = np.polyfit(x, y, 1)[0] if len(fin) >= 2 else math.nan
    panels = speed_panels(exp)
    size_of = core_tables(exp)["ann"].groupby("condition", sort=True)["n_params"].first()
    by_size = sorted(
        (int(size_of.get(r.condition, -1)), r.condition, r.outcome) for r in panels.itertuples()
    )
    first = next((s for s, _, o in by_size if o == "BPTT faster"), None)
    by_size = pd.DataFrame(by_size, columns=["n_params", "condition", "outcome"])
    return {"ert": et, "slope": slopes, "by_size": by_size, "first": first}


def ert_evals(ann: pd.DataFrame, traces) -> pd.DataFrame:
    """ERT in loss evaluations per (condition, variant) of annotated runs (for random
    guessing, the mean number of guesses to a solution)."""
    ctt = A.cost_to_target(ann, traces, cost="evals")
    return A.ert_table(ctt, by=("condition", "variant"), n_boot=N_BOOT, seed=SEED, level=LEVEL)


def guess_ert(exp: Results) -> pd.DataFrame | None:
    """:func:`ert_evals` of every usable run of random_guessing, or of another experiment
    (speed aside) with random-guessing runs; None otherwise."""
    runs = usable(exp)
    if runs is None or exp.name == "speed":
        return None
    if exp.name != "random_guessing" and not (runs["method"].astype(str) == "random").any():
        return None
    return ert_evals(A.annotate(runs), exp.traces)


def _latch_variant(runs: pd.DataFrame) -> pd.Series:
    if "grid.setup" in runs.columns:  # the suite's random_guessing parts
        return runs["grid.setup"].map({"latch_I": "I", "latch_II": "II"})
    return runs["task_params"].map(lambda j: str(A._json(j).get("variant", "II")))


def published_matches(pub: dict, exps: dict[str, Results]) -> pd.DataFrame:
    """Our runs matching one published row (``[[report.compare]]``: task, method, optional
    variant): the ERT in loss evaluations per condition (:func:`ert_evals`) with the hidden
    sizes behind it ('n_hidden', a list) from the first experiment that has such runs,
    random_guessing first; empty when none has."""
    if pub.get("task") is None:
        return pd.DataFrame()
    for name in ("random_guessing", *[n for n in exps if n != "random_guessing"]):
        runs = usable(exps[name]) if name in exps else None
        if runs is None:
            continue
        keep = (runs["task"] == pub["task"]) & (runs["method"] == pub["method"])
        if pub.get("variant") is not None:
            keep &= _latch_variant(runs) == pub["variant"]
        if not keep.any():
            continue
        ann = A.annotate(runs)[keep.to_numpy()]
        et = ert_evals(ann, exps[name].traces)
        h = [ann.loc[ann["condition"] == c, "n_hidden"].tolist() for c in et["condition"]]
        return et.assign(experiment=name, n_hidden=h)
    return pd.DataFrame()


def fidelity_summary(exp: Results) -> pd.DataFrame | None:
    """Gradient fidelity of BPTT(k) per (T, k) from gradient_fidelity.parquet: parameter
    vectors, median and min cosine to the full gradient, median norm ratio (NaN without it);
    T None when not stored."""
    df = exp.tables.get("gradient_fidelity")
    if df is None or not {"k", "cosine"} <= set(df.columns):
        return None
    rows = []
    for key, sub in df.groupby(["T", "k"] if "T" in df else ["k"], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        T = key[0] if len(key) == 2 else None
        nr = sub["norm_ratio"].median() if "norm_ratio" in sub else math.nan
        rows.append((T, key[-1], len(sub), sub["cosine"].median(), sub["cosine"].min(), nr))
    return pd.DataFrame(rows, columns=["T", "k", "n", "cos_median", "cos_min", "norm_ratio"])


def cliff_paths(exp: Results) -> pd.DataFrame | None:
    """Per optimizer path on the single-unit surface (cliff_trajectories): points, loss
    evaluations, start, final and lowest loss, largest gradient norm (NaN where not stored)."""
    tr = exp.tables.get("cliff_trajectories")
    if tr is None or not {"method", "loss"} <= set(tr.columns):
        return None
    rows = []
    for m, sub in tr.groupby("method", sort=True):
        sub = sub.sort_values("step") if "step" in sub else sub
        ev = sub["evals"].iloc[-1] if "evals" in sub else math.nan
        gn = sub["grad_norm"].max() if "grad_norm" in sub else math.nan
        L = sub["loss"]
        rows.append((m, len(sub), ev, L.iloc[0], L.iloc[-1], L.min(), gn))
    cols = ["method", "points", "evals", "start", "final", "lowest", "grad_norm"]
    return pd.DataFrame(rows, columns=cols)


def bistable_band(exp: Results) -> tuple[float, float, float] | None:
    """(w, lowest b, highest b) of the biases with two stable fixed points in the bifurcation
    table; None when there are none."""
    bif = exp.tables.get("bifurcation")
    if bif is None or not {"b", "kind"} <= set(bif.columns):
        return None
    multi = bif[bif["kind"] != "x_T"].groupby("b").size()
    multi = multi[multi > 1].index.to_numpy(float)
    w = bif["w"].iloc[0] if "w" in bif and len(bif) else math.nan
    return (w, multi.min(), multi.max()) if multi.size else None


def interpolation_barriers(exp: Results) -> pd.DataFrame | None:
    """Per pair of solutions (interpolation.parquet): loss at both ends, highest loss on the
    line between them and the barrier (highest / higher end; NaN when the ends are not
    positive)."""
    df = exp.tables.get("interpolation")
    if df is None or not {"pair", "alpha", "loss"} <= set(df.columns):
        return None
    rows = []
    for pair, sub in df.groupby("pair", sort=True):
        a, L = sub["alpha"].to_numpy(float), sub["loss"].to_numpy(float)
        ends = [L[np.argmin(np.abs(a - x))] for x in (0.0, 1.0)]
        inside = L[(a >= 0) & (a <= 1)]
        top = float(np.max(inside)) if inside.size else math.nan
        ref = max(ends)
        rows.append((str(pair), ends[0], ends[1], top, top / ref if ref > 0 else math.nan))
    return pd.DataFrame(rows, columns=["pair", "start", "end", "top", "barrier"])


def parallel_speedup(exp: Results) -> pd.DataFrame | None:
    """Per --jobs (parallel.parquet, else meta.json's 'parallel' list): timings, median wall
    seconds, speedup and efficiency relative to the fewest jobs measured; the backends
    measured in ``attrs['backends']``."""
    df = exp.tables.get("parallel")
    if df is None and isinstance((exp.meta or {}).get("parallel"), list):
        try:
            df = pd.DataFrame(exp.meta["parallel"])
        except (TypeError, ValueError):
            df = None
    if df is None or not {"jobs", "wall_s"} <= set(df.columns) or not len(df):
        return None
    d = df.groupby("jobs", sort=True)["wall_s"].agg(["median", "size"]).reset_index()
    j0, t0 = float(d["jobs"].iloc[0]), float(d["median"].iloc[0])
    sp = np.where(d["median"] > 0, t0 / d["median"].where(d["median"] > 0, 1), math.nan)
    out = d.assign(speedup=sp, efficiency=sp / (d["jobs"] / j0))
    out.attrs["backends"] = sorted(set(df["backend"])) if "backend" in df else None
    return out


# ------------------------------------------------------------------------------------------
# question (c): do long lags defeat the algorithm or the architecture? (lag experiment)
# ------------------------------------------------------------------------------------------
BASE_CELL = "elman"
#: net keys that change with the cell and so do not split a lag condition
CELL_KEYS = ("cell", "hidden", "n_hidden", "n_params")
C_COLS = ["condition", "kind", "what", "a", "k_a", "n_a", "b", "k_b", "n_b", "d", "lo", "hi", "p"]
OUTCOMES_C = ("architecture", "algorithm", "both", "neither", "undecided", "uninformative")


def _cells_annotated(exp: Results) -> pd.DataFrame | None:
    """The lag experiment's usable runs annotated by condition, with columns cell and method;
    the condition ignores the cell's own net settings and the part (``setup``). None when no
    cell other than Elman ran."""
    runs = usable(exp)
    if runs is None:
        return None
    cell = runs["cell"] if "cell" in runs.columns else pd.Series(BASE_CELL, index=runs.index)
    runs = runs.assign(cell=cell.fillna(BASE_CELL).astype(str))
    if not (runs["cell"] != BASE_CELL).any():
        return None
    ann = A.annotate(runs, exclude=(*CELL_KEYS, "setup"))  # a cell's runs may be its own part
    ann["cell"] = runs["cell"].to_numpy()
    ann["method"] = runs["method"].astype(str).to_numpy()
    return ann


def lag_guessing(exp: Results) -> pd.DataFrame | None:
    """Random weight guessing's successes on Elman in question (c)'s conditions (those where a
    gated cell ran too): columns condition, k, n; None when guessing did not run there.
    Descriptive: where guessing solves a condition, the task itself favours search
    (Schmidhuber, Hochreiter & Bengio 2001), which the report says beside the answer."""
    ann = _cells_annotated(exp)
    if ann is None:
        return None
    out = []
    for cond, g in ann.groupby("condition", sort=True):
        if not (g["cell"] != BASE_CELL).any():
            continue
        h = g[(g["method"] == "random") & (g["cell"] == BASE_CELL)]
        if len(h):
            out.append((cond, int(h["outcome"].isin(A.SUCCESS_OUTCOMES).sum()), len(h)))
    return pd.DataFrame(out, columns=["condition", "k", "n"]) if out else None


def lag_cells(exp: Results) -> pd.DataFrame | None:
    """Successes per (condition, cell, method) of the lag experiment, for the declared primary
    methods (:data:`PRIMARY_GRAD`, :data:`PRIMARY_EVO`, by name) in the conditions where a cell
    other than Elman ran: columns condition, cell, method, k, n. The condition is the task and
    its settings (lag); the cell's own net settings do not split it. None when no gated (or
    other) cell ran."""
    ann = _cells_annotated(exp)
    if ann is None:
        return None
    out = []
    for cond, g in ann.groupby("condition", sort=True):
        if not (g["cell"] != BASE_CELL).any() or not (g["cell"] == BASE_CELL).any():
            continue
        grad = primary(g.loc[g["family"] == "gradient", "method"], PRIMARY_GRAD)
        evo = primary(g.loc[g["family"] != "gradient", "method"], PRIMARY_EVO)
        for m in (x for x in (grad, evo) if x is not None):
            for c, h in g[g["method"] == m].groupby("cell", sort=True):
                ok = h["outcome"].isin(A.SUCCESS_OUTCOMES)
                out.append((cond, c, m, int(ok.sum()), len(h)))
    if not out:
        return None
    return pd.DataFrame(out, columns=["condition", "cell", "method", "k", "n"])


def cells_panels(exp: Results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, conditions) of question (c).

    rows, one per comparison, Holm-adjusted together: *architecture* rows, per condition,
    algorithm and other cell g: d = success(g) - success(Elman) under the same algorithm;
    *algorithm* rows, per condition and cell: d = success(CMA-ES) - success(BPTT) on the same
    cell. Newcombe's CI, Fisher's p (NaN when neither arm solved a seed).
    conditions: per condition, the label (:data:`OUTCOMES_C`): *architecture* if a cell other
    than Elman trained by BPTT succeeds significantly more often than Elman trained by BPTT and
    CMA-ES on Elman does not beat BPTT on Elman significantly; *algorithm* the reverse; *both*
    if both hold; *neither* if no row of the condition is significant and every CI lies within
    +-EQUIV_DIFF; *uninformative* if every arm solved no seed or every arm every seed (pilot
    rule: its rows leave the Holm family); else *undecided*."""
    cols = [*C_COLS, "p_holm", "significant"]
    t = lag_cells(exp)
    if t is None:
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=["condition", "outcome"])
    rows, conds = [], []
    for cond, g in t.groupby("condition", sort=True):
        s = {(c, m): (k, n) for c, m, k, n in g[["cell", "method", "k", "n"]].itertuples(False)}
        meths = list(dict.fromkeys(g["method"]))
        grad = next((m for m in meths if m in PRIMARY_GRAD), None)
        evo = next((m for m in meths if m not in PRIMARY_GRAD), None)
        info = informative([k for k, _ in s.values()], [n for _, n in s.values()])
        cells = sorted(set(g["cell"]) - {BASE_CELL})
        pairs = [("architecture", m, (c, m), (BASE_CELL, m)) for m in meths for c in cells]
        if grad is not None and evo is not None:
            pairs += [("algorithm", c, (c, evo), (c, grad)) for c in [BASE_CELL, *cells]]
        for kind, what, a, b in pairs:
            if a not in s or b not in s:
                continue
            (ka, na), (kb, nb) = s[a], s[b]
            d, lo, hi = A.diff_interval(ka, na, kb, nb)
            p = A.fisher_exact(ka, na, kb, nb) if ka + kb else math.nan
            vals = (cond, kind, what, f"{a[0]} / {a[1]}", ka, na, f"{b[0]} / {b[1]}", kb, nb)
            rows.append({**dict(zip(C_COLS, (*vals, d, lo, hi, p), strict=True)), "info": info})
        conds.append((cond, info, grad, evo))
    live = [r for r in rows if r["info"] and not math.isnan(r["p"])]
    for r in rows:
        r["p_holm"], r["significant"] = math.nan, False
    for r, q in zip(live, A.holm([r["p"] for r in live]), strict=True):
        r["p_holm"], r["significant"] = float(q), bool(q < ALPHA)
    out = []
    for cond, info, grad, _evo in conds:
        mine = [r for r in rows if r["condition"] == cond]
        arch_gain = any(
            r["kind"] == "architecture" and r["what"] == grad and r["significant"] and r["d"] > 0
            for r in mine
        )
        algo_gain = any(
            r["kind"] == "algorithm" and r["what"] == BASE_CELL and r["significant"] and r["d"] > 0
            for r in mine
        )
        if not info:
            label = "uninformative"
        elif arch_gain or algo_gain:
            label = (
                "both" if arch_gain and algo_gain else "architecture" if arch_gain else "algorithm"
            )
        elif mine and all(
            not r["significant"] and r["lo"] >= -EQUIV_DIFF and r["hi"] <= EQUIV_DIFF for r in mine
        ):
            label = "neither"
        else:
            label = "undecided"
        out.append((cond, label))
    rdf = pd.DataFrame(rows, columns=[*cols, "info"]).drop(columns="info")
    return rdf, pd.DataFrame(out, columns=["condition", "outcome"])


def claim_c(conds: pd.DataFrame, n_min: int) -> str:
    """The overall answer of question (c) from the conditions' labels: *the architecture* /
    *the algorithm* if every decided condition (architecture, algorithm, both) says so;
    *both* if they say both or disagree; *neither* if every informative condition is
    *neither*; else (or with fewer than MIN_SEEDS seeds) *inconclusive at this scale*."""
    if n_min < MIN_SEEDS:
        return "inconclusive at this scale"
    labs = [x for x in conds["outcome"] if x != "uninformative"]
    decided = {x for x in labs if x in ("architecture", "algorithm", "both")}
    if decided == {"architecture"}:
        return "the architecture"
    if decided == {"algorithm"}:
        return "the algorithm"
    if decided:
        return "both"
    if labs and all(x == "neither" for x in labs):
        return "neither"
    return "inconclusive at this scale"


def verdict_c(exps: dict[str, Results]) -> dict:
    """Question (c) on the lag experiment: rows and conditions (:func:`cells_panels`), the
    answer, the seeds behind it and the condition counts; 'measured' False when the lag
    experiment has no runs of a cell other than Elman."""
    exp = exps.get("lag")
    t = lag_cells(exp) if exp is not None else None
    if t is None:
        return {"measured": False, "label": "not measured"}
    rows, conds = cells_panels(exp)
    n_min, n_max = int(t["n"].min()), int(t["n"].max())
    return {
        "measured": True,
        "rows": rows,
        "conditions": conds,
        "table": t,
        "label": claim_c(conds, n_min),
        "n_min": n_min,
        "n_max": n_max,
        "counts": outcome_counts(conds),
        "guessing": lag_guessing(exp),
    }
