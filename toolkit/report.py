"""``results/REPORT.md``: the question, the setup, every experiment's figures and tables, and a
verdict on each claim, generated from the stored results only.

:func:`write_report` reads every experiment directory under ``results_root``
(``runs.parquet``, ``traces.parquet``, ``meta.json``, the special tables such as
``gradient_fidelity.parquet`` or ``parallel.parquet``, and the PNGs under ``figures/``) and
writes one markdown document a researcher can read top to bottom:

1. the question (the two textbook claims about BPTT);
2. the setup: network, tasks, methods, budgets, cost units, seeds, machine, versions, commit
   and scale -- everything read from ``meta.json`` and the run tables;
3. one section per experiment, in the order of issue 8 (speed, local_optima, lag,
   random_guessing, scaling, truncation, cliff, reber, parallel, then any other directory that
   holds results), with its figures (relative PNG links) and a results table: success rates
   with Wilson intervals, median final loss with a bootstrap CI, ERT with a bootstrap CI, and
   the ERT ratio of every method to the best BPTT variant with its CI and a Mann-Whitney p;
   an experiment that is missing gets a one-line note, a partial one is reported as such;
4. a verdict paragraph per claim, *generated from the numbers* by the rules in
   :data:`RULES_TEXT` (printed in the report too), with the number of seeds behind it and
   whether that is enough;
5. published numbers for the same setups beside ours (:data:`PUBLISHED`), each with its
   citation, and a statement where no directly comparable published number exists.

The text is deterministic: bootstraps are seeded (:data:`SEED`, :data:`N_BOOT`), every table is
sorted, and the only timestamps are those read from ``meta.json``; the same results give the
same bytes. A missing, partial or unreadable experiment never stops the report: the section
says what is missing instead.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from toolkit import analysis as A

__all__ = [
    "EXPERIMENTS",
    "PUBLISHED",
    "RULES_TEXT",
    "claim_a",
    "claim_b",
    "diff_interval",
    "fisher_exact",
    "fmt_num",
    "load_experiment",
    "render_report",
    "write_report",
]

REPORT_FILE = "REPORT.md"
LEVEL = 0.95  # every interval in the report
N_BOOT = 2000  # bootstrap resamples
SEED = 0  # bootstrap seed
MIN_SEEDS = 10  # fewer seeds per condition: every verdict is "inconclusive at this scale"
PAPER_SEEDS = 30  # the paper scale's seeds per condition
EQUIV_RATIO = 2.0  # ERT ratios within [1/2, 2] count as "equally fast"
EQUIV_DIFF = 0.2  # success-rate differences within +-0.2 count as "equally often stuck"
ALPHA = 0.05  # significance level of the tests that accompany the CIs
STALL_TOL = 0.01  # a failed run "stalled": < 1 % best-loss improvement over its second half

#: (directory name, title, what the experiment measures) in the order of issue 8
EXPERIMENTS = (
    (
        "speed",
        "Speed: BPTT against evolutionary optimization",
        "Which optimizer reaches each task's published success criterion at the lowest cost, "
        "under equal budgets counted in forward-pass equivalents: gradient training (BPTT "
        "variants) against evolutionary methods and random guessing. Feeds claim (a).",
    ),
    (
        "local_optima",
        "Local optima: many seeds on small networks",
        "How often each optimizer ends in a poor local optimum on small networks where bad "
        "optima are known to exist: final-loss distributions, success rates, the number of "
        "distinct final-loss levels (basins), and the same networks with the recurrence "
        "removed (W_hh = 0, a feed-forward net on a window of inputs). Feeds claim (b).",
    ),
    (
        "lag",
        "Time lags",
        "Success rate and cost against the time lag the network must bridge, as in Bengio, "
        "Simard & Frasconi (1994) and Hochreiter & Schmidhuber (1997).",
    ),
    (
        "random_guessing",
        "Random weight guessing",
        "The setups of Schmidhuber, Hochreiter & Bengio (2001), 'Evaluating benchmark problems "
        "by random guessing': the mean number of guesses to solve, beside BPTT and CMA-ES.",
    ),
    (
        "scaling",
        "Scaling with the number of weights",
        "Expected running time against the number of weights (hidden size): where evolution "
        "falls behind gradient training, and how fast.",
    ),
    (
        "truncation",
        "Truncated BPTT",
        "Unfold depth k from 1 to full BPTT: how well the truncated gradient points along the "
        "full one, and what truncation does to success and cost.",
    ),
    (
        "cliff",
        "The error surface: cliffs and bifurcations",
        "The error surface of one recurrent unit (Pascanu, Mikolov & Bengio 2013, Fig. 6; "
        "Doya 1992) with optimizer paths, and loss slices of trained Elman networks.",
    ),
    (
        "reber",
        "Embedded Reber grammar",
        "An Elman network trained on the embedded Reber grammar with BPTT and with CMA-ES: "
        "success rate across seeds.",
    ),
    (
        "parallel",
        "Parallel execution",
        "One fixed sweep at --jobs 1 and at --jobs = all cores: wall time, speedup and efficiency.",
    ),
)
_KNOWN = [e[0] for e in EXPERIMENTS]

#: figure stems written by toolkit.plots.plot_experiment, in reading order, with captions
FIGURES = (
    (
        "convergence_fwd_equiv",
        "Best training loss so far against cost in forward-pass equivalents "
        "(median line and interquartile band over seeds).",
    ),
    ("convergence_wall_s", "The same against wall-clock seconds (compile time excluded)."),
    ("ecdf", "Runtime ECDF (COCO): the fraction of (run, loss target) pairs reached against cost."),
    ("final_loss", "Final loss of every seed per method, with the success rate and its CI."),
    ("success_vs_*", "Success rate against the swept length or lag, with Wilson 95 % bands."),
    ("scaling", "ERT against the number of weights (log-log) with bootstrap CIs."),
    ("truncation", "Unfold depth k: gradient cosine to full BPTT, success rate and ERT."),
    (
        "cliff",
        "Single-unit error surface with a cliff, with the paths of gradient descent, "
        "norm-clipped gradient descent and CMA-ES.",
    ),
    ("bifurcation", "Fixed points of the single unit against its bias (Doya 1992)."),
    (
        "loss_slices",
        "Elman-net loss on filter-normalised slices and on lines between seeds' solutions.",
    ),
    ("grad_norm_slice", "Loss and gradient norm along one slice (exploding-gradient spikes)."),
    ("parallel_scaling", "Sweep wall time, speedup and efficiency against --jobs."),
)

_SHB = (
    "Schmidhuber, Hochreiter & Bengio (2001), 'Evaluating benchmark problems by random "
    "guessing', in Kolen & Kremer (eds.), A Field Guide to Dynamical Recurrent Networks"
)
_SHB_SETUP = (
    "weights U(-100, 100), sequence lengths 500-600, 100 training sequences, a guess counts "
    "when every training sequence is classified right (|error| < 0.1 at the end)"
)
#: published numbers for setups the suite reproduces, only numbers checked against the source.
#: ``task``/``method`` select our rows (None: no like-for-like row exists); ``variant``, when
#: set, must equal the run's task parameter ``variant`` (absent: our latch is variant II, see
#: toolkit/tasks.py); ``note`` is printed beside our number, ``missing`` when there is none.
PUBLISHED = (
    {
        "what": "latch, variant I: mean guesses to solve",
        "value": "6 (mean of 40 simulations)",
        "setup": "one tanh unit; free parameters: recurrent weight and the two class inputs; "
        "targets +-0.8, Gaussian noise (variance 0.2) after the first step; " + _SHB_SETUP,
        "source": _SHB + ", section 'Latch and 2-sequence problems'.",
        "task": "latch",
        "variant": "I",
        "method": "random",
        "note": "our latch I substitute has 2 free weights (recurrent and input weight) "
        "where the paper has 3 parameters: an Elman net cannot make inputs free "
        "(experiments/random_guessing.toml)",
        "missing": "no like-for-like run: the toolkit's latch task is variant II unless a "
        "random_guessing part named latch_I provides the variant I substitute",
    },
    {
        "what": "latch, variant I: trials of the methods of Bengio et al. (1994)",
        "value": "1600",
        "setup": "as reported (not re-measured) by Schmidhuber, Hochreiter & Bengio (2001)",
        "source": _SHB + ", section 'Latch and 2-sequence problems', quoting Bengio, Simard "
        "& Frasconi (1994).",
        "task": None,
        "method": None,
        "note": "",
        "missing": "no like-for-like run",
    },
    {
        "what": "latch, variant II: mean guesses to solve",
        "value": "22",
        "setup": "one tanh unit with self, input and bias weights; inputs +-1, targets +-1, "
        "Gaussian noise (variance 0.2) after the first step; " + _SHB_SETUP,
        "source": _SHB + ", section 'Latch and 2-sequence problems'.",
        "task": "latch",
        "variant": "II",
        "method": "random",
        "note": "",
        "missing": "no run of ours",
    },
    {
        "what": "parity, architecture A1 (1 hidden unit), no noise: mean guesses to solve",
        "value": "2906",
        "setup": "fully recurrent net, 1 input, 1 hidden, 1 output unit, all biased, the "
        "output unit recurrent; inputs +-1; " + _SHB_SETUP,
        "source": _SHB + ", section 'Parity problem'.",
        "task": "parity",
        "method": "random",
        "note": "a plain Elman net's readout is not recurrent, so our architecture differs",
        "missing": "no run of ours",
    },
    {
        "what": "parity, architecture A2, no noise: mean guesses to solve",
        "value": "2797",
        "setup": "each hidden unit sees the input, the output unit and itself, the output unit "
        "sees all units, all biased; inputs +-1; " + _SHB_SETUP,
        "source": _SHB + ", section 'Parity problem'.",
        "task": None,
        "method": None,
        "note": "",
        "missing": "no like-for-like run (architecture A2 is not an Elman net)",
    },
)

#: experiments for which no directly comparable published number exists, and why
NO_PUBLISHED = {
    "speed": "No published work measures BPTT against evolutionary optimization on Elman "
    "networks side by side under equal cost accounting (issue 8); no comparable number.",
    "local_optima": "Elman (1990) trains the 2-hidden-unit temporal-XOR net but reports no "
    "success rate over seeds; no comparable number.",
    "lag": "Bengio, Simard & Frasconi (1994) show success against lag as curves for other "
    "algorithms and settings, not as a table we can set beside ours; no comparable number.",
    "scaling": "No comparable published number.",
    "truncation": "Williams & Peng (1990) define BPTT(h; h') but report no gradient cosines; "
    "no comparable number.",
    "cliff": "Pascanu, Mikolov & Bengio (2013, Fig. 6) and Doya (1992) are qualitative "
    "(figures); no number to compare.",
    "reber": "Hochreiter & Schmidhuber (1997, Table 1) report results of other training "
    "procedures (online presentations, Elman's own procedure) on this grammar; we do not "
    "reprint them because we could not check the exact figures against the paper here.",
    "parallel": "Machine-specific; no comparable number.",
}

RULES_TEXT = f"""\
All intervals are {LEVEL:.0%} intervals and all tests two-sided at the {ALPHA:g} level. Costs are
forward-pass equivalents (see Setup). A run *succeeds* when it meets its task's published
criterion on the held-out test set (outcome `solved`, or `target` when a loss target was set);
runs that ended with a software error are left out of every statistic (and counted in the
experiment's status line).

* **ERT** (expected running time, COCO): the total cost of all runs divided by the number of
  successful runs (infinite when none succeeded), with a percentile bootstrap CI over runs
  ({N_BOOT} resamples, seed {SEED}).
* **ERT ratio** of a method: its ERT divided by the ERT of the *best BPTT variant* of the same
  condition (the gradient method with the lowest finite ERT), with a bootstrap CI (both samples
  resampled); above 1 means BPTT is faster. The p-value is a Mann-Whitney U test on the
  per-seed costs to success, failed runs ranked after every success (Gehan).
* **Success rates**: Wilson score intervals. Differences of two success rates: Newcombe's
  hybrid score interval (from the two Wilson intervals) and Fisher's exact test.
* **Median final loss**: percentile bootstrap CI; diverged runs count as +inf.

**Claim (a)** is judged on the speed experiment, per condition (a task and its settings). Let
B be the best BPTT variant and E the best non-gradient method (lowest ERT; random guessing
counts as a general-purpose optimizer), r = ERT(E) / ERT(B) with CI [lo, hi] and p the
Mann-Whitney p of E against B. A condition is

* *BPTT faster* if lo > 1 and p < {ALPHA:g};
* *evolution faster* if hi < 1 and p < {ALPHA:g} (the test is required too because the
  bootstrap ratio CI degenerates when one side succeeds in only a few seeds);
* *equally fast* if the CI lies within [1/{EQUIV_RATIO:g}, {EQUIV_RATIO:g}];
* *nothing solved* if neither solved any seed; otherwise *undecided*.

Overall, ignoring conditions where nothing was solved: **supported** if BPTT is faster in every
condition; **partly supported** if in some but not all; **not supported** if in none and
either evolution is faster somewhere or every condition is *equally fast*; otherwise
**inconclusive at this scale**.

**Claim (b)** is judged on the local_optima experiment, per condition (a task, its settings and
the hidden size). Two comparisons, each a difference d of success rates with Newcombe's CI
[lo, hi] and Fisher's p:

* (b1) on the recurrent net, the best BPTT variant (highest success rate) against CMA-ES (or
  the best evolutionary method without CMA-ES): d = success(BPTT) - success(CMA-ES). *BPTT
  more often stuck* if hi < 0 and p < {ALPHA:g}; *BPTT less often stuck* if lo > 0 and
  p < {ALPHA:g}; *equal* if the CI lies within [-{EQUIV_DIFF:g}, {EQUIV_DIFF:g}]; *nothing
  solved* if neither solved any seed; otherwise *undecided*.
* (b2) the same BPTT variant on the recurrent net against the feed-forward net (W_hh = 0, an
  input window): d = success(recurrent) - success(feed-forward). *Recurrence hurts* if hi < 0
  and p < {ALPHA:g}; *recurrence helps* if lo > 0 and p < {ALPHA:g}; *equal* within
  [-{EQUIV_DIFF:g}, {EQUIV_DIFF:g}]; *not informative* if no method solved the feed-forward net
  in any seed (it cannot represent or reach the task within the budget, so its failures say
  nothing about local optima); otherwise *undecided*.

Overall: **supported** if (b1) finds BPTT more often stuck in some condition *and* (b2) finds
that recurrence hurts in some condition, with no significant result the other way; **partly
supported** if only one of the two holds somewhere (or results go both ways); **not
supported** if neither holds anywhere and either a significant result goes the other way or
every comparison is *equal*; otherwise **inconclusive at this scale**.

**Seeds.** Any verdict needs at least {MIN_SEEDS} seeds per condition and method; with fewer,
the verdict is **inconclusive at this scale** whatever the numbers. With n seeds per arm a
success-rate difference is detected reliably (80 % power, two-sided 5 % level, rates near 0.5)
only when it exceeds about 2.8 * sqrt(0.5 / n): 0.89 at n = 5, 0.63 at n = 10, 0.44 at n = 20,
0.36 at n = 30, 0.28 at n = 50. The paper scale runs at least {PAPER_SEEDS} seeds.

**Not in the rules.** Basins (distinct final-loss levels; single linkage on log10 loss with a
0.5-decade gap) and stalled failures (failed runs whose best loss improved by less than
{STALL_TOL:.0%} over the second half of their budget: stuck rather than slow) are descriptive;
so are the same comparisons in the other experiments, shown as supporting evidence."""


# ------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------
def fmt_num(x, sig: int = 3) -> str:
    """A number with ``sig`` significant digits: plain for 1e-3 <= |x| < 1e4 (``0.0123``,
    ``12.3``, ``1230``), else ``1.23e5``; ``inf`` as ``∞``; None/NaN as ``–``."""
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    e = math.floor(math.log10(abs(v)))
    r = float(f"{v:.{sig - 1}e}")  # rounded to sig digits (may carry into the next decade)
    if r != 0:
        e = math.floor(math.log10(abs(r)))
    if -3 <= e < 4:
        return f"{r:.{max(sig - 1 - e, 0)}f}"
    m, ex = f"{r:.{sig - 1}e}".split("e")
    return f"{m}e{int(ex)}"


def _ci(est, lo, hi, sig: int = 3) -> str:
    if est is None or (isinstance(est, float) and math.isnan(est)):
        return "–"
    s = fmt_num(est, sig)
    if lo is None or hi is None or (math.isnan(float(lo)) and math.isnan(float(hi))):
        return s
    return f"{s} [{fmt_num(lo, sig)}, {fmt_num(hi, sig)}]"


def _p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    p = float(p)
    if p < 0.001:
        return "<0.001"
    return f"{p:.2g}"


def _pt(p) -> str:
    """p in running text: 'p < 0.001', 'p = 0.37'."""
    s = _p(p)
    return f"p {s[0]} {s[1:]}" if s.startswith("<") else f"p = {s}"


def _rate(k: int, n: int) -> str:
    if n == 0:
        return "–"
    lo, hi = A.wilson_interval(k, n, LEVEL)
    return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list]) -> list[str]:
    """Markdown pipe table (cells escaped)."""
    out = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    out.append("|" + "|".join("---" for _ in header) + "|")
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


def _label(variant: str) -> str:
    """Readable method label ('bptt_adam (lr=0.1)' -> 'BPTT (Adam), lr=0.1')."""
    try:
        from toolkit.plots import method_label

        return method_label(variant)
    except Exception:  # plotting stack unavailable: the raw name is still exact
        return str(variant)


def _order_key(variant: str):
    try:
        from toolkit.plots import METHOD_COLORS

        known = list(METHOD_COLORS)
    except Exception:
        known = []
    base = str(variant).split(" (", 1)[0]
    return (known.index(base) if base in known else len(known), str(variant))


def _join(items: list[str]) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _natkey(s) -> list:
    """Sort key that orders embedded integers numerically ('T=5' before 'T=10')."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


# ------------------------------------------------------------------------------------------
# statistics the analysis layer does not have
# ------------------------------------------------------------------------------------------
def diff_interval(k1: int, n1: int, k2: int, n2: int, level: float = LEVEL):
    """Newcombe's hybrid score interval (1998, method 10) for p1 - p2 from two Wilson
    intervals. Returns (d, lo, hi); NaNs when a sample is empty."""
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan, math.nan
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = A.wilson_interval(k1, n1, level)
    l2, u2 = A.wilson_interval(k2, n2, level)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(lo, -1.0), min(hi, 1.0)


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact test of k1/n1 against k2/n2 (sum of the hypergeometric
    probabilities no larger than the observed one)."""
    if n1 == 0 or n2 == 0:
        return math.nan
    K, N = k1 + k2, n1 + n2

    def lcomb(n, k):
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    def lp(x):
        return lcomb(n1, x) + lcomb(n2, K - x) - lcomb(N, K)

    lo, hi = max(0, K - n2), min(K, n1)
    l0 = lp(k1)
    p = sum(math.exp(lp(x)) for x in range(lo, hi + 1) if lp(x) <= l0 + 1e-7)
    return min(1.0, p)


def _mdd(n: int) -> float:
    """Success-rate difference detectable with 80 % power at the two-sided 5 % level (p ~ 0.5)."""
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    return z * math.sqrt(0.5 / n) if n > 0 else math.inf


def _seeds_note(n_min: int, n_max: int, claim: str) -> str:
    """Seeds behind a verdict and whether they suffice (claim 'a': ERT ratios, 'b': success
    rates)."""
    n = f"{n_min}" if n_min == n_max else f"{n_min}-{n_max}"
    head = f"Seeds per condition and method: {n}."
    if n_min < MIN_SEEDS:
        return (
            f"{head} That is **too few** for a verdict (the rules need at least {MIN_SEEDS}), "
            "so the verdict is *inconclusive at this scale* whatever the point estimates say; "
            "run `make experiments SCALE=paper`."
        )
    if claim == "a":
        what = (
            "the ERT-ratio CIs above show the resolution reached: a speed difference whose CI "
            "still contains 1 may be real but is not detected"
        )
    else:
        what = (
            f"success-rate differences smaller than about {_mdd(n_min):.2f} (80 % power, 5 % "
            "level) may be real but are not detected reliably"
        )
    if n_min < PAPER_SEEDS:
        return (
            f"{head} Enough for the rules, but only large effects can be resolved: {what} at "
            f"this scale (the paper scale runs >= {PAPER_SEEDS} seeds)."
        )
    return f"{head} At least the paper scale's {PAPER_SEEDS}; {what}."


# ------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------
@dataclass
class Experiment:
    """What one results directory holds (None where a file is missing or unreadable)."""

    name: str
    path: Path
    meta: dict | None = None
    runs: pd.DataFrame | None = None
    traces: pd.DataFrame | None = None
    tables: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    cache: dict = field(default_factory=dict)

    @property
    def config(self) -> dict:
        m = self.meta or {}
        c = m.get("config_resolved")
        return c if isinstance(c, dict) else {}


def _read_parquet(path: Path, problems: list) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path).reset_index(drop=True)
    except Exception as e:
        problems.append(f"`{path.name}` could not be read ({type(e).__name__})")
        return None


def load_experiment(path) -> Experiment:
    """Read a results directory without ever raising for missing or unreadable files; what
    could not be read is listed in ``problems``."""
    d = Path(path)
    exp = Experiment(name=d.name, path=d)
    mp = d / "meta.json"
    if mp.is_file():
        try:
            meta = json.loads(mp.read_text(encoding="utf-8"))
            exp.meta = meta if isinstance(meta, dict) else None
            if exp.meta is None:
                exp.problems.append("`meta.json` does not hold a JSON object")
        except (OSError, ValueError) as e:
            exp.problems.append(f"`meta.json` could not be read ({type(e).__name__})")
    exp.runs = _read_parquet(d / "runs.parquet", exp.problems)
    exp.traces = _read_parquet(d / "traces.parquet", exp.problems)
    if exp.runs is not None:
        need = {"task", "method", "outcome", "run_id"}
        missing = sorted(need - set(exp.runs.columns))
        if missing:
            exp.problems.append(f"`runs.parquet` lacks column(s) {', '.join(missing)}")
            exp.runs = None
    if exp.traces is not None and not {"run_id", "evals", "best_loss"} <= set(exp.traces):
        exp.problems.append("`traces.parquet` lacks the trace columns")
        exp.traces = None
    skip = {"runs", "traces", "thetas"}
    for p in sorted(d.glob("*.parquet")):
        if p.stem not in skip:
            t = _read_parquet(p, exp.problems)
            if t is not None:
                exp.tables[p.stem] = t
    fig_dir = d / "figures"
    if fig_dir.is_dir():
        exp.figures = sorted(p.stem for p in fig_dir.glob("*.png"))
    return exp


def _present(d: Path) -> bool:
    return d.is_dir() and (
        (d / "meta.json").is_file()
        or any(d.glob("*.parquet"))
        or (d / "figures").is_dir()
        or (d / "runs").is_dir()
    )


# ------------------------------------------------------------------------------------------
# per-experiment analysis (cached on the Experiment)
# ------------------------------------------------------------------------------------------
def _family(runs: pd.DataFrame) -> pd.Series:
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


def _usable(exp: Experiment) -> pd.DataFrame | None:
    """Runs without software errors, with 'family' filled in; None when there are none."""
    r = exp.runs
    if r is None or not len(r):
        return None
    r = r[r["outcome"].astype(str) != "error"].reset_index(drop=True)
    if not len(r):
        return None
    r = _clean(r)
    r["family"] = _family(r)
    for c in ("fwd_equiv", "evals", "wall_s", "final_loss", "best_loss"):
        if c not in r.columns:
            r[c] = np.nan
    return r


def _core(exp: Experiment, exclude=(), key="core") -> dict | None:
    """annotate + cost to success + ERT + comparisons + success + final loss, by
    (condition, variant)."""
    if key in exp.cache:
        return exp.cache[key]
    runs = _usable(exp)
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


def _seed_range(core: dict | None) -> tuple[int, int]:
    if core is None or core["sr"].empty:
        return 0, 0
    n = core["sr"]["n"]
    return int(n.min()), int(n.max())


# ------------------------------------------------------------------------------------------
# claim (a): speed panels
# ------------------------------------------------------------------------------------------
def speed_panels(exp: Experiment, exclude=(), key="core") -> pd.DataFrame:
    """Per condition: best BPTT variant B against the best non-gradient method E, with the
    ERT ratio r = ERT(E) / ERT(B), its CI, the Mann-Whitney p on per-seed costs, the same
    ratio in wall-clock seconds, and the outcome class of the claim (a) rules."""
    core = _core(exp, exclude=exclude, key=key)
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
            w_out = _classify_ratio(
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
                "outcome": _classify_ratio(B.ert, E.ert, rat["lo"], rat["hi"], mw["p_value"]),
            }
        )
    rows.sort(key=lambda r: _natkey(r["condition"]))
    return pd.DataFrame(rows, columns=cols)


def _classify_ratio(ert_b, ert_e, lo, hi, p) -> str:
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
_ARCH_KEYS = (
    "recurrent",
    "window",
    "net.recurrent",
    "net.window",
    "grid.recurrent",
    "grid.window",
    "grid.net.recurrent",
    "grid.net.window",
)


def _arch(runs: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(recurrent bool, window int) per run, from the columns or the grid keys."""

    def col(names, default):
        for c in names:
            if c in runs.columns:
                s = runs[c]
                return s.where(s.notna(), default)
        return pd.Series([default] * len(runs), index=runs.index)

    rec = col(("recurrent", "grid.net.recurrent", "grid.recurrent"), True).map(bool)
    win = col(("window", "grid.net.window", "grid.window"), 1).map(int)
    return rec, win


def _arch_label(rec: bool, win: int) -> str:
    if rec:
        return "recurrent" if win == 1 else f"recurrent, window {win}"
    return f"feed-forward, window {win}"


def _optima_core(exp: Experiment) -> dict | None:
    key = "optima"
    if key in exp.cache:
        return exp.cache[key]
    runs = _usable(exp)
    out = None
    if runs is not None:
        ann = A.annotate(runs, exclude=_ARCH_KEYS)
        rec, win = _arch(ann)
        ann["recurrent_"] = rec.to_numpy()
        ann["arch"] = [_arch_label(r, w) for r, w in zip(rec, win, strict=True)]
        by = ("condition", "arch", "variant")
        sr = A.success_rate(ann, by=by, level=LEVEL)
        bas = A.basins(ann, by=by)
        out = {"ann": ann, "sr": sr, "basins": bas, "stalled": _stalled(ann, exp.traces)}
    exp.cache[key] = out
    return out


def _stalled(ann: pd.DataFrame, traces: pd.DataFrame | None) -> pd.Series:
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


def optima_panels(exp: Experiment) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(b1, b2) tables. b1: per (condition, recurrent arch) the best BPTT variant against
    CMA-ES (or the best non-gradient method without CMA-ES). b2: per condition, the best
    BPTT variant of the recurrent net against the same variant on each feed-forward net,
    with CMA-ES's recurrent-minus-feed-forward difference as a control."""
    core = _optima_core(exp)
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
        d, lo, hi = diff_interval(B.successes, B.n, O.successes, O.n)
        p = fisher_exact(B.successes, B.n, O.successes, O.n)
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
            d, lo, hi = diff_interval(B.successes, B.n, F.successes, F.n)
            p = fisher_exact(B.successes, B.n, F.successes, F.n)
            ctrl = ""
            cm_r = sub[(sub["arch"] == rec) & (sub["fam"] != "gradient")]
            cm_f = f_all[f_all["fam"] != "gradient"]
            if not cm_r.empty and not cm_f.empty:
                cr = best(cm_r)
                cf_same = cm_f[cm_f["variant"] == cr.variant]
                cf = best(cf_same if not cf_same.empty else cm_f)
                dc, lc, hc = diff_interval(cr.successes, cr.n, cf.successes, cf.n)
                ctrl = f"{_label(cr.variant)}: {_ci(dc, lc, hc, 2)}"
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
    rows1.sort(key=lambda r: (_natkey(r["condition"]), _natkey(r["arch"])))
    rows2.sort(key=lambda r: (_natkey(r["condition"]), _natkey(r["ff_arch"])))
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


# ------------------------------------------------------------------------------------------
# the document
# ------------------------------------------------------------------------------------------
def _meta_get(meta: dict | None, *keys, default=None):
    cur = meta or {}
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            return default
        cur = cur[k]
    return cur


def _scales(exps: list[Experiment]) -> list[str]:
    return sorted({str(_meta_get(e.meta, "scale")) for e in exps if e.meta and "scale" in e.meta})


def _intro(exps: list[Experiment], missing: list[str]) -> list[str]:
    scales = _scales(exps)
    sc = _join([f"`{s}`" for s in scales]) if scales else "unknown (no meta.json)"
    return [
        "# BPTT against evolutionary optimization for Elman networks: results",
        "",
        "Generated by `bptt report` (`toolkit/report.py`) from the stored tables and figures "
        "under this directory; every number below is computed from them, and every verdict "
        "follows from the numbers by the rules in the section *How the verdicts are decided*. "
        f"Scale: {sc}. Experiments with results: {len(exps)} of {len(_KNOWN)} in the suite"
        + (f" (missing: {_join(missing)})." if missing else ".")
        + " "
        + _time_line(exps),
        "",
    ]


def _question() -> list[str]:
    return [
        "## The question",
        "",
        "The textbook account of backpropagation through time (BPTT; Werbos 1990; Williams & "
        "Peng 1990) makes two claims:",
        "",
        "* **(a)** BPTT tends to be significantly faster for training recurrent networks than "
        "general-purpose optimization such as evolutionary optimization;",
        "* **(b)** BPTT has difficulty with local optima, more than feed-forward networks "
        "have, because the recurrent feedback makes the error surface chaotic (Pascanu, "
        "Mikolov & Bengio 2013; Doya 1992).",
        "",
        "This report measures both on Elman networks, with every optimizer training the same "
        "network on the same loss and data, counted in the same cost units.",
        "",
    ]


def _summary(va: dict, vb: dict) -> list[str]:
    return [
        "## Verdicts at a glance",
        "",
        *md_table(
            ["claim", "verdict", "basis"],
            [
                ["(a) BPTT is faster than evolutionary optimization", va["label"], va["basis"]],
                ["(b) BPTT is more often stuck in local optima", vb["label"], vb["basis"]],
            ],
        ),
        "",
        "Details in the sections *Claim (a)* and *Claim (b)* below.",
        "",
    ]


def _values(series: pd.Series) -> str:
    vals = []
    for v in series:
        if v is None or (not isinstance(v, list | dict | tuple) and pd.isna(v)):
            continue
        s = A._fmt(v) if not isinstance(v, bool | np.bool_) else str(bool(v)).lower()
        if s not in vals:
            vals.append(s)
    try:
        vals.sort(key=lambda s: (0, float(s)))
    except ValueError:
        vals.sort()
    return "|".join(vals) if vals else "–"


def _params_text(json_series: pd.Series, skip=()) -> str:
    dicts = [A._json(s) for s in json_series]
    keys = sorted(set().union(*dicts)) if dicts else []
    parts = []
    for k in keys:
        if k in skip:
            continue
        vals = pd.Series([d.get(k) for d in dicts], dtype=object)
        vs = _values(vals.map(lambda v: "null" if v is None else v))
        parts.append(f"{k}={vs}")
    return ", ".join(parts) if parts else "–"


def _setup(exps: list[Experiment]) -> list[str]:
    lines = ["## Setup", ""]
    with_runs = [e for e in exps if e.runs is not None and len(e.runs)]
    # network
    lines += [
        "### Network",
        "",
        "An Elman network: h_t = act(W_xh a_t + W_hh h_{t-1} + b_h) with h_{-1} = 0, "
        "y_t = out(W_hy h_t + b_y); the output nonlinearity and loss come from the task "
        "(linear: squared error, sigmoid: binary cross-entropy, softmax: cross-entropy), summed "
        "over batch and time with the task's mask. The feed-forward variant (recurrent = false) "
        "fixes W_hh = 0 and feeds a window of the last w inputs. Every optimizer trains the "
        "same flat parameter vector.",
        "",
    ]
    rows = []
    for e in with_runs:
        r = e.runs
        rec, win = _arch(r)
        rows.append(
            [
                e.name,
                _values(r["n_hidden"]) if "n_hidden" in r else "–",
                _values(r["hidden"]) if "hidden" in r else "–",
                _values(r["output"]) if "output" in r else "–",
                _values(rec),
                _values(win),
                _values(r["n_params"]) if "n_params" in r else "–",
            ]
        )
    if rows:
        lines += md_table(
            [
                "experiment",
                "hidden units",
                "hidden act.",
                "output",
                "recurrent",
                "input window",
                "weights",
            ],
            rows,
        )
        lines.append("")
    # tasks
    lines += ["### Tasks", ""]
    trow: dict[str, dict] = {}
    for e in with_runs:
        for task, sub in e.runs.groupby("task", sort=True):
            t = trow.setdefault(str(task), {"exps": [], "params": []})
            t["exps"].append(e.name)
            if "task_params" in sub:
                t["params"].extend(sub["task_params"].tolist())
    rows = []
    for task in sorted(trow):
        crit, cite = _task_info(task)
        rows.append(
            [
                task,
                ", ".join(trow[task]["exps"]),
                _params_text(pd.Series(trow[task]["params"], dtype=object)),
                crit,
                cite,
            ]
        )
    if rows:
        lines += md_table(["task", "experiments", "parameters", "solved when", "source"], rows)
    else:
        lines.append("No run tables were found.")
    lines.append("")
    # methods
    lines += ["### Methods", ""]
    mrow: dict[str, dict] = {}
    for e in with_runs:
        fam = _family(e.runs)
        for m, sub in e.runs.groupby("method", sort=True):
            t = mrow.setdefault(str(m), {"exps": [], "params": [], "family": set()})
            t["exps"].append(e.name)
            t["family"].update(fam[sub.index].tolist())
            if "method_params" in sub:
                t["params"].extend(sub["method_params"].tolist())
    rows = [
        [
            m,
            _label(m),
            "/".join(sorted(mrow[m]["family"])),
            ", ".join(mrow[m]["exps"]),
            _params_text(pd.Series(mrow[m]["params"], dtype=object)),
        ]
        for m in sorted(mrow, key=_order_key)
    ]
    if rows:
        lines += md_table(["method", "name", "family", "experiments", "hyperparameters"], rows)
        lines.append("")
    # budgets
    lines += ["### Budgets", ""]
    rows = []
    for e in with_runs:
        r = e.runs

        def col(c, r=r):
            return _values(r[c]) if c in r.columns else "–"

        rows.append(
            [
                e.name,
                col("budget_fwd_equiv"),
                col("budget_evals"),
                col("budget_wall_s"),
                col("target_loss"),
            ]
        )
    if rows:
        lines += md_table(
            [
                "experiment",
                "forward-pass equivalents",
                "loss evaluations",
                "wall seconds",
                "target loss",
            ],
            rows,
        )
        lines += [
            "",
            "A run stops at the first limit reached, when it meets the task's criterion "
            "(checked at log-spaced points on its best parameters so far), at the target loss "
            "when one is set, or when it diverges.",
            "",
        ]
    lines += _cost_units(with_runs)
    lines += _seeds_stats(exps)
    lines += _machine(exps)
    return lines


def _task_info(name: str) -> tuple[str, str]:
    try:
        import toolkit.tasks

        t = toolkit.tasks.get(name)
        cite = str(getattr(t, "citation", "") or "–")
        return str(getattr(t, "criterion", "") or "–"), cite
    except Exception:
        return "–", "–"


def _cost_units(exps: list[Experiment]) -> list[str]:
    lines = [
        "### Cost units: forward-pass equivalents",
        "",
        "Every optimizer is charged in the same unit. A *sequence-step* of forward "
        "computation (one time step of one sequence through the network) costs 1. An "
        "evolutionary method evaluating P parameter vectors on B sequences of length T spends "
        "P·B·T forward sequence-steps (`fwd_steps`). A gradient over the same batch spends B·T "
        "sequence-steps of forward *and* backward computation (`grad_steps`), each weighted by "
        "the measured cost ratio of one BPTT gradient to one forward loss pass for the "
        "network's hidden size. So `fwd_equiv = fwd_steps + ratio × grad_steps`. The ratio "
        "comes from the committed calibration table `toolkit/grad_cost.json` (log-interpolated "
        "in the hidden size), not from live timing, so the column is deterministic; the raw "
        "counts are stored too. Wall-clock seconds (compile time excluded) are reported "
        "beside it as a check.",
        "",
    ]
    gc = Path(__file__).resolve().parent / "grad_cost.json"
    try:
        table = json.loads(gc.read_text(encoding="utf-8"))
        ratios = table.get("ratio_by_hidden", {})
        items = sorted((int(h), float(v)) for h, v in ratios.items())
        note = str(table.get("note", ""))
    except (OSError, ValueError, TypeError, AttributeError):
        items, note = [], ""
    if items:
        lines += md_table(
            ["hidden units", *[str(h) for h, _ in items]],
            [["gradient / forward cost", *[fmt_num(v) for _, v in items]]],
        )
        lines += ["", f"Calibration: {note}" if note else "", ""]
    used = []
    for e in exps:
        r = e.runs
        if r is None or not {"fwd_equiv", "fwd_steps", "grad_steps", "n_hidden"} <= set(r):
            continue
        g = r[pd.to_numeric(r["grad_steps"], errors="coerce").fillna(0) > 0]
        for h, sub in g.groupby("n_hidden", sort=True):
            gs = sub["grad_steps"].astype(float)
            ratio = (sub["fwd_equiv"].astype(float) - sub["fwd_steps"].astype(float)) / gs
            used.append((int(h), float(np.median(ratio)), e.name))
    if used:
        by_h: dict[int, list] = {}
        for h, v, name in used:
            by_h.setdefault(h, []).append((v, name))
        rows = [
            [
                str(h),
                fmt_num(float(np.median([v for v, _ in by_h[h]]))),
                ", ".join(sorted({n for _, n in by_h[h]})),
            ]
            for h in sorted(by_h)
        ]
        lines += ["Ratios applied in the stored runs ((fwd_equiv − fwd_steps) / grad_steps):", ""]
        lines += md_table(["hidden units", "ratio", "experiments"], rows)
        lines.append("")
    return lines


def _seeds_stats(exps: list[Experiment]) -> list[str]:
    lines = [
        "### Seeds and statistics",
        "",
        "Each experiment has one root seed; each run's seed is derived from it and the run's "
        "resolved configuration and replicate index through `numpy.random.SeedSequence`, so "
        "no number depends on the order of runs, `--jobs` or the backend (the `seed` column of "
        "`runs.parquet` holds every run's seed). *Seeds per setting* is the number of "
        f"replicates of each configuration. Intervals are {LEVEL:.0%}: percentile bootstrap "
        f"({N_BOOT} resamples, seed {SEED}) for medians, ERT and ERT ratios, Wilson score "
        "intervals for success rates, Newcombe's interval for their differences; tests are "
        "Mann-Whitney U (costs) and Fisher's exact test (success counts).",
        "",
    ]
    rows = []
    for e in exps:
        core = _core(e) if e.runs is not None else None
        lo, hi = _seed_range(core)
        seeds = "–" if core is None else (f"{lo}" if lo == hi else f"{lo}-{hi}")
        rows.append(
            [
                e.name,
                str(_meta_get(e.meta, "scale", default="–")),
                str(_meta_get(e.meta, "root_seed", default="–")),
                str(_meta_get(e.meta, "replicates", default="–")),
                seeds,
                _status(e),
            ]
        )
    if rows:
        lines += md_table(
            [
                "experiment",
                "scale",
                "root seed",
                "replicates",
                "seeds per setting (stored)",
                "status",
            ],
            rows,
        )
        lines.append("")
    return lines


def _status(e: Experiment) -> str:
    n = 0 if e.runs is None else len(e.runs)
    planned = _meta_get(e.meta, "n_runs")
    status = _meta_get(e.meta, "status", default="no meta.json")
    err = 0
    if e.runs is not None and len(e.runs):
        err = int((e.runs["outcome"].astype(str) == "error").sum())
    s = f"{status}, {n}" + (f" of {planned}" if isinstance(planned, int) else "") + " runs stored"
    if err:
        s += f", {err} ended with an error (left out)"
    return s


def _machine(exps: list[Experiment]) -> list[str]:
    lines = ["### Machine, software, commit", ""]
    metas = [(e.name, e.meta) for e in exps if e.meta]
    if not metas:
        return [*lines, "No meta.json was found, so the machine and versions are unknown.", ""]

    def agg(getter):
        vals: dict[str, list[str]] = {}
        for name, m in metas:
            v = getter(m)
            vals.setdefault("–" if v is None else str(v), []).append(name)
        if len(vals) == 1:
            return next(iter(vals))
        return "; ".join(f"{v} ({', '.join(n)})" for v, n in sorted(vals.items()))

    def commit(m):
        c = _meta_get(m, "git", "commit")
        if c is None:
            return None
        dirty = _meta_get(m, "git", "dirty")
        return f"`{c}`" + (" (uncommitted changes)" if dirty else "")

    def cpu(m):
        model = _meta_get(m, "cpu", "model")
        cnt = _meta_get(m, "cpu", "count")
        av = _meta_get(m, "cpu", "available")
        return f"{model}, {cnt} logical CPUs ({av} available)" if model else None

    def threads(m):
        b = _meta_get(m, "threads", "backend")
        j = _meta_get(m, "threads", "jobs")
        s = _meta_get(m, "threads", "scheduler")
        return None if b is None else f"{b}, {j} jobs" + (f", scheduler {s}" if s else "")

    rows = [
        ["CPU", agg(cpu)],
        ["platform", agg(lambda m: m.get("platform"))],
        ["execution", agg(threads) + "; one thread per worker (Numba, BLAS, OpenMP)"],
        ["git commit", agg(commit)],
        ["toolkit version", agg(lambda m: m.get("toolkit_version"))],
        ["scale", agg(lambda m: m.get("scale"))],
    ]
    names = sorted({k for _, m in metas for k in (_meta_get(m, "versions") or {})})
    names = sorted(names, key=lambda k: (k != "python", k))
    for k in names:
        rows.append([k, agg(lambda m, k=k: _meta_get(m, "versions", k))])
    lines += md_table(["", "value"], rows)
    lines += ["", "Sweeps (as recorded in meta.json and parallel.parquet):", ""]
    srows = []
    for e in exps:
        if not e.meta:
            continue
        wall, cpu, n = _sweep_times(e)
        srows.append(
            [
                e.name,
                str(e.meta.get("end") or "–"),
                str(n),
                _duration(wall) if n else "–",
                _duration(cpu) if cpu is not None else "not recorded",
            ]
        )
    lines += md_table(
        ["experiment", "last session ended (UTC)", "sessions", "wall time", "CPU time of the runs"],
        srows,
    )
    lines.append("")
    return lines


def _sweep_times(exp: Experiment) -> tuple[float, float | None, int]:
    """(wall seconds, CPU seconds of the runs or None when not recorded, sessions) of the
    sweeps behind ``exp``: the sum over the sessions in meta.json's history (a suite
    experiment's merged meta holds every part's sessions), or, for the parallel experiment, over
    the timings in parallel.parquet (each a full sweep)."""
    from datetime import datetime

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


def _duration(seconds: float) -> str:
    """1.2 s, 45 s, 12.5 min, 2.1 h."""
    s = float(seconds)
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _time_line(exps: list[Experiment]) -> str:
    """One sentence: how long the sweeps behind the report took, wall and CPU, and where."""
    times = [(e, *_sweep_times(e)) for e in exps if e.meta]
    times = [t for t in times if t[3]]
    if not times:
        return "How long the sweeps took is not recorded (no meta.json with sessions)."
    wall = sum(t[1] for t in times)
    cpus = [t[2] for t in times if t[2] is not None]
    missing = [t[0].name for t in times if t[2] is None]
    cpu_model = next((_meta_get(e.meta, "cpu", "model") for e, *_ in times), None)
    jobs = sorted({str(_meta_get(e.meta, "threads", "jobs")) for e, *_ in times})
    s = (
        f"The sweeps behind these results took {_duration(wall)} of wall time"
        + (f" and {_duration(sum(cpus))} of CPU time in their runs" if cpus else "")
        + (f" (CPU time not recorded for {_join(missing)})" if missing and cpus else "")
        + (f" on {cpu_model}" if cpu_model else "")
        + (f" with --jobs {'/'.join(jobs)}" if jobs else "")
        + "; per experiment in *Machine, software, commit*."
    )
    return s


# ------------------------------------------------------------------------------------------
# experiment sections
# ------------------------------------------------------------------------------------------
def _figure_lines(exp: Experiment, rel: str) -> list[str]:
    if not exp.figures:
        return ["No figures (run `bptt plot` on this directory to draw them).", ""]
    lines, done = [], set()
    for stem, cap in FIGURES:
        if stem.endswith("*"):
            stems = [s for s in exp.figures if s.startswith(stem[:-1])]
        else:
            stems = [stem] if stem in exp.figures else []
        for s in stems:
            lines += [f"![{cap}]({rel}/figures/{s}.png)", "", f"*{s}*: {cap}", ""]
            done.add(s)
    for s in exp.figures:
        if s not in done:
            lines += [f"![{s}]({rel}/figures/{s}.png)", "", f"*{s}*", ""]
    return lines


def _run_line(exp: Experiment) -> list[str]:
    cfg = exp.config
    parts = []
    desc = cfg.get("description") or _meta_get(exp.meta, "config_given", "description")
    if desc:
        parts.append(f"Config description: {str(desc).rstrip('.')}.")
    r = exp.runs
    if r is not None and len(r):
        tasks = sorted(r["task"].astype(str).unique())
        methods = sorted(r["method"].astype(str).unique(), key=_order_key)
        oc = r["outcome"].astype(str).value_counts()
        ocs = ", ".join(f"{k} {int(oc[k])}" for k in sorted(oc.index))
        parts.append(
            f"Runs: {len(r)} ({ocs}); tasks: {_join(tasks)}; methods: "
            f"{_join([_label(m) for m in methods])}."
        )
    lines = [f"Status: {_status(exp)}."]
    if _meta_get(exp.meta, "status") not in (None, "complete"):
        lines.append(
            "**This experiment is partial**: its sweep did not finish, so the numbers below "
            "cover only the stored runs; rerun the same command to resume."
        )
    planned = _meta_get(exp.meta, "n_runs")
    if isinstance(planned, int) and r is not None and 0 < len(r) < planned:
        if _meta_get(exp.meta, "status") == "complete":
            lines.append(f"Only {len(r)} of {planned} planned runs are stored.")
    return [" ".join(parts + lines), ""]


def _results_table(exp: Experiment) -> list[str]:
    core = _core(exp)
    if core is None:
        return ["No runs to summarise.", ""]
    sr, fl, ert_t, cmp = core["sr"], core["fl"], core["ert"], core["cmp"]
    key = ["condition", "variant"]
    t = sr.merge(fl[[*key, "median", "median_lo", "median_hi"]], on=key, how="left")
    t = t.merge(ert_t[[*key, "ert", "ert_lo", "ert_hi"]], on=key, how="left")
    if len(cmp):
        c = cmp.rename(columns={"series": "variant"})[
            [*key, "reference", "ratio", "ratio_lo", "ratio_hi", "p_value"]
        ]
        t = t.merge(c, on=key, how="left")
    else:
        t = t.assign(reference=None, ratio=np.nan, ratio_lo=np.nan, ratio_hi=np.nan)
        t["p_value"] = np.nan
    refs = {}
    if len(cmp):
        refs = cmp.groupby("condition", sort=True)["reference"].first().to_dict()
    rows = []
    for cond in sorted(t["condition"].unique(), key=_natkey):
        sub = t[t["condition"] == cond]
        sub = sub.iloc[sorted(range(len(sub)), key=lambda i: _order_key(sub["variant"].iloc[i]))]
        first = True
        for row in sub.itertuples():
            ref = refs.get(cond)
            if ref is not None and row.variant == ref:
                ratio, p = "1 (reference)", "–"
            else:
                ratio = _ci(row.ratio, row.ratio_lo, row.ratio_hi)
                p = _p(row.p_value)
            rows.append(
                [
                    cond if first else "",
                    _label(row.variant),
                    _rate(int(row.successes), int(row.n)),
                    _ci(row.median, row.median_lo, row.median_hi),
                    _ci(row.ert, row.ert_lo, row.ert_hi),
                    ratio,
                    p,
                ]
            )
            first = False
    header = [
        "condition",
        "method",
        "solved (rate [CI])",
        "median final loss [CI]",
        "ERT, fwd-equiv [CI]",
        "ERT ratio to reference [CI]",
        "p (Mann-Whitney)",
    ]
    lines = md_table(header, rows)
    notes = [
        "ERT: expected forward-pass equivalents to one success (∞: no seed succeeded). "
        "Reference: the best BPTT variant of the condition (lowest finite ERT). ERT ratio: "
        "this method's ERT over the reference's; > 1 means the reference is faster. p: "
        "Mann-Whitney U on per-seed costs to success against the reference."
    ]
    nonbptt = [c for c, r in sorted(refs.items()) if not str(r).startswith("bptt")]
    if nonbptt:
        notes.append(
            f"Conditions without a BPTT variant that solved anything use the lowest-ERT method "
            f"as reference: {_join(nonbptt)}."
        )
    return [*lines, "", " ".join(notes), ""]


def _optima_section(exp: Experiment) -> list[str]:
    core = _optima_core(exp)
    if core is None:
        return []
    ann, sr, bas = core["ann"], core["sr"], core["basins"]
    stalled = core["stalled"]
    key = ["condition", "arch", "variant"]
    t = sr.merge(bas[[*key, "n_basins", "levels", "sizes", "share_lowest"]], on=key, how="left")
    rows = []
    for r in sorted(
        t.itertuples(), key=lambda r: (_natkey(r.condition), _natkey(r.arch), _order_key(r.variant))
    ):
        mask = (ann["condition"] == r.condition) & (ann["arch"] == r.arch)
        mask &= ann["variant"] == r.variant
        st = stalled[mask & stalled.notna()]
        n_fail = int((~ann.loc[mask, "outcome"].isin(A.SUCCESS_OUTCOMES)).sum())
        stall = f"{int(st.astype(bool).sum())}/{n_fail}" if len(st) or n_fail == 0 else "–"
        levels = r.levels if isinstance(r.levels, list | np.ndarray) else []
        sizes = r.sizes if isinstance(r.sizes, list | np.ndarray) else []
        lv = "; ".join(f"{fmt_num(v, 2)} ({int(s)})" for v, s in zip(levels, sizes, strict=False))
        k_low = int(sizes[0]) if len(sizes) else 0
        rows.append(
            [
                r.condition,
                r.arch,
                _label(r.variant),
                _rate(int(r.successes), int(r.n)),
                str(int(r.n_basins)) if not pd.isna(r.n_basins) else "–",
                lv or "–",
                _rate(k_low, int(r.n)),
                stall,
            ]
        )
    lines = [
        "#### Basins and stuck runs",
        "",
        *md_table(
            [
                "condition",
                "network",
                "method",
                "solved (rate [CI])",
                "basins",
                "levels: median final loss (seeds)",
                "seeds in lowest level [CI]",
                "stalled failures",
            ],
            rows,
        ),
        "",
        "Basins are distinct final-loss levels among the seeds (single linkage on log10 loss, "
        "0.5-decade gap; diverged runs not counted). A stalled failure improved its best loss "
        f"by less than {STALL_TOL:.0%} over the second half of its budget.",
        "",
    ]
    return lines


def _b_tables(b1: pd.DataFrame, b2: pd.DataFrame) -> list[str]:
    lines = []
    if len(b1):
        rows = [
            [
                r.condition,
                r.arch,
                f"{_label(r.bptt)}: {_rate(r.k_b, r.n_b)}",
                f"{_label(r.other)}: {_rate(r.k_o, r.n_o)}",
                _ci(r.d, r.lo, r.hi, 2),
                _p(r.p),
                r.outcome,
            ]
            for r in b1.itertuples()
        ]
        lines += [
            "(b1) BPTT against CMA-ES on the recurrent nets:",
            "",
            *md_table(
                [
                    "condition",
                    "network",
                    "best BPTT",
                    "CMA-ES (or best evolutionary)",
                    "difference in success [CI]",
                    "p (Fisher)",
                    "outcome",
                ],
                rows,
            ),
            "",
        ]
    if len(b2):
        rows = [
            [
                r.condition,
                _label(r.bptt),
                f"{r.rec_arch}: {_rate(r.k_r, r.n_r)}",
                f"{r.ff_arch}: {_rate(r.k_f, r.n_f)}",
                _ci(r.d, r.lo, r.hi, 2),
                _p(r.p),
                r.control or "–",
                r.outcome,
            ]
            for r in b2.itertuples()
        ]
        lines += [
            "(b2) Recurrent against feed-forward nets, same BPTT variant:",
            "",
            *md_table(
                [
                    "condition",
                    "method",
                    "recurrent",
                    "feed-forward",
                    "difference (rec − ff) [CI]",
                    "p (Fisher)",
                    "control: evolutionary rec − ff [CI]",
                    "outcome",
                ],
                rows,
            ),
            "",
        ]
    return lines


def _speed_table(panels: pd.DataFrame) -> list[str]:
    rows = [
        [
            r.condition,
            f"{_label(r.bptt)}: {_ci(r.ert_b, r.ert_b_lo, r.ert_b_hi)}",
            f"{_label(r.evo)}: {_ci(r.ert_e, r.ert_e_lo, r.ert_e_hi)}",
            _ci(r.ratio, r.lo, r.hi),
            _p(r.p),
            _ci(r.wall_ratio, r.wall_lo, r.wall_hi),
            r.outcome,
        ]
        for r in panels.itertuples()
    ]
    return md_table(
        [
            "condition",
            "best BPTT: ERT [CI]",
            "best evolutionary: ERT [CI]",
            "ERT ratio evo/BPTT [CI]",
            "p (Mann-Whitney)",
            "same ratio in wall seconds [CI]",
            "outcome",
        ],
        rows,
    )


def _lag_table(exp: Experiment) -> list[str]:
    """Success against a swept length/lag setting: methods x values."""
    runs = _usable(exp)
    if runs is None:
        return []
    try:
        from toolkit.plots import LAG_PARAMS, PARAM_LABELS
    except Exception:
        LAG_PARAMS, PARAM_LABELS = ("lag", "T", "length", "seq_len", "n_bits"), {}
    out = []
    for p in LAG_PARAMS:
        v = pd.to_numeric(A.param_values(runs, p), errors="coerce")
        df = pd.DataFrame({"t": runs["task"], "m": runs["method"], "v": v}).dropna()
        if not len(df) or not (df.groupby(["t", "m"])["v"].nunique() >= 2).any():
            continue
        ann = A.annotate(runs, exclude=[p, f"grid.task.params.{p}", f"task.params.{p}"])
        ann["_x"] = pd.to_numeric(A.param_values(ann, p), errors="coerce").to_numpy()
        ann = ann[np.isfinite(ann["_x"].astype(float))]
        sr = A.success_rate(ann, by=("condition", "variant", "_x"), level=LEVEL)
        xs = sorted(sr["_x"].unique())
        rows = []
        for (cond, var), sub in sorted(
            sr.groupby(["condition", "variant"], sort=True),
            key=lambda kv: (_natkey(kv[0][0]), _order_key(kv[0][1])),
        ):
            cells = []
            for x in xs:
                s = sub[sub["_x"] == x]
                if s.empty:
                    cells.append("")
                else:
                    k, n = int(s["successes"].iloc[0]), int(s["n"].iloc[0])
                    cells.append(f"{k}/{n}")
            rows.append([cond, _label(var), *cells])
        label = PARAM_LABELS.get(p, p)
        out += [
            f"#### Success against {label}",
            "",
            *md_table(["condition", "method", *[f"{p}={A._fmt(x)}" for x in xs]], rows),
            "",
            "Cells: successful seeds / seeds (Wilson intervals in the figure).",
            "",
        ]
    return out


def _scaling_table(exp: Experiment) -> list[str]:
    runs = _usable(exp)
    if runs is None or "n_params" not in runs or "n_hidden" not in runs:
        return []
    if not (runs.groupby(["task", "method"])["n_hidden"].nunique() >= 2).any():
        return []
    excl = ("n_hidden", "grid.n_hidden")
    ann = A.annotate(runs, exclude=excl)
    ctt = A.cost_to_target(ann, exp.traces, cost="fwd_equiv")
    et = A.ert_table(ctt, by=("condition", "variant", "n_params"), n_boot=N_BOOT, seed=SEED)
    sizes = sorted(int(x) for x in et["n_params"].unique())
    rows = []
    for (cond, var), sub in sorted(
        et.groupby(["condition", "variant"], sort=True),
        key=lambda kv: (_natkey(kv[0][0]), _order_key(kv[0][1])),
    ):
        cells = []
        for s in sizes:
            x = sub[sub["n_params"] == s]
            cells.append(fmt_num(x["ert"].iloc[0]) if len(x) else "")
        fin = sub[np.isfinite(sub["ert"].astype(float))]
        slope = "–"
        if len(fin) >= 2:
            k = np.polyfit(
                np.log(fin["n_params"].astype(float)), np.log(fin["ert"].astype(float)), 1
            )[0]
            slope = f"{k:.2f}"
        rows.append([cond, _label(var), *cells, slope])
    lines = [
        "#### ERT (forward-pass equivalents) against the number of weights",
        "",
        *md_table(["condition", "method", *[f"{s} weights" for s in sizes], "slope"], rows),
        "",
        "Slope: least-squares fit of log ERT on log(number of weights) over the sizes with a "
        "finite ERT (ERT grows like weights^slope); descriptive, no CI.",
        "",
    ]
    # where evolution falls behind: per size, the claim-(a) comparison
    panels = speed_panels(exp)
    if len(panels):
        behind = []
        size_of = ann.groupby("condition", sort=True)["n_params"].first()
        core = _core(exp)
        if core is not None:
            size_of = core["ann"].groupby("condition", sort=True)["n_params"].first()
        for r in panels.itertuples():
            behind.append((int(size_of.get(r.condition, -1)), r.condition, r.outcome))
        behind.sort()
        first = next((s for s, _, o in behind if o == "BPTT faster"), None)
        lines.append(
            "Per network size, best evolutionary method against best BPTT variant: "
            + "; ".join(f"{c}: {o}" for _, c, o in behind)
            + ". "
            + (
                f"Evolution is first significantly slower at {first} weights."
                if first is not None
                else "Evolution is not significantly slower at any size measured."
            )
        )
        lines.append("")
    return lines


def _guess_table(exp: Experiment) -> list[str]:
    runs = _usable(exp)
    if runs is None:
        return []
    ann = A.annotate(runs)
    ctt = A.cost_to_target(ann, exp.traces, cost="evals")
    et = A.ert_table(ctt, by=("condition", "variant"), n_boot=N_BOOT, seed=SEED, level=LEVEL)
    rows = []
    for r in sorted(et.itertuples(), key=lambda r: (_natkey(r.condition), _order_key(r.variant))):
        rows.append(
            [
                r.condition,
                _label(r.variant),
                f"{r.n_reached}/{r.n_runs}",
                _ci(r.ert, r.ert_lo, r.ert_hi),
            ]
        )
    return [
        "#### Expected number of loss evaluations to solve",
        "",
        *md_table(["condition", "method", "solved", "ERT, loss evaluations [CI]"], rows),
        "",
        "For random guessing a loss evaluation is one guess, so its ERT is the mean number of "
        "guesses to a solution (restarts included); for BPTT one evaluation is one gradient "
        "of a batch, for the evolution strategies one candidate's loss. Published numbers "
        "for these setups are set beside ours in *Published numbers beside ours*.",
        "",
    ]


def _fidelity_table(df: pd.DataFrame) -> list[str]:
    if not {"k", "cosine"} <= set(df.columns):
        return []
    g = df.groupby(["T", "k"] if "T" in df else ["k"], sort=True)
    rows = []
    for key, sub in g:
        key = key if isinstance(key, tuple) else (key,)
        T = key[0] if len(key) == 2 else None
        k = key[-1]
        rows.append(
            [
                A._fmt(T) if T is not None else "–",
                A._fmt(k),
                str(len(sub)),
                fmt_num(sub["cosine"].median()),
                fmt_num(sub["cosine"].min()),
                fmt_num(sub["norm_ratio"].median()) if "norm_ratio" in sub else "–",
            ]
        )
    return [
        "#### Gradient fidelity of BPTT(k)",
        "",
        *md_table(
            ["T", "k", "parameter vectors", "median cosine", "min cosine", "median norm ratio"],
            rows,
        ),
        "",
        "Cosine between the truncated gradient and the full BPTT gradient at the same "
        "parameters; norm ratio |g_k| / |g|.",
        "",
    ]


def _cliff_table(tables: dict) -> list[str]:
    out = []
    tr = tables.get("cliff_trajectories")
    if tr is not None and {"method", "loss"} <= set(tr.columns):
        rows = []
        for m, sub in sorted(tr.groupby("method", sort=True), key=lambda kv: _order_key(kv[0])):
            sub = sub.sort_values("step") if "step" in sub else sub
            gn = sub["grad_norm"] if "grad_norm" in sub else pd.Series([np.nan])
            rows.append(
                [
                    _label(m),
                    str(len(sub)),
                    fmt_num(sub["evals"].iloc[-1]) if "evals" in sub else "–",
                    fmt_num(sub["loss"].iloc[0]),
                    fmt_num(sub["loss"].iloc[-1]),
                    fmt_num(sub["loss"].min()),
                    fmt_num(gn.max()),
                ]
            )
        out += [
            "#### Optimizer paths on the single-unit surface",
            "",
            *md_table(
                [
                    "method",
                    "points",
                    "loss evaluations",
                    "start loss",
                    "final loss",
                    "lowest loss",
                    "largest gradient norm",
                ],
                rows,
            ),
            "",
        ]
    bif = tables.get("bifurcation")
    if bif is not None and {"b", "kind"} <= set(bif.columns):
        fp = bif[bif["kind"] != "x_T"]
        multi = fp.groupby("b").size()
        multi = multi[multi > 1].index.to_numpy(float)
        w = bif["w"].iloc[0] if "w" in bif and len(bif) else math.nan
        if multi.size:
            out += [
                f"Bistable band of the single unit at w = {fmt_num(w)}: b in "
                f"[{fmt_num(multi.min())}, {fmt_num(multi.max())}] (two stable fixed points).",
                "",
            ]
    return out


def _interp_table(df: pd.DataFrame) -> list[str]:
    if not {"pair", "alpha", "loss"} <= set(df.columns):
        return []
    rows = []
    for pair, sub in df.groupby("pair", sort=True):
        a = sub["alpha"].to_numpy(float)
        L = sub["loss"].to_numpy(float)
        ends = [L[np.argmin(np.abs(a - x))] for x in (0.0, 1.0)]
        inside = L[(a >= 0) & (a <= 1)]
        top = float(np.max(inside)) if inside.size else math.nan
        ref = max(ends)
        rows.append(
            [
                str(pair),
                fmt_num(ends[0]),
                fmt_num(ends[1]),
                fmt_num(top),
                fmt_num(top / ref) if ref > 0 else "–",
            ]
        )
    return [
        "#### Loss on the straight line between two seeds' solutions",
        "",
        *md_table(
            ["pair", "loss at start", "loss at end", "highest loss between", "barrier (× ends)"],
            rows,
        ),
        "",
        "A barrier well above 1 means the two solutions lie in different basins.",
        "",
    ]


def _parallel_table(df: pd.DataFrame) -> list[str]:
    if not {"jobs", "wall_s"} <= set(df.columns) or not len(df):
        return []
    d = df.groupby("jobs", sort=True)["wall_s"].agg(["median", "size"]).reset_index()
    j0, t0 = float(d["jobs"].iloc[0]), float(d["median"].iloc[0])
    rows = []
    for r in d.itertuples():
        sp = t0 / float(r.median) if r.median > 0 else math.nan
        rows.append(
            [
                str(int(r.jobs)),
                str(int(r.size)),
                fmt_num(r.median),
                fmt_num(sp),
                fmt_num(sp / (r.jobs / j0)),
            ]
        )
    return [
        "#### Wall time against --jobs",
        "",
        *md_table(["--jobs", "timings", "median wall time (s)", "speedup", "efficiency"], rows),
        "",
        f"Speedup relative to --jobs {int(j0)}; efficiency = speedup / (jobs / {int(j0)})."
        + (f" Backend: {', '.join(sorted(set(df['backend'])))}." if "backend" in df else ""),
        "",
    ]


def _experiment_section(exp: Experiment, num: int, title: str, purpose: str) -> list[str]:
    rel = exp.name
    lines = [f"### {num}. {title} (`{rel}/`)", ""]
    if purpose:
        lines += [purpose, ""]
    if exp.problems:
        lines += ["Problems reading this directory: " + "; ".join(exp.problems) + ".", ""]
    lines += _run_line(exp)
    lines += _figure_lines(exp, rel)
    has_runs = bool(exp.runs is not None and len(exp.runs)) and exp.name != "parallel"
    if has_runs:
        lines += ["#### Results", ""]
        lines += _results_table(exp)
    elif exp.name not in ("cliff", "parallel"):
        lines += ["No run table (`runs.parquet`) is stored for this experiment.", ""]
    if has_runs:
        rec, _ = _arch(exp.runs)
        if exp.name == "local_optima" or rec.nunique() > 1:
            lines += _optima_section(exp)
        lines += _lag_table(exp)
        lines += _scaling_table(exp)
        if exp.name == "random_guessing" or (
            exp.name != "speed" and (exp.runs["method"].astype(str) == "random").any()
        ):
            lines += _guess_table(exp)
    t = exp.tables
    if "gradient_fidelity" in t:
        lines += _fidelity_table(t["gradient_fidelity"])
    lines += _cliff_table(t)
    if "interpolation" in t:
        lines += _interp_table(t["interpolation"])
    par = t.get("parallel")
    if par is None and isinstance(_meta_get(exp.meta, "parallel"), list):
        try:
            par = pd.DataFrame(exp.meta["parallel"])
        except (TypeError, ValueError):
            par = None
    if par is not None:
        lines += _parallel_table(par)
    if exp.name in NO_PUBLISHED:
        lines += [f"Published numbers: {NO_PUBLISHED[exp.name]}", ""]
    elif exp.name == "random_guessing":
        lines += ["Published numbers: see *Published numbers beside ours*.", ""]
    return lines


def _safe(fn, *args, what: str) -> list[str]:
    """Run a section builder; a failure becomes a note in the report, never an exception."""
    try:
        return fn(*args)
    except Exception as e:  # the report must not die on one bad table
        return [f"*{what} could not be generated: {type(e).__name__}: {e}*", ""]


# ------------------------------------------------------------------------------------------
# claims
# ------------------------------------------------------------------------------------------
def _verdict_a(exps: dict[str, Experiment]) -> dict:
    exp = exps.get("speed")
    panels = speed_panels(exp) if exp is not None else pd.DataFrame()
    n_min, n_max = _seed_range(_core(exp)) if exp is not None else (0, 0)
    label = claim_a(panels, n_min)
    lines = ["## Claim (a): is BPTT faster than evolutionary optimization?", ""]
    if exp is None or panels.empty:
        why = (
            "the speed experiment has no results"
            if exp is None or exp.runs is None
            else "the speed experiment has no condition with both a BPTT variant and an "
            "evolutionary method"
        )
        basis = f"{why}."
        lines += [f"**Verdict: {label}** — {basis}", ""]
        return {"label": label, "basis": basis, "lines": lines + _others_a(exps)}
    groups: dict[str, list] = {}
    for r in panels.itertuples():
        groups.setdefault(r.outcome, []).append(r)

    def desc(r):
        return (
            f"{r.condition} ({_label(r.evo)} / {_label(r.bptt)}: {_ci(r.ratio, r.lo, r.hi)}, "
            f"{_pt(r.p)})"
        )

    sents = []
    n = len(panels)
    for outc, text in (
        ("BPTT faster", "the best BPTT variant was significantly faster (ratio CI above 1) on"),
        (
            "evolution faster",
            "the best evolutionary method was significantly faster (CI below 1) on",
        ),
        ("equally fast", f"the two were equally fast within a factor {EQUIV_RATIO:g} on"),
        ("undecided", "the difference is not significant (ratio CI or Mann-Whitney test) on"),
        ("nothing solved", "no method solved any seed on"),
    ):
        if outc in groups:
            sents.append(f"{text} {_join([desc(r) for r in groups[outc]])}")
    fast = len(groups.get("BPTT faster", []))
    basis = f"BPTT significantly faster in {fast} of {_plural(n, 'condition')} (speed)"
    para = (
        f"**Verdict: {label}.** In the speed experiment ({_plural(n, 'condition')}), comparing "
        "the expected running time to the task's success criterion (ERT, forward-pass "
        "equivalents) of the best evolutionary method with that of the best BPTT variant "
        "(ratio = ERT(evolutionary) / ERT(BPTT), > 1: BPTT faster): " + "; ".join(sents) + "."
    )
    wall = [r for r in panels.itertuples() if r.wall_outcome != "not measured"]
    if wall:
        agree = sum(r.wall_outcome == r.outcome for r in wall)
        differ = [f"{r.condition} ({r.wall_outcome})" for r in wall if r.wall_outcome != r.outcome]
        para += (
            " Measured in wall-clock seconds instead of forward-pass equivalents, the same "
            f"rule gives the same outcome in {agree} of {_plural(len(wall), 'condition')}"
            + (f"; it differs on {_join(differ)}" if differ else "")
            + "."
        )
    lines += [para, "", *_speed_table(panels), "", _seeds_note(n_min, n_max, "a"), ""]
    lines += _others_a(exps)
    return {"label": label, "basis": basis, "lines": lines}


def _others_a(exps: dict[str, Experiment]) -> list[str]:
    """The claim (a) comparison in the other experiments (supporting evidence only)."""
    rows = []
    for name, e in exps.items():
        if name in ("speed", "parallel", "cliff"):
            continue
        try:
            p = speed_panels(e)
        except Exception:
            continue
        for r in p.itertuples():
            rows.append([name, r.condition, _ci(r.ratio, r.lo, r.hi), _p(r.p), r.outcome])
    if not rows:
        return []
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[-1]] = counts.get(r[-1], 0) + 1
    summ = ", ".join(f"{k}: {counts[k]}" for k in sorted(counts))
    return [
        "The same comparison in the other experiments (supporting evidence; not part of the "
        f"verdict rule): {summ}.",
        "",
        *md_table(["experiment", "condition", "ERT ratio evo/BPTT [CI]", "p", "outcome"], rows),
        "",
    ]


