"""Claims: the analyses behind the report's verdicts, apart from their rendering.

The report (:mod:`toolkit.report`) states rules and renders numbers; this module computes them
from stored results (:class:`toolkit.store.Results`), with the statistics of
:mod:`toolkit.analysis`:

* :func:`core_tables` -- per experiment and (condition, variant): cost to success, ERT,
  comparisons with the best BPTT variant, success rates and final-loss statistics;
* :func:`speed_panels` and :func:`claim_a` -- claim (a): per condition, the best BPTT variant
  against the best non-gradient method (ERT ratio, its CI, Mann-Whitney p, outcome class),
  and the verdict label from those outcomes;
* :func:`optima_tables`, :func:`optima_panels` and :func:`claim_b` -- claim (b): success
  rates, basins and stalled failures per network architecture; (b1) BPTT against CMA-ES,
  (b2) recurrent against feed-forward nets; the verdict label;
* :func:`verdict_a` / :func:`verdict_b` -- what a claim's section reports: the panels, the
  label, the seeds behind it and the same comparison in the other experiments.

The rules (thresholds below) are printed by the report in *How the verdicts are decided*.
Results are memoised in ``Results.cache``. Everything is deterministic: bootstraps are seeded
(:data:`SEED`, :data:`N_BOOT`). This module never imports plots or report.
"""

from __future__ import annotations

import math
import re
from statistics import NormalDist

import numpy as np
import pandas as pd

from toolkit import analysis as A
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


def core_tables(exp: Results, exclude=(), key="core") -> dict | None:
    """annotate + cost to success + ERT + comparisons + success + final loss, by
    (condition, variant)."""
    if key in exp.cache:
        return exp.cache[key]
    runs = usable(exp)
    out = None
    if runs is not None:
        ann = A.annotate(runs, exclude=exclude)
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
    exp.cache[key] = out
    return out


def seed_range(core: dict | None) -> tuple[int, int]:
    if core is None or core["sr"].empty:
        return 0, 0
    n = core["sr"]["n"]
    return int(n.min()), int(n.max())


# ------------------------------------------------------------------------------------------
# claim (a): speed panels
# ------------------------------------------------------------------------------------------
def speed_panels(exp: Results, exclude=(), key="core") -> pd.DataFrame:
    """Per condition: best BPTT variant B against the best non-gradient method E, with the
    ERT ratio r = ERT(E) / ERT(B), its CI, the Mann-Whitney p on per-seed costs, the same
    ratio in wall-clock seconds, and the outcome class of the claim (a) rules."""
    core = core_tables(exp, exclude=exclude, key=key)
    cols = [
        "condition",
        "bptt",
        "evo",
        "ert_b",
        "ert_b_lo",
        "ert_b_hi",
        "ert_e",
        "ert_e_lo",
        "ert_e_hi",
        "ratio",
        "lo",
        "hi",
        "p",
        "wall_ratio",
        "wall_lo",
        "wall_hi",
        "wall_outcome",
        "n_min",
        "outcome",
    ]
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
        g = sub[sub["variant"].map(fam) == "gradient"]
        e = sub[sub["variant"].map(fam) != "gradient"]
        if g.empty or e.empty:
            continue

        def best(df):
            return min(df.itertuples(), key=lambda t: (t.ert, str(t.variant)))

        B, E = best(g), best(e)

        def sample(c, v, cond=cond):
            s = c[(c["condition"] == cond) & (c["variant"] == v)]
            return s["cost"].to_numpy(float), s["reached"].to_numpy(bool)

        cb, rb = sample(ctt, B.variant)
        ce, re_ = sample(ctt, E.variant)
        rat = A.ert_ratio(ce, re_, cb, rb, n_boot=N_BOOT, seed=SEED, level=LEVEL)
        mw = A.mann_whitney_u(np.where(re_, ce, np.inf), np.where(rb, cb, np.inf))
        wr = {"ratio": math.nan, "lo": math.nan, "hi": math.nan}
        w_out = "not measured"
        if ctt_w is not None:
            wb, wrb = sample(ctt_w, B.variant)
            we, wre = sample(ctt_w, E.variant)
            wr = A.ert_ratio(we, wre, wb, wrb, n_boot=N_BOOT, seed=SEED, level=LEVEL)
            wp = A.mann_whitney_u(np.where(wre, we, np.inf), np.where(wrb, wb, np.inf))
            w_out = classify_ratio(
                A.ert(wb, wrb), A.ert(we, wre), wr["lo"], wr["hi"], wp["p_value"]
            )
        rows.append(
            {
                "condition": cond,
                "bptt": B.variant,
                "evo": E.variant,
                "ert_b": B.ert,
                "ert_b_lo": B.ert_lo,
                "ert_b_hi": B.ert_hi,
                "ert_e": E.ert,
                "ert_e_lo": E.ert_lo,
                "ert_e_hi": E.ert_hi,
                "ratio": rat["ratio"],
                "lo": rat["lo"],
                "hi": rat["hi"],
                "p": mw["p_value"],
                "wall_ratio": wr["ratio"],
                "wall_lo": wr["lo"],
                "wall_hi": wr["hi"],
                "wall_outcome": w_out,
                "n_min": int(min(B.n_runs, E.n_runs)),
                "outcome": classify_ratio(B.ert, E.ert, rat["lo"], rat["hi"], mw["p_value"]),
            }
        )
    rows.sort(key=lambda r: natkey(r["condition"]))
    return pd.DataFrame(rows, columns=cols)


