"""The run record: the one declaration of what a row of ``runs.parquet`` holds.

Every run of a sweep leaves one row (in its run file, then in ``runs.parquet``). The columns,
their order, their table dtype, whether they measure time (and so differ between two
executions of the same run) and what they mean are declared once, here, in :data:`RUN_RECORD`.
Everything else derives from it: ``store.RUN_COLUMNS`` / ``INT_COLUMNS`` / ``FLOAT_COLUMNS`` /
``TIMING_COLUMNS`` (the table's columns and dtypes), :func:`new_row` (the row a sweep starts
each run with, ``sweep._base_row``), :func:`from_summary` (the columns a finished
:class:`~toolkit.train.trace.Trace` fills in) and the run-record section of docs/CONTRACTS.md
(:func:`markdown`, checked by tests/test_store.py). After the declared columns a row holds one
``grid.<key>`` column per grid key of its experiment.

Old results are read through :func:`normalise` (the one place that knows former column names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "RUN_RECORD",
    "Column",
    "columns",
    "from_summary",
    "markdown",
    "new_row",
    "normalise",
]


@dataclass(frozen=True)
class Column:
    """One column of the run record.

    ``dtype``: the pandas dtype of the column in runs.parquet (``Int64``, ``float64`` or
    ``object``); ``default``: its value in a row before the run has finished (:data:`REQUIRED`:
    the sweep must give it); ``timing``: measures time, so differs between two executions of
    the same run; ``summary``: filled from ``Trace.summary()`` when the run finishes."""

    name: str
    dtype: str
    doc: str
    default: object = None  # REQUIRED for columns the sweep must fill in
    timing: bool = False
    summary: bool = False


_NAN = math.nan
_WALL_DOC = "wall seconds of training (compile time and solved checks excluded)"
_EVAL_DOC = (
    "forward sequence-steps of the solved checks on the test set "
    "(evaluation: not in fwd_steps, fwd_equiv or the budget)"
)
#: default of a column that a new row must be given (from the run's spec)
REQUIRED = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
_R = REQUIRED

#: the run record, in column order
RUN_RECORD = (
    Column("experiment", "object", "experiment name", _R),
    Column("run_id", "object", "the run's key: hash of its resolved config and replicate", _R),
    Column("replicate", "Int64", "replicate index of the configuration", _R),
    Column("seed", "Int64", "the run's seed, derived from the root seed and its key", _R),
    Column("task", "object", "task name (toolkit.tasks)", _R),
    Column("task_params", "object", "resolved task parameters (canonical JSON)", _R),
    Column("method", "object", "method name (toolkit.train.METHODS)", _R),
    Column("method_params", "object", "resolved hyperparameters (canonical JSON)", _R),
    Column("family", "object", "method family: gradient | evolution", _R),
    Column("n_hidden", "Int64", "hidden units", _R),
    Column("n_params", "Int64", "weights (length of theta); null when the net was not built"),
    Column("hidden", "object", "hidden activation (null for lstm, gru)", _R),
    Column("recurrent", "object", "bool; false: W_hh = 0 (feed-forward variant)", True),
    Column("window", "object", "int; input window of the network", 1),
    Column("cell", "object", "network cell ([net] cell: elman, a1, lstm, gru)", "elman"),
    Column("output", "object", "output nonlinearity (from the task)", _R),
    Column("outcome", "object", "solved|target|budget|diverged|error", "error", summary=True),
    Column("evals", "Int64", "loss evaluations", 0, summary=True),
    Column("fwd_steps", "Int64", "forward sequence-steps", 0, summary=True),
    Column("grad_steps", "Int64", "forward+backward sequence-steps of gradients", 0, summary=True),
    Column("fwd_equiv", "float64", "fwd_steps + grad cost ratio * grad_steps", 0.0, summary=True),
    Column("final_loss", "float64", "training loss at the end", _NAN, summary=True),
    Column("best_loss", "float64", "lowest training loss seen", _NAN, summary=True),
    Column("solved_at_evals", "float64", "evals when solved (NaN: not solved)", _NAN),
    Column("solved_at_fwd_equiv", "float64", "fwd_equiv when solved (NaN: not solved)", _NAN),
    Column("eval_fwd_steps", "Int64", _EVAL_DOC, 0, summary=True),
    Column("wall_s", "float64", _WALL_DOC, 0.0, True, True),
    Column("eval_s", "float64", "wall seconds of the solved checks (test set)", 0.0, True, True),
    Column("compile_s", "float64", "seconds compiling/loading kernels", 0.0, True, True),
    Column("cpu_s", "float64", "CPU seconds of the run's thread, task to end", 0.0, True),
    Column("message", "object", "the method's closing message", "", summary=True),
    Column("error", "object", "traceback when outcome is error, else empty", ""),
    Column("target_loss", "float64", "loss target (NaN: none)", _R),
    Column("budget_evals", "Int64", "budget: loss evaluations (null: none)", _R),
    Column("budget_fwd_equiv", "float64", "budget: forward-pass equivalents (NaN: none)", _R),
    Column("budget_wall_s", "float64", "budget: wall seconds (NaN: none)", _R),
)  # fmt: skip

_BY_NAME = {c.name: c for c in RUN_RECORD}


def columns(dtype: str | None = None, *, timing: bool | None = None) -> tuple[str, ...]:
    """Names of the run record's columns, in order; only those of ``dtype`` / ``timing``."""
    return tuple(
        c.name
        for c in RUN_RECORD
        if (dtype is None or c.dtype == dtype) and (timing is None or c.timing == timing)
    )


