"""``results/REPORT.md``: the question, the setup, every experiment's figures and tables, and a
verdict on each claim, rendered from the stored results only.

:func:`write_report` reads every experiment directory under ``results_root``
(:func:`toolkit.store.read_results`: run tables, ``meta.json``, special tables, figures) and
writes one markdown document a researcher can read top to bottom: the question (the two
textbook claims about BPTT); the setup (network, tasks, methods, budgets, cost units, seeds,
machine, versions, commit, scale); one section per experiment in the order of :data:`ORDER`
(then any other directory with results), titled, summarised and captioned by its experiment
file's ``[report]`` table as stored in meta.json, with its figures and tables; a verdict per
claim by the rules of :data:`RULES_TEXT` (printed too); and published numbers beside ours
(``[[report.compare]]`` rows, ``[report] published`` notes).

This module only renders: every number, selection and verdict comes from
:mod:`toolkit.claims` as tables, and is formatted here. The text is deterministic (seeded
bootstraps, sorted tables, timestamps only from ``meta.json``). A missing, partial or
unreadable experiment never stops the report: its section says what is missing instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit import analysis as A
from toolkit import claims as C
from toolkit import store
from toolkit.claims import (
    ALPHA,
    COST_RATIOS,
    EQUIV_DIFF,
    EQUIV_RATIO,
    LEVEL,
    MIN_SEEDS,
    N_BOOT,
    PAPER_SEEDS,
    PRIMARY_EVO,
    PRIMARY_GRAD,
    SEED,
    STALL_TOL,
)
from toolkit.store import Results

__all__ = [
    "ORDER",
    "RULES_TEXT",
    "fmt_num",
    "render_report",
    "write_report",
]

REPORT_FILE = "REPORT.md"

#: the suite's experiments in the order of issue 8 (any other results directory follows). What
#: the report says about each -- title, summary, figure captions, published numbers -- is its
#: experiment file's [report] table, read from the stored meta.json (Results.report)
ORDER = (
    "speed",
    "local_optima",
    "lag",
    "random_guessing",
    "scaling",
    "truncation",
    "cliff",
    "reber",
    "parallel",
)
_KNOWN = list(ORDER)


RULES_TEXT = f"""\
These rules are applied by code (`toolkit/claims.py`) to whatever the tables hold; they are
stated here before any number. They were last revised on 2026-12-01, after the default-scale
results of that day had been seen (the pairing and the restart-aware cost replaced a
best-of-family rule with a fixed-budget cost; claim (b) became an interaction), so for those
results they are a re-analysis, and only runs made after that revision (e.g. the paper scale)
test them confirmatorily. All intervals are {LEVEL:.0%}
intervals; all tests are two-sided at the {ALPHA:g} level **after Holm's correction** over the
conditions that feed the same verdict (tables print raw and Holm-adjusted p). Costs are
forward-pass equivalents (see Setup). A run *succeeds* when it meets its task's published
criterion on the held-out test set (outcome `solved`, or `target` when a loss target was set);
runs that ended with a software error are left out of every statistic.

* **Declared pairing, no selection.** Each verdict compares a pairing declared by name before
  the runs: BPTT (Adam) against CMA-ES (if a method is missing, the next of
  {", ".join(PRIMARY_GRAD)} / {", ".join(PRIMARY_EVO)}). No variant is picked for being best on
  the runs that are compared. The best-of-family ratio (best BPTT variant against best
  evolutionary method, both re-selected inside every bootstrap resample) is shown beside it as
  description only: re-selection inside a percentile bootstrap does not remove the winner's
  curse (tests/test_verdicts.py measures it).
* **Fixed-budget ERT** (COCO): total cost of all runs / number of successes, i.e. restarts
  happen only when a run has spent its whole budget.
