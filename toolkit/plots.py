"""Figures drawn from stored results only (never from live runs), PNG and PDF, deterministic.

:func:`plot_experiment` reads ``runs.parquet``, ``traces.parquet``, ``meta.json`` and any
landscape tables (:data:`toolkit.landscape.TABLES`, ``parallel.parquet``) from a result directory
and writes every figure those tables support to ``<results_dir>/figures/``:

====================  =============================================================================
file stem             figure
====================  =============================================================================
convergence_fwd_equiv 1. best loss so far vs forward-pass equivalents: median, IQR band per method
convergence_wall_s    1. twin: the same against wall seconds
ecdf                  2. runtime ECDF over log-spaced loss targets (COCO), one panel per task
final_loss            3. per-seed final loss (strip over box) per method, success rate with CI
success_vs_<param>    4. success rate vs sequence length / lag (Wilson band), when it was swept
scaling               5. ERT vs number of weights, log-log, bootstrap CI, when n_hidden was swept
truncation            6. unfold depth k vs gradient cosine, success rate and ERT
cliff                 7a. Pascanu et al. (2013) cliff: log loss over (w, b) with optimizer paths
bifurcation           7b. Doya's fixed points of x = w sigmoid(x) + b at w = 5 vs b
loss_slices           7c. Elman-net loss on filter-normalised 1-D/2-D slices and between seeds
grad_norm_slice       7d. loss and gradient norm along a 1-D slice (log scale)
parallel_scaling      8. sweep wall time, speedup and efficiency vs --jobs
failure_anatomy       9. class shares of failed runs' end points per method x network, per task
====================  =============================================================================

Inputs of figure 8: ``parallel.parquet`` with columns ``jobs`` and ``wall_s`` (one row per timed
sweep), or a list of {"jobs", "wall_s"} under the key ``parallel`` in meta.json.
Figure 6 reads the unfold depth ``k`` per run (``grid.k`` or ``method_params``) and, for the
gradient cosine, ``gradient_fidelity.parquet`` (:func:`toolkit.landscape.gradient_fidelity`).

Every figure has axis labels with units, a legend, and a title naming the experiment, task and
configuration; widths are a paper column (3.5 in) or a page (7 in); colours are colour-blind
safe (Okabe & Ito 2008, plus Paul Tol's muted set), one fixed colour and marker per method
name (:func:`method_style`). Saving is deterministic: Agg, no timestamps or software
versions in the files, so the same tables give the same bytes.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
import zlib
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from toolkit import analysis, store
from toolkit.landscape import cliff_boundary

COLUMN_W = 3.5  # inches, one column of a two-column paper
PAGE_W = 7.0  # inches, full page width
DPI = 200

# colour, marker and label of each method come from its registry entry (Method.color, .marker,
# .label: Okabe-Ito first, then Paul Tol's muted); the cliff's optimizer paths are not methods
_PATH_STYLES = {
    "gd": ("#56B4E9", "v", "gradient descent"),  # plain gradient descent (= SGD's colour)
    "gd_clipped": ("#AA4499", "d", "GD, norm clipped"),  # purple (Tol)
}
EXTRA_COLORS = ("#44AA99", "#117733", "#88CCEE", "#CC6677", "#DDCC77", "#F0E442", "#666666")
EXTRA_MARKERS = ("p", ">", "8", "H", "d", "1", "2")


def _family(name: str) -> str | None:
    """The registered method's family ("gradient" | "evolution"), None for a path or unknown."""
    from toolkit.train import METHODS

    m = METHODS.get(name)
    return None if m is None else m.family


def _known_styles() -> dict[str, tuple[str, str, str]]:
    """{name: (colour, marker, label)}: registered methods in their order, then the paths."""
    from toolkit.train import METHODS

    ms = sorted(METHODS.values(), key=lambda m: m.order)
    return {**{m.name: (m.color, m.marker, m.label or m.name) for m in ms}, **_PATH_STYLES}


#: colour per known name, in legend order (derived from the registry; read by report.py)
METHOD_COLORS = {n: s[0] for n, s in _known_styles().items()}
_VARIANT_LS = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1)))

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "figure.titlesize": 8.5,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.3,
    "lines.markersize": 4,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "pdf.fonttype": 42,
    "svg.hashsalt": "bptt-toolkit",
    "path.simplify": False,
    "image.interpolation": "nearest",
}
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}

__all__ = [
    "COLUMN_W",
    "METHOD_COLORS",
    "PAGE_W",
    "fig_bifurcation",
    "fig_cliff",
    "fig_convergence",
    "fig_ecdf",
    "fig_final_loss",
    "fig_grad_norm_slice",
    "fig_loss_slices",
    "fig_parallel",
    "fig_scaling",
    "fig_success_vs",
    "fig_truncation",
    "method_color",
    "method_label",
    "method_style",
    "plot_experiment",
    "save_figure",
]


# ------------------------------------------------------------------------------------------
# styles and labels
# ------------------------------------------------------------------------------------------
def _base(name: str) -> tuple[str, str]:
    """'bptt_adam (lr=0.1)' -> ('bptt_adam', 'lr=0.1')."""
    name = str(name)
    if name.endswith(")") and " (" in name:
        b, rest = name.split(" (", 1)
        return b, rest[:-1]
    return name, ""


def method_color(name: str) -> str:
    """The fixed colour of a method (variants share their method's colour); names not in
    the registry get one of :data:`EXTRA_COLORS` chosen by a stable hash of the name."""
    b, _ = _base(name)
    known = _known_styles().get(b)
    return known[0] if known else EXTRA_COLORS[zlib.crc32(b.encode()) % len(EXTRA_COLORS)]


def method_label(name: str) -> str:
    """Readable legend label: 'bptt_adam (lr=0.1)' -> 'BPTT (Adam), lr=0.1'."""
    b, v = _base(name)
    lab = _known_styles().get(b, (None, None, b))[2]
    v = v.replace("k=None", "k=full").replace("k=-", "k=full")
    return f"{lab}, {v}" if v else lab


def method_style(name: str, variant_index: int = 0) -> dict:
    """Matplotlib keyword arguments (color, marker, linestyle, label) for a method or a
    variant label from :func:`toolkit.analysis.annotate`; ``variant_index`` picks the line
    style when one method has several variants in a figure."""
    b, _ = _base(name)
    known = _known_styles().get(b)
    marker = known[1] if known else EXTRA_MARKERS[zlib.crc32(b.encode()) % len(EXTRA_MARKERS)]
    return {
        "color": method_color(name),
        "marker": marker,
        "linestyle": _VARIANT_LS[variant_index % len(_VARIANT_LS)],
        "label": method_label(name),
    }


def _order(names) -> list[str]:
    """Known methods in registry order, then the rest alphabetically."""
    known = list(_known_styles())
    return sorted(
        {str(n) for n in names},
        key=lambda n: (known.index(_base(n)[0]) if _base(n)[0] in known else len(known), n),
    )


def _styles(names) -> dict[str, dict]:
    out, seen = {}, {}
    for n in _order(names):
        b = _base(n)[0]
        out[n] = method_style(n, seen.get(b, 0))
        seen[b] = seen.get(b, 0) + 1
    return out


def _wrap(text: str, width_in: float) -> str:
    return textwrap.fill(text, width=max(40, int(width_in * 14.5)))