def new_row(grid: dict | None = None, **values) -> dict:
    """A run's row before it has run: every declared column (``values`` or the column's
    default), then the ``grid.<key>`` columns. Raises KeyError for an undeclared column and
    ValueError for a column without a default that is not given."""
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise KeyError(f"not run-record columns: {', '.join(unknown)} (toolkit/records.py)")
    row = {}
    for c in RUN_RECORD:
        if c.name in values:
            row[c.name] = values[c.name]
        elif c.default is REQUIRED:
            raise ValueError(f"run record: column {c.name!r} needs a value")
        else:
            row[c.name] = c.default
    row.update(grid or {})
    return row


_CAST = {"Int64": int, "float64": float, "object": lambda v: v}


def from_summary(summary: dict) -> dict:
    """The columns a finished Trace fills in (``Trace.summary()``), cast to their dtype."""
    out = {}
    for c in RUN_RECORD:
        if c.summary:
            v = summary.get(c.name)
            if c.name == "outcome":
                v = v or "error"
            elif c.name == "message":
                v = str(v or "")
            out[c.name] = _CAST[c.dtype](v)
    return out


#: columns added to the record after results were first written, with the grid columns that
#: held them before (read in this order); a row without any of them gets the column's default
FORMER = {
    "recurrent": ("grid.net.recurrent", "grid.recurrent"),
    "window": ("grid.net.window", "grid.window"),
    "cell": (),  # rows written before the column: Elman nets (A1 runs then held "a1" only in
    # their run key), so a reader of old results sees "elman"
}


def normalise(runs):
    """``runs`` (a runs.parquet DataFrame, possibly written by an older version) with the
    network-variant columns (:data:`FORMER`) present and filled (missing values: the column's
    default). The one place that knows former column names; readers never probe."""
    runs = runs.copy()
    for new, former in FORMER.items():
        if new not in runs.columns:
            old = next((c for c in former if c in runs.columns), None)
            runs[new] = runs[old] if old is not None else None
        default = _BY_NAME[new].default
        runs[new] = runs[new].astype(object).where(runs[new].notna(), default)
    return runs


def markdown() -> str:
    """The run-record section of docs/CONTRACTS.md (between its markers), from the record."""
    lines = ["| column | dtype | timing | meaning |", "|---|---|---|---|"]
    for c in RUN_RECORD:
        doc = c.doc.replace("|", "\\|")
        lines.append(f"| {c.name} | {c.dtype} | {'yes' if c.timing else ''} | {doc} |")
    lines.append("| grid.\\<key\\> | as given | | one column per grid key |")
    return "\n".join(lines)