* **Best-cap ERT** (COCO's simulated restarts): a run is restarted independently whenever it
  has spent b without success; ERT(b) = E[min(cost, b)] / P(cost <= b), failed runs censored at
  the cost they spent; the cap b is the one (up to the budget) with the lowest ERT(b), chosen
  again inside every bootstrap resample. The verdict uses the best-cap ERT.
* **ERT ratio** r = ERT(CMA-ES) / ERT(BPTT) (best-cap; above 1: BPTT faster) with a
  percentile bootstrap CI ({N_BOOT} resamples of each method's runs, seed {SEED}) and a
  bootstrap test of the same ratio (p = twice the smaller share of resampled log-ratios on
  either side of 0), so interval and test speak of the same quantity. The Mann-Whitney test of
  earlier reports (which compares per-run cost distributions, not ERTs) is no longer used.
* **Success rates**: Wilson score intervals; a difference of two: Newcombe's hybrid score
  interval and Fisher's exact test.

**Claim (a)**, on the speed experiment, per condition: *BPTT faster* if r > 1 and Holm-adjusted
p < {ALPHA:g}; *evolution faster* if r < 1 and Holm-adjusted p < {ALPHA:g}; *equally fast* if
the CI lies within [1/{EQUIV_RATIO:g}, {EQUIV_RATIO:g}]; *nothing solved* if neither solved any
seed; otherwise *undecided*. **Pilot rule** (both claims): a condition in which every method
solved no seed, or every method solved every seed, is *uninformative*: it is shown, left out
of the Holm family and of the verdict, and the headline counts informative conditions only.
Overall, ignoring *nothing solved* and *uninformative*: **supported** if BPTT is faster
in every condition; **partly supported** if in some; **not supported** if in none and either
evolution is faster somewhere or every condition is *equally fast*; otherwise **inconclusive at
this scale**. Costs depend on the calibrated cost of a gradient step in forward passes; the
same rule is shown at ratios {", ".join(f"{r:g}" for r in COST_RATIOS)} and the break-even ratio
(at which the ERT ratio is 1).

**Claim (b)**, on the local_optima experiment, per condition and feed-forward net (W_hh = 0, an
input window), is decided on the **interaction** of method and architecture in success rate:
delta = (BPTT recurrent - BPTT feed-forward) - (CMA-ES recurrent - CMA-ES feed-forward), with a
percentile bootstrap CI (binomial resamples of the four arms) and a bootstrap p (null-centred),
Holm-corrected over the rows. If recurrence made BPTT's error surface worse in a way that
matters to BPTT and not to evolution, delta < 0; the control (CMA-ES's recurrent-minus-feed-
forward difference) is part of delta, so it cannot contradict the verdict. Per row: *BPTT hurt
more* if delta < 0 and Holm p < {ALPHA:g}; *BPTT hurt less* if delta > 0 and Holm p <
{ALPHA:g}; *equal* if the CI lies within [-{EQUIV_DIFF:g}, {EQUIV_DIFF:g}]; *not informative*
if no method solved the feed-forward net; otherwise *undecided*. Overall: **supported** if BPTT
is hurt more somewhere and less nowhere; **partly supported** if both occur; **not supported**
if nowhere more and either less somewhere or every row *equal*; otherwise **inconclusive at
this scale** (also when no feed-forward runs exist). Separately reported, not part of the
verdict: (b1) BPTT against CMA-ES on the recurrent net, d = success(BPTT) - success(CMA-ES),
Newcombe CI, Fisher p, Holm over its rows.

**Question (c)**, on the lag experiment where it also trains a gated cell (LSTM, GRU), asks
whether long lags defeat the algorithm (BPTT) or the architecture (the Elman cell). Per lag
condition, success rates are compared by swapping one thing at a time: *architecture* rows,
d = success(gated cell) - success(Elman) under the same algorithm; *algorithm* rows, d =
success(CMA-ES) - success(BPTT) on the same cell; Newcombe CIs, Fisher p, Holm over all rows.
A condition answers *architecture* if a gated cell trained by BPTT succeeds significantly more
often than Elman trained by BPTT while CMA-ES on Elman does not beat BPTT on Elman
significantly; *algorithm* the reverse; *both* if both hold; *neither* if no row is
significant and every CI lies within [-{EQUIV_DIFF:g}, {EQUIV_DIFF:g}]; *uninformative* by the
pilot rule; else *undecided*. Overall: **the architecture** or **the algorithm** if every
condition that decided says so, **both** if they say both or disagree, **neither** if every
informative condition says neither, otherwise **inconclusive at this scale**.

**Seeds.** Any verdict needs at least {MIN_SEEDS} seeds per condition and method; with fewer,
the verdict is **inconclusive at this scale** whatever the numbers. With n seeds per arm a
success-rate difference is detected reliably (80 % power, two-sided 5 % level, rates near 0.5)
only when it exceeds about 2.8 * sqrt(0.5 / n): 0.89 at n = 5, 0.63 at n = 10, 0.44 at n = 20,
0.36 at n = 30, 0.28 at n = 50 (an interaction of four arms needs about twice that). The paper
scale runs at least {PAPER_SEEDS} seeds.

**Not in the rules.** Basins (distinct final-loss levels; single linkage on log10 loss with a
0.5-decade gap) and stalled failures (failed runs whose best loss improved by less than
{STALL_TOL:.0%} over the second half of their budget: stuck rather than slow) are descriptive;
so are the best-of-family ratios and the same comparisons in the other experiments. Whether a
failed run is stuck for good is measured where an experiment declares a continuation test
(the failure anatomy of claim (b)): each failed run is continued to a multiple of its budget."""


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


def _rate(k: int, n: int, ci: tuple) -> str:
    """Successes k of n with the rate and its interval ``ci`` (lo, hi)."""
    return "–" if n == 0 else f"{k}/{n} = {k / n:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _blocks(*parts) -> list[str]:
    """Markdown blocks, each followed by a blank line: a str is a paragraph, a list of lines a
    block (a table); empty ones are left out."""
    out = []
    for p in parts:
        if p:
            out += [p, ""] if isinstance(p, str) else [*p, ""]
    return out


def md_table(header: str | list[str], rows: list[list]) -> list[str]:
    """Markdown pipe table (cells escaped); a header given as one string is split at ' | '."""
    if isinstance(header, str):
        header = header.split(" | ")
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


def _ordered(df: pd.DataFrame, *nat: str, var: str = "variant") -> list:
    """The rows of ``df`` in reading order: by the columns ``nat`` (naturally), then method."""
    key = lambda r: (*[C.natkey(getattr(r, c)) for c in nat], _order_key(str(getattr(r, var))))
    return sorted(df.itertuples(), key=key)


def _pivot(df, col, values, cell, *, keys=("condition", "variant"), missing="", extra=None):
    """Rows condition (x method) in reading order, one cell per value of ``col`` (``cell`` of
    the matching row, ``missing`` without one), then ``extra(sub)`` cells."""
    rows = []
    groups = df.groupby(list(keys), sort=True)
    order = lambda kv: (C.natkey(kv[0][0]), *[_order_key(k) for k in kv[0][1:]])
    for key, sub in sorted(groups, key=order):
        by = dict(zip(sub[col], sub.itertuples(), strict=True))
        cells = [cell(by[x]) if x in by else missing for x in values]
        rows.append([key[0], *map(_label, key[1:]), *cells, *(extra(sub) if extra else [])])
    return rows


def _join(items: list[str]) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _range(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _seeds_note(n_min: int, n_max: int, claim: str) -> str:
    """Seeds behind a verdict and whether they suffice (claim 'a': ERT ratios, 'b': success
    rates)."""
    head = f"Seeds per condition and method: {_range(n_min, n_max)}."
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
            f"success-rate differences smaller than about {C.mdd(n_min):.2f} (80 % power, 5 % "
            "level) may be real but are not detected reliably"
        )
    if n_min < PAPER_SEEDS:
        return (
            f"{head} Enough for the rules, but only large effects can be resolved: {what} at "
            f"this scale (the paper scale runs >= {PAPER_SEEDS} seeds)."
        )
    return f"{head} At least the paper scale's {PAPER_SEEDS}; {what}."


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


def _scales(exps: list[Results]) -> list[str]:
    return sorted({str(_meta_get(e.meta, "scale")) for e in exps if e.meta and "scale" in e.meta})


def _other_cells(exps: list[Results]) -> list[str]:
    """The network cells other than Elman's in the results (the ``cell`` column), sorted."""
    found = {
        str(c)
        for e in exps
        if e.runs is not None and "cell" in e.runs
        for c in e.runs["cell"].dropna()
    }
    return sorted(found - {"elman"})


def _networks(exps: list[Results]) -> str:
    """'Elman networks', or with other cells in the results e.g. 'Elman, LSTM and GRU networks'."""
    names = ["Elman", *(A._CELL_NAMES.get(c, c) for c in _other_cells(exps))]
    return f"{_join(names)} networks"


def _intro(exps: list[Results], missing: list[str]) -> list[str]:
    scales = sorted({str(e.meta["scale"]) for e in exps if e.meta and "scale" in e.meta})
    sc = _join([f"`{s}`" for s in scales]) if scales else "unknown (no meta.json)"
    return _blocks(
        f"# BPTT against evolutionary optimization for {_networks(exps)}: results",
        "Generated by `bptt report` (`toolkit/report.py`) from the stored tables and figures "
        "under this directory; every number below is computed from them, and every verdict "
        "follows from the numbers by the rules in the section *How the verdicts are decided*. "
        f"Scale: {sc}. Experiments with results: {len(exps)} of {len(_KNOWN)} in the suite"
        + (f" (missing: {_join(missing)})." if missing else ".")
        + " "
        + _time_line(exps),
    )


def _question(networks: str = "Elman networks") -> list[str]:
    return _blocks(
        "## The question",
        "The textbook account of backpropagation through time (BPTT; Werbos 1990; Williams & "
        "Peng 1990) makes two claims:",
        [
            "* **(a)** BPTT tends to be significantly faster for training recurrent networks "
            "than general-purpose optimization such as evolutionary optimization;",
            "* **(b)** BPTT has difficulty with local optima, more than feed-forward networks "
            "have, because the recurrent feedback makes the error surface chaotic (Pascanu, "
            "Mikolov & Bengio 2013; Doya 1992).",
        ],
        f"This report measures both on {networks}, with every optimizer training the same "
        "network on the same loss and data, counted in the same cost units. A third question "
        "follows from Bengio, Simard & Frasconi (1994) and Hochreiter & Schmidhuber (1997): "
        "**(c)** when Elman nets fail at long time lags, is it the algorithm (BPTT) or the "
        "architecture (the Elman cell) that fails? The lag experiment answers it where it "
        "also trains gated cells (LSTM, GRU) by BPTT and by CMA-ES.",
    )


def _summary(va: dict, vb: dict, vc: dict) -> list[str]:
    rows = [
        ["(a) BPTT is faster than evolutionary optimization", va["label"], va["basis"]],
        ["(b) BPTT is more often stuck in local optima", vb["label"], vb["basis"]],
        ["(c) long lags defeat the algorithm or the architecture?", vc["label"], vc["basis"]],
    ]
    return _blocks(
        "## Verdicts at a glance",
        md_table("claim | verdict | basis", rows),
        "Details in the sections *Claim (a)*, *Claim (b)* and *Question (c)* below.",
    )


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


def _params_text(json_values) -> str:
    """'key=v1|v2, ...' over the JSON parameter objects ``json_values`` (null for a key a run
    sets to None)."""
    dicts = [A._json(s) for s in json_values]
    keys = sorted(set().union(*dicts)) if dicts else []
    parts = [
        f"{k}={_values(['null' if d.get(k) is None else d.get(k) for d in dicts])}" for k in keys
    ]
    return ", ".join(parts) if parts else "–"


def _setup(exps: list[Results]) -> list[str]:
    with_runs = [e for e in exps if e.runs is not None and len(e.runs)]
    cells = _other_cells(with_runs)  # with other cells: a cell column and their equations
    rows = []
    for e in with_runs:
        r = e.runs
        col = [_values(r[c]) if c in r else "–" for c in ("n_hidden", "hidden", "output")]
        cell = [_values(r["cell"]) if "cell" in r else "elman"] if cells else []
        row = [*col, *map(_values, C.arch(r)), _values(r.get("n_params", []))]
        rows.append([e.name, *cell, *row])
    head = "experiment | hidden units | hidden act. | output | recurrent | input window | weights"
    if cells:
        head = head.replace("experiment | ", "experiment | cell | ")
    usage = C.setting_usage(with_runs, "task", "task_params")
    tasks = [
        [t, ", ".join(usage[t]["exps"]), _params_text(usage[t]["params"]), *_task_info(t)]
        for t in sorted(usage)
    ]
    lines = _blocks(
        "## Setup",
        "### Network",
        "An Elman network: h_t = act(W_xh a_t + W_hh h_{t-1} + b_h) with h_{-1} = 0, "
        "y_t = out(W_hy h_t + b_y); the output nonlinearity and loss come from the task "
        "(linear: squared error, sigmoid: binary cross-entropy, softmax: cross-entropy), summed "
        "over batch and time with the task's mask. The feed-forward variant (recurrent = false) "
        "fixes W_hh = 0 and feeds a window of the last w inputs. Every optimizer trains the "
        "same flat parameter vector.",
        cells and _gated_prose(cells),
        rows and md_table(head, rows),
        "### Tasks",
        md_table("task | experiments | parameters | solved when | source", tasks)
        if tasks
        else "No run tables were found.",
    )
    lines += _methods_and_budgets(with_runs)
    lines += _cost_units(with_runs)
    lines += _seeds_stats(exps)
    lines += _machine(exps)
    return lines


_GATED_PROSE = {
    "lstm": "The LSTM (cell = lstm; Hochreiter & Schmidhuber 1997 with the forget gate of Gers "
    "et al. 2000, as torch.nn.LSTM): [i; f; g; o] = [sig; sig; tanh; sig](W_xh a_t + W_hh "
    "h_{t-1} + b_h), c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t), one bias per gate row, "
    "4H(I + H + 1) + O(H + 1) weights.",
    "gru": "The GRU (cell = gru; Cho et al. 2014, as torch.nn.GRU): r, z = sig(W_x. a_t + W_h. "
    "h_{t-1} + b_.), n = tanh(W_xn a_t + b_n + r * (W_hn h_{t-1} + b_hn)), h_t = (1 - z) * n "
    "+ z * h_{t-1}, 3H(I + H + 1) + H + O(H + 1) weights.",
}


def _gated_prose(cells: list[str]) -> str:
    """The equations of the gated cells in the results (they read out from h as Elman does)."""
    known = [_GATED_PROSE[c] for c in cells if c in _GATED_PROSE]
    other = [c for c in cells if c not in _GATED_PROSE]
    tail = f" Other cells: {', '.join(other)}." if other else ""
    return (
        " ".join(known) + tail + " Both read out from h as the Elman network does, with the "
        "same outputs and losses, and start from the zero state."
    )


def _methods_and_budgets(with_runs: list[Results]) -> list[str]:
    """The setup's *Methods* and *Budgets* tables."""
    usage = C.setting_usage(with_runs, "method", "method_params")
    methods = [
        [
            m,
            _label(m),
            "/".join(sorted(u["family"])),
            ", ".join(u["exps"]),
            _params_text(u["params"]),
        ]
        for m, u in sorted(usage.items(), key=lambda kv: _order_key(kv[0]))
    ]
    cols = ("budget_fwd_equiv", "budget_evals", "budget_wall_s", "target_loss")
    rows = [
        [e.name, *[_values(e.runs[c]) if c in e.runs else "–" for c in cols]] for e in with_runs
    ]
    head = "experiment | forward-pass equivalents | loss evaluations | wall seconds | target loss"
    return _blocks(
        "### Methods",
        methods and md_table("method | name | family | experiments | hyperparameters", methods),
        "### Budgets",
        rows and md_table(head, rows),
        rows
        and "A run stops at the first limit reached, when it meets the task's criterion "
        "(checked at log-spaced points on its best parameters so far), at the target loss "
        "when one is set, or when it diverges.",
    )


def _task_info(name: str) -> tuple[str, str]:
    try:
        import toolkit.tasks

        t = toolkit.tasks.get(name)
        cite = str(getattr(t, "citation", "") or "–")
        return str(getattr(t, "criterion", "") or "–"), cite
    except Exception:
        return "–", "–"


def _cost_units(exps: list[Results]) -> list[str]:
    gc = Path(__file__).resolve().parent / "grad_cost.json"
    try:
        table = json.loads(gc.read_text(encoding="utf-8"))
        items = sorted((int(h), float(v)) for h, v in table.get("ratio_by_hidden", {}).items())
        note = str(table.get("note", ""))
    except (OSError, ValueError, TypeError, AttributeError):
        items, note = [], ""
    calib = md_table(
        ["hidden units", *[str(h) for h, _ in items]],
        [["gradient / forward cost", *[fmt_num(v) for _, v in items]]],
    )
    used = C.applied_ratios(exps)
    rows = [
        [str(r.n_hidden), fmt_num(r.ratio), ", ".join(r.experiments)] for r in used.itertuples()
    ]
    return _blocks(
        "### Cost units: forward-pass equivalents",
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
        "beside it as a check. The solved checks on the test set are evaluation, not "
        "training: their forward steps (`eval_fwd_steps`) and seconds (`eval_s`) are stored "
        "apart and counted in neither the cost, the budget nor the wall-clock seconds.",
        items and calib,
        items and note and f"Calibration: {note}",
        rows and "Ratios applied in the stored runs ((fwd_equiv − fwd_steps) / grad_steps):",
        rows and md_table("hidden units | ratio | experiments", rows),
    )


def _seeds_stats(exps: list[Results]) -> list[str]:
    rows = []
    for e in exps:
        seeds = C.seed_range(e)
        meta = [
            str(_meta_get(e.meta, k, default="–")) for k in ("scale", "root_seed", "replicates")
        ]
        rows.append([e.name, *meta, "–" if seeds is None else _range(*seeds), _status(e)])
    head = "experiment | scale | root seed | replicates | seeds per setting (stored) | status"
    return _blocks(
        "### Seeds and statistics",
        "Each experiment has one root seed; each run's seed is derived from it and the run's "
        "resolved configuration and replicate index through `numpy.random.SeedSequence`, so "
        "no number depends on the order of runs, `--jobs` or the backend (the `seed` column of "
        "`runs.parquet` holds every run's seed). *Seeds per setting* is the number of "
        f"replicates of each configuration. Intervals are {LEVEL:.0%}: percentile bootstrap "
        f"({N_BOOT} resamples, seed {SEED}) for medians, ERT and ERT ratios, Wilson score "
        "intervals for success rates, Newcombe's interval for their differences; tests are "
        "Mann-Whitney U (costs) and Fisher's exact test (success counts).",
        rows and md_table(head, rows),
    )


def _status(e: Results) -> str:
    rc = C.run_counts(e)
    planned = _meta_get(e.meta, "n_runs")
    status = _meta_get(e.meta, "status", default="no meta.json")
    of = f" of {planned}" if isinstance(planned, int) else ""
    err = f", {rc['errors']} ended with an error (left out)" if rc["errors"] else ""
    return f"{status}, {rc['n']}{of} runs stored{err}"


def _machine(exps: list[Results]) -> list[str]:
    metas = [(e.name, e.meta) for e in exps if e.meta]
    if not metas:
        return _blocks(
            "### Machine, software, commit",
            "No meta.json was found, so the machine and versions are unknown.",
        )

    def agg(*keys, fn=None):
        """The value of ``keys`` (or ``fn(meta)``) in every meta.json: once when they agree,
        else each with the experiments that have it."""
        vals: dict[str, list[str]] = {}
        for name, m in metas:
            v = fn(m) if fn else _meta_get(m, *keys)
            vals.setdefault("–" if v is None else str(v), []).append(name)
        if len(vals) == 1:
            return next(iter(vals))
        return "; ".join(f"{v} ({', '.join(n)})" for v, n in sorted(vals.items()))

    def commit(m):
        """The commits whose code executed the runs: those of the sessions that ran any (a
        session with nothing to run, e.g. after a change of the report text, adds none)."""
        hist = m.get("history") if isinstance(m.get("history"), list) else []
        ran = [h for h in hist if isinstance(h, dict) and h.get("executed")]
        seen = []
        for h in ran or [{"git": m.get("git")}]:  # no session history: the meta's own commit
            g = h.get("git")
            if isinstance(g, dict) and g.get("commit"):
                c = f"`{g['commit']}`" + (" (uncommitted changes)" if g.get("dirty") else "")
            else:
                c = "not recorded (a session written before commits were kept per session)"
            seen += [c] if c not in seen else []
        return ", ".join(seen)

    def cpu(m):
        model, cnt, av = (_meta_get(m, "cpu", k) for k in ("model", "count", "available"))
        return f"{model}, {cnt} logical CPUs ({av} available)" if model else None

    def threads(m):
        b, j, s = (_meta_get(m, "threads", k) for k in ("backend", "jobs", "scheduler"))
        return None if b is None else f"{b}, {j} jobs" + (f", scheduler {s}" if s else "")

    rows = [
        ["CPU", agg(fn=cpu)],
        ["platform", agg("platform")],
        ["execution", agg(fn=threads) + "; one thread per worker (Numba, BLAS, OpenMP)"],
        ["git commit", agg(fn=commit)],
        ["toolkit version", agg("toolkit_version")],
        ["scale", agg("scale")],
    ]
    names = {k for _, m in metas for k in (_meta_get(m, "versions") or {})}
    rows += [[k, agg("versions", k)] for k in sorted(names, key=lambda k: (k != "python", k))]
    sweeps = []
    for e in exps:
        if e.meta:
            wall, cpu_s, n = C.sweep_times(e)
            cpu_s = _duration(cpu_s) if cpu_s is not None else "not recorded"
            sweeps.append(
                [
                    e.name,
                    str(e.meta.get("end") or "–"),
                    str(n),
                    _duration(wall) if n else "–",
                    cpu_s,
                ]
            )
    head = "experiment | last session ended (UTC) | sessions | wall time | CPU time of the runs"
    return _blocks(
        "### Machine, software, commit",
        md_table(["", "value"], rows),
        "Sweeps (as recorded in meta.json and parallel.parquet):",
        md_table(head, sweeps),
    )


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


def _time_line(exps: list[Results]) -> str:
    """One sentence: how long the sweeps behind the report took, wall and CPU, and where."""
    t = C.sweep_totals(exps)
    if t is None:
        return "How long the sweeps took is not recorded (no meta.json with sessions)."
    cpu_model = _meta_get(t["exps"][0].meta, "cpu", "model")
    jobs = sorted({str(_meta_get(e.meta, "threads", "jobs")) for e in t["exps"]})
    return (
        f"The sweeps behind these results took {_duration(t['wall'])} of wall time"
        + (f" and {_duration(t['cpu'])} of CPU time in their runs" if t["cpu"] is not None else "")
        + (
            f" (CPU time not recorded for {_join(t['no_cpu'])})"
            if t["no_cpu"] and t["cpu"] is not None
            else ""
        )
        + (f" on {cpu_model}" if cpu_model else "")
        + (f" with --jobs {'/'.join(jobs)}" if jobs else "")
        + "; per experiment in *Machine, software, commit*."
    )


# ------------------------------------------------------------------------------------------
# experiment sections
# ------------------------------------------------------------------------------------------
def _figure_lines(exp: Results, rel: str) -> list[str]:
    if not exp.figures:
        return ["No figures (run `bptt plot` on this directory to draw them).", ""]
    lines, done = [], set()
    captions = exp.report.get("figures")
    for stem, cap in (captions if isinstance(captions, dict) else {}).items():
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


def _run_line(exp: Results) -> list[str]:
    cfg = exp.config
    parts = []
    desc = cfg.get("description") or _meta_get(exp.meta, "config_given", "description")
    if desc:
        parts.append(f"Config description: {str(desc).rstrip('.')}.")
    rc = C.run_counts(exp)
    if rc["n"]:
        ocs = ", ".join(f"{k} {v}" for k, v in rc["outcomes"].items())
        methods = [_label(m) for m in sorted(rc["methods"], key=_order_key)]
        parts.append(
            f"Runs: {rc['n']} ({ocs}); tasks: {_join(rc['tasks'])}; methods: {_join(methods)}."
        )
    lines = [f"Status: {_status(exp)}."]
    if _meta_get(exp.meta, "status") not in (None, "complete"):
        lines.append(
            "**This experiment is partial**: its sweep did not finish, so the numbers below "
            "cover only the stored runs; rerun the same command to resume."
        )
    planned = _meta_get(exp.meta, "n_runs")
    if isinstance(planned, int) and 0 < rc["n"] < planned:
        if _meta_get(exp.meta, "status") == "complete":
            lines.append(f"Only {rc['n']} of {planned} planned runs are stored.")
    return [" ".join(parts + lines), ""]


def _results_table(exp: Results) -> list[str]:
    t = C.results_table(exp)
    if t is None:
        return ["No runs to summarise.", ""]
    rows, prev = [], None
    for r in _ordered(t, "condition"):
        ref = r.variant == r.reference
        lim = "" if math.isnan(r.limited_gens) else " ¹"
        rows.append(
            [
                r.condition if r.condition != prev else "",
                _label(r.variant) + lim,
                _rate(int(r.successes), int(r.n), (r.lo, r.hi)),
                _ci(r.median, r.median_lo, r.median_hi),
                _ci(r.ert, r.ert_lo, r.ert_hi),
                "1 (reference)" if ref else _ci(r.ratio, r.ratio_lo, r.ratio_hi),
                "–" if ref else _p(r.p_value),
            ]
        )
        prev = r.condition
    head = "condition | method | solved (rate [CI]) | median final loss [CI] | "
    head += "ERT, fwd-equiv [CI] | ERT ratio to reference [CI] | p (Mann-Whitney)"
    refs = dict(zip(t["condition"], t["reference"], strict=True))
    nonbptt = [c for c, r in sorted(refs.items()) if isinstance(r, str) and r[:4] != "bptt"]
    note = (
        "ERT: expected forward-pass equivalents to one success (∞: no seed succeeded). "
        "Reference: the best BPTT variant of the condition (lowest finite ERT). ERT ratio: "
        "this method's ERT over the reference's; > 1 means the reference is faster. p: "
        "Mann-Whitney U on per-seed costs to success against the reference."
    )
    if nonbptt:
        note += (
            " Conditions without a BPTT variant that solved anything use the lowest-ERT method "
            f"as reference: {_join(nonbptt)}."
        )
    lim = t[t["limited_gens"].notna()]
    if len(lim):
        cases = _join(
            [
                f"{r.condition} ({fmt_num(r.limited_gens)} generations, 10·n = "
                f"{int(10 * r.limited_n):,})"
                for r in lim.itertuples()
            ]
        )
        note += (
            f" ¹ Budget-limited: the failed runs of this CMA-ES row made a median of fewer than "
            f"{C.GEN_FACTOR}·n generations (n: weights; CMA-ES needs on the order of 10·n to adapt "
            f"its covariance), so their failures say the budget ended, not that CMA-ES was "
            f"stuck: {cases}."
        )
    return _blocks(md_table(head, rows), note)


def _space_text(space: dict) -> str:
    """A method's search space as text: knob list-of-choices or {log|uniform: [lo, hi]}."""
    out = []
    for k, v in space.items():
        if isinstance(v, dict):
            kind, (lo, hi) = next(iter(v.items()))
            out.append(f"{k} {kind}-uniform on [{fmt_num(lo)}, {fmt_num(hi)}]")
        else:
            out.append(f"{k} ∈ {{{', '.join(_cell(x) for x in v)}}}")
    return "; ".join(out) or "not tuned"


def _tuning_condition(r, part: pd.DataFrame) -> str:
    """A tuning choice's condition: its part (else task) and what varies within the part."""
    vary = []
    for k in sorted({k for d in part["task_params"] for k in d}):
        if len({json.dumps(d.get(k)) for d in part["task_params"]}) > 1:
            vary.append(f"{k}={_cell(r.task_params.get(k))}")
    if part["n_hidden"].nunique() > 1:
        vary.append(f"H={r.n_hidden}")
    return (r.part or r.task) + (f" ({', '.join(vary)})" if vary else "")


def _tuning_section(exp: Results) -> list[str]:
    """The tuning stage of an experiment: protocol, cost per method, the choices."""
    tp = C.tuning_protocol(exp)
    if tp is None:
        return []
    prs = tp["protocols"]
    if not prs:
        return [
            "#### Tuning",
            "",
            "tuning.json holds no protocol (written by an older version).",
            "",
        ]
    first = next(iter(prs.values()))
    n_cond = sum(int(pr.get("conditions", 0)) for pr in prs.values())
    same = all(
        pr["configs"] == first["configs"] and pr["seeds"] == first["seeds"] for pr in prs.values()
    )
    how = (
        f"{first['configs']} configurations, each run on {_plural(first['seeds'], 'tuning seed')}"
        if same
        else "; ".join(
            f"{p}: {pr['configs']} configurations x {pr['seeds']} seeds" for p, pr in prs.items()
        )
    )
    intro = (
        f"Every method was tuned alike, per condition (task and its settings, network, budget; "
        f"{n_cond} in all): {how}, with the evaluation budget. The configurations are drawn at "
        f"random from the search space below ({first.get('search', 'random')} search; one draw "
        f"per method, the same in every condition). Tuning seeds come from their own stream "
        f"({first.get('seed_stream', 'the tuning stage')}), so no tuning run shares a seed or "
        f"its training data with an evaluation run. The choice per condition and method: "
        f"{first.get('objective', 'the lowest ERT')}."
    )
    spaces: dict = {}
    for part, pr in prs.items():
        for m, sp in pr["space"].items():
            spaces.setdefault((m, _space_text(sp)), []).append(part)
    rows = [
        [_label(m), ", ".join(p for p in parts if p) if len(parts) < len(prs) else "all", text]
        for (m, text), parts in sorted(spaces.items(), key=lambda kv: _order_key(kv[0][0]))
    ]
    lines = _blocks("#### Tuning", intro, md_table("method | parts | search space", rows))
    c = tp["cost"]
    has_cpu = "tuning_cpu_s" in c
    rows = [
        [
            _label(r.method),
            f"{int(r.tuning_runs):,}",
            fmt_num(r.tuning_fwd),
            fmt_num(r.eval_fwd),
            fmt_num(r.tuning_fwd / r.eval_fwd) if r.eval_fwd > 0 else "–",
        ]
        + ([_duration(r.tuning_cpu_s)] if has_cpu else [])
        for r in c.itertuples()
    ]
    head = "method | tuning runs | tuning cost, fwd-equiv | evaluation cost | tuning / evaluation"
    lines += _blocks(md_table(head + (" | tuning CPU time" if has_cpu else ""), rows))
    ch = tp["choices"]
    rows, prev = [], None
    for r in ch.itertuples():
        cond = _tuning_condition(r, ch[ch["part"] == r.part])
        cond, prev = ("" if cond == prev else cond), cond
        obj = "∞" if r.objective is None or pd.isna(r.objective) else fmt_num(r.objective)
        chosen = ", ".join(f"{k} {_cell(v)}" for k, v in r.params.items())
        rows.append([cond, _label(r.method), chosen])
        rows[-1] += [f"{r.solved}/{r.runs}", obj]
    head = "condition | method | chosen | solved on tuning seeds | best-cap ERT, fwd-equiv"
    return lines + _blocks(
        md_table(head, rows),
        "Tuning runs are stored in `tuning.parquet` (the sensitivity figure draws them); the "
        "choices in `tuning.json`. ∞: no configuration solved a tuning seed (then the lower "
        "median best loss decided).",
    )


def _optima_section(exp: Results) -> list[str]:
    st = C.stuck_table(exp)
    if st is None:
        return []
    rows = [
        [r.condition, r.arch, _label(r.variant), _rate(r.successes, r.n, (r.lo, r.hi))]
        + ["–" if math.isnan(r.stalled) else f"{int(r.stalled)}/{r.n_fail}"]
        for r in _ordered(st, "condition", "arch")
    ]
    return _blocks(
        "#### Stuck runs",
        md_table("condition | network | method | solved (rate [CI]) | stalled failures", rows),
        "A stalled failure improved its best loss "
        f"by less than {STALL_TOL:.0%} over the second half of its budget. (Distinct final-loss "
        "levels are not counted as basins: runs stop when solved, so a final loss records where "
        "a run was stopped, not where it converged; what failed runs ended in is the anatomy "
        "table of claim (b).)",
    )


def _anatomy_table(df: pd.DataFrame) -> list[str]:
    """Claim (b): the class mix of failed runs' end points per task x method x network
    (:func:`toolkit.claims.anatomy_counts`)."""
    res = C.anatomy_counts(df)
    if res is None:
        return []
    tab, thr = res
    present = [c for c in tab.columns[6:] if c != "continued"]
    order = lambda r: (C.natkey(str(r[0])), not r[2], r[3], _order_key(str(r[1])))
    rows = [
        [
            r[0],
            r[4],
            _label(str(r[1])),
            r[5],
            *[f"{m} ({m / r[5]:.0%})" if m else "–" for m in r[6 : 6 + len(present)]],
            *([_solved_on(*r.continued)] if "continued" in tab else []),
        ]
        for r in sorted(tab.itertuples(index=False), key=order)
    ]
    classes = " | ".join("optimum reached" if c == "solved" else c for c in present)
    if "continued" in tab:
        classes += f" | solved when continued (x{thr['continue_factor']:g} budget)"
    lt, gt = thr["loss_tol"], thr["grad_tol"]
    return _blocks(
        "#### What the failed runs ended in",
        md_table(f"task | network | method | failed runs | {classes}", rows),
        "Each failed run's final theta, on its own training set (loss summed over sequences "
        "and steps, optimum 0), is labelled in this order: *optimum reached* if its loss is "
        f"<= {lt:g}; *slow* if its gradient norm is > {gt:g} and either the "
        "Newton decrement over the directions of curvature > flat (the loss decrease a "
        f"quadratic model predicts to the nearby critical point) is > {lt:g} or the gradient "
        f"along the other directions has norm > {gt:g}; *plateau* if the largest "
        f"|Hessian eigenvalue| is < {thr['flat_tol']:g} (flat) or at least {thr['sat_frac']:.0%} "
        f"of the hidden activations on the training set are saturated (|h| > {thr['sat_h']:g}); "
        f"*saddle* if an eigenvalue is < -{thr['neg_tol']:g} x the largest |eigenvalue|; else "
        "*local minimum*. The Hessian is by central finite differences of the exact gradient "
        "(`toolkit/anatomy.py`, `[post.anatomy]`).",
        *_continuation_lines(df, thr),
    )


def _solved_on(k: int, n: int) -> str:
    return f"{k}/{n} ({k / n:.0%})" if n else "–"


def _continuation_lines(df: pd.DataFrame, thr: dict) -> list[str]:
    """The continuation test (:func:`toolkit.claims.continuation_table`) and its rule."""
    t = C.continuation_table(df)
    if t is None:
        return []
    factor = thr["continue_factor"]
    rows = [
        [
            _label(r.method),
            "optimum reached" if r.end_point == "solved" else r.end_point,
            _solved_on(r.k, r.n),
            "–" if math.isnan(r.median_cost_x) else f"{r.median_cost_x:.2f}",
        ]
        for r in sorted(t.itertuples(), key=lambda r: _order_key(r.method))
    ]
    head = (
        f"method | end point (before continuing) | solved when continued (x{factor:g} budget)"
        " | median cost when solved (x the failed run's)"
    )
    return [
        md_table(head, rows),
        f"Continuation test: every run that failed on its budget is run again from its own "
        f"seeds with {factor:g}x the budget (the same run, optimizer state included: a run's "
        "path does not depend on its budget until the budget stops it), i.e. continued for "
        f"{factor - 1:g}x its budget more. The failure classes above use it where it is "
        "decisive: a run that solves when continued is *slow*, whatever its end point looked "
        "like; a *slow* end point whose continuation does not solve takes the label of the "
        "continued run's end point (what the descent led into), or *unsettled* if that is "
        "*slow* again (neither solved nor at rest at a critical point after "
        f"{factor:g}x the budget); the other labels stand."
        + (
            f" At this scale at most {thr['continue_max']} failed runs per network and method "
            "were continued (the first by replicate: a sample blind to the outcome, to keep "
            "the scale's run time; the paper scale continues all); the runs not continued keep "
            "their end point's label."
            if thr.get("continue_max")
            else ""
        ),
    ]


def _b_tables(b1: pd.DataFrame, b2: pd.DataFrame) -> list[str]:
    def arms(label, r, a, b, d):
        k, n, ci = (getattr(r, f"{x}_{a}") for x in ("k", "n", "ci"))
        one = f"{_label(label)}: {_rate(k, n, ci)}"
        if b is None:
            return one
        k, n, ci = (getattr(r, f"{x}_{b}") for x in ("k", "n", "ci"))
        return f"{one} vs {_rate(k, n, ci)} ({d:+.2f})"

    rows2 = [
        [r.condition, f"{r.rec_arch} / {r.ff_arch}", arms(r.bptt, r, "gr", "gf", r.d_grad)]
        + [arms(r.evo, r, "er", "ef", r.d_evo), _ci(r.delta, r.lo, r.hi, 2), *_tail(r)]
        for r in b2.itertuples()
    ]
    rows1 = [
        [r.condition, r.arch, arms(r.bptt, r, "b", None, 0), arms(r.other, r, "o", None, 0)]
        + [_ci(r.d, r.lo, r.hi, 2), *_tail(r)]
        for r in b1.itertuples()
    ]
    head2 = "condition | recurrent / feed-forward | BPTT rec vs ff (difference) | CMA-ES rec vs "
    head2 += "ff (difference) | interaction delta [CI] | p (bootstrap) | p (Holm) | outcome"
    head1 = "condition | network | BPTT | CMA-ES | difference in success [CI] | p (Fisher) | "
    return _blocks(
        rows2
        and "(b) The verdict: method x architecture interaction of success, delta = "
        "(BPTT rec − BPTT ff) − (CMA-ES rec − CMA-ES ff):",
        rows2 and md_table(head2, rows2),
        rows1
        and "(b1) BPTT against CMA-ES on the recurrent nets (reported separately; not part of "
        "the verdict):",
        rows1 and md_table(head1 + "p (Holm) | outcome", rows1),
    )


def _tail(r) -> list[str]:
    """A panel row's p, Holm-adjusted p and outcome."""
    return [_p(r.p), _p(r.p_holm), r.outcome]


def _speed_table(panels: pd.DataFrame) -> list[str]:
    rows = [
        [
            r.condition,
            f"{_label(r.bptt)}: {_ci(r.ert_b, r.ert_b_lo, r.ert_b_hi)}",
            f"{_label(r.evo)}: {_ci(r.ert_e, r.ert_e_lo, r.ert_e_hi)}",
            f"{fmt_num(r.bc_b)} (cap {fmt_num(r.cap_b)})",
            f"{fmt_num(r.bc_e)} (cap {fmt_num(r.cap_e)})",
            fmt_num(r.fixed_ratio),
            _ci(r.ratio, r.lo, r.hi),
            *_tail(r)[:2],
            _ci(r.fam_ratio, r.fam_lo, r.fam_hi),
            _ci(r.wall_ratio, r.wall_lo, r.wall_hi),
            r.outcome,
        ]
        for r in panels.itertuples()
    ]
    head = (
        "condition | BPTT: fixed-budget ERT [CI] | evolutionary: fixed-budget ERT [CI] | "
        "BPTT: best-cap ERT | evolutionary: best-cap ERT | fixed-budget ratio | "
        "best-cap ERT ratio evo/BPTT [CI] | p (bootstrap) | p (Holm) | "
        "best of family ratio [CI] (descriptive) | best-cap ratio in wall seconds [CI] | outcome"
    )
    return md_table(head, rows)


def _cost_ratio_table(exp: Results) -> list[str]:
    tab, r0 = C.cost_ratio_table(exp)
    if tab.empty:
        return []
    ratios = sorted(tab["cost_ratio"].unique())
    cell = lambda x: f"{fmt_num(x.ratio)}, {x.outcome}"
    be = lambda sub: [fmt_num(sub["break_even"].iloc[0])]
    rows = _pivot(tab, "cost_ratio", ratios, cell, keys=("condition",), missing="–", extra=be)
    calibrated = lambda cr: math.isfinite(r0) and abs(cr - r0) < 1e-3
    head = [f"{cr:g}" + (" (calibrated)" if calibrated(cr) else "") for cr in ratios]
    return _blocks(
        "Sensitivity to the cost of one gradient step (in forward passes): best-cap ERT ratio "
        "evo/BPTT and the outcome at each cost ratio (Holm over the conditions at each), and "
        "the break-even cost ratio at which the ERT ratio is 1 (– when nothing was solved or it "
        "lies outside [0.01, 1000]):",
        md_table(["condition", *head, "break-even ratio"], rows),
    )


def _lag_table(exp: Results) -> list[str]:
    """Success against a swept length/lag setting: methods x values."""
    try:
        from toolkit.plots import LAG_PARAMS, PARAM_LABELS
    except Exception:
        LAG_PARAMS, PARAM_LABELS = ("lag", "T", "length", "seq_len", "n_bits"), {}
    out = []
    for p, sr in C.lag_success(exp, LAG_PARAMS):
        xs = sorted(sr["x"].unique())
        rows = _pivot(sr, "x", xs, lambda s: f"{int(s.successes)}/{int(s.n)}")
        out += _blocks(
            f"#### Success against {PARAM_LABELS.get(p, p)}",
            md_table(["condition", "method", *[f"{p}={A._fmt(x)}" for x in xs]], rows),
            "Cells: successful seeds / seeds (Wilson intervals in the figure).",
        )
    return out


def _scaling_table(exp: Results) -> list[str]:
    sc = C.scaling(exp)
    if sc is None:
        return []
    sizes = sorted(int(x) for x in sc["ert"]["n_params"].unique())

    def slope(sub):
        k = sc["slope"][(sub["condition"].iloc[0], sub["variant"].iloc[0])]
        return ["–" if math.isnan(k) else f"{k:.2f}"]

    rows = _pivot(sc["ert"], "n_params", sizes, lambda x: fmt_num(x.ert), extra=slope)
    first, by_size = sc["first"], sc["by_size"]
    return _blocks(
        "#### ERT (forward-pass equivalents) against the number of weights",
        md_table(["condition", "method", *[f"{s} weights" for s in sizes], "slope"], rows),
        "Slope: least-squares fit of log ERT on log(number of weights) over the sizes with a "
        "finite ERT (ERT grows like weights^slope); descriptive, no CI.",
        len(by_size)
        and "Per network size, best evolutionary method against best BPTT variant: "
        + "; ".join(f"{r.condition}: {r.outcome}" for r in by_size.itertuples())
        + ". "
        + (
            f"Evolution is first significantly slower at {first} weights."
            if first is not None
            else "Evolution is not significantly slower at any size measured."
        ),
    )


def _guess_table(exp: Results) -> list[str]:
    et = C.guess_ert(exp)
    if et is None:
        return []
    rows = [
        [
            r.condition,
            _label(r.variant),
            f"{r.n_reached}/{r.n_runs}",
            _ci(r.ert, r.ert_lo, r.ert_hi),
        ]
        for r in _ordered(et, "condition")
    ]
    return _blocks(
        "#### Expected number of loss evaluations to solve",
        md_table("condition | method | solved | ERT, loss evaluations [CI]", rows),
        "For random guessing a loss evaluation is one guess, so its ERT is the mean number of "
        "guesses to a solution (restarts included); for BPTT one evaluation is one gradient "
        "of a batch, for the evolution strategies one candidate's loss. Published numbers "
        "for these setups are set beside ours in *Published numbers beside ours*.",
    )


def _fidelity_table(exp: Results) -> list[str]:
    fs = C.fidelity_summary(exp)
    if fs is None:
        return []
    rows = [
        ["–" if r.T is None else A._fmt(r.T), A._fmt(r.k), str(r.n)]
        + [fmt_num(x) for x in (r.cos_median, r.cos_min, r.norm_ratio)]
        for r in fs.itertuples()
    ]
    return _blocks(
        "#### Gradient fidelity of BPTT(k)",
        md_table(
            "T | k | parameter vectors | median cosine | min cosine | median norm ratio", rows
        ),
        "Cosine between the truncated gradient and the full BPTT gradient at the same "
        "parameters; norm ratio |g_k| / |g|.",
    )


def _cliff_table(exp: Results) -> list[str]:
    paths, band = C.cliff_paths(exp), C.bistable_band(exp)
    rows = [
        [_label(r.method), str(r.points)]
        + [fmt_num(x) for x in (r.evals, r.start, r.final, r.lowest, r.grad_norm)]
        for r in ([] if paths is None else _ordered(paths, var="method"))
    ]
    head = "method | points | loss evaluations | start loss | final loss | lowest loss"
    w, lo, hi = map(fmt_num, band or (None,) * 3)
    return _blocks(
        paths is not None and "#### Optimizer paths on the single-unit surface",
        paths is not None and md_table(f"{head} | largest gradient norm", rows),
        band is not None
        and f"Bistable band of the single unit at w = {w}: b in [{lo}, {hi}] (two stable fixed "
        "points).",
    )


def _interp_table(exp: Results) -> list[str]:
    bar = C.interpolation_barriers(exp)
    if bar is None:
        return []
    rows = [[r.pair, *map(fmt_num, (r.start, r.end, r.top, r.barrier))] for r in bar.itertuples()]
    head = "pair | loss at start | loss at end | highest loss between | barrier (× ends)"
    return _blocks(
        "#### Loss on the straight line between two seeds' solutions",
        md_table(head, rows),
        "A barrier well above 1 means the two solutions lie in different basins.",
    )


def _parallel_table(exp: Results) -> list[str]:
    sp = C.parallel_speedup(exp)
    if sp is None:
        return []
    rows = [
        [str(int(r.jobs)), str(int(r.size)), *map(fmt_num, (r.median, r.speedup, r.efficiency))]
        for r in sp.itertuples()
    ]
    j0, backends = int(sp["jobs"].iloc[0]), sp.attrs.get("backends")
    return _blocks(
        "#### Wall time against --jobs",
        md_table("--jobs | timings | median wall time (s) | speedup | efficiency", rows),
        f"Speedup relative to --jobs {j0}; efficiency = speedup / (jobs / {j0})."
        + (f" Backend: {', '.join(backends)}." if backends else ""),
    )


def _experiment_section(exp: Results, num: int, title: str, purpose: str) -> list[str]:
    results = []
    if exp.runs is not None and len(exp.runs) and exp.name != "parallel":
        results = ["#### Results", "", *_results_table(exp), *_optima_section(exp)]
        results += _tuning_section(exp)
        results += [*_lag_table(exp), *_scaling_table(exp), *_guess_table(exp)]
    elif exp.name not in ("cliff", "parallel"):
        results = "No run table (`runs.parquet`) is stored for this experiment."
    pub = exp.report.get("published")
    return _blocks(
        f"### {num}. {title} (`{exp.name}/`)",
        purpose,
        exp.problems and "Problems reading this directory: " + "; ".join(exp.problems) + ".",
        _run_line(exp),
        _figure_lines(exp, exp.name),
        results,
        _fidelity_table(exp),
        _cliff_table(exp),
        _interp_table(exp),
        _parallel_table(exp),
        f"Published numbers: {pub}"
        if pub
        else exp.report.get("compare")
        and "Published numbers: see *Published numbers beside ours*.",
    )


def _safe(fn, *args, what: str) -> list[str]:
    """Run a section builder; a failure becomes a note in the report, never an exception."""
    try:
        return fn(*args)
    except Exception as e:  # the report must not die on one bad table
        return [f"*{what} could not be generated: {type(e).__name__}: {e}*", ""]


# ------------------------------------------------------------------------------------------
# claims
# ------------------------------------------------------------------------------------------
def _verdict_a(exps: dict[str, Results]) -> dict:
    v = C.verdict_a(exps)
    panels, label, others = v["panels"], v["label"], _others_a(v["others"])
    title = "## Claim (a): is BPTT faster than evolutionary optimization?"
    if panels.empty:
        return _not_measured(
            title,
            "the speed experiment has no results."
            if not v["has_runs"]
            else "the speed experiment has no condition with both a BPTT variant and an "
            "evolutionary method.",
            others,
        )
    sents = _by_outcome(
        panels,
        lambda r: (
            f"{r.condition} ({_label(r.evo)} / {_label(r.bptt)}: "
            f"{_ci(r.ratio, r.lo, r.hi)}, {_pt(r.p)}, Holm {_pt(r.p_holm)})"
        ),
        OUTCOMES_A,
    )
    n, fast = _plural(len(panels), "condition"), v["counts"].get("BPTT faster", 0)
    n_inf = _plural(int(panels["informative"].sum()), "informative condition")
    para = (
        f"**Verdict: {label}.** In the speed experiment ({n}), comparing "
        "the restart-aware expected cost to the task's success criterion (best-cap ERT, "
        "forward-pass equivalents) of the declared pairing, CMA-ES against BPTT (Adam) "
        "(ratio = ERT(evolutionary) / ERT(BPTT), > 1: BPTT faster): " + "; ".join(sents) + "."
    )
    if v["wall_n"]:
        differ = [f"{r.condition} ({r.wall_outcome})" for r in v["wall_differ"].itertuples()]
        para += (
            " Measured in wall-clock seconds instead of forward-pass equivalents, the same "
            f"rule gives the same outcome in {v['wall_n'] - len(differ)} of "
            f"{_plural(v['wall_n'], 'condition')}"
            + (f"; it differs on {_join(differ)}" if differ else "")
            + "."
        )
    lines = _blocks(
        title,
        para,
        _speed_table(panels),
        _safe(_cost_ratio_table, exps["speed"], what="The cost-ratio table"),
        _seeds_note(v["n_min"], v["n_max"], "a"),
        others,
    )
    basis = f"BPTT significantly faster in {fast} of {n_inf} (speed)"
    return {"label": label, "basis": basis, "lines": lines}


def _by_outcome(df: pd.DataFrame, desc, texts: dict) -> list[str]:
    """One clause per outcome of ``texts`` ({outcome: text}) that ``df`` has: the text, then
    ``desc`` of each row with that outcome."""
    return [
        f"{text} {_join([desc(r) for r in df.itertuples() if r.outcome == outc])}"
        for outc, text in texts.items()
        if (df["outcome"] == outc).any()
    ]


def _others(df: pd.DataFrame, intro: str, head: str, cells) -> list[str]:
    """The same comparison in the other experiments: a summary line and a table."""
    if not len(df):
        return []
    summ = ", ".join(f"{k}: {n}" for k, n in C.outcome_counts(df).items())
    rows = [[r.experiment, r.condition, *cells(r), r.outcome] for r in df.itertuples()]
    return _blocks(
        f"{intro} (supporting evidence; not part of the verdict rule): {summ}.",
        md_table(f"experiment | condition | {head} | outcome", rows),
    )


OUTCOMES_A = {
    "BPTT faster": "BPTT was significantly faster (Holm-adjusted) on",
    "evolution faster": "the evolutionary method was significantly faster (Holm-adjusted) on",
    "equally fast": f"the two were equally fast within a factor {EQUIV_RATIO:g} on",
    "undecided": "the difference is not significant after Holm's correction on",
    "nothing solved": "no method solved any seed on",
    "uninformative": "every method solved no seed, or every seed (uninformative, left out) on",
}
OUTCOMES_B1 = {
    "BPTT more often stuck": "BPTT succeeded significantly less often than CMA-ES on",
    "BPTT less often stuck": "BPTT succeeded significantly more often than CMA-ES on",
    "equal": f"the success rates were equal within ±{EQUIV_DIFF:g} on",
    "undecided": "the difference is not significant after Holm's correction on",
    "nothing solved": "neither solved any seed on",
    C.BUDGET_LIMITED: "CMA-ES made fewer than 10·n generations (budget-limited, not stuck; left "
    "out) on",
}
OUTCOMES_B2 = {
    "BPTT hurt more": "recurrence lowered BPTT's success significantly more than CMA-ES's on",
    "BPTT hurt less": "recurrence lowered BPTT's success significantly less than CMA-ES's on",
    "equal": f"the interaction was within ±{EQUIV_DIFF:g} on",
    "undecided": "the interaction is not significant after Holm's correction on",
    "not informative": "no method solved the feed-forward net (no information) on",
    "uninformative": "every arm solved no seed, or every seed (uninformative, left out) on",
}


def _not_measured(title: str, basis: str, others: list[str]) -> dict:
    lines = _blocks(title, f"**Verdict: not measured** — {basis}", others)
    return {"label": "not measured", "basis": basis, "lines": lines}


def _others_a(df: pd.DataFrame) -> list[str]:
    return _others(
        df,
        "The same comparison in the other experiments",
        "ERT ratio evo/BPTT [CI] | p",
        lambda r: [_ci(r.ratio, r.lo, r.hi), _p(r.p)],
    )


def _others_b(df: pd.DataFrame) -> list[str]:
    return _others(
        df,
        "Best BPTT against CMA-ES success rates in the other experiments",
        "BPTT vs CMA-ES solved | difference [CI] | p (Fisher)",
        lambda r: [f"{r.k_b}/{r.n_b} vs {r.k_o}/{r.n_o}", _ci(r.d, r.lo, r.hi, 2), _p(r.p)],
    )


def _verdict_b(exps: dict[str, Results]) -> dict:
    v = C.verdict_b(exps)
    label, others = v["label"], _others_b(v["others"])
    title = "## Claim (b): is BPTT more often stuck in local optima, because of recurrence?"
    if not v["measured"]:
        return _not_measured(title, "the local_optima experiment has no results.", others)
    b1, b2 = v["b1"], v["b2"]
    s1 = _by_outcome(
        b1,
        lambda r: (
            f"{r.condition} ({_label(r.bptt)} {r.k_b}/{r.n_b} vs {_label(r.other)} "
            f"{r.k_o}/{r.n_o}, difference {_ci(r.d, r.lo, r.hi, 2)}, Fisher {_pt(r.p)}, "
            f"Holm {_pt(r.p_holm)})"
        ),
        OUTCOMES_B1,
    )
    s2 = _by_outcome(
        b2,
        lambda r: (
            f"{r.condition}, {r.ff_arch} ({_label(r.bptt)} rec − ff {r.d_grad:+.2f}, "
            f"{_label(r.evo)} rec − ff {r.d_evo:+.2f}: interaction "
            f"{_ci(r.delta, r.lo, r.hi, 2)}, {_pt(r.p)}, Holm {_pt(r.p_holm)})"
        ),
        OUTCOMES_B2,
    )
    pos, neg = v["counts"].get("BPTT hurt more", 0), v["counts"].get("BPTT hurt less", 0)
    basis = (
        f"recurrence hurt BPTT significantly more than CMA-ES in {pos} and less in {neg} of "
        f"{_plural(int(b2['informative'].sum()), 'informative condition')} (method x "
        "architecture interaction, local_optima)"
    )
    para = f"**Verdict: {label}.** In the local_optima experiment, " + (
        "the verdict's comparison, the method x architecture interaction of success: "
        + "; ".join(s2)
        + "."
        if s2
        else "no feed-forward (recurrent = false) runs are stored, so the interaction that "
        "decides the claim could not be measured."
    )
    if s1:
        para += (
            " Separately, BPTT against CMA-ES on the recurrent nets (b1, not part of the "
            "verdict): " + "; ".join(s1) + "."
        )
    lines = _blocks(
        title,
        para,
        _b_tables(b1, b2),
        _seeds_note(v["n_min"], v["n_max"], "b"),
        _anatomy_table(exps["local_optima"].tables.get("anatomy")),
        others,
    )
    return {"label": label, "basis": basis, "lines": lines}


OUTCOMES_C = {
    "architecture": "a gated cell trained by BPTT succeeded significantly more often than "
    "Elman, and CMA-ES did not rescue Elman (the architecture) on",
    "algorithm": "CMA-ES on Elman succeeded significantly more often than BPTT on Elman, and "
    "no gated cell rescued BPTT (the algorithm) on",
    "both": "a gated cell rescued BPTT and CMA-ES rescued Elman, both significantly, on",
    "neither": f"no swap changed success by more than ±{EQUIV_DIFF:g} on",
    "undecided": "neither a gated cell trained by BPTT nor CMA-ES on Elman succeeded "
    "significantly more often than BPTT on Elman, yet not every swap stayed within "
    f"±{EQUIV_DIFF:g} (undecided) on",
    "uninformative": "every arm solved no seed, or every seed (uninformative, left out) on",
}


def _c_unweighed(rows: pd.DataFrame) -> str:
    """A sentence naming the significant swaps (Holm) that the rule of question (c) does not
    weigh: a gated cell against Elman under CMA-ES, an algorithm swap on a gated cell, and
    any swap in which the arm the rule looks for did worse; empty when there is none."""
    if not len(rows):
        return ""

    def weighed(r) -> bool:
        return r.d > 0 and (
            (r.kind == "architecture" and r.what in C.PRIMARY_GRAD)
            or (r.kind == "algorithm" and r.what == C.BASE_CELL)
        )

    sig = [r for r in rows.itertuples() if r.significant and not weighed(r)]
    if not sig:
        return ""
    by = {}
    for r in sig:
        by.setdefault(r.condition, []).append(f"{r.a} − {r.b} = {r.d:+.2f}")
    parts = [f"{cond}: {', '.join(v)}" for cond, v in by.items()]
    return (
        " Significant swaps (Holm) that the rule does not weigh, in the table below: "
        + "; ".join(parts)
        + "."
    )


def _verdict_c(exps: dict[str, Results]) -> dict:
    v = C.verdict_c(exps)
    title = "## Question (c): do long lags defeat the algorithm or the architecture?"
    if not v["measured"]:
        return _not_measured(
            title, "the lag experiment has no runs of a cell other than Elman.", []
        )
    rows, conds, label = v["rows"], v["conditions"], v["label"]
    clauses = _by_outcome(conds, lambda r: r.condition, OUTCOMES_C)
    counts = v["counts"]
    basis = (
        f"of {_plural(int((conds['outcome'] != 'uninformative').sum()), 'informative condition')}"
        f" (lag): architecture {counts.get('architecture', 0)}, algorithm "
        f"{counts.get('algorithm', 0)}, both {counts.get('both', 0)}"
    )
    para = f"**Answer: {label}.** In the lag experiment, " + "; ".join(clauses) + "."
    para += _c_unweighed(rows)
    guess = v.get("guessing")
    if guess is not None and (guess["k"] > 0).any():
        solved = ", ".join(f"{r.k}/{r.n} on {r.condition}" for r in guess.itertuples() if r.k > 0)
        para += (
            f" Read the answer with the task in mind: random weight guessing on Elman also "
            f"solved {solved}. Where guessing solves a task, search is favoured by the task "
            "(Schmidhuber, Hochreiter & Bengio 2001 found the two-sequence problem easy for "
            "guessing); the LSTM paper's answer, the architecture, came from tasks that "
            "guessing cannot solve, such as delayed recall at long lags."
        )
    cell_rate = [
        [r.condition, r.cell, _label(r.method), f"{r.k}/{r.n} = {r.k / r.n:.2f}" if r.n else "–"]
        for r in v["table"].itertuples()
    ]
    comp = [
        [
            r.condition,
            "cell swap" if r.kind == "architecture" else "algorithm swap",
            f"{r.a} ({r.k_a}/{r.n_a})",
            f"{r.b} ({r.k_b}/{r.n_b})",
            _ci(r.d, r.lo, r.hi, 2),
            _p(r.p),
            _p(r.p_holm),
        ]
        for r in rows.itertuples()
    ]
    lines = _blocks(
        title,
        para,
        md_table("condition | cell | algorithm | solved", cell_rate),
        md_table(
            "condition | comparison | a | b | difference a - b [CI] | p (Fisher) | p (Holm)",
            comp,
        ),
        md_table("condition | answer", [[r.condition, r.outcome] for r in conds.itertuples()]),
        _seeds_note(v["n_min"], v["n_max"], "b"),
    )
    return {"label": label, "basis": basis, "lines": lines}


def _names(exps: dict[str, Results]) -> list[str]:
    """Every experiment name in document order: the suite's, then any other with results."""
    return [*_KNOWN, *[n for n in exps if n not in _KNOWN]]


def _published(exps: dict[str, Results]) -> list[str]:
    rows = []
    for name in _names(exps):
        comp = exps[name].report.get("compare") if name in exps else None
        for pub in [r for r in comp if isinstance(r, dict)] if isinstance(comp, list) else []:
            ours = "; ".join(
                f"{_ci(r.ert, r.ert_lo, r.ert_hi)} ({r.experiment}: {r.condition}, "
                f"H={_values(r.n_hidden)}, {r.n_reached}/{r.n_runs} solved)"
                for r in C.published_matches(pub, exps).itertuples()
            )
            if ours:
                ours += f" ({pub['note']})" if pub.get("note") else ""
            else:
                ours = pub["missing"][0].upper() + pub["missing"][1:]
            rows.append([pub["what"], pub["value"], pub["setup"], pub["source"], ours])
    notes = [(n, exps[n].report.get("published")) for n in _names(exps) if n in exps]
    return _blocks(
        "## Published numbers beside ours",
        "Only numbers we could check against the source are printed; each row names the "
        "paper and section. Published setups differ from ours in the ways listed, so the "
        "comparison is of orders of magnitude, not a replication test.",
        md_table("quantity | published | published setup | source | ours", rows),
        "Our random-guessing numbers are ERTs in loss evaluations (one evaluation = one "
        "guess); see the random_guessing section for our setup (sequence length, hidden "
        "units, weight range).",
        [f"* {name}: {note}" for name, note in notes if note],
    )


# ------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------
def render_report(results_root) -> str:
    """The report's markdown text for the results under ``results_root``."""
    root = Path(results_root)
    exps = {n: store.read_results(root / n) for n in _KNOWN if store.has_results(root / n)}
    missing = [n for n in _KNOWN if n not in exps]
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.name.startswith((".", "_")) or d.name in _KNOWN or not d.is_dir():
            continue
        if (d / "meta.json").is_file() or (d / "runs.parquet").is_file():
            exps[d.name] = store.read_results(d)
    names = [n for n in _names(exps) if n in exps or n in missing]
    va = _safe_verdict(_verdict_a, exps, "claim (a)")
    vb = _safe_verdict(_verdict_b, exps, "claim (b)")
    vc = _safe_verdict(_verdict_c, exps, "question (c)")
    lines = _intro([exps[n] for n in names if n in exps], missing)
    lines += _summary(va, vb, vc)
    lines += _question(_networks([exps[n] for n in names if n in exps]))
    lines += _blocks("## How the verdicts are decided", RULES_TEXT)
    lines += _safe(_setup, [exps[n] for n in names if n in exps], what="The setup section")
    lines += ["## Experiments", ""]
    for i, name in enumerate(names, start=1):
        text = exps[name].report if name in exps else {}
        title, purpose = str(text.get("title") or name), str(text.get("summary") or "")
        if name in missing:
            lines += _blocks(
                f"### {i}. {title} (`{name}/`)",
                f"Not run: no results in `{name}/` (run `bptt run experiments/{name}.toml`, "
                "or `make experiments`).",
            )
        else:
            lines += _safe(_experiment_section, exps[name], i, title, purpose, what=f"`{name}`")
    lines += va["lines"] + vb["lines"] + vc["lines"]
    lines += _safe(_published, exps, what="The published-numbers section")
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def _safe_verdict(fn, exps, what: str) -> dict:
    try:
        return fn(exps)
    except Exception as e:
        msg = f"the {what} analysis failed: {type(e).__name__}: {e}"
        title = {"(a)": "Claim (a)", "(b)": "Claim (b)"}.get(what[-3:], "Question (c)")
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