def _new_figure(size) -> Figure:
    """A Figure on an Agg canvas (no pyplot, no global state), constrained layout."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure(
    n_panels: int,
    *,
    panel_h: float = 2.3,
    max_cols: int = 3,
    extra_h: float = 0.9,
    width: float | None = None,
):
    """A constrained-layout Figure with n panels: one column width for one panel, else the
    page width with up to ``max_cols`` columns."""
    n = max(1, n_panels)
    ncols = 1 if n == 1 else (2 if n in (2, 4) else min(n, max_cols))
    nrows = math.ceil(n / ncols)
    w = width or (COLUMN_W if n == 1 else PAGE_W)
    fig = _new_figure((w, panel_h * nrows + extra_h))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _lean_log_ticks(fig: Figure) -> None:
    """No minor ticks on log axes spanning >= 2 decades (majors and grid suffice, and tick
    layout is the slowest part of drawing); narrower log axes keep them for labels."""
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis, lim in ((ax.xaxis, ax.get_xlim), (ax.yaxis, ax.get_ylim)):
            if axis.get_scale() != "log":
                continue
            lo, hi = sorted(lim())
            if lo > 0 and hi / lo >= 100:
                axis.set_minor_locator(matplotlib.ticker.NullLocator())


def _finish(fig: Figure, title: str, handles: list | None = None, ncol: int | None = None):
    _lean_log_ticks(fig)
    w = fig.get_figwidth()
    fig.suptitle(_wrap(title, w), fontsize=STYLE["figure.titlesize"])
    if handles:
        ncol = ncol or max(1, min(len(handles), 2 if w <= COLUMN_W + 0.1 else 4))
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=ncol,
            fontsize=STYLE["legend.fontsize"],
            handlelength=2.2,
            columnspacing=1.2,
        )
    return fig


def _labels(fig: Figure, axes: list, xlabel: str, ylabel: str) -> None:
    """Axis labels: x under the bottom panel of each column, y left of each row."""
    ncols = axes[0].get_subplotspec().get_gridspec().ncols if axes else 1
    n = len(axes)
    for i, ax in enumerate(axes):
        if i + ncols >= n:  # nothing drawn below this panel
            ax.set_xlabel(xlabel)
        if i % ncols == 0:
            ax.set_ylabel(ylabel)


def _title2(a: str, b: str) -> str:
    """'a, b' on one line when short, else on two."""
    return f"{a}, {b}" if len(f"{a}, {b}") <= 34 else f"{a}\n{b}"


def _seeds(n: pd.Series) -> str:
    lo, hi = int(n.min()), int(n.max())
    return f"{lo} seeds" if lo == hi else f"{lo}–{hi} seeds"


def _handles(styles: dict[str, dict], with_lines: bool = True) -> list:
    return [
        Line2D(
            [],
            [],
            color=s["color"],
            marker=s["marker"],
            label=s["label"],
            linestyle=s["linestyle"] if with_lines else "none",
            markersize=4,
        )
        for s in styles.values()
    ]


def save_figure(
    fig: Figure, stem, *, formats: Sequence[str] = ("png", "pdf"), dpi: int = DPI
) -> list[Path]:
    """Write ``fig`` to ``<stem>.<fmt>`` for each format, without timestamps or version
    strings (same figure, same bytes). Returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(STYLE):
        for fmt in formats:
            if fmt not in ("png", "pdf", "svg"):
                raise ValueError(f"formats: expected 'png', 'pdf' or 'svg', got {fmt!r}")
            p = stem.with_suffix(f".{fmt}")
            md = {"png": PNG_METADATA, "pdf": PDF_METADATA, "svg": {"Date": None}}[fmt]
            fig.savefig(p, format=fmt, dpi=dpi, metadata=md)
            paths.append(p)
    return paths


def _log_ok(v):
    v = np.asarray(v, dtype=np.float64)
    return np.where(v > 0, v, np.nan)


def _no_data(ax, text="no data"):
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