def classify_ratio(ert_b, ert_e, lo, hi, p) -> str:
    if not (math.isfinite(ert_b) or math.isfinite(ert_e)):
        return "nothing solved"
    if not (math.isnan(lo) or math.isnan(hi)):
        sig = p < ALPHA
        if lo > 1 and sig:
            return "BPTT faster"
        if hi < 1 and sig:
            return "evolution faster"
        if lo >= 1 / EQUIV_RATIO and hi <= EQUIV_RATIO:
            return "equally fast"
    return "undecided"


def claim_a(panels: pd.DataFrame, n_min: int) -> str:
    """The claim (a) verdict label from per-condition outcomes (rules in RULES_TEXT)."""
    if panels is None or panels.empty:
        return "not measured"
    if n_min < MIN_SEEDS:
        return "inconclusive at this scale"
    out = [o for o in panels["outcome"] if o != "nothing solved"]
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


def _arch_label(rec: bool, win: int) -> str:
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
        ann["arch"] = [_arch_label(r, w) for r, w in zip(rec, win, strict=True)]
        by = ("condition", "arch", "variant")
        sr = A.success_rate(ann, by=by, level=LEVEL)
        bas = A.basins(ann, by=by)
        out = {"ann": ann, "sr": sr, "basins": bas, "stalled": stalled_failures(ann, exp.traces)}
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


