"""The one run record every optimizer writes (gradient trainers and evolutionary baselines).

A :class:`Trace` stores, at log-spaced points of a run's cost and at its end:

* ``evals``      -- loss evaluations of one sequence batch (a gradient evaluation counts as one),
* ``fwd_steps``  -- sequence-steps of forward-only computation (P x B x T per population),
* ``grad_steps`` -- sequence-steps of forward+backward computation (B x T per gradient),
* ``fwd_equiv``  -- cost in forward-pass equivalents: ``fwd_steps + ratio * grad_steps`` where
  ``ratio`` is the gradient's measured cost relative to a forward pass for this network size
  (:func:`toolkit.nets.grad_cost_ratio`, a committed calibration table, so the column is
  deterministic); the raw counts are kept so anyone can re-weight them,
* ``wall_s``     -- wall seconds of training since the run started: Numba compile time and
  the solved checks excluded (at the points a compiled BPTT chunk logs itself, interpolated by
  evaluation count within that chunk's call: :meth:`Trace.add_points`),
* ``loss``, ``best_loss`` and ``grad_norm`` (NaN where there is none).

The solved checks on the test set are evaluation, not training (:meth:`Trace.add_eval`):
their forward sequence-steps (``eval_fwd_steps``) and seconds (``eval_s``) are kept apart,
out of the cost columns, the budget and ``wall_s``.

Plus the final outcome (one of :data:`OUTCOMES`), the final and best theta, the seed, the
compile seconds and an error message. Every column but ``wall_s`` and ``eval_s`` is
deterministic for a seed. The number of stored points is bounded: points are logged when
``evals`` passes the next log-spaced mark (factor :data:`LOG_FACTOR`, about 47 points per
decade), so a run of 1e9 evaluations keeps about 430 points; the last point is always logged.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

OUTCOMES = ("solved", "target", "budget", "diverged", "error")
LOG_FACTOR = 1.05
TIMING_COLUMNS = ("wall_s",)
COLUMNS = (
    "evals",
    "fwd_steps",
    "grad_steps",
    "fwd_equiv",
    "wall_s",
    "loss",
    "best_loss",
    "grad_norm",
)


@dataclass(frozen=True)
class Budget:
    """How much a run may spend. At least one limit must be set; the first one reached stops.

    evals: loss evaluations of one batch; fwd_equiv: forward-pass equivalents (sequence-steps);
    wall_s: wall seconds (compile time excluded).
    """

    evals: int | None = None
    fwd_equiv: float | None = None
    wall_s: float | None = None

    def __post_init__(self):
        if self.evals is None and self.fwd_equiv is None and self.wall_s is None:
            raise ValueError("budget: set at least one of evals, fwd_equiv, wall_s (got none)")
        for name in ("evals", "fwd_equiv", "wall_s"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
                raise TypeError(f"budget.{name}: expected a positive number, got {v!r}")
            if not (v > 0) or not math.isfinite(v):
                raise ValueError(f"budget.{name}: expected a positive finite number, got {v!r}")

    @classmethod
    def from_dict(cls, d: dict) -> Budget:
        unknown = set(d) - {"evals", "fwd_equiv", "wall_s"}
        if unknown:
            raise ValueError(
                f"budget: unknown key(s) {sorted(unknown)}; allowed: evals, fwd_equiv, wall_s"
            )
        return cls(**d)

    def spent_by(self, trace: Trace) -> bool:
        """:meth:`spent` at the trace's counters, reading its clock only when a wall_s limit is
        set (the trainers ask after every update or generation)."""
        wall_s = trace.wall_s if self.wall_s is not None else 0.0  # (unused without the limit)
        return self.spent(trace.evals, trace.fwd_equiv, wall_s)

    def spent(self, evals: int, fwd_equiv: float, wall_s: float) -> bool:
        """True when any set limit has been reached."""
        return (
            (self.evals is not None and evals >= self.evals)
            or (self.fwd_equiv is not None and fwd_equiv >= self.fwd_equiv)
            or (self.wall_s is not None and wall_s >= self.wall_s)
        )


@dataclass
class Trace:
    """Run record. Create one per run, call :meth:`start` after compiling, then :meth:`record`
    after every loss/gradient evaluation (or generation), then :meth:`finish`."""

    method: str
    seed: int | None = None
    grad_ratio: float = 1.0
    evals: int = 0
    fwd_steps: int = 0
    grad_steps: int = 0
    eval_fwd_steps: int = 0  # forward sequence-steps of the solved checks (evaluation)
    eval_s: float = 0.0  # their wall seconds, not in wall_s
    loss: float = math.nan
    best_loss: float = math.inf
    outcome: str | None = None
    message: str = ""
    compile_s: float = 0.0
    final_theta: np.ndarray | None = None
    best_theta: np.ndarray | None = None
    points: dict = field(default_factory=lambda: {c: [] for c in COLUMNS})
    #: optimizer-specific per-generation log (DEAP's Logbook for the evolutionary methods)
    logbook: object = None
    _t0: float | None = None
    _t_end: float | None = None
    _next_log: float = 1.0

    # -- timing -------------------------------------------------------------------------
    def start(self, compile_s: float = 0.0) -> None:
        """Start the wall clock (call after compiling); ``compile_s`` is stored apart."""
        self.compile_s = float(compile_s)
        self._t0 = time.perf_counter()

    @property
    def wall_s(self) -> float:
        """Seconds of training since :meth:`start` (the solved checks' seconds, ``eval_s``,
        taken out); frozen by :meth:`finish`."""
        if self._t0 is None:
            return 0.0
        end = self._t_end if self._t_end is not None else time.perf_counter()
        return end - self._t0 - self.eval_s

    @property
    def fwd_equiv(self) -> float:
        return float(self.fwd_steps) + self.grad_ratio * float(self.grad_steps)

    # -- recording ----------------------------------------------------------------------
    def add_cost(self, evals: int = 0, fwd_steps: int = 0, grad_steps: int = 0) -> None:
        self.evals += int(evals)
        self.fwd_steps += int(fwd_steps)
        self.grad_steps += int(grad_steps)

    def add_eval(self, seconds: float, fwd_steps: int) -> None:
        """Account one solved check on the test set: its wall seconds (taken out of
        ``wall_s``) and forward sequence-steps, apart from the training cost."""
        self.eval_s += float(seconds)
        self.eval_fwd_steps += int(fwd_steps)

    def record(
        self,
        loss: float,
        theta: np.ndarray | None = None,
        grad_norm: float = math.nan,
        force: bool = False,
    ) -> bool:
        """Note the current loss (after :meth:`add_cost`); keep the best theta (copied).

        Returns True when this call stored a trace point (log-spaced in ``evals``, or forced).
        A non-finite loss never becomes the best.
        """
        loss = float(loss)
        self.loss = loss
        if math.isfinite(loss) and loss < self.best_loss:
            self.best_loss = loss
            if theta is not None:
                self.best_theta = np.array(theta, dtype=np.float64, copy=True)
        if force or self.evals >= self._next_log:
            self._log(grad_norm)
            while self._next_log <= self.evals:
                self._next_log = max(self._next_log * LOG_FACTOR, self._next_log + 1)
            return True
        return False

    def add_points(self, ints, floats, t_from: float, t_to: float, evals_from: int, evals_to: int):
        """Trace points that a compiled training chunk logged itself (toolkit/train/chunk.py,
        where no solved check was due): rows of ``ints`` (evals, fwd_steps, grad_steps) and
        ``floats`` (loss, best_loss, grad_norm), exactly what :meth:`record` logs there.

        The clock cannot be read inside the chunk, so their ``wall_s`` is interpolated by
        evaluation count between the chunk's start (``time.perf_counter()`` ``t_from``, at
        ``evals_from`` evaluations) and its return (``t_to``, at ``evals_to``): the chunk's
        updates cost alike, so the error is a fraction of that one call's time. The other
        columns are the ones the Python loop logs, bit for bit."""
        p = self.points
        if self._t0 is None:  # not started: wall_s reads 0 (as the property)
            base = span = 0.0
        else:
            base = t_from - self._t0 - self.eval_s
            span = (t_to - t_from) / max(1, evals_to - evals_from)
        if len(ints) == 0:
            return
        if p["evals"] and p["evals"][-1] == int(ints[0, 0]):  # same cost point: overwrite
            for c in COLUMNS:
                p[c].pop()
        # row by row in Python floats (a chunk hands back a few rows: per-row arithmetic cost
        # less than a dozen NumPy calls); the same float operations as _log's
        r = self.grad_ratio
        for (e, fs, gs), (loss, best, norm) in zip(ints.tolist(), floats.tolist(), strict=True):
            p["evals"].append(e)
            p["fwd_steps"].append(fs)
            p["grad_steps"].append(gs)
            p["fwd_equiv"].append(float(fs) + r * float(gs))
            p["wall_s"].append(base + (e - evals_from) * span)
            p["loss"].append(loss)
            p["best_loss"].append(best)
            p["grad_norm"].append(norm)

    def _log(self, grad_norm: float) -> None:
        p = self.points
        if p["evals"] and p["evals"][-1] == self.evals:  # same cost point: overwrite
            for c in COLUMNS:
                p[c].pop()
        p["evals"].append(self.evals)
        p["fwd_steps"].append(self.fwd_steps)
        p["grad_steps"].append(self.grad_steps)
        p["fwd_equiv"].append(self.fwd_equiv)
        p["wall_s"].append(self.wall_s)
        p["loss"].append(self.loss)
        p["best_loss"].append(self.best_loss)
        p["grad_norm"].append(float(grad_norm))

    def finish(
        self,
        outcome: str,
        theta: np.ndarray | None = None,
        message: str = "",
        grad_norm: float = math.nan,
    ) -> Trace:
        """Set the outcome, log the final point and store the final theta."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome: expected one of {OUTCOMES}, got {outcome!r}")
        self.outcome = outcome
        self.message = message
        if self._t0 is not None and self._t_end is None:
            self._t_end = time.perf_counter()
        if theta is not None:
            self.final_theta = np.array(theta, dtype=np.float64, copy=True)
        self._log(grad_norm)
        return self

    # -- export -------------------------------------------------------------------------
    def summary(self) -> dict:
        """One row of scalars: outcome and totals at the end of the run."""
        return {
            "method": self.method,
            "seed": self.seed,
            "outcome": self.outcome,
            "evals": self.evals,
            "fwd_steps": self.fwd_steps,
            "grad_steps": self.grad_steps,
            "fwd_equiv": self.fwd_equiv,
            "eval_fwd_steps": self.eval_fwd_steps,
            "eval_s": self.eval_s,
            "final_loss": self.loss,
            "best_loss": self.best_loss,
            "wall_s": self.points["wall_s"][-1] if self.points["wall_s"] else 0.0,
            "compile_s": self.compile_s,
            "message": self.message,
        }

    def to_frame(self):
        """The trace points as a pandas DataFrame, one row per logged point."""
        import pandas as pd

        return pd.DataFrame({c: np.asarray(self.points[c]) for c in COLUMNS})
