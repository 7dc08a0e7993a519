"""One ask/tell protocol for every population method, and the one generation loop that runs it.

A population method is a :class:`Strategy` -- in the spirit of pycma's and evosax's ask/tell
interfaces -- that only proposes and learns:

* ``ask() -> X``: the generation's thetas to evaluate, a float64 array (P, n_params) (P may
  vary between generations, and may be 0);
* ``tell(losses)``: the P losses of those rows, in the same order (non-finite losses arrive as
  +inf, so they rank last in any sort);
* optional: ``stop() -> str | None`` (a termination criterion fired: the loop restarts the
  method), ``stats() -> dict`` (scalars for the run's Logbook, e.g. the step size), and
  ``counters() -> dict`` (integers summed over restarts and stated in the run's message).

Everything else is done once, here, for every strategy (:func:`evolve`): the generation's
losses in ONE compiled ``net.population_loss`` call, the cost (``evals += P``,
``fwd_steps += P * B * T``), the :class:`~toolkit.train.trace.Trace` and DEAP Logbook, the best
theta seen so far (the run's answer), stopping on solved / target / budget / divergence, and
restarts (a new strategy from the same factory, ``ctx.restart`` counting them).

A strategy is built by a factory ``make(ctx, **hyper)`` from a :class:`Context`: the run's
``numpy.random.Generator`` (``ctx.rng``), its ``SeedSequence``, the network (``ctx.init`` draws
a first theta), ``n`` and the restart index. It must draw all its randomness from ``ctx`` (the
Generator, or the private DEAP-style streams ``ctx.random`` / ``ctx.random_state``): no global
random state, so runs in threads of one process are independent and reproducible.

:func:`register_strategy` turns a factory into a registered method that sweeps run like a
built-in one::

    class OnePlusOne(Strategy):
        def __init__(self, ctx, sigma): ...
        def ask(self): ...
        def tell(self, losses): ...

    register_strategy("one_plus_one", OnePlusOne, params={"sigma": Param(0.1, "float", lo=0)},
                      label="(1+1)-ES", color="#117733")
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable

import numpy as np
from deap import tools

from toolkit.params import Param
from toolkit.train.registry import Method, register

__all__ = [
    "Context",
    "Evolution",
    "Strategy",
    "evolve",
    "register_strategy",
    "init_scale_param",
]

# spawn-key word that separates the run's DEAP-style streams from the run's own Generator
_GLOBAL_STREAM_KEY = 0xDEA9


def init_scale_param(what: str) -> Param:
    """The ``init_scale`` hyperparameter every population method shares: ``what`` (the first
    mean, the population, the parents) is drawn from ``net.init(rng, scale=init_scale)``."""
    return Param(
        None,
        "float",
        lo=0.0,
        lo_open=True,
        allow_none=True,
        doc=f"{what} from net.init(rng, scale=init_scale)",
    )


def run_streams(seed_seq: np.random.SeedSequence) -> tuple[random.Random, np.random.RandomState]:
    """The run's private ``(random.Random, numpy.random.RandomState)``, from its ``seed_seq``.

    They replace the global ``random`` and ``numpy.random`` that DEAP's operators and
    ``deap.cma`` draw from, and are seeded with exactly the state the toolkit used to put into
    those globals before (the same int for ``random``, the same uint32 array for the legacy
    ``numpy.random``), so results are unchanged bit for bit. Nothing global is read or written:
    runs in threads of one process are independent. The child stream is derived from
    ``seed_seq`` with an extra spawn-key word, so it differs from ``default_rng(seed_seq)``.
    """
    if not isinstance(seed_seq, np.random.SeedSequence):
        raise TypeError(f"seed_seq: expected numpy.random.SeedSequence, got {seed_seq!r}")
    child = np.random.SeedSequence(
        seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, _GLOBAL_STREAM_KEY)
    )
    state = child.generate_state(8)  # 8 x uint32
    return random.Random(int.from_bytes(state.tobytes(), "little")), np.random.RandomState(state)


class Context:
    """What a strategy factory may use: the run's randomness, the network, the restart index.

    rng: the run's ``numpy.random.Generator``; seed_seq: its ``SeedSequence`` (spawn children
    from it for further streams); net: the network (only ``init`` and ``n_params`` are meant
    for strategies); n: ``net.n_params``; restart: 0 for the first strategy, k after k restarts;
    memory: a dict that outlives restarts (e.g. BIPOP's evaluation counts per regime).
    ``random`` / ``random_state``: the run's private ``random.Random`` and
    ``numpy.random.RandomState`` (:func:`run_streams`, made once per run) for DEAP's code.
    """

    def __init__(self, net, rng: np.random.Generator, seed_seq: np.random.SeedSequence):
        self.net = net
        self.rng = rng
        self.seed_seq = seed_seq
        self.n = int(net.n_params)
        self.restart = 0
        self.memory: dict = {}
        self._streams = None

    def init(self, scale=None) -> np.ndarray:
        """A first theta (n,) from ``net.init(rng, scale=scale)`` (the net's own init)."""
        return self.net.init(self.rng, scale=scale)

    def _get_streams(self):
        if self._streams is None:
            self._streams = run_streams(self.seed_seq)
        return self._streams

    @property
    def random(self) -> random.Random:
        return self._get_streams()[0]

    @property
    def random_state(self) -> np.random.RandomState:
        return self._get_streams()[1]


class Strategy:
    """The ask/tell protocol (subclass it, or duck-type ``ask`` and ``tell``)."""

    def ask(self) -> np.ndarray:
        """The thetas to evaluate next: float64 array (P, n)."""
        raise NotImplementedError

    def tell(self, losses: np.ndarray) -> None:
        """The P losses of the rows of the last ``ask`` (non-finite ones as +inf)."""
        raise NotImplementedError

    def stop(self) -> str | None:
        """A termination criterion's name when the strategy should be restarted, else None."""
        return None

    def stats(self) -> dict:
        """Scalars for the run's Logbook, taken after evaluation and before ``tell``."""
        return {}

    def counters(self) -> dict:
        """Integers summed over restarts and stated in the run's final message."""
        return {}


# -- the generation loop's bookkeeping ----------------------------------------------------------
class Evolution:
    """Per-generation cost, trace, Logbook and stopping rules shared by every population method.

    Usage per generation: ``L = evo.evaluate(X)`` with X (P, n) the generation's thetas, then
    ``if evo.tell(X, L, **stats): return evo.finish()``. The run's answer is the best theta seen
    so far; it is what ``trace.record`` receives, what ``solved`` is checked on and the final
    theta. DEAP's Logbook (``trace.logbook``) gets one row per stored trace point (log-spaced,
    so it stays bounded like the trace) and one for the last generation: generation,
    evaluations so far, best and median loss of the generation, best loss so far, ``stats``.
    """

    def __init__(self, net, data, *, budget, target_loss, solved, trace):
        self.net = net
        # validate and convert the data once; population_loss then skips its checks
        self.x, self.y, self.mask, self.h0 = net.check_data(
            data.x, data.y, getattr(data, "mask", None)
        )
        self.seq_steps = int(data.x.shape[0]) * int(data.x.shape[1])  # B * T per evaluation
        self.budget = budget
        self.target_loss = None if target_loss is None else float(target_loss)
        self.solved = solved
        self.trace = trace
        self.gen = 0
        self.best_loss = math.inf
        self.best_theta: np.ndarray | None = None
        self._unchecked = False  # best theta changed since the last solved() check
        self.outcome: str | None = None
        self.message = ""
        self.logbook = tools.Logbook()
        self.logbook.header = ["gen", "evals", "best", "median", "best_so_far"]
        trace.logbook = self.logbook

    def evaluate(self, X: np.ndarray) -> np.ndarray:
        """Losses of the P thetas in X (P, n), one jitted call; non-finite -> +inf."""
        if X.shape[0] == 0:
            return np.empty(0)
        L = np.asarray(
            self.net.population_loss(X, self.x, self.y, self.mask, self.h0, check=False),
            dtype=np.float64,
        )
        if not math.isfinite(L.sum()):  # (finite only when every loss is)
            L = np.where(np.isfinite(L), L, np.inf)
        return L

    @staticmethod
    def assign(pop, losses) -> None:
        """Write fitness tuples back to DEAP individuals."""
        for ind, L in zip(pop, losses, strict=True):
            ind.fitness.values = (float(L),)

    def tell(self, X: np.ndarray, losses: np.ndarray, stats_fn=None, **stats) -> bool:
        """Charge one generation of P = len(losses) evaluations; True when the run must stop.
        ``stats`` (or ``stats_fn()``, called only when a Logbook row is written) go to the
        Logbook."""
        P = int(losses.shape[0])
        tr = self.trace
        tr.add_cost(evals=P, fwd_steps=P * self.seq_steps)
        any_finite = True
        if P:
            i = int(np.argmin(losses))
            low = float(losses[i])
            if low < self.best_loss:
                self.best_loss = low
                self.best_theta = np.array(X[i], dtype=np.float64, copy=True)
                self._unchecked = True
            # a finite minimum means a finite loss (argmin stops at a NaN: then look at all)
            any_finite = math.isfinite(low) or bool(np.isfinite(losses).any())
        logged = tr.record(self.best_loss, self.best_theta)
        stop = self._decide(P, any_finite, logged)
        if logged or stop:  # Logbook rows at the trace's (log-spaced) points and at the end
            if stats_fn is not None:
                stats = {**stats_fn(), **stats}
            finite = losses[np.isfinite(losses)]
            self.logbook.record(
                gen=self.gen,
                evals=tr.evals,
                best=float(losses.min()) if P else math.nan,
                median=_median(finite) if finite.size else math.inf,
                best_so_far=self.best_loss,
                **stats,
            )
        self.gen += 1
        return stop

    def _decide(self, P: int, any_finite: bool, logged: bool) -> bool:
        """Stopping rules after a generation; precedence diverged > solved > target > budget."""
        tr = self.trace
        if P and not any_finite:
            return self.stop("diverged", f"generation {self.gen}: all {P} losses are non-finite")
        target = self.target_loss is not None and self.best_loss <= self.target_loss
        spent = self.budget.spent_by(tr)
        if self.solved is not None and self._unchecked and (logged or target or spent):
            self._unchecked = False  # solved() is only re-run when the best theta changed
            if self.solved(self.best_theta):
                return self.stop("solved", f"solved after {tr.evals} evaluations")
        if target:
            return self.stop("target", f"best loss {self.best_loss:.6g} <= {self.target_loss:g}")
        if spent:
            return self.stop("budget", f"budget spent after {tr.evals} evaluations")
        return False

    def stop(self, outcome: str, message: str = "") -> bool:
        self.outcome = outcome
        self.message = message if not self.message else f"{self.message}; {message}"
        return True

    def note(self, message: str) -> None:
        """Add a remark to the final message (restarts, ...)."""
        self.message = message if not self.message else f"{self.message}; {message}"

    def finish(self):
        """End the trace with the outcome and the best theta; returns the Trace."""
        return self.trace.finish(self.outcome, theta=self.best_theta, message=self.message)


def _median(a: np.ndarray) -> float:
    """``float(np.median(a))`` of a non-empty 1-D array of finite floats, bit for bit: the
    middle value, or the two middle values' sum halved (np.median's mean of two), from a
    sort; without np.median's general machinery, which cost more than a small CMA-ES
    generation's update (tests/test_strategy.py)."""
    s = np.sort(a)
    m = s.size // 2
    if s.size % 2:
        return float(s[m])
    return (float(s[m - 1]) + float(s[m])) / 2.0


# -- the one generation loop --------------------------------------------------------------------
def _as_population(X, n: int, who: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != n:
        raise ValueError(f"{who}.ask(): expected an array (P, n_params={n}), got shape {X.shape}")
    if X.dtype != np.float64 or not X.flags.c_contiguous:
        X = np.ascontiguousarray(X, dtype=np.float64)
    return X


def evolve(evo: Evolution, ctx: Context, make: Callable, hyper: dict, *, restarts: bool = False):
    """Run ``make(ctx, **hyper)``'s ask/tell strategy until the run stops; returns the Trace.

    Per generation: X = ask(); losses = one ``population_loss`` call (non-finite -> +inf);
    Logbook stats (``stats()``, plus ``restart`` = restarts so far when ``restarts``); cost,
    trace and stopping (:class:`Evolution`); then ``tell(losses)``. When ``stop()`` names a
    criterion, the strategy is replaced by ``make(ctx, **hyper)`` with ``ctx.restart`` + 1.
    The final message counts the restarts by reason (for methods declared with ``restarts``, or
    when any happened) and the strategies' ``counters()`` summed over restarts.
    """
    strategy = make(ctx, **hyper)
    who = type(strategy).__name__
    reasons: Counter = Counter()
    spent: dict = {}  # counters() of the strategies replaced by restarts, summed
    n = ctx.n
    while True:
        X = _as_population(strategy.ask(), n, who)
        losses = evo.evaluate(X)
        # stats() before tell(), but only for generations the Logbook keeps
        extra = {"restart": reasons.total()} if restarts else {}
        if evo.tell(X, losses, strategy.stats, **extra):
            if restarts or reasons:
                total = dict(spent)  # (Counter's + would drop zero counts)
                for k, v in strategy.counters().items():
                    total[k] = total.get(k, 0) + v
                why = ", ".join(f"{r} x{c}" for r, c in sorted(reasons.items()))
                evo.note(
                    f"{reasons.total()} restarts"
                    + (f" ({why})" if why else "")
                    + "".join(f", {v} {k}" for k, v in total.items())
                )
            return evo.finish()
        strategy.tell(losses)
        reason = strategy.stop()
        if reason is not None:
            reasons[reason] += 1
            for k, v in strategy.counters().items():
                spent[k] = spent.get(k, 0) + v
            ctx.restart = reasons.total()
            strategy = make(ctx, **hyper)


def register_strategy(
    name: str,
    make: Callable,
    *,
    params: dict[str, Param],
    check: Callable[[dict], list[tuple[str, str]]] | None = None,
    label: str = "",
    color: str = "",
    marker: str = "o",
    order: int = 100,
    doc: str = "",
    tags: tuple = (),
    restarts: bool = False,
    check_net: Callable[[dict, int], list[tuple[str, str]]] | None = None,
) -> Method:
    """Register the population method ``name``: ``make(ctx, **hyper) -> Strategy`` run by
    :func:`evolve`. ``params`` declares the hyperparameters (validated before any work, errors
    naming the parameter), ``check`` cross-parameter constraints; label, color, marker, order:
    how figures and the report show it; ``restarts``: the Logbook has a ``restart`` column and
    the message counts restarts; ``check_net(hyper, n_params)``: limits that depend on the
    network's size, checked before any work. Returns the :class:`~toolkit.train.registry.Method`."""
    if not callable(make):
        raise TypeError(f"register_strategy({name!r}): make must be callable, got {make!r}")

    def train(net, data, *, rng, seed_seq, budget, target_loss=None, solved=None, trace, **hyper):
        evo = Evolution(
            net, data, budget=budget, target_loss=target_loss, solved=solved, trace=trace
        )
        return evolve(evo, Context(net, rng, seed_seq), make, hyper, restarts=restarts)

    train.__name__ = train.__qualname__ = f"train_{name}"
    train.strategy = make
    return register(
        Method(
            name=name,
            family="evolution",
            params=dict(params),
            train=train,
            check=check,
            doc=doc or (make.__doc__ or "").strip().split("\n")[0],
            tags=tuple(tags) + ("population",),
            label=label or name,
            color=color,
            marker=marker,
            order=order,
            check_net=check_net,
        )
    )