def optima_panels(exp: Results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(b1, b2) tables. b1: per (condition, recurrent arch) the best BPTT variant against
    CMA-ES (or the best non-gradient method without CMA-ES). b2: per condition, the best
    BPTT variant of the recurrent net against the same variant on each feed-forward net,
    with CMA-ES's recurrent-minus-feed-forward difference as a control."""
    core = optima_tables(exp)
    c1 = ["condition", "arch", "bptt", "k_b", "n_b", "other", "k_o", "n_o", "d", "lo", "hi", "p"]
    c1 += ["outcome"]
    c2 = ["condition", "rec_arch", "ff_arch", "bptt", "k_r", "n_r", "k_f", "n_f", "d", "lo"]
    c2 += ["hi", "p", "control", "outcome"]
    if core is None:
        return pd.DataFrame(columns=c1), pd.DataFrame(columns=c2)
    ann, sr = core["ann"], core["sr"]
    fam = ann.groupby("variant", sort=True)["family"].first().to_dict()
    is_rec = ann.groupby("arch", sort=True)["recurrent_"].first().to_dict()
    sr = sr.assign(fam=sr["variant"].map(fam))

    def best(df):
        return min(df.itertuples(), key=lambda t: (-t.rate, str(t.variant)))

    rows1, rows2 = [], []
    for (cond, arch), sub in sr.groupby(["condition", "arch"], sort=True):
        if not is_rec.get(arch, True):
            continue
        g = sub[sub["fam"] == "gradient"]
        cm = sub[sub["variant"].astype(str).str.split(" (", n=1, regex=False).str[0] == "cmaes"]
        o = cm if not cm.empty else sub[sub["fam"] != "gradient"]
        if g.empty or o.empty:
            continue
        B, O = best(g), best(o)
        d, lo, hi = A.diff_interval(B.successes, B.n, O.successes, O.n)
        p = A.fisher_exact(B.successes, B.n, O.successes, O.n)
        if B.successes == 0 and O.successes == 0:
            outc = "nothing solved"
        elif hi < 0 and p < ALPHA:
            outc = "BPTT more often stuck"
        elif lo > 0 and p < ALPHA:
            outc = "BPTT less often stuck"
        elif lo >= -EQUIV_DIFF and hi <= EQUIV_DIFF:
            outc = "equal"
        else:
            outc = "undecided"
        rows1.append(
            {
                "condition": cond,
                "arch": arch,
                "bptt": B.variant,
                "k_b": B.successes,
                "n_b": B.n,
                "other": O.variant,
                "k_o": O.successes,
                "n_o": O.n,
                "d": d,
                "lo": lo,
                "hi": hi,
                "p": p,
                "outcome": outc,
            }
        )
    for cond, sub in sr.groupby("condition", sort=True):
        archs = sorted(sub["arch"].unique(), key=str)
        recs = [a for a in archs if is_rec.get(a, True)]
        ffs = [a for a in archs if not is_rec.get(a, True)]
        if not recs or not ffs:
            continue
        rec = "recurrent" if "recurrent" in recs else recs[0]
        g_rec = sub[(sub["arch"] == rec) & (sub["fam"] == "gradient")]
        if g_rec.empty:
            continue
        B = best(g_rec)
        for ff in ffs:
            f_all = sub[sub["arch"] == ff]
            same = f_all[f_all["variant"] == B.variant]
            if same.empty:
                same = f_all[f_all["fam"] == "gradient"]
            if same.empty:
                continue
            F = best(same)
            d, lo, hi = A.diff_interval(B.successes, B.n, F.successes, F.n)
            p = A.fisher_exact(B.successes, B.n, F.successes, F.n)
            ctrl = None
            cm_r = sub[(sub["arch"] == rec) & (sub["fam"] != "gradient")]
            cm_f = f_all[f_all["fam"] != "gradient"]
            if not cm_r.empty and not cm_f.empty:
                cr = best(cm_r)
                cf_same = cm_f[cm_f["variant"] == cr.variant]
                cf = best(cf_same if not cf_same.empty else cm_f)
                ctrl = (cr.variant, *A.diff_interval(cr.successes, cr.n, cf.successes, cf.n))
            if int(f_all["successes"].sum()) == 0:
                outc = "not informative"
            elif hi < 0 and p < ALPHA:
                outc = "recurrence hurts"
            elif lo > 0 and p < ALPHA:
                outc = "recurrence helps"
            elif lo >= -EQUIV_DIFF and hi <= EQUIV_DIFF:
                outc = "equal"
            else:
                outc = "undecided"
            rows2.append(
                {
                    "condition": cond,
                    "rec_arch": rec,
                    "ff_arch": ff,
                    "bptt": B.variant,
                    "k_r": B.successes,
                    "n_r": B.n,
                    "k_f": F.successes,
                    "n_f": F.n,
                    "d": d,
                    "lo": lo,
                    "hi": hi,
                    "p": p,
                    "control": ctrl,
                    "outcome": outc,
                }
            )
    rows1.sort(key=lambda r: (natkey(r["condition"]), natkey(r["arch"])))
    rows2.sort(key=lambda r: (natkey(r["condition"]), natkey(r["ff_arch"])))
    return pd.DataFrame(rows1, columns=c1), pd.DataFrame(rows2, columns=c2)


def claim_b(b1: pd.DataFrame, b2: pd.DataFrame, n_min: int) -> str:
    """The claim (b) verdict label from the b1 / b2 outcomes (rules in RULES_TEXT)."""
    o1 = [o for o in b1["outcome"] if o != "nothing solved"] if len(b1) else []
    o2 = [o for o in b2["outcome"] if o != "not informative"] if len(b2) else []
    if not len(b1) and not len(b2):
        return "not measured"
    if n_min < MIN_SEEDS:
        return "inconclusive at this scale"
    pos1, neg1 = "BPTT more often stuck" in o1, "BPTT less often stuck" in o1
    pos2, neg2 = "recurrence hurts" in o2, "recurrence helps" in o2
    if pos1 and pos2 and not (neg1 or neg2):
        return "supported"
    if pos1 or pos2:
        return "partly supported"
    both = o1 + o2
    if both and (neg1 or neg2 or all(o == "equal" for o in both)):
        return "not supported"
    return "inconclusive at this scale"