# ------------------------------------------------------------------------------------------
# 1. convergence
# ------------------------------------------------------------------------------------------
def fig_convergence(
    runs: pd.DataFrame, traces: pd.DataFrame, *, cost: str = "fwd_equiv", title: str = ""
) -> Figure:
    """Best training loss so far vs cost: median line and interquartile band per method, one
    panel per task/condition, log-log."""
    with matplotlib.rc_context(STYLE):
        ann, conds, short, tuned = _panels(analysis.annotate(runs))
        cur = analysis.convergence_curves(ann, traces, cost=cost, by=("condition", "variant"))
        styles = _styles(ann["variant"].unique())
        fig, axes = _figure(len(conds))
        for ax, cond in zip(axes, conds, strict=True):
            sub = cur[cur["condition"] == cond]
            for v, st in styles.items():
                s = sub[sub["variant"] == v]
                ok = np.isfinite(_log_ok(s["median"])) & np.isfinite(s["cost"].to_numpy(float))
                if s.empty or not ok.any():  # nothing finite to draw (e.g. every run diverged)
                    continue
                x = s["cost"].to_numpy(float)
                ax.fill_between(
                    x,
                    _log_ok(s["q25"]),
                    _log_ok(s["q75"]),
                    color=st["color"],
                    alpha=0.18,
                    linewidth=0,
                    step="post",
                )
                ax.plot(
                    x,
                    _log_ok(s["median"]),
                    color=st["color"],
                    ls=st["linestyle"],
                    drawstyle="steps-post",
                    label=st["label"],
                    marker=st["marker"],
                    markevery=0.25,
                    ms=3.5,
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            n = ann.loc[ann["condition"] == cond].groupby("variant").size()
            ax.set_title(_title2(short[cond], _seeds(n)) if len(n) else short[cond])
            if sub.empty:
                _no_data(ax)
        _labels(
            fig,
            axes,
            analysis.COST_LABELS.get(cost, cost),
            "best training loss so far\n(sum over batch × time)",
        )
        what = "wall-clock time" if cost == "wall_s" else "cost"
        t = (
            f"{title}: best training loss vs {what} (median line, interquartile band over seeds)"
            if title
            else f"Best training loss vs {what}"
        ) + (f"; {TUNED_NOTE}" if tuned else "")
        cfg = analysis.describe_config(runs)
        return _finish(fig, f"{t}; {cfg}" if cfg else t, _handles(styles))


# ------------------------------------------------------------------------------------------
# 2. runtime ECDF
# ------------------------------------------------------------------------------------------
def fig_ecdf(
    runs: pd.DataFrame,
    traces: pd.DataFrame,
    *,
    cost: str = "fwd_equiv",
    title: str = "",
    n_targets: int = 31,
) -> Figure:
    """COCO-style runtime ECDF: fraction of (run, target) pairs reached vs cost, one panel
    per task/condition; x marks the largest budget a method's runs spent."""
    with matplotlib.rc_context(STYLE):
        ann, conds, short, tuned = _panels(analysis.annotate(runs))
        ec = analysis.runtime_ecdf(
            ann, traces, cost=cost, by=("condition", "variant"), n_targets=n_targets
        )
        styles = _styles(ann["variant"].unique())
        fig, axes = _figure(len(conds))
        for ax, cond in zip(axes, conds, strict=True):
            sub = ec[ec["condition"] == cond]
            for v, st in styles.items():
                s = sub[sub["variant"] == v]
                if s.empty:
                    continue
                x = s["cost"].to_numpy(float)
                y = s["fraction"].to_numpy(float)
                xm = float(s["max_cost"].iloc[0])
                if np.isfinite(xm) and xm > x[-1]:
                    x, y = np.r_[x, xm], np.r_[y, y[-1]]
                ax.plot(
                    x,
                    y,
                    drawstyle="steps-post",
                    color=st["color"],
                    ls=st["linestyle"],
                    marker=st["marker"],
                    markevery=0.25,
                    ms=3.5,
                )
                ax.plot(x[-1:], y[-1:], marker="x", color=st["color"], ls="none", ms=5)
            ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
            if not sub.empty:
                r = sub.iloc[0]
                ax.set_title(
                    f"{short[cond]}\n{int(r['n_targets'])} loss targets "
                    f"{r['target_hi']:.2g} … {r['target_lo']:.2g}"
                )
            else:
                ax.set_title(short[cond])
                _no_data(ax)
        _labels(
            fig,
            axes,
            analysis.COST_LABELS.get(cost, cost),
            "fraction of (run, target)\npairs reached",
        )
        h = _handles(styles)
        h.append(Line2D([], [], color="0.3", marker="x", ls="none", label="largest budget spent"))
        t = (
            f"{title}: runtime ECDF over log-spaced loss targets (COCO style)"
            if title
            else "Runtime ECDF over log-spaced loss targets (COCO style)"
        ) + (f"; {TUNED_NOTE}" if tuned else "")
        cfg = analysis.describe_config(runs)
        return _finish(fig, f"{t}; {cfg}" if cfg else t, h)


# ------------------------------------------------------------------------------------------
# 3. local optima: final-loss distributions
# ------------------------------------------------------------------------------------------
def fig_final_loss(
    runs: pd.DataFrame,
    *,
    column: str = "final_loss",
    target_loss: float | None = None,
    title: str = "",
    gap: float = 0.5,
    seed: int = 0,
) -> Figure:
    """Per-seed final loss per method: points (filled = success, hollow = not) over a box
    plot, log y; non-finite losses in a row at the top; above each box the success rate with
    its Wilson 95 % CI and the number of distinct final-loss levels (:func:`analysis.basins`)."""
    with matplotlib.rc_context(STYLE):
        ann, conds, short, tuned = _panels(analysis.annotate(runs))
        styles = _styles(ann["variant"].unique())
        sr = analysis.success_rate(ann, by=("condition", "variant"))
        bs = analysis.basins(ann, by=("condition", "variant"), column=column, gap=gap)
        n_series = max(1, ann.groupby("condition")["variant"].nunique().max())
        width = COLUMN_W if (len(conds) == 1 and n_series <= 4) else PAGE_W
        fig, axes = _figure(len(conds), panel_h=2.6, max_cols=2 if n_series > 3 else 3, width=width)
        rng = np.random.default_rng(seed)
        for ax, cond in zip(axes, conds, strict=True):
            sub = ann[ann["condition"] == cond]
            names = [v for v in styles if (sub["variant"] == v).any()]
            vals = sub[column].to_numpy(float)
            fin = vals[np.isfinite(vals) & (vals > 0)]
            lo = float(fin.min()) if fin.size else 1e-3
            hi = float(fin.max()) if fin.size else 1.0
            if target_loss is not None and target_loss > 0:
                lo, hi = min(lo, target_loss), max(hi, target_loss)
            # at most 8 decades: a loss driven to 1e-160 would squash every box to a line;
            # lower values are drawn at the bottom edge and said so in the panel
            clipped = bool(((vals >= 0) & (vals < hi * 1e-8)).any())
            lo = max(lo, hi * 1e-8)
            top = hi * 10 ** max(0.6, 0.12 * math.log10(hi / lo) if hi > lo else 0.6)
            for i, v in enumerate(names):
                st = styles[v]
                s = sub[sub["variant"] == v]
                y = s[column].to_numpy(float)
                ok = s["success"].to_numpy(bool) if "success" in s else np.zeros(len(s), bool)
                finite = np.isfinite(y)
                yy = np.where(finite, np.maximum(y, lo / 10 if lo > 0 else 1e-12), top)
                pos = np.maximum(y[finite & (y > 0)], lo / 10)
                if pos.size:
                    ax.boxplot(
                        [pos],
                        positions=[i],
                        widths=0.55,
                        showfliers=False,
                        medianprops={"color": st["color"], "linewidth": 1.6},
                        boxprops={"color": "0.35"},
                        whiskerprops={"color": "0.35"},
                        capprops={"color": "0.35"},
                        manage_ticks=False,
                    )
                jit = i + rng.uniform(-0.22, 0.22, size=y.size)
                ax.scatter(
                    jit[ok & finite],
                    yy[ok & finite],
                    s=10,
                    marker=st["marker"],
                    color=st["color"],
                    alpha=0.85,
                    linewidths=0.4,
                    zorder=3,
                )
                ax.scatter(
                    jit[~ok & finite],
                    yy[~ok & finite],
                    s=10,
                    marker=st["marker"],
                    facecolors="none",
                    edgecolors=st["color"],
                    linewidths=0.7,
                    zorder=3,
                )
                ax.scatter(
                    jit[~finite],
                    yy[~finite],
                    s=14,
                    marker="x",
                    color=st["color"],
                    linewidths=0.8,
                    zorder=3,
                )
                r = sr[(sr["condition"] == cond) & (sr["variant"] == v)]
                b = bs[(bs["condition"] == cond) & (bs["variant"] == v)]
                if len(r):
                    r = r.iloc[0]
                    nb = int(b["n_basins"].iloc[0]) if len(b) else 0
                    ax.annotate(
                        f"{100 * r['rate']:.0f}%\n[{100 * r['lo']:.0f}, {100 * r['hi']:.0f}]"
                        f"\n{nb} level{'s' if nb != 1 else ''}",
                        (i, 1.0),
                        xycoords=("data", "axes fraction"),
                        xytext=(0, 3),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=6,
                    )
            if target_loss is not None and target_loss > 0:
                ax.axhline(target_loss, color="0.3", ls="--", lw=0.9)
            if clipped:
                ax.annotate(
                    f"below {lo / 10:.0e}: drawn at this edge",
                    (1, lo / 10),
                    xycoords=("axes fraction", "data"),
                    xytext=(-2, 2),
                    textcoords="offset points",
                    ha="right",
                    va="bottom",
                    fontsize=6,
                    color="0.3",
                )
            ax.set_yscale("log")
            ax.set_ylim(lo / 10**0.5 if lo > 0 else None, top * 10**0.35)
            if (~np.isfinite(vals)).any():
                ax.axhline(top / 10**0.2, color="0.6", lw=0.5)
                ax.annotate(
                    "non-finite",
                    (0, top),
                    xycoords=("axes fraction", "data"),
                    xytext=(2, 0),
                    textcoords="offset points",
                    ha="left",
                    va="center",
                    fontsize=6,
                    color="0.3",
                )
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels([method_label(v) for v in names], rotation=30, ha="right")
            ax.set_xlim(-0.6, len(names) - 0.4)
            ax.set_ylabel(f"{column.replace('_', ' ')} per seed\n(summed over batch × time)")
            ax.set_title(short[cond], pad=26)
            ax.grid(axis="x", visible=False)
        h = [
            Line2D([], [], marker="o", color="0.3", ls="none", label="seed, solved"),
            Line2D(
                [],
                [],
                marker="o",
                markerfacecolor="none",
                color="0.3",
                ls="none",
                label="seed, not solved",
            ),
            Line2D([], [], marker="x", color="0.3", ls="none", label="diverged (non-finite)"),
            Line2D([], [], color="0.35", label="box: quartiles, whiskers 1.5 IQR"),
        ]
        if target_loss is not None and target_loss > 0:
            h.append(Line2D([], [], color="0.3", ls="--", label=f"target loss {target_loss:g}"))
        t = (
            f"{title}: final loss of every seed; above each box: success rate [Wilson 95% CI]"
            f" and distinct final-loss levels (gap {gap:g} decade)"
        )
        if tuned:
            t += f"; {TUNED_NOTE}"
        cfg = analysis.describe_config(runs)
        return _finish(fig, f"{t}; {cfg}" if cfg else t, h, ncol=3)


# ------------------------------------------------------------------------------------------
# 4. success rate vs a swept setting (sequence length, lag)
# ------------------------------------------------------------------------------------------
LAG_PARAMS = ("lag", "T", "p", "d", "length", "seq_len", "n_bits")
PARAM_LABELS = {
    "lag": "time lag (steps)",
    "T": "sequence length T (steps)",
    "length": "sequence length (steps)",
    "seq_len": "sequence length (steps)",
    "n_bits": "number of bits",
    "k": "unfold depth k (steps)",
    "p": "time lag p (steps)",
}


def _numeric(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)


def _swept(runs: pd.DataFrame, name: str) -> bool:
    """True when setting ``name`` takes >= 2 numeric values within one (task, method)."""
    v = analysis.param_values(runs, name)
    df = pd.DataFrame({"t": runs["task"], "m": runs["method"], "v": _numeric(v)}).dropna()
    return bool(len(df)) and bool((df.groupby(["t", "m"])["v"].nunique() >= 2).any())


def _swept_conditions(ann: pd.DataFrame, col: str) -> list:
    """Conditions in which ``col`` takes >= 2 values for some series (sorted)."""
    n = ann.groupby(["condition", "variant"])[col].nunique()
    return sorted({c for (c, _), k in n.items() if k >= 2}, key=str)


def _int_ticks(ax, values) -> None:
    v = np.unique(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    if 0 < v.size <= 8:
        ax.set_xticks(v)
        ax.set_xticklabels([_num(x) for x in v])
        ax.minorticks_off()


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


TUNED = "tuned per point"


def _tuned_series(ann: pd.DataFrame, col: str | None, label: str | None = TUNED) -> pd.DataFrame:
    """One series per method where its settings change only from point to point (each point
    tuned on its own, as the [tuning] stage does): a method whose variants never share a point
    (a condition and, if given, a value of ``col``) becomes one variant, "<method> (<label>)"
    (the method's name alone when ``label`` is None), so that its points join into one line
    or one tick label instead of one per configuration (the configurations are in the
    report's tuning tables). A method with two variants at one point anywhere keeps them."""
    ann = ann.copy()
    point = ["condition"] if col is None else ["condition", col]
    for m, g in ann.groupby("method", sort=False):
        if g["variant"].nunique() > 1 and (g.groupby(point)["variant"].nunique() <= 1).all():
            ann.loc[g.index, "variant"] = m if label is None else f"{m} ({label})"
    return ann


TUNED_NOTE = "each method in the configuration tuned for its panel (report: tuning tables)"


def _panels(ann: pd.DataFrame):
    """(ann with each method's per-panel configurations as one series (:func:`_tuned_series`),
    the conditions in natural order, their short titles, whether configurations were merged)."""
    merged = _tuned_series(ann, None, None)
    tuned = not merged["variant"].equals(ann["variant"])
    conds = sorted(merged["condition"].unique(), key=_natural)
    return merged, conds, _short_titles(conds), tuned


def _natural(c) -> list:
    """Sort key: numbers in a condition's label compare as numbers (T=5 before T=10)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(c))]


def _short_titles(conds) -> dict:
    """Panel titles without the settings that say nothing to a reader here ("setup=<part>",
    "hidden=-", and "hidden=tanh" beside "cell=elman", its default), where the titles stay
    distinct; else the conditions as they are."""

    def short(c: str) -> str:
        drop = r"setup=[^,)]*|hidden=-" + (r"|hidden=tanh" if "cell=elman" in str(c) else "")
        c = re.sub(rf"(, )?({drop})", "", str(c))
        return re.sub(r"\(, ", "(", c).replace(" ()", "")

    out = {c: short(c) for c in conds}
    return out if len(set(out.values())) == len(out) else {c: str(c) for c in conds}


def fig_success_vs(
    runs: pd.DataFrame, *, param: str, title: str = "", level: float = 0.95
) -> Figure:
    """Success rate vs a swept setting (e.g. sequence length T or time lag) with Wilson bands,
    one line per method, one panel per task/condition in which the setting was swept
    (Bengio et al. 1994 style)."""
    with matplotlib.rc_context(STYLE):
        ann = analysis.annotate(runs, exclude=[param])
        ann["_x"] = _numeric(analysis.param_values(ann, param))
        ann = _tuned_series(ann[np.isfinite(ann["_x"])], "_x")
        sr = analysis.success_rate(ann, by=("condition", "variant", "_x"), level=level)
        conds = _swept_conditions(ann, "_x") or sorted(ann["condition"].unique(), key=str)
        short = _short_titles(conds)
        styles = _styles(ann.loc[ann["condition"].isin(conds), "variant"].unique())
        fig, axes = _figure(len(conds))
        for ax, cond in zip(axes, conds, strict=True):
            sub = sr[sr["condition"] == cond]
            for v, st in styles.items():
                s = sub[sub["variant"] == v].sort_values("_x")
                if s.empty:
                    continue
                ax.fill_between(
                    s["_x"], s["lo"], s["hi"], color=st["color"], alpha=0.12, linewidth=0
                )
                ax.plot(
                    s["_x"], s["rate"], color=st["color"], marker=st["marker"], ls=st["linestyle"]
                )
            xs = sub["_x"].to_numpy(float)
            if xs.size and xs.min() > 0 and xs.max() / xs.min() >= 20:
                ax.set_xscale("log")
            _int_ticks(ax, xs)
            ax.set_ylim(-0.03, 1.03)
            c = short[cond]
            ax.set_title(_title2(c, f"{_seeds(sub['n'])} per point") if len(sub) else c)
        _labels(fig, axes, PARAM_LABELS.get(param, param), "success rate (fraction of seeds)")
        t = (
            f"{title}: success rate vs {PARAM_LABELS.get(param, param)}, "
            f"Wilson {100 * level:.0f}% band"
        )
        cfg = analysis.describe_config(runs)
        return _finish(fig, f"{t}; {cfg}" if cfg else t, _handles(styles))


# ------------------------------------------------------------------------------------------
# 5. scaling: ERT vs number of weights
# ------------------------------------------------------------------------------------------
def _ci_bars(ax, x, est, lo, hi, color, top):
    """Vertical CI bars; an unbounded upper end (inf) is drawn up to ``top`` with an arrow."""
    for xi, e, a, b in zip(x, est, lo, hi, strict=True):
        if not np.isfinite(e):
            continue
        a = a if np.isfinite(a) else e
        if np.isfinite(b):
            ax.plot([xi, xi], [a, b], color=color, lw=0.8)
        else:
            ax.annotate(
                "",
                (xi, top),
                (xi, a),
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": color,
                    "lw": 0.8,
                    "shrinkA": 0,
                    "shrinkB": 0,
                },
            )


def fig_scaling(
    runs: pd.DataFrame,
    traces: pd.DataFrame | None = None,
    *,
    cost: str = "fwd_equiv",
    title: str = "",
    n_boot: int = 1000,
    seed: int = 0,
) -> Figure:
    """ERT to success vs number of weights (log-log), bootstrap 95 % CI bars, one line per
    method, one panel per task/condition in which the network size was swept; a hollow
    up-triangle at the total cost spent marks no success (the ERT lies above it)."""
    with matplotlib.rc_context(STYLE):
        ann = analysis.annotate(runs, exclude=["n_hidden", "n_params"])
        ctt = analysis.cost_to_target(ann, traces, cost=cost)
        et = analysis.ert_table(
            ctt, by=("condition", "variant", "n_params"), n_boot=n_boot, seed=seed
        )
        conds = _swept_conditions(ann, "n_params") or sorted(ann["condition"].unique(), key=str)
        styles = _styles(ann.loc[ann["condition"].isin(conds), "variant"].unique())
        fig, axes = _figure(len(conds))
        for ax, cond in zip(axes, conds, strict=True):
            sub = et[et["condition"] == cond]
            fin = np.r_[sub["ert"], sub["ert_hi"], sub["total_cost"]].astype(float)
            fin = fin[np.isfinite(fin) & (fin > 0)]
            top = float(fin.max()) * 2 if fin.size else 1.0
            for v, st in styles.items():
                s = sub[sub["variant"] == v].sort_values("n_params")
                if s.empty:
                    continue
                x = s["n_params"].to_numpy(float)
                e = s["ert"].to_numpy(float)
                ok = np.isfinite(e)
                ax.plot(x[ok], e[ok], color=st["color"], marker=st["marker"], ls=st["linestyle"])
                _ci_bars(
                    ax,
                    x,
                    e,
                    s["ert_lo"].to_numpy(float),
                    s["ert_hi"].to_numpy(float),
                    st["color"],
                    top,
                )
                if (~ok).any():
                    ax.scatter(
                        x[~ok],
                        s["total_cost"].to_numpy(float)[~ok],
                        marker="^",
                        facecolors="none",
                        edgecolors=st["color"],
                        s=22,
                        zorder=3,
                    )
            ax.set_xscale("log")
            ax.set_yscale("log")
            _int_ticks(ax, sub["n_params"])
            ax.set_title(
                _title2(cond, f"{_seeds(sub['n_runs'])} per point") if len(sub) else str(cond)
            )
        _labels(
            fig,
            axes,
            "number of weights (n_params)",
            f"ERT to success\n({analysis.COST_UNITS.get(cost, cost)})",
        )
        h = _handles(styles)
        h.append(
            Line2D(
                [],
                [],
                marker="^",
                markerfacecolor="none",
                color="0.3",
                ls="none",
                label="no success: ERT > total cost",
            )
        )
        t = (
            f"{title}: expected running time (COCO ERT) to success vs network size, "
            f"bootstrap 95% CI"
        )
        cfg = analysis.describe_config(runs)
        return _finish(fig, f"{t}; {cfg}" if cfg else t, h)


# ------------------------------------------------------------------------------------------
# 6. truncation depth
# ------------------------------------------------------------------------------------------
def fig_truncation(
    runs: pd.DataFrame | None,
    fidelity: pd.DataFrame | None = None,
    traces: pd.DataFrame | None = None,
    *,
    cost: str = "fwd_equiv",
    title: str = "",
    n_boot: int = 1000,
    seed: int = 0,
) -> Figure:
    """Unfold depth k vs (a) cosine of the BPTT(k) gradient to the full gradient (median and
    IQR band over parameter vectors, per task of ``fidelity``), and per task/condition of
    ``runs`` (b) success rate (Wilson 95 % CI) and (c) ERT to success (bootstrap 95 % CI).
    "full" (k = None) sits right of the largest k; methods without k (online, full BPTT) are
    dashed horizontal reference lines."""
    with matplotlib.rc_context(STYLE):
        panels: list[tuple[str, str]] = []
        if fidelity is not None and len(fidelity):
            fidelity = fidelity.copy()
            if "task" not in fidelity:
                fidelity["task"] = ""
            fidelity["task"] = fidelity["task"].fillna("").astype(str)
            panels += [("cos", t) for t in sorted(fidelity["task"].unique())]
        kruns = None
        if runs is not None and len(runs):
            kruns = analysis.annotate(runs, exclude=["k"])
            kruns["_k"] = _numeric(analysis.param_values(kruns, "k"))
            kruns["_hask"] = (
                kruns.groupby("variant")["_k"].transform(lambda v: v.notna().any()).astype(bool)
            )
            for c in sorted(kruns.loc[kruns["_hask"], "condition"].unique(), key=str):
                panels += [("success", c), ("ert", c)]
        # one row per condition: [fidelity of one task (if any)], success, ERT
        fid_p = [p for p in panels if p[0] == "cos"]
        run_p = [p for p in panels if p[0] != "cos"]
        ncols = (1 if fid_p else 0) + (2 if run_p else 0)
        nrows = max(len(fid_p), len(run_p) // 2, 1)
        layout: list[tuple[str, str] | None] = []
        for r in range(nrows):
            if fid_p:
                layout.append(fid_p[r] if r < len(fid_p) else None)
            if run_p:
                layout += run_p[2 * r : 2 * r + 2] if 2 * r < len(run_p) else [None, None]
        fig = _new_figure((PAGE_W if ncols > 1 else COLUMN_W, 2.3 * nrows + 0.9))
        grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, p in zip(grid, layout, strict=True):
            if p is None:
                ax.set_visible(False)
        axes = [ax for ax, p in zip(grid, layout, strict=True) if p is not None]
        panels = [p for p in layout if p is not None]
        kmax = 1.0
        if kruns is not None and kruns["_k"].notna().any():
            kmax = float(np.nanmax(kruns["_k"]))
        if fidelity is not None and len(fidelity):
            kmax = max(kmax, float(fidelity["k"].max()))
        kfull = 2.0 ** math.ceil(math.log2(kmax) + 1)
        styles = {}
        if kruns is not None:
            inpanels = kruns["condition"].isin([c for p, c in panels if p != "cos"])
            styles = _styles(kruns.loc[inpanels, "variant"].unique())
        handles = []
        ctt = None
        if kruns is not None:
            ctt = analysis.cost_to_target(kruns, traces, cost=cost)
            ctt["_kx"] = np.where(ctt["_hask"] & ctt["_k"].isna(), kfull, ctt["_k"])
            ctt["_kx"] = ctt["_kx"].fillna(-1.0)  # methods without k
        for ax, (p, cond) in zip(axes, panels, strict=True):
            ax.set_xscale("log", base=2)
            ax.set_xlabel(PARAM_LABELS["k"])
            if p == "cos":
                f = fidelity[fidelity["task"] == cond]
                q = f.groupby("k")["cosine"].quantile([0.25, 0.5, 0.75]).unstack()
                ks = q.index.to_numpy(float)
                ax.fill_between(ks, q[0.25], q[0.75], color="#332288", alpha=0.2, lw=0)
                ax.plot(ks, q[0.5], color="#332288", marker="<")
                ax.axhline(1.0, color="0.5", ls=":", lw=0.8)
                ax.set_ylabel("cosine(BPTT(k) gradient,\nfull gradient)")
                T = int(f["T"].iloc[0]) if "T" in f else None
                ax.set_title(
                    f"{cond + ', ' if cond else ''}T={T}: gradient fidelity\n"
                    f"{f['theta_index'].nunique()} parameter vectors"
                )
                if not handles:
                    handles.append(
                        Line2D(
                            [],
                            [],
                            color="#332288",
                            marker="<",
                            label="gradient cosine, median and IQR",
                        )
                    )
                continue
            sub = ctt[ctt["condition"] == cond]
            if p == "success":
                tab = analysis.success_rate(sub, by=("variant", "_kx"))
                y, lo, hi, lab = "rate", "lo", "hi", "success rate (fraction of seeds)"
            else:
                tab = analysis.ert_table(sub, by=("variant", "_kx"), n_boot=n_boot, seed=seed)
                y, lo, hi = "ert", "ert_lo", "ert_hi"
                lab = f"ERT to success\n({analysis.COST_UNITS.get(cost, cost)})"
                ax.set_yscale("log")
            for v, st in styles.items():
                s = tab[tab["variant"] == v].sort_values("_kx")
                if s.empty:
                    continue
                if (s["_kx"] < 0).all():  # no k: reference line
                    val = float(s[y].iloc[0])
                    if np.isfinite(val):
                        ax.axhline(val, color=st["color"], ls="--", lw=1.0)
                    continue
                yy = s[y].to_numpy(float)
                ok = np.isfinite(yy)
                xx = s["_kx"].to_numpy(float)
                top = np.where(np.isfinite(s[hi]), s[hi], np.nan)
                ax.fill_between(
                    xx[ok], s[lo].to_numpy(float)[ok], top[ok], color=st["color"], alpha=0.15, lw=0
                )
                ax.plot(xx[ok], yy[ok], color=st["color"], marker=st["marker"], ls=st["linestyle"])
            if p == "success":
                ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel(lab)
            n = sub.groupby(["variant", "_kx"]).size()
            what = "success rate, Wilson 95% CI" if p == "success" else "ERT, bootstrap 95% CI"
            ax.set_title(f"{cond}\n{what}, {_seeds(n)}" if len(n) else f"{cond}\n{what}")
        for ax in axes:
            ticks = [2.0**i for i in range(0, int(math.log2(kfull)))]
            ax.set_xticks([*ticks, kfull])
            ax.set_xticklabels([f"{int(t)}" for t in ticks] + ["full"])
            ax.minorticks_off()
        for v, st in styles.items():
            has = bool(kruns.loc[kruns["variant"] == v, "_hask"].any())
            handles.append(
                Line2D(
                    [],
                    [],
                    color=st["color"],
                    marker=st["marker"] if has else None,
                    ls=st["linestyle"] if has else "--",
                    label=st["label"] + ("" if has else " (no k: reference)"),
                )
            )
        t = (
            f"{title}: truncated BPTT, unfold depth k vs gradient fidelity, success and cost"
            if title
            else "Truncated BPTT: unfold depth k vs gradient fidelity, success, cost"
        )
        cfg = analysis.describe_config(runs) if runs is not None and len(runs) else ""
        return _finish(fig, f"{t}; {cfg}" if cfg else t, handles)


# ------------------------------------------------------------------------------------------
# 7. error surface
# ------------------------------------------------------------------------------------------
def _outline(lw=2.2):
    return [patheffects.Stroke(linewidth=lw, foreground="white"), patheffects.Normal()]


def fig_cliff(
    surface: pd.DataFrame, trajectories: pd.DataFrame | None = None, *, title: str = ""
) -> Figure:
    """Heat map of log10 loss of the single-unit RNN over (w, b), the analytic cliff line
    (x0 is the unstable fixed point), and optimizer paths (start = star, end = marker)."""
    with matplotlib.rc_context(STYLE):
        ws = np.sort(surface["w"].unique())
        bs = np.sort(surface["b"].unique())
        grid = surface.pivot_table(index="b", columns="w", values="loss").reindex(
            index=bs, columns=ws
        )
        Z = np.log10(np.maximum(grid.to_numpy(float), 1e-12))
        fig = _new_figure((COLUMN_W, 3.6))
        ax = fig.subplots()
        ax.grid(False)
        m = ax.pcolormesh(
            ws,
            bs,
            Z,
            cmap="cividis",
            shading="nearest",
            rasterized=True,
            vmin=max(-4, np.floor(Z.min())),
            vmax=0,
        )
        cb = fig.colorbar(m, ax=ax, pad=0.01, fraction=0.06)
        tgt = float(surface["target"].iloc[0]) if "target" in surface else 0.7
        cb.set_label(rf"$\log_{{10}}$ loss $(\sigma(x_T)-{tgt:g})^2$")
        x0 = float(surface["x0"].iloc[0]) if "x0" in surface else 0.5
        T = int(surface["T"].iloc[0]) if "T" in surface else 50
        wl = np.linspace(ws.min(), ws.max(), 400)
        bl = cliff_boundary(wl, x0=x0)
        inside = (bl >= bs.min()) & (bl <= bs.max())
        ax.plot(wl[inside], bl[inside], color="white", ls=(0, (2, 2)), lw=0.9)
        handles = [
            Line2D(
                [],
                [],
                color="0.5",
                ls=(0, (2, 2)),
                label=f"cliff (white): x₀={x0:g} is the unstable fixed point",
            )
        ]
        if trajectories is not None and len(trajectories):
            for mth in _order(trajectories["method"].unique()):
                s = trajectories[trajectories["method"] == mth].sort_values("step")
                st = method_style(mth)
                ax.plot(
                    s["w"],
                    s["b"],
                    color=st["color"],
                    lw=1.3,
                    path_effects=_outline(),
                    marker=".",
                    ms=3,
                )
                ax.plot(
                    s["w"].iloc[-1:],
                    s["b"].iloc[-1:],
                    color=st["color"],
                    marker=st["marker"],
                    ms=6,
                    mec="white",
                    mew=0.6,
                    ls="none",
                    clip_on=False,
                    zorder=4,
                )
                n = int(s["step"].max())
                unit = "generations" if _family(mth) == "evolution" else "steps"
                we, be = float(s["w"].iloc[-1]), float(s["b"].iloc[-1])
                edge = (
                    ", thrown to the edge"
                    if (we in (ws.min(), ws.max()) or be in (bs.min(), bs.max()))
                    else ""
                )
                lab = f"{st['label']} ({n} {unit}, final loss {s['loss'].iloc[-1]:.1g}{edge})"
                handles.append(Line2D([], [], color=st["color"], marker=st["marker"], label=lab))
            s0 = trajectories.iloc[0]
            ax.plot([s0["w"]], [s0["b"]], marker="*", color="white", mec="black", ms=10, ls="none")
            handles.append(
                Line2D(
                    [], [], marker="*", color="white", mec="black", ms=8, ls="none", label="start"
                )
            )
        ax.set_xlim(ws.min(), ws.max())
        ax.set_ylim(bs.min(), bs.max())
        ax.set_xlabel("recurrent weight w")
        ax.set_ylabel("bias b")
        t = title or rf"One recurrent unit $x_t=w\sigma(x_{{t-1}})+b$, $x_0={x0:g}$, $T={T}$"
        t += ": error surface with a cliff (Pascanu et al. 2013, Fig. 6)"
        return _finish(fig, t, handles, ncol=1)


def fig_bifurcation(bif: pd.DataFrame, *, title: str = "") -> Figure:
    """Fixed points of x = w sigmoid(x) + b vs b (stable solid, unstable hollow) and the state
    x_T reached from x0, which jumps where x0 changes basin (Doya 1992)."""
    with matplotlib.rc_context(STYLE):
        fig = _new_figure((COLUMN_W, 3.0))
        ax = fig.subplots()
        w = float(bif["w"].iloc[0]) if "w" in bif else 5.0
        T = int(bif["T"].iloc[0]) if "T" in bif else 50
        x0 = float(bif["x0"].iloc[0]) if "x0" in bif else 0.5
        st = bif[bif["kind"] == "stable"]
        un = bif[bif["kind"] == "unstable"]
        xt = bif[bif["kind"] == "x_T"].sort_values("b")
        multi = bif[bif["kind"] != "x_T"].groupby("b").size()
        multi = multi[multi > 1].index.to_numpy(float)
        if multi.size:
            ax.axvspan(multi.min(), multi.max(), color="#E69F00", alpha=0.15, lw=0)
        ax.scatter(st["b"], st["x"], s=3, color="black", label="stable fixed point", zorder=3)
        ax.scatter(
            un["b"],
            un["x"],
            s=5,
            facecolors="none",
            edgecolors="#D55E00",
            lw=0.5,
            label="unstable fixed point",
            zorder=3,
        )
        ax.plot(
            xt["b"],
            xt["x"],
            color="#0072B2",
            lw=1.0,
            ls="--",
            zorder=4,
            label=f"state after T={T} steps from x₀",
        )
        ax.axhline(x0, color="0.5", lw=0.6, ls=":", label=f"start x₀ = {x0:g}")
        ax.set_xlabel("bias b")
        ax.set_ylabel("unit state x (pre-activation)")
        handles, _ = ax.get_legend_handles_labels()
        if multi.size:
            handles.append(Patch(color="#E69F00", alpha=0.3, label="bistable band"))
        t = title or "Bifurcation of one recurrent unit (Doya 1992)"
        t += rf": fixed points of $x=w\sigma(x)+b$ at $w={w:g}$ as the bias varies"
        return _finish(fig, t, handles, ncol=2)


def fig_loss_slices(
    slice_1d: pd.DataFrame | None = None,
    slice_2d: pd.DataFrame | None = None,
    interpolation: pd.DataFrame | None = None,
    *,
    title: str = "",
) -> Figure:
    """Elman-net training loss on 1-D filter-normalised random slices, a 2-D slice (contours
    of log10 loss) and on straight lines between solutions of different seeds."""
    with matplotlib.rc_context(STYLE):
        parts = [
            p
            for p, d in (("1d", slice_1d), ("2d", slice_2d), ("interp", interpolation))
            if d is not None and len(d)
        ]
        fig, axes = _figure(len(parts), panel_h=2.5, extra_h=1.0)
        handles = []
        task = ""
        for d in (slice_1d, slice_2d, interpolation):
            if d is not None and "task" in d and len(d) and str(d["task"].iloc[0]):
                task = str(d["task"].iloc[0])
        seq = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
        for ax, p in zip(axes, parts, strict=True):
            if p == "1d":
                for j, (dir_, s) in enumerate(slice_1d.groupby("direction", sort=True)):
                    ax.plot(
                        s["alpha"],
                        _log_ok(s["loss"]),
                        color=seq[j % len(seq)],
                        ls=_VARIANT_LS[j % 4],
                        label=f"direction {dir_}",
                    )
                ax.axvline(0, color="0.5", lw=0.6, ls=":")
                ax.set_yscale("log")
                ax.set_xlabel("step α (units of filter norm)")
                ax.set_ylabel("training loss (sum over batch × time)")
                ax.set_title("1-D slices, random directions")
                ax.legend(fontsize=6, loc="upper center")
            elif p == "2d":
                a = np.sort(slice_2d["alpha"].unique())
                b = np.sort(slice_2d["beta"].unique())
                Z = (
                    slice_2d.pivot_table(index="beta", columns="alpha", values="loss")
                    .reindex(index=b, columns=a)
                    .to_numpy(float)
                )
                Z = np.log10(np.maximum(np.where(np.isfinite(Z), Z, np.nan), 1e-12))
                ax.grid(False)
                cs = ax.contourf(a, b, Z, levels=12, cmap="cividis")
                ax.contour(a, b, Z, levels=12, colors="k", linewidths=0.3)
                cb = fig.colorbar(cs, ax=ax, pad=0.01)
                cb.set_label("log10 training loss")
                ax.plot([0], [0], marker="*", color="white", mec="k", ms=9, ls="none")
                ax.set_xlabel("α, direction 1 (units of filter norm)")
                ax.set_ylabel("β, direction 2")
                ax.set_title("2-D slice around the solution ★")
            else:
                for j, (pair, s) in enumerate(interpolation.groupby("pair", sort=True)):
                    s = s.sort_values("alpha")
                    ax.plot(
                        s["alpha"],
                        _log_ok(s["loss"]),
                        color=seq[j % len(seq)],
                        ls=_VARIANT_LS[j % 4],
                        label=str(pair),
                    )
                for xv in (0, 1):
                    ax.axvline(xv, color="0.5", lw=0.6, ls=":")
                ax.set_yscale("log")
                ax.set_xlabel(r"$\alpha$ in $(1-\alpha)\,\theta_a+\alpha\,\theta_b$")
                ax.set_ylabel("training loss (sum over batch × time)")
                ax.set_title("between two seeds' solutions")
                ax.legend(fontsize=6, loc="upper center")
        t = title or "Loss landscape of a trained Elman network"
        if task:
            t += f" on {task}"
        t += (
            " (filter-normalised directions, Li et al. 2018); a barrier on the line between "
            "two seeds' solutions means they lie in different basins"
        )
        return _finish(fig, t, handles)


def fig_grad_norm_slice(df: pd.DataFrame, *, title: str = "") -> Figure:
    """Loss and gradient norm along one filter-normalised direction, both on log scales:
    spikes of the gradient norm are the exploding-gradient cliffs."""
    with matplotlib.rc_context(STYLE):
        fig = _new_figure((COLUMN_W, 3.8))
        ax1, ax2 = fig.subplots(2, 1, sharex=True)
        d = df.sort_values("alpha")
        ax1.plot(d["alpha"], _log_ok(d["loss"]), color="#0072B2", label="training loss")
        ax1.set_yscale("log")
        ax1.set_ylabel("training loss\n(sum over batch × time)")
        ax2.plot(
            d["alpha"], _log_ok(d["grad_norm"]), color="#D55E00", label="gradient norm ‖∂L/∂θ‖"
        )
        ax2.set_yscale("log")
        ax2.set_ylabel("gradient norm\n‖∂L/∂θ‖")
        fig.align_ylabels([ax1, ax2])
        ax2.set_xlabel("step α along a filter-normalised direction\n(units of filter norm)")
        ax2.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
        for ax in (ax1, ax2):
            ax.axvline(0, color="0.5", lw=0.6, ls=":")
        task = str(df["task"].iloc[0]) if "task" in df and len(df) else ""
        h = [
            Line2D([], [], color="#0072B2", label="training loss"),
            Line2D([], [], color="#D55E00", label="gradient norm (full BPTT)"),
            Line2D([], [], color="0.5", ls=":", label="trained solution (α = 0)"),
        ]
        t = title or "Gradient norm along a 1-D slice of an Elman network's loss"
        if task:
            t += f" ({task})"
        return _finish(fig, t, h, ncol=2)


# ------------------------------------------------------------------------------------------
# 8. parallel scaling
# ------------------------------------------------------------------------------------------
def fig_parallel(df: pd.DataFrame, *, title: str = "") -> Figure:
    """Sweep wall time vs number of worker processes (--jobs), with ideal linear scaling, and
    speedup / parallel efficiency relative to the smallest --jobs."""
    with matplotlib.rc_context(STYLE):
        d = df.groupby("jobs", sort=True)["wall_s"].median().reset_index()
        j = d["jobs"].to_numpy(float)
        t = d["wall_s"].to_numpy(float)
        fig, (ax1, ax2) = _figure(2, panel_h=2.3)
        ax1.plot(df["jobs"], df["wall_s"], "o", color="#0072B2", ms=3, alpha=0.5)
        ax1.plot(j, t, "-o", color="#0072B2", label="measured (median)")
        ax1.plot(j, t[0] * j[0] / j, ":", color="0.3", label="ideal linear scaling")
        ax1.set_xscale("log", base=2)
        ax1.set_yscale("log")
        ax1.set_xlabel("worker processes (--jobs)")
        ax1.set_ylabel("sweep wall time (s)")
        ax1.set_title("wall time")
        sp = t[0] / t * 1.0
        ax2.plot(j, sp, "-o", color="#0072B2", label="speedup")
        ax2.plot(j, j / j[0], ":", color="0.3")
        ax2.plot(j, sp / (j / j[0]), "-s", color="#D55E00", label="efficiency")
        ax2.set_xscale("log", base=2)
        ax2.set_xlabel("worker processes (--jobs)")
        ax2.set_ylabel(f"speedup over --jobs {int(j[0])} (×),\nefficiency (fraction)")
        ax2.set_title("speedup and efficiency")
        for ax in (ax1, ax2):
            ax.set_xticks(j)
            ax.set_xticklabels([str(int(v)) for v in j])
            ax.minorticks_off()
        h = [
            Line2D([], [], color="#0072B2", marker="o", label="measured wall time / speedup"),
            Line2D([], [], color="#D55E00", marker="s", label="parallel efficiency"),
            Line2D([], [], color="0.3", ls=":", label="ideal linear scaling"),
        ]
        tt = title or "Parallel scaling of a fixed sweep"
        backend = ", ".join(sorted(set(df["backend"]))) if "backend" in df else "loky"
        return _finish(fig, f"{tt}: wall time vs --jobs (joblib {backend})", h, ncol=3)


# ------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------
# ------------------------------------------------------------------------------------------
# 9. anatomy of failures
# ------------------------------------------------------------------------------------------
#: display order and colours (Okabe & Ito) of the end-point classes of anatomy.parquet
ANATOMY_COLORS = {
    "local minimum": "#D55E00",
    "saddle": "#CC79A7",
    "plateau": "#56B4E9",
    "unsettled": "#E69F00",
    "slow": "#009E73",
    "solved": "#F0E442",
    "no end point": "#999999",
}


def _arch_of(recurrent, window) -> str:
    return "rec." if bool(recurrent) else f"ff, w={int(window)}"


def fig_failure_anatomy(df: pd.DataFrame, *, title: str = "") -> Figure:
    """Stacked bars: the share of each end-point class (:mod:`toolkit.anatomy`) among the
    failed runs of each method x network, one panel per task; n failed above each bar and,
    when the table has the continuation test, how many of the continued runs then solved."""
    tasks = list(dict.fromkeys(df["task"].astype(str)))
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure(len(tasks), panel_h=2.6, max_cols=2, extra_h=1.1)
        classes = [c for c in ANATOMY_COLORS if (df["class"] == c).any()]
        classes += sorted(set(df["class"]) - set(classes))
        for ax, task in zip(axes, tasks, strict=True):
            d = df[df["task"].astype(str) == task]
            order = _order(d["method"])
            trip = zip(d["method"], d["recurrent"], d["window"], strict=True)
            keys = sorted(
                {(str(m), bool(r), int(w)) for m, r, w in trip},
                key=lambda k: (order.index(k[0]), not k[1], k[2]),
            )
            x = np.arange(len(keys))
            bottom = np.zeros(len(keys))
            n = np.array(
                [
                    ((d.method == m) & (d.recurrent == r) & (d.window == w)).sum()
                    for m, r, w in keys
                ],
                dtype=float,
            )
            for c in classes:
                k = np.array(
                    [
                        (
                            (d.method == m)
                            & (d.recurrent == r)
                            & (d.window == w)
                            & (d["class"] == c)
                        ).sum()
                        for m, r, w in keys
                    ],
                    dtype=float,
                )
                share = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
                ax.bar(x, share, bottom=bottom, color=ANATOMY_COLORS.get(c, "#666666"), width=0.7)
                bottom += share
            cont = {"continued_outcome", "continued_solved"} <= set(d.columns)
            for xi, ni, (m, r, w) in zip(x, n, keys, strict=True):
                label = f"n={int(ni)}"
                if cont:  # the continuation test: how many of the continued runs then solved
                    g = d[(d.method == m) & (d.recurrent == r) & (d.window == w)]
                    g = g[~g["continued_outcome"].astype(str).isin(["", "not exact"])]
                    if len(g):
                        label += f"\n{int(g['continued_solved'].astype(bool).sum())}/{len(g)} solve"
                ax.text(xi, 1.02, label, ha="center", va="bottom", fontsize=7)
            ax.set_xticks(x, [f"{method_label(m)}\n{_arch_of(r, w)}" for m, r, w in keys])
            ax.tick_params(axis="x", labelsize=7)
            ax.set_ylim(0, 1.22 if cont else 1.12)
            ax.set_title(task)
        _labels(fig, axes, "method, network", "share of failed runs")
        names = {"solved": "optimum reached (training loss)"}
        h = [Patch(color=ANATOMY_COLORS.get(c, "#666666"), label=names.get(c, c)) for c in classes]
        t = title or "What failed runs ended in"
        return _finish(fig, f"{t}: end-point classes per method and network", h)


def _condition_label(runs: pd.DataFrame) -> pd.Series:
    """A short name per run's condition: the part (setup) if any, else task and hidden size."""
    if "grid.setup" in runs:
        return runs["grid.setup"].astype(str)
    return runs["task"].astype(str) + ", H=" + runs["n_hidden"].astype(str)


def fig_tuning_sensitivity(tuned: pd.DataFrame, *, title: str = "") -> Figure:
    """From the tuning runs (tuning.parquet): per method and tuned hyperparameter (columns),
    each configuration's success rate on its tuning seeds (top row) and its best-cap ERT
    (bottom row; configurations that solved nothing at the top edge, open markers), one colour
    per condition. A flat top row says the verdict does not hinge on that setting."""
    ctt = analysis.cost_to_target(tuned)
    ctt["cond"] = _condition_label(ctt)
    params = ctt["method_params"].map(json.loads)
    panels = []  # (method, knob): the knobs whose value varies across configurations
    for m in _order(ctt["method"]):
        p = params[ctt["method"] == m]
        panels += [(m, k) for k in p.iloc[0] if p.map(lambda d, k=k: repr(d.get(k))).nunique() > 1]
    conds = list(dict.fromkeys(ctt["cond"]))
    palette = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
    colors = {c: palette[i % len(palette)] for i, c in enumerate(conds)}
    with matplotlib.rc_context(STYLE):
        # panels flow in reading order, at most 4 a row; each is a pair of axes (success rate
        # above, ERT below), so a method with many knobs, or many methods, stay readable
        n = max(1, len(panels))
        ncols = min(n, 4)
        pairs = -(-n // ncols)
        width = PAGE_W if n > 1 else COLUMN_W * 1.3
        fig = _new_figure((width, max(4.6, 1.3 + 2.7 * pairs)))
        grid = fig.subplots(2 * pairs, ncols, squeeze=False)
        for j in range(n, pairs * ncols):  # the last row's unused cells
            grid[2 * (j // ncols), j % ncols].set_visible(False)
            grid[2 * (j // ncols) + 1, j % ncols].set_visible(False)

        def axes(row, i):  # panel i's success-rate (row 0) or ERT (row 1) axes
            return grid[2 * (i // ncols) + row, i % ncols]

        for i, (m, k) in enumerate(panels):
            d = ctt[ctt["method"] == m].assign(
                x=params[ctt["method"] == m].map(lambda q, k=k: q[k])
            )
            for c, g in d.groupby("cond", sort=False):
                rows = []
                for x, gx in g.groupby(["grid.tuning_config", "x"]):
                    ert, _ = analysis.best_cap_ert(gx["cost"], gx["reached"])
                    rows.append((x[1], gx["reached"].mean(), ert))
                x, rate, ert = (np.array(v, dtype=float) for v in zip(*rows, strict=True))
                axes(0, i).scatter(x, rate, color=colors[c], s=16)
                ok = np.isfinite(ert)
                axes(1, i).scatter(x[ok], ert[ok], color=colors[c], s=16)
                top = np.nanmax(ctt["fwd_equiv"]) * 1.5
                axes(1, i).scatter(
                    x[~ok], np.full((~ok).sum(), top), facecolors="none", edgecolors=colors[c], s=16
                )
            spread = d["x"].astype(float)
            for ax in (axes(0, i), axes(1, i)):
                if spread.min() > 0 and spread.max() / spread.min() >= 10:
                    ax.set_xscale("log")
            axes(0, i).set_title(f"{method_label(m)}: {k}", fontsize=8)
            axes(0, i).set_ylim(-0.05, 1.05)
            axes(1, i).set_yscale("log")
            axes(1, i).set_xlabel(k)
        if not panels:
            _no_data(axes(0, 0), "no tuned hyperparameter")
        for p in range(pairs):
            grid[2 * p, 0].set_ylabel("success rate\n(tuning seeds)")
            grid[2 * p + 1, 0].set_ylabel("best-cap ERT\n(fwd. equiv.)")
        h = [Line2D([], [], ls="", marker="o", color=colors[c], label=c) for c in conds]
        h.append(
            Line2D([], [], ls="", marker="o", mfc="none", color="#666", label="solved nothing")
        )
        t = title or "Tuning"
        return _finish(fig, f"{t}: sensitivity to each tuned hyperparameter", h)


def plot_experiment(
    results_dir,
    *,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = DPI,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Path]:
    """Draw every figure the stored tables of ``results_dir`` support into
    ``<results_dir>/figures/`` (PNG and PDF); returns the written paths in a fixed order.

    Reads runs.parquet, traces.parquet, meta.json and the landscape / parallel tables listed
    in the module docstring; a figure whose tables are missing (or whose setting was not
    swept) is skipped. Bootstrap CIs use ``n_boot`` resamples seeded by ``seed``.
    """
    d = Path(results_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"results_dir: {d} is not a directory")
    out = d / "figures"
    res = store.read_results(d)
    if res.problems:
        raise ValueError(f"{d}: " + "; ".join(res.problems))
    name, target = res.experiment, res.target_loss
    runs, traces, tables = res.runs, res.traces, res.tables
    parallel = tables.get("parallel")
    if (
        parallel is None
        and isinstance((res.meta or {}).get("parallel"), list)
        and res.meta["parallel"]
    ):
        parallel = pd.DataFrame(res.meta["parallel"])

    paths: list[Path] = []

    def save(fig, stem):
        paths.extend(save_figure(fig, out / stem, formats=formats, dpi=dpi))

    if runs is not None and len(runs):
        if traces is not None and len(traces):
            save(
                fig_convergence(runs, traces, cost="fwd_equiv", title=name), "convergence_fwd_equiv"
            )
            if "wall_s" in traces and traces["wall_s"].notna().any():
                save(fig_convergence(runs, traces, cost="wall_s", title=name), "convergence_wall_s")
            save(fig_ecdf(runs, traces, title=name), "ecdf")
        save(fig_final_loss(runs, target_loss=target, title=name, seed=seed), "final_loss")
        for p in LAG_PARAMS:
            if _swept(runs, p):
                save(fig_success_vs(runs, param=p, title=name), f"success_vs_{p}")
        if "n_params" in runs and runs.groupby("task")["n_params"].nunique().max() >= 2:
            save(fig_scaling(runs, traces, title=name, n_boot=n_boot, seed=seed), "scaling")
    fid = tables.get("gradient_fidelity")
    k_swept = runs is not None and len(runs) and _swept(runs, "k")
    if k_swept or (fid is not None and len(fid)):
        save(
            fig_truncation(
                runs if k_swept else None, fid, traces, title=name, n_boot=n_boot, seed=seed
            ),
            "truncation",
        )
    if tables.get("cliff_surface") is not None:
        save(fig_cliff(tables["cliff_surface"], tables.get("cliff_trajectories")), "cliff")
    if tables.get("bifurcation") is not None:
        save(fig_bifurcation(tables["bifurcation"]), "bifurcation")
    if any(tables.get(t) is not None for t in ("slice_1d", "slice_2d", "interpolation")):
        save(
            fig_loss_slices(
                tables.get("slice_1d"), tables.get("slice_2d"), tables.get("interpolation")
            ),
            "loss_slices",
        )
    if tables.get("grad_norm_slice") is not None:
        save(fig_grad_norm_slice(tables["grad_norm_slice"]), "grad_norm_slice")
    if parallel is not None and len(parallel):
        save(fig_parallel(parallel, title=name), "parallel_scaling")
    tuned = tables.get("tuning")
    if tuned is not None and len(tuned) and "grid.tuning_config" in tuned:
        save(fig_tuning_sensitivity(tuned, title=name), "tuning_sensitivity")
    anat = tables.get("anatomy")
    if anat is not None and len(anat) and {"task", "method", "class"} <= set(anat.columns):
        save(fig_failure_anatomy(anat, title=name), "failure_anatomy")
    return paths