def _verdict_b(exps: dict[str, Experiment]) -> dict:
    exp = exps.get("local_optima")
    lines = [
        "## Claim (b): is BPTT more often stuck in local optima, more than feed-forward nets?",
        "",
    ]
    if exp is None or _optima_core(exp) is None:
        b1 = b2 = pd.DataFrame()
        label = "not measured"
        basis = "the local_optima experiment has no results."
        lines += [f"**Verdict: {label}** — {basis}", ""]
        return {"label": label, "basis": basis, "lines": lines + _others_b(exps)}
    b1, b2 = optima_panels(exp)
    sr = _optima_core(exp)["sr"]
    n_min, n_max = (int(sr["n"].min()), int(sr["n"].max())) if len(sr) else (0, 0)
    label = claim_b(b1, b2, n_min)

    def d1(r):
        return (
            f"{r.condition} ({_label(r.bptt)} {r.k_b}/{r.n_b} vs {_label(r.other)} "
            f"{r.k_o}/{r.n_o}, difference {_ci(r.d, r.lo, r.hi, 2)}, Fisher {_pt(r.p)})"
        )

    def d2(r):
        return (
            f"{r.condition} ({_label(r.bptt)}: {r.rec_arch} {r.k_r}/{r.n_r} vs {r.ff_arch} "
            f"{r.k_f}/{r.n_f}, difference {_ci(r.d, r.lo, r.hi, 2)}, Fisher {_pt(r.p)})"
        )

    def part(df, fn, texts):
        out = []
        groups: dict[str, list] = {}
        for r in df.itertuples():
            groups.setdefault(r.outcome, []).append(r)
        for outc, text in texts:
            if outc in groups:
                out.append(f"{text} {_join([fn(r) for r in groups[outc]])}")
        return out

    s1 = part(
        b1,
        d1,
        (
            ("BPTT more often stuck", "BPTT succeeded significantly less often than CMA-ES on"),
            ("BPTT less often stuck", "BPTT succeeded significantly more often than CMA-ES on"),
            ("equal", f"the success rates were equal within ±{EQUIV_DIFF:g} on"),
            ("undecided", "the difference is not significant on"),
            ("nothing solved", "neither solved any seed on"),
        ),
    )
    s2 = part(
        b2,
        d2,
        (
            ("recurrence hurts", "the recurrent net succeeded significantly less often on"),
            ("recurrence helps", "the recurrent net succeeded significantly more often on"),
            ("equal", f"the success rates were equal within ±{EQUIV_DIFF:g} on"),
            ("undecided", "the difference is not significant on"),
            (
                "not informative",
                "no method solved the feed-forward net (no information about optima) on",
            ),
        ),
    )
    pos1 = int((b1["outcome"] == "BPTT more often stuck").sum()) if len(b1) else 0
    pos2 = int((b2["outcome"] == "recurrence hurts").sum()) if len(b2) else 0
    basis = (
        f"BPTT less successful than CMA-ES in {pos1} of {_plural(len(b1), 'condition')}; "
        f"recurrent less successful than feed-forward in {pos2} of "
        f"{_plural(len(b2), 'condition')} (local_optima)"
    )
    para = f"**Verdict: {label}.** In the local_optima experiment, (b1) comparing success rates "
    para += (
        "of the best BPTT variant and CMA-ES on the recurrent nets: " + "; ".join(s1) + "."
        if s1
        else "(b1) could not be measured (no condition has both BPTT and an evolutionary method)."
    )
    para += (
        " (b2) Comparing the same BPTT variant on the recurrent and the feed-forward net: "
        + "; ".join(s2)
        + "."
        if s2
        else " (b2) was not measured: no feed-forward (recurrent = false) runs are stored, so "
        "the 'more than feed-forward nets' part of the claim is untested."
    )
    core = _optima_core(exp)
    bas = core["basins"]
    if len(bas):
        fam = core["ann"].groupby("variant", sort=True)["family"].first()
        bas = bas.assign(fam=bas["variant"].map(fam))
        rec_b = bas[bas["arch"].astype(str).str.startswith("recurrent")]
        g = rec_b[rec_b["fam"] == "gradient"]["n_basins"]
        o = rec_b[rec_b["fam"] != "gradient"]["n_basins"]
        if len(g) and len(o):
            para += (
                " Descriptively, the number of distinct final-loss levels (basins) per "
                f"condition on the recurrent nets was {_values(g)} for BPTT and {_values(o)} "
                "for the evolutionary methods."
            )
    lines += [para, "", *_b_tables(b1, b2), _seeds_note(n_min, n_max, "b"), ""]
    lines += _others_b(exps)
    return {"label": label, "basis": basis, "lines": lines}


def _others_b(exps: dict[str, Experiment]) -> list[str]:
    rows = []
    for name, e in exps.items():
        if name in ("local_optima", "parallel", "cliff"):
            continue
        try:
            b1, _ = optima_panels(e)
        except Exception:
            continue
        for r in b1.itertuples():
            rows.append(
                [
                    name,
                    r.condition,
                    f"{r.k_b}/{r.n_b} vs {r.k_o}/{r.n_o}",
                    _ci(r.d, r.lo, r.hi, 2),
                    _p(r.p),
                    r.outcome,
                ]
            )
    if not rows:
        return []
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[-1]] = counts.get(r[-1], 0) + 1
    summ = ", ".join(f"{k}: {counts[k]}" for k in sorted(counts))
    return [
        "Best BPTT against CMA-ES success rates in the other experiments (supporting "
        f"evidence; not part of the verdict rule): {summ}.",
        "",
        *md_table(
            [
                "experiment",
                "condition",
                "BPTT vs CMA-ES solved",
                "difference [CI]",
                "p (Fisher)",
                "outcome",
            ],
            rows,
        ),
        "",
    ]


def _published(exps: dict[str, Experiment]) -> list[str]:
    lines = [
        "## Published numbers beside ours",
        "",
        "Only numbers we could check against the source are printed; each row names the "
        "paper and section. Published setups differ from ours in the ways listed, so the "
        "comparison is of orders of magnitude, not a replication test.",
        "",
    ]
    rows = []
    for pub in PUBLISHED:
        ours = []
        if pub["task"] is not None:
            for name in ("random_guessing", *[n for n in exps if n != "random_guessing"]):
                e = exps.get(name)
                runs = _usable(e) if e is not None else None
                if runs is None:
                    continue
                keep = (runs["task"] == pub["task"]) & (runs["method"] == pub["method"])
                if pub.get("variant") is not None:
                    if "grid.setup" in runs.columns:  # the suite's random_guessing parts
                        var = runs["grid.setup"].map({"latch_I": "I", "latch_II": "II"})
                    else:
                        var = runs["task_params"].map(
                            lambda j: str(A._json(j).get("variant", "II"))
                        )
                    keep &= var == pub["variant"]
                if not keep.any():
                    continue
                ann = A.annotate(runs)
                ann = ann[keep.to_numpy()]
                ctt = A.cost_to_target(ann, e.traces, cost="evals")
                et = A.ert_table(ctt, by=("condition", "variant"), n_boot=N_BOOT, seed=SEED)
                for r in et.itertuples():
                    h = _values(ann.loc[ann["condition"] == r.condition, "n_hidden"])
                    ours.append(
                        f"{_ci(r.ert, r.ert_lo, r.ert_hi)} ({name}: {r.condition}, "
                        f"H={h}, {r.n_reached}/{r.n_runs} solved)"
                    )
                break
        if ours:
            our = "; ".join(ours) + (f" ({pub['note']})" if pub["note"] else "")
        else:
            our = pub["missing"][0].upper() + pub["missing"][1:]
        rows.append([pub["what"], pub["value"], pub["setup"], pub["source"], our])
    lines += md_table(["quantity", "published", "published setup", "source", "ours"], rows)
    lines += [
        "",
        "Our random-guessing numbers are ERTs in loss evaluations (one evaluation = one "
        "guess); see the random_guessing section for our setup (sequence length, hidden "
        "units, weight range).",
        "",
    ]
    for name in _KNOWN:
        if name in NO_PUBLISHED:
            lines.append(f"* {name}: {NO_PUBLISHED[name]}")
    lines.append("")
    return lines


# ------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------
def render_report(results_root) -> str:
    """The report's markdown text for the results under ``results_root``."""
    root = Path(results_root)
    exps: dict[str, Experiment] = {}
    missing = []
    for name in _KNOWN:
        d = root / name
        if _present(d):
            exps[name] = load_experiment(d)
        else:
            missing.append(name)
    extra = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.name in exps or d.name.startswith((".", "_")) or d.name in _KNOWN:
                continue
            if d.is_dir() and ((d / "meta.json").is_file() or (d / "runs.parquet").is_file()):
                exps[d.name] = load_experiment(d)
                extra.append(d.name)
    ordered = [exps[n] for n in _KNOWN if n in exps] + [exps[n] for n in extra]

    va = _safe_verdict(_verdict_a, exps, "claim (a)")
    vb = _safe_verdict(_verdict_b, exps, "claim (b)")
    lines = _intro(ordered, missing)
    lines += _summary(va, vb)
    lines += _question()
    lines += _safe(_setup, ordered, what="The setup section")
    lines += ["## Experiments", ""]
    info = {n: (t, p) for n, t, p in EXPERIMENTS}
    for i, name in enumerate([*_KNOWN, *extra], start=1):
        title, purpose = info.get(name, (name, ""))
        if name in missing:
            lines += [
                f"### {i}. {title} (`{name}/`)",
                "",
                f"Not run: no results in `{name}/` (run `bptt run experiments/{name}.toml`, "
                "or `make experiments`).",
                "",
            ]
            continue
        lines += _safe(_experiment_section, exps[name], i, title, purpose, what=f"`{name}`")
    lines += va["lines"] + vb["lines"]
    lines += _safe(_published, exps, what="The published-numbers section")
    lines += ["## How the verdicts are decided", "", RULES_TEXT, ""]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def _safe_verdict(fn, exps, what: str) -> dict:
    try:
        return fn(exps)
    except Exception as e:
        msg = f"the {what} analysis failed: {type(e).__name__}: {e}"
        title = "Claim (a)" if "(a)" in what else "Claim (b)"
        return {"label": "not measured", "basis": msg, "lines": [f"## {title}", "", f"*{msg}*", ""]}


def write_report(results_root) -> Path:
    """Write ``<results_root>/REPORT.md`` from every experiment under ``results_root`` and
    return its path. Missing or partial experiments are reported, never fatal."""
    root = Path(results_root)
    root.mkdir(parents=True, exist_ok=True)
    text = render_report(root)
    out = root / REPORT_FILE
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
