"""Benchmark tasks from the recurrent-network literature, registered by name.

    task = toolkit.tasks.get("adding", T=100)     # ValueError for bad parameters
    data = task.generate(rng)                      # training set: Dataset(x, y, mask)
    test = task.test_set()                         # held-out set from the task's test_seed
    task.solved(net, theta)                        # the published criterion, on test_set()

A :class:`Dataset` holds x (B,T,I), y (B,T,O) and mask (B,T), all float64; mask[b,t] = 1 where
the target at step t counts and 0 elsewhere (unpredictable steps, padding after the end of a
shorter sequence). Sequences of different lengths are padded at the END with zeros (x, y and
mask); the network also runs over the padding, which is harmless because the mask selects the
true last step. Only ``net.forward(theta, x) -> (h, yhat)``, ``net.n_in`` and ``net.n_out``
are used here, so tasks import nothing from the rest of the toolkit (numpy only).

Tasks (``names()``, in this order): temporal_xor, latch, two_sequence, parity, adding,
delayed_recall, reber, mackey_glass, sine, echo. Each class docstring gives the citation, what
the task tests, the defaults next to the paper's values, and every choice we made where the
paper is not explicit; every such choice is a parameter.

Every task takes ``n_train``, ``n_test`` (number of sequences; small defaults so that sweeps
run quickly on a laptop) and ``test_seed``: the held-out set is drawn from
``numpy.random.default_rng([test_seed, 7357])``, so it never equals ``generate(test_seed)``.
``task.metric(net, theta)`` returns the number that ``solved`` compares with its threshold
(described by ``task.criterion``).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from toolkit.params import Param, ParamError, resolve

__all__ = [
    "Dataset",
    "Task",
    "get",
    "names",
    "mackey_glass",
    "reber_accepts",
    "reber_generate",
    "reber_next",
    "REBER_MAX_DRAWS",
    "REBER_SYMBOLS",
]

_TEST_SALT = 7357  # mixed into the test seed so that test_set() != generate(test_seed)


class Dataset(NamedTuple):
    """x (B,T,I), y (B,T,O), mask (B,T): float64 arrays. mask 1 where the target counts."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray


# --------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------
def _counts(n_train: int, n_test: int, test_seed: int) -> dict[str, Param]:
    return {
        "n_train": Param(n_train, "int", lo=1),
        "n_test": Param(n_test, "int", lo=1),
        "test_seed": Param(test_seed, "int", lo=0),
    }


def _as_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool | np.bool_):
        if rng < 0:
            raise ValueError(f"rng: expected a non-negative int seed, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng: expected a numpy.random.Generator, SeedSequence or int seed, got {rng!r}"
    )


# --------------------------------------------------------------------------------------
# the base class and the registry
# --------------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Task]] = {}


def _register(cls: type[Task]) -> type[Task]:
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    """Names of the registered tasks, in the order of the README table."""
    return list(_REGISTRY)


def get(name: str, **params) -> Task:
    """The task ``name`` with ``params`` (validated; defaults filled in ``task.params``)."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(names())}")
    return _REGISTRY[name](**params)


class Task:
    """Base class: parameter validation, training/test sets and the `solved` protocol.

    Subclasses set ``name``, ``citation``, ``output``, ``criterion``, ``PARAMS`` and implement
    ``_make(rng, n, split)`` -> Dataset, ``_score(yhat, data)`` -> float and
    ``_passes(score)`` -> bool. ``n_in`` / ``n_out`` may depend on the parameters.
    """

    name: str = ""
    citation: str = ""
    output: str = "linear"
    criterion: str = ""
    PARAMS: dict[str, Param] = {}
    #: parameters added after results were stored: left out of ``params`` while they hold
    #: their default, so that the run keys (a hash of ``params``) of existing experiments,
    #: and with them their seeds and results, do not change
    LATE: tuple[str, ...] = ()
    _n_in: int = 1
    _n_out: int = 1

    def __init__(self, **params):
        full = resolve(self.PARAMS, params, self.name)
        #: every parameter, resolved (``params`` without the late ones at their default)
        self.p: dict[str, Any] = full
        self.params: dict[str, Any] = {
            k: v for k, v in full.items() if k not in self.LATE or v != self.PARAMS[k].default
        }
        self._check()
        self._test: Dataset | None = None

    # -- hooks ------------------------------------------------------------------------
    def _check(self) -> None:
        """Cross-parameter checks (ValueError naming the parameter)."""

    def _require(self, ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ParamError([(key, f"expected {what}, got {self.p[key]!r}")], self.name)

    def _make(self, rng: np.random.Generator, n: int, split: str) -> Dataset:
        raise NotImplementedError

    def _score(self, yhat: np.ndarray, data: Dataset) -> float:
        raise NotImplementedError

    def _passes(self, score: float) -> bool:
        raise NotImplementedError

    # -- public -----------------------------------------------------------------------
    @property
    def n_in(self) -> int:
        return self._n_in

    @property
    def n_out(self) -> int:
        return self._n_out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"toolkit.tasks.get({self.name!r}, {args})"

    def generate(self, rng, n: int | None = None) -> Dataset:
        """The training set: ``n_train`` sequences (or ``n``) drawn with ``rng``.

        rng: numpy.random.Generator, SeedSequence or int seed.
        """
        rng = _as_rng(rng)
        if n is None:
            n = self.params["n_train"]
        else:
            n = resolve({"n": Param(1, "int", lo=1)}, {"n": n}, self.name)["n"]
        return self._make(rng, n, "train")

    def test_set(self) -> Dataset:
        """The held-out set (``n_test`` sequences from ``test_seed``), built once and cached.

        Do not modify its arrays in place.
        """
        if self._test is None:
            rng = np.random.default_rng([self.params["test_seed"], _TEST_SALT])
            self._test = self._make(rng, self.params["n_test"], "test")
        return self._test

    def predict(self, net, theta, data: Dataset, reuse: bool = False) -> np.ndarray:
        """yhat (B,T,O) of ``net`` on ``data.x``; checks the net's sizes against the task.
        ``reuse``: through ``net.predict`` where the net's class has one beside its own
        forward (the toolkit's cells: the same bits, no allocation; the array is overwritten
        by the next such call), else a fresh array from ``net.forward``."""
        for attr, want in (("n_in", self.n_in), ("n_out", self.n_out)):
            got = getattr(net, attr, None)
            if got != want:
                raise ValueError(f"{self.name}: net.{attr} is {got!r}, the task needs {want}")
        if reuse and _own_predict(type(net)):
            return net.predict(theta, data.x, check=False)
        yhat = np.asarray(net.forward(theta, data.x)[1], dtype=np.float64)
        if yhat.shape != data.y.shape:
            raise ValueError(
                f"{self.name}: net.forward returned yhat of shape {yhat.shape}, "
                f"expected {data.y.shape}"
            )
        return yhat

    def metric(self, net, theta) -> float:
        """The number ``solved`` judges (see ``criterion``), on the test set; nan if the
        parameters or outputs are not finite."""
        theta_arr = np.asarray(theta)
        number, floating = _dtype_kind(theta_arr.dtype)
        if number and not np.isfinite(theta_arr).all():
            return math.nan
        data = self.test_set()
        yhat = self.predict(net, theta, data, reuse=floating)
        # a finite sum means every entry is finite; else only the counted ones must be
        if not math.isfinite(yhat.sum()) and not np.isfinite(yhat[data.mask > 0]).all():
            return math.nan
        return float(self._score(yhat, data))

    def solved(self, net, theta) -> bool:
        """True when ``theta`` meets the task's published criterion on ``test_set()``."""
        score = self.metric(net, theta)
        return bool(math.isfinite(score) and self._passes(score))


# --------------------------------------------------------------------------------------
# shared criteria and helpers
# --------------------------------------------------------------------------------------
@functools.cache
def _dtype_kind(dtype) -> tuple[bool, bool]:
    """(np.issubdtype(dtype, np.number), np.issubdtype(dtype, np.floating)), once per dtype
    (two issubdtype calls were a tenth of a small task's solved check)."""
    return bool(np.issubdtype(dtype, np.number)), bool(np.issubdtype(dtype, np.floating))


@functools.cache
def _own_predict(cls) -> bool:
    """Whether ``cls`` has a ``predict(theta, x, check)`` defined beside the ``forward`` it
    uses (a subclass that overrides forward alone keeps forward). Once per class: a class
    whose methods are replaced after its first solved check keeps the first answer."""

    def definer(name):
        return next((k for k in cls.__mro__ if name in k.__dict__), None)

    return definer("predict") is not None and definer("predict") is definer("forward")


def _max_abs_error(yhat: np.ndarray, data: Dataset) -> float:
    """Largest |yhat - y| over all output units at the counted steps."""
    sel = data.mask > 0
    if not sel.any():  # np.max of nothing: its error
        return float(np.max(np.abs(yhat[sel] - data.y[sel])))
    # the same maximum without gathering the counted steps (a solved check's third, issue 18)
    return float(np.max(np.abs(yhat - data.y), where=sel[..., None], initial=-np.inf))


def _nrmse(yhat: np.ndarray, data: Dataset) -> float:
    """sqrt(mean (yhat - y)^2) / std(y) over the counted steps and all outputs."""
    sel = data.mask > 0
    y = data.y[sel]
    std = float(np.std(y))
    rmse = float(np.sqrt(np.mean((yhat[sel] - y) ** 2)))
    return rmse / std if std > 0 else math.inf


def _lengths(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """n lengths uniform on the integers lo..hi (inclusive)."""
    return rng.integers(lo, hi + 1, size=n)


def _final_step(lengths: np.ndarray, t_max: int, n_out: int = 1):
    """mask with a single 1 at each sequence's true last step; y of zeros; (rows, last)."""
    n = len(lengths)
    rows = np.arange(n)
    last = lengths - 1
    mask = np.zeros((n, t_max))
    mask[rows, last] = 1.0
    return mask, np.zeros((n, t_max, n_out)), rows, last


_NOISE_VAR = Param(0.2, "float", lo=0.0)
_TOL = Param(0.2, "float", lo=0.0, lo_open=True)


# --------------------------------------------------------------------------------------
# 1. temporal XOR
# --------------------------------------------------------------------------------------
@_register
class TemporalXOR(Task):
    """Temporal XOR: predict the next bit of a stream of XOR triples.

    Citation: Elman, J. L. (1990). Finding structure in time. Cognitive Science 14(2), 179-211.

    Each stream is made of triples (a, b, a XOR b) with a, b fair random bits, presented one
    bit per step (input 0/1); the target at step t is bit t+1. Only the third bit of each
    triple is predictable, i.e. the target at steps t = 1, 4, 7, ... (t mod 3 = 1), where the
    net must output the XOR of the current and the previous input. It tests the smallest
    possible use of context: one step of memory and a nonlinear combination of it.

    Defaults vs paper: Elman trained a 1-2-1 net (2 context units) on one continuous stream of
    3000 bits for 600 passes; we default to ``n_train`` = 10 streams of ``T`` = 30 bits (each
    stream starts at a triple boundary) so runs are cheap; ``T=3000, n_train=1`` is the paper.
    Output: sigmoid (bits). ``mask``: "all" (default; Elman's error counted every prediction,
    so the loss has an irreducible part from the unpredictable bits) or "predictable" (only
    the XOR bits count). Solved: (our reading of the paper's claim that the net learns the
    task) on ``n_test`` held-out streams every predictable bit is right after rounding, i.e.
    yhat > 0.5 exactly where the target is 1. ``metric`` = fraction of predictable bits wrong.
    """

    name = "temporal_xor"
    citation = "Elman, J. L. (1990). Finding structure in time. Cognitive Science, 14(2), 179-211."
    output = "sigmoid"
    criterion = "every predictable (third) bit of every test stream right when rounded"
    PARAMS = {
        "T": Param(30, "int", lo=3),
        "mask": Param("all", "choice", choices=("all", "predictable")),
        **_counts(10, 20, 1001),
    }

    def _make(self, rng, n, split):
        T = self.params["T"]
        n_tri = (T + 1 + 2) // 3
        ab = rng.integers(0, 2, size=(n, n_tri, 2))
        bits = np.concatenate([ab, (ab[..., 0] ^ ab[..., 1])[..., None]], axis=2)
        bits = bits.reshape(n, 3 * n_tri)[:, : T + 1].astype(np.float64)
        x = np.ascontiguousarray(bits[:, :T, None])
        y = np.ascontiguousarray(bits[:, 1:, None])
        if self.params["mask"] == "all":
            mask = np.ones((n, T))
        else:
            mask = np.broadcast_to(self.predictable(T), (n, T)).astype(np.float64)
        return Dataset(x, y, mask)

    @staticmethod
    def predictable(T: int) -> np.ndarray:
        """(T,) float: 1 at the steps whose target is the XOR bit of a triple."""
        return (np.arange(T) % 3 == 1).astype(np.float64)

    def _score(self, yhat, data):
        sel = _predictable_steps(data.x.shape[1])
        wrong = (yhat[:, sel, 0] > 0.5) != (data.y[:, sel, 0] > 0.5)
        return np.count_nonzero(wrong) / wrong.size  # wrong.mean()'s value, exactly

    def _passes(self, score):
        return score == 0.0


@functools.lru_cache(maxsize=64)
def _predictable_steps(T: int) -> np.ndarray:
    """The steps TemporalXOR scores, as indices (read-only; cached: rebuilding them was a
    tenth of its solved check)."""
    steps = np.flatnonzero(TemporalXOR.predictable(T) > 0)
    steps.flags.writeable = False
    return steps


# --------------------------------------------------------------------------------------
# 2. latch
# --------------------------------------------------------------------------------------
@_register
class Latch(Task):
    """Information latching: keep one bit, given at the start, through T steps of noise.

    Citation: Bengio, Y., Simard, P. & Frasconi, P. (1994). Learning long-term dependencies
    with gradient descent is difficult. IEEE Trans. Neural Networks 5(2), 157-166; as restated
    in Hochreiter & Schmidhuber (1997), Long short-term memory, Neural Computation 9(8), and
    Schmidhuber, Hochreiter & Bengio (2001), Evaluating benchmark problems by random guessing.

    A sequence belongs to class +1 or -1 (probability 1/2 each). Its first ``N`` inputs
    carry the class, the remaining inputs are Gaussian noise with mean 0 and variance
    ``noise_var`` (0.2). The target at the last step is the class; no other step has a
    target. It tests whether the net can latch one bit of information (a bistable hidden
    state) and hold it against noise over a controllable lag.

    Lengths: ``T`` for every sequence, or (``T_max`` given) uniform on the integers
    T..T_max per sequence, padded at the end with x = 0, mask 0, as in ``parity``. The
    random-guessing study draws lengths from 500..600; with one fixed length a negative
    recurrent weight (a unit that flips sign every step) latches as well as a positive one
    when T is even, so guesses succeed about twice as often.

    ``variant`` (the random-guessing paper's names):

    * "II" (default, ``None``): one input line; the first N inputs are the class (+1.0 or
      -1.0); targets +-1. The inputs are data, not parameters.
    * "I" (Bengio et al.'s original): the net's input at the first N steps is a free
      parameter, one value per class, and the targets are +-0.8. Encoded for a net with
      fixed weights: three input channels, a one-hot class code on channels 0 (class +1)
      and 1 (class -1) at the first N steps and the noise on channel 2 (0 at the first N
      steps). With the weight of channel 2 fixed at 1, the weights of channels 0 and 1 ARE
      the two free class inputs (experiments/random_guessing.toml, part latch_I).

    Output: linear with squared error. Defaults T=20, N=1 are ours (the papers vary T).
    Requires T > N. Solved: absolute error < ``tol`` = 0.2 at the last step of every test
    sequence (the LSTM paper's restatement of the criterion). ``overshoot`` (None: true for
    variant I, false for II): an output beyond its target, on the target's side, counts as
    error 0. Why for variant I: the paper's solution is a large positive recurrent weight,
    so the tanh unit saturates near +-1 and misses +-0.8 by 0.2 > 0.1; its 6 guesses on
    average ("it almost suffices to get the parameter signs right") are only possible if an
    output beyond the target counts as right, and a unit that settles near +-0.8 against
    noise of variance 0.2 over 500 steps exists only in a narrow band of weights.
    """

    name = "latch"
    citation = (
        "Bengio, Y., Simard, P., & Frasconi, P. (1994). Learning long-term dependencies with "
        "gradient descent is difficult. IEEE Transactions on Neural Networks, 5(2), 157-166."
    )
    output = "linear"
    criterion = "absolute error < tol at the last step of every test sequence"
    PARAMS = {
        "T": Param(20, "int", lo=2),
        "N": Param(1, "int", lo=1),
        "noise_var": _NOISE_VAR,
        "tol": _TOL,
        **_counts(100, 256, 1002),
        "T_max": Param(None, "int", lo=2, allow_none=True, doc="lengths uniform on T..T_max"),
        "variant": Param(
            None, "choice", choices=("II", "I"), allow_none=True, doc="None = II; I: free inputs"
        ),
        "overshoot": Param(None, "bool", allow_none=True, doc="beyond the target counts as right"),
    }
    LATE = ("T_max", "variant", "overshoot")

    @property
    def n_in(self) -> int:
        return 3 if self.p["variant"] == "I" else 1

    @property
    def target(self) -> float:
        """The magnitude of the targets: 0.8 for variant I, 1.0 for II."""
        return 0.8 if self.p["variant"] == "I" else 1.0

    def _check(self):
        self._require(self.p["T"] > self.p["N"], "T", f"> N = {self.p['N']}")
        if self.p["T_max"] is not None:
            self._require(self.p["T_max"] >= self.p["T"], "T_max", f">= T = {self.p['T']}")

    def _make(self, rng, n, split):
        T, N, T_max = self.p["T"], self.p["N"], self.p["T_max"]
        sd = math.sqrt(self.p["noise_var"])
        if T_max is None and self.p["variant"] != "I":  # the draws of the original task
            sign = 2.0 * rng.integers(0, 2, size=n) - 1.0
            x = rng.normal(0.0, sd, size=(n, T))
            x[:, :N] = sign[:, None]
            mask, y, rows, last = _final_step(np.full(n, T), T)
            y[rows, last, 0] = sign
            return Dataset(x[:, :, None], y, mask)
        t_max = T if T_max is None else T_max
        lengths = _lengths(rng, n, T, t_max)
        sign = 2.0 * rng.integers(0, 2, size=n) - 1.0
        noise = rng.normal(0.0, sd, size=(n, t_max))
        noise[:, :N] = 0.0
        noise[np.arange(t_max)[None, :] >= lengths[:, None]] = 0.0
        if self.p["variant"] != "I":
            noise[:, :N] = sign[:, None]
            x = noise[:, :, None]
        else:
            x = np.zeros((n, t_max, 3))
            x[:, :N, 0] = (sign > 0)[:, None]
            x[:, :N, 1] = (sign < 0)[:, None]
            x[:, :, 2] = noise
        mask, y, rows, last = _final_step(lengths, t_max)
        y[rows, last, 0] = self.target * sign
        return Dataset(x, y, mask)

    def _score(self, yhat, data):
        over = self.p["overshoot"]
        if over is None:
            over = self.p["variant"] == "I"
        if not over:
            return _max_abs_error(yhat, data)
        sel = data.mask > 0
        y, yh = data.y[sel], yhat[sel]
        return float(np.max(np.maximum(np.abs(y) - np.sign(y) * yh, 0.0)))

    def _passes(self, score):
        return score < self.p["tol"]


# --------------------------------------------------------------------------------------
# 3. two-sequence problem
# --------------------------------------------------------------------------------------
@_register
class TwoSequence(Task):
    """Two-sequence problem: classify a sequence by its first N elements, lengths vary.

    Citation: Bengio, Simard & Frasconi (1994), IEEE Trans. Neural Networks 5(2), 157-166;
    restated as Experiment 3a of Hochreiter, S. & Schmidhuber, J. (1997). Long short-term
    memory. Neural Computation 9(8), 1735-1780.

    Two classes with probability 1/2. The first ``N`` elements are +1.0 (class 1) or -1.0
    (class 2); all later elements are Gaussian noise, mean 0, variance ``noise_var`` (0.2).
    Each sequence's length is uniform on the integers T..T+floor(T/10) (the LSTM version;
    Bengio et al. also allowed lengths down to T/2). The target at the sequence end is 1.0
    for class 1 and 0.0 for class 2. Like the latch, with a sigmoid output and a sequence end
    that moves, so the net must hold the class regardless of the exact lag.

    Defaults T=100, N=3 are the LSTM paper's first setting (it also reports N=1, T=1000).
    Sequences are padded at the end to T+floor(T/10) with x=0, mask 0; the target sits at
    each sequence's true last step. Output: sigmoid. Solved: absolute error < ``tol`` = 0.2
    at the end of every test sequence (the LSTM paper's "correct classification"; it stops
    training when the recent 2000 sequences are all correct and the mean error < 0.01, which
    we do not add). The paper streams fresh sequences; we use fixed sets of ``n_train`` and
    ``n_test`` sequences.
    """

    name = "two_sequence"
    citation = (
        "Hochreiter, S., & Schmidhuber, J. (1997). Long short-term memory. Neural Computation, "
        "9(8), 1735-1780 (Experiment 3a, after Bengio, Simard & Frasconi 1994)."
    )
    output = "sigmoid"
    criterion = "absolute error < tol at the true end of every test sequence"
    PARAMS = {
        "T": Param(100, "int", lo=2),
        "N": Param(3, "int", lo=1),
        "noise_var": _NOISE_VAR,
        "tol": _TOL,
        **_counts(100, 256, 1003),
    }

    def _check(self):
        self._require(self.params["T"] > self.params["N"], "T", f"> N = {self.params['N']}")

    def _make(self, rng, n, split):
        T, N = self.params["T"], self.params["N"]
        t_max = T + T // 10
        lengths = _lengths(rng, n, T, t_max)
        cls = rng.integers(0, 2, size=n).astype(np.float64)  # 1 = class 1, 0 = class 2
        x = rng.normal(0.0, math.sqrt(self.params["noise_var"]), size=(n, t_max))
        x[:, :N] = (2.0 * cls - 1.0)[:, None]
        x[np.arange(t_max)[None, :] >= lengths[:, None]] = 0.0
        mask, y, rows, last = _final_step(lengths, t_max)
        y[rows, last, 0] = cls
        return Dataset(x[:, :, None], y, mask)

    def _score(self, yhat, data):
        return _max_abs_error(yhat, data)

    def _passes(self, score):
        return score < self.params["tol"]


# --------------------------------------------------------------------------------------
# 4. parity
# --------------------------------------------------------------------------------------
@_register
class Parity(Task):
    """Parity: is the number of +1 inputs in the sequence odd?

    Citation: Bengio, Simard & Frasconi (1994), IEEE Trans. Neural Networks 5(2), 157-166;
    Schmidhuber, J., Hochreiter, S. & Bengio, Y. (2001). Evaluating benchmark problems by
    random guessing. In Kolen & Kremer (eds.), A Field Guide to Dynamical Recurrent Networks.

    Inputs are +1 or -1 with probability 1/2 each; the target at the last step is 1 if the
    number of +1 inputs is odd and 0 otherwise. Every input matters, and the answer flips
    with any one of them, so the net must run a two-state automaton across the whole sequence;
    a classic case where gradients vanish and random weight guessing is competitive.

    Choices: ``T`` = 50 is our default (the papers report several lengths); ``T_max`` (None =
    T) makes lengths uniform on T..T_max as in the random-guessing study's variable-length
    runs, padded at the end with x=0, mask 0. Output: sigmoid, targets 1/0. Solved: absolute
    error < ``tol`` = 0.2 at the end of every test sequence (the same rule as the latch and
    two-sequence problems; the papers' exact parity threshold is not reproduced here).
    """

    name = "parity"
    citation = (
        "Bengio, Y., Simard, P., & Frasconi, P. (1994). Learning long-term dependencies with "
        "gradient descent is difficult. IEEE Transactions on Neural Networks, 5(2), 157-166."
    )
    output = "sigmoid"
    criterion = "absolute error < tol at the true end of every test sequence"
    PARAMS = {
        "T": Param(50, "int", lo=1),
        "T_max": Param(None, "int", lo=1, allow_none=True),
        "tol": _TOL,
        **_counts(100, 256, 1004),
    }

    def _check(self):
        if self.params["T_max"] is not None:
            self._require(
                self.params["T_max"] >= self.params["T"], "T_max", f">= T = {self.params['T']}"
            )

    def _make(self, rng, n, split):
        T = self.params["T"]
        t_max = T if self.params["T_max"] is None else self.params["T_max"]
        lengths = _lengths(rng, n, T, t_max)
        bits = rng.integers(0, 2, size=(n, t_max))
        bits[np.arange(t_max)[None, :] >= lengths[:, None]] = 0
        valid = np.arange(t_max)[None, :] < lengths[:, None]
        x = np.where(valid, 2.0 * bits - 1.0, 0.0)
        mask, y, rows, last = _final_step(lengths, t_max)
        y[rows, last, 0] = bits.sum(axis=1) % 2
        return Dataset(x[:, :, None], y, mask)

    def _score(self, yhat, data):
        return _max_abs_error(yhat, data)

    def _passes(self, score):
        return score < self.params["tol"]


# --------------------------------------------------------------------------------------
# 5. adding problem
# --------------------------------------------------------------------------------------
@_register
class Adding(Task):
    """Adding problem: sum the two marked values of a long sequence of pairs.

    Citation: Hochreiter, S. & Schmidhuber, J. (1997). Long short-term memory. Neural
    Computation 9(8), 1735-1780, Experiment 4.

    Each step is a pair (value, marker): value ~ U[-1, 1], marker in {1, 0, -1}. Exactly two
    pairs are marked with 1: first one of the first ten pairs (its value is X1), then one of
    the first floor(T/2)-1 pairs that are still unmarked (X2). The first and the last pair
    have marker -1, all others 0. If the first pair is one of the two marked pairs, its
    marker is 1 and its value is set to 0 (the paper: "we set X1 to zero"). The length is
    uniform on T..T+floor(T/10); the target at the end is 0.5 + (X1 + X2)/4, in [0, 1]. It
    tests storing real values over long lags and combining them, with distractors on the
    same input line.

    Choices: T=100 is the paper's smallest setting (also 500 and 1000); output linear with
    squared error (the paper's criterion is an absolute error on a value in [0, 1]); padding
    after the end is x=0, mask 0. Solved: absolute error < ``tol`` = 0.04 at the end of every
    test sequence (the paper: "a sequence is processed correctly if the absolute error at the
    sequence end is below 0.04"; it tests on 2560 sequences, we default to 256). Requires
    T >= 12 so the ten candidates for X1 precede the last pair and X2 has candidates.
    """

    name = "adding"
    citation = (
        "Hochreiter, S., & Schmidhuber, J. (1997). Long short-term memory. Neural Computation, "
        "9(8), 1735-1780 (Experiment 4)."
    )
    output = "linear"
    _n_in = 2
    criterion = "absolute error < tol (0.04) at the true end of every test sequence"
    PARAMS = {
        "T": Param(100, "int", lo=12),
        "tol": Param(0.04, "float", lo=0.0, lo_open=True),
        **_counts(100, 256, 1005),
    }

    def _make(self, rng, n, split):
        T = self.params["T"]
        t_max = T + T // 10
        lengths = _lengths(rng, n, T, t_max)
        values = rng.uniform(-1.0, 1.0, size=(n, t_max))
        markers = np.zeros((n, t_max))
        first = rng.integers(0, 10, size=n)
        second_rank = rng.integers(0, T // 2 - 1, size=n)
        # the k-th unmarked pair is at index k, or k+1 when the first mark is at or before k
        second = second_rank + (second_rank >= first)
        rows = np.arange(n)
        markers[:, 0] = -1.0
        markers[rows, lengths - 1] = -1.0
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        values[:, 0] = np.where(markers[:, 0] == 1.0, 0.0, values[:, 0])
        values[np.arange(t_max)[None, :] >= lengths[:, None]] = 0.0
        target = 0.5 + (values[rows, first] + values[rows, second]) / 4.0
        mask, y, rows, last = _final_step(lengths, t_max)
        y[rows, last, 0] = target
        x = np.stack([values, markers], axis=2)
        return Dataset(x, y, mask)

    def _score(self, yhat, data):
        return _max_abs_error(yhat, data)

    def _passes(self, score):
        return score < self.params["tol"]


# --------------------------------------------------------------------------------------
# 6. delayed recall (LSTM task 2a)
# --------------------------------------------------------------------------------------
@_register
class DelayedRecall(Task):
    """Delayed recall ("task 2a"): two strings that differ only in the first and last symbol.

    Citation: Hochreiter, S. & Schmidhuber, J. (1997). Long short-term memory. Neural
    Computation 9(8), 1735-1780, Experiment 2, task 2a (Table 2).

    The alphabet has p+1 symbols a_1..a_{p-1}, x, y, one-hot coded (input index i-1 for a_i,
    p-1 for x, p for y). The only two strings are (y, a_1, ..., a_{p-1}, y) and
    (x, a_1, ..., a_{p-1}, x); the net reads one symbol per step and predicts the next, with
    an error at every step (T = p steps). All predictions but the last follow from the
    current input; the last needs the first symbol, stored for p steps with no distractor.
    It is the cleanest "pure delay" test of whether the gradient reaches back p steps.

    Choices: default p=10 (the paper's Table 2 includes p = 4, 10 and 100). Output: sigmoid units
    with one-hot targets (the paper's error is per output unit). The training set holds the
    two strings in equal numbers (``n_train`` = 2, order shuffled by rng; the paper samples
    each with probability 1/2 online); the test set is again the two strings, since no
    others exist, so train and test sets differ only in their order. Solved: the maximal
    absolute error of all output units at every step of both strings is < ``tol`` = 0.25
    (the paper's success criterion).
    """

    name = "delayed_recall"
    citation = (
        "Hochreiter, S., & Schmidhuber, J. (1997). Long short-term memory. Neural Computation, "
        "9(8), 1735-1780 (Experiment 2, task 2a)."
    )
    output = "sigmoid"
    criterion = "max |error| of every output unit at every step of both strings < tol (0.25)"
    PARAMS = {
        "p": Param(10, "int", lo=1),
        "tol": Param(0.25, "float", lo=0.0, lo_open=True),
        "n_train": Param(2, "int", lo=2),
        "n_test": Param(2, "int", lo=2),
        "test_seed": Param(1006, "int", lo=0),
    }

    @property
    def n_in(self) -> int:
        return self.params["p"] + 1

    @property
    def n_out(self) -> int:
        return self.params["p"] + 1

    def strings(self) -> list[list[int]]:
        """The two strings as symbol indices: [x, a_1..a_{p-1}, x] and [y, a_1.., y]."""
        p = self.params["p"]
        middle = list(range(p - 1))
        return [[p - 1, *middle, p - 1], [p, *middle, p]]

    def _make(self, rng, n, split):
        p = self.params["p"]
        which = rng.permutation(np.arange(n) % 2)
        seqs = np.array(self.strings())[which]  # (n, p+1)
        eye = np.eye(p + 1)
        x = eye[seqs[:, :-1]]
        y = eye[seqs[:, 1:]]
        return Dataset(x, y, np.ones((n, p)))

    def _score(self, yhat, data):
        return _max_abs_error(yhat, data)

    def _passes(self, score):
        return score < self.params["tol"]


# --------------------------------------------------------------------------------------
# 7. (embedded) Reber grammar
# --------------------------------------------------------------------------------------
REBER_SYMBOLS = "BTPSXVE"
_SYM_INDEX = {s: i for i, s in enumerate(REBER_SYMBOLS)}
# Reber (1967) grammar as a deterministic automaton: node -> {symbol: next node}; 7 = accept
_REBER = {
    0: {"B": 1},
    1: {"T": 2, "P": 3},
    2: {"S": 2, "X": 4},
    3: {"T": 3, "V": 5},
    4: {"X": 3, "S": 6},
    5: {"P": 4, "V": 6},
    6: {"E": 7},
}


def _reber_automaton(embedded: bool):
    """(start, transitions {state: {symbol: state}}, accept state)."""
    if not embedded:
        return 0, {k: dict(v) for k, v in _REBER.items()}, 7
    trans: dict[Any, dict[str, Any]] = {"start": {"B": "branch"}, "branch": {}}
    for b in "TP":
        trans["branch"][b] = (b, 0)
        for node, edges in _REBER.items():
            trans[(b, node)] = {s: (b, nxt) for s, nxt in edges.items()}
        trans[(b, 7)] = {b: "close"}
    trans["close"] = {"E": "accept"}
    return "start", trans, "accept"


_AUTOMATA = {e: _reber_automaton(e) for e in (False, True)}
#: draws allowed per requested test string when test strings must avoid the training set
REBER_MAX_DRAWS = 1000


def reber_accepts(string: str, embedded: bool = True) -> bool:
    """True if ``string`` (e.g. "BTBTXSETE") belongs to the (embedded) Reber grammar."""
    if not isinstance(string, str):
        return False
    state, trans, accept = _AUTOMATA[bool(embedded)]
    for s in string:
        nxt = trans.get(state, {}).get(s)
        if nxt is None:
            return False
        state = nxt
    return state == accept


def reber_next(prefix: str, embedded: bool = True) -> str | None:
    """The symbols that may follow ``prefix`` in the (embedded) Reber grammar, in the order
    of REBER_SYMBOLS ("" after a complete string), or None if ``prefix`` starts no string."""
    state, trans, _ = _AUTOMATA[bool(embedded)]
    for s in prefix:
        state = trans.get(state, {}).get(s)
        if state is None:
            return None
    return "".join(c for c in REBER_SYMBOLS if c in trans.get(state, {}))


def reber_generate(rng, embedded: bool = True) -> tuple[str, list[str]]:
    """One random string and, after each of its symbols, the string of possible next symbols
    (every branch taken with probability 1/2). The last entry is "" (after the final E)."""
    rng = _as_rng(rng)
    state, trans, accept = _AUTOMATA[bool(embedded)]
    out, nexts = [], []
    while state != accept:
        edges = trans[state]
        options = list(edges)
        s = options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]
        out.append(s)
        state = edges[s]
        nexts.append("".join(trans.get(state, {})))
    return "".join(out), nexts


@_register
class Reber(Task):
    """Embedded Reber grammar: predict the set of possible next symbols.

    Citation: Reber, A. S. (1967). Implicit learning of artificial grammars. J. Verbal
    Learning and Verbal Behavior 6, 855-863; embedded version: Cleeremans, Servan-Schreiber &
    McClelland (1989), Neural Computation 1(3), 372-381; as benchmarked in Hochreiter &
    Schmidhuber (1997), Long short-term memory, Experiment 1 (Table 1).

    Strings from the Reber automaton (symbols B T P S X V E, one-hot, 7 inputs), embedded as
    B T <reber> T E or B P <reber> P E; every branch has probability 1/2. The net reads one
    symbol per step and must predict the set of symbols that may come next (multi-hot target,
    7 sigmoid outputs); only the second-to-last symbol (T or P, repeating the second) needs
    long memory, across the whole inner string. It tests learning a finite-state machine and
    bridging a lag that a local predictor cannot.

    Choices: ``embedded`` = False gives the plain Reber grammar. The paper uses 256 training
    and 256 test strings; we default to ``n_train`` = 64, ``n_test`` = 256. Strings vary in
    length and are padded at the end (mask 0); the input is the string without its final E.
    Solved: (``rule="threshold"``, as in the issue) in every test string, at every step, the
    outputs > 0.5 are exactly the possible next symbols. ``rule="most_active"`` is the LSTM
    paper's wording instead: the k most active outputs are the k possible next symbols.
    ``metric`` = fraction of test strings with at least one wrong step.

    Held out means unseen: the grammar's short strings are so likely that independent draws
    would repeat most training strings in the test set. ``test_set()`` therefore draws from
    its own stream (``test_seed``) and skips every string of the last training set that
    ``generate`` made with this task object (``generate`` invalidates the cached test set);
    training sets are drawn as before. If the grammar cannot supply ``n_test`` unseen strings
    within ``REBER_MAX_DRAWS`` draws per test string, ValueError names n_train and n_test.
    """

    name = "reber"
    citation = (
        "Reber, A. S. (1967). Implicit learning of artificial grammars. Journal of Verbal "
        "Learning and Verbal Behavior, 6, 855-863; embedded version as in Hochreiter & "
        "Schmidhuber (1997), Long short-term memory, Neural Computation 9(8) (Experiment 1)."
    )
    output = "sigmoid"
    _n_in = 7
    _n_out = 7
    criterion = "every next-symbol set of every test string predicted exactly (outputs > 0.5)"
    PARAMS = {
        "embedded": Param(True, "bool"),
        "rule": Param("threshold", "choice", choices=("threshold", "most_active")),
        **_counts(64, 256, 1007),
    }

    def strings(self, rng, n: int) -> list[tuple[str, list[str]]]:
        """n strings with their next-symbol sets (see :func:`reber_generate`)."""
        return [reber_generate(rng, self.params["embedded"]) for _ in range(n)]

    def generate(self, rng, n: int | None = None) -> Dataset:
        self._train_strings: frozenset[str] = frozenset()
        self._test = None  # the test set is drawn outside this training set
        return super().generate(rng, n)

    def unseen_strings(self, rng, n: int) -> list[tuple[str, list[str]]]:
        """n strings (with next-symbol sets) drawn with ``rng`` that are not in the last
        training set; ValueError when the grammar cannot supply them in time."""
        seen = getattr(self, "_train_strings", frozenset())
        out: list[tuple[str, list[str]]] = []
        limit = REBER_MAX_DRAWS * n
        for _ in range(limit):
            pair = reber_generate(rng, self.params["embedded"])
            if pair[0] not in seen:
                out.append(pair)
                if len(out) == n:
                    return out
        raise ParamError(
            [
                (
                    "n_test",
                    f"expected a number of test strings the grammar can supply outside the "
                    f"{len(seen)} distinct training strings (n_train = "
                    f"{self.params['n_train']}); found {len(out)} of {n} in {limit} draws. "
                    "Lower n_test or n_train",
                )
            ],
            self.name,
        )

    def _make(self, rng, n, split):
        if split == "test":
            pairs = self.unseen_strings(rng, n)
        else:
            pairs = self.strings(rng, n)
            self._train_strings = frozenset(s for s, _ in pairs)
        t_max = max(len(s) for s, _ in pairs) - 1
        x = np.zeros((n, t_max, 7))
        y = np.zeros((n, t_max, 7))
        mask = np.zeros((n, t_max))
        for b, (s, nexts) in enumerate(pairs):
            for t in range(len(s) - 1):
                x[b, t, _SYM_INDEX[s[t]]] = 1.0
                for c in nexts[t]:
                    y[b, t, _SYM_INDEX[c]] = 1.0
            mask[b, : len(s) - 1] = 1.0
        return Dataset(x, y, mask)

    def _score(self, yhat, data):
        target = data.y > 0.5
        if self.params["rule"] == "threshold":
            ok = ((yhat > 0.5) == target).all(axis=2)
        else:  # the k most active outputs are the k possible symbols (ties count as wrong)
            low_on = np.where(target, yhat, np.inf).min(axis=2)
            high_off = np.where(target, -np.inf, yhat).max(axis=2)
            ok = low_on > high_off
        ok = ok | (data.mask == 0)
        return float(1.0 - ok.all(axis=1).mean())

    def _passes(self, score):
        return score == 0.0


# --------------------------------------------------------------------------------------
# 8. Mackey-Glass
# --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _mackey_glass(n: int, tau: float, dt: float, x0: float, history: str) -> np.ndarray:
    d = int(round(tau / dt))
    sub = int(round(1.0 / dt))
    beta, gamma, power = 0.2, 0.1, 10

    def f(xt: float, xd: float) -> float:
        return beta * xd / (1.0 + xd**power) - gamma * xt

    xs = [x0 if history == "constant" else 0.0] * d + [x0]  # xs[i] = x((i - d) dt)
    ds = [0.0] * (d + 1)  # dx/dt at the same points (0 on the constant history)
    for i in range(d, d + (n - 1) * sub):
        xt = xs[i]
        a, b = xs[i - d], xs[i - d + 1]
        k1 = f(xt, a)
        ds[i] = k1
        # delayed value at the half step: cubic Hermite interpolation (keeps RK4 4th order)
        m = 0.5 * (a + b) + dt / 8.0 * (ds[i - d] - ds[i - d + 1])
        k2 = f(xt + 0.5 * dt * k1, m)
        k3 = f(xt + 0.5 * dt * k2, m)
        k4 = f(xt + dt * k3, b)
        xs.append(xt + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4))
        ds.append(0.0)
    out = np.array(xs[d::sub], dtype=np.float64)
    out.flags.writeable = False
    return out


def _check_mg_grid(tau: float, dt: float) -> None:
    sub = round(1.0 / dt)
    if sub < 1 or abs(sub * dt - 1.0) > 1e-9:
        raise ParamError([("dt", f"expected 1/k for an integer k, got {dt}")], "mackey_glass")
    if abs(round(tau / dt) * dt - tau) > 1e-9 or round(tau / dt) < 1:
        raise ParamError(
            [("tau", f"expected a positive multiple of dt={dt}, got {tau}")], "mackey_glass"
        )


def mackey_glass(
    n: int, *, tau: float = 17.0, dt: float = 0.1, x0: float = 1.2, history: str = "constant"
) -> np.ndarray:
    """The Mackey-Glass series x(0), x(1), ..., x(n-1) (sampled at step 1), shape (n,).

    dx/dt = 0.2 x(t - tau) / (1 + x(t - tau)^10) - 0.1 x(t), integrated by 4th-order
    Runge-Kutta with step ``dt`` (delayed values at half steps by cubic Hermite
    interpolation). history "constant": x(t) = x0 for t <= 0; "zero": x(t) = 0 for t < 0,
    x(0) = x0 (as in Jang 1993's data set). No washout is discarded here.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"mackey_glass: n must be an integer >= 1, got {n!r}")
    if history not in ("constant", "zero"):
        raise ValueError(f"mackey_glass: history must be 'constant' or 'zero', got {history!r}")
    _check_mg_grid(float(tau), float(dt))
    return _mackey_glass(int(n), float(tau), float(dt), float(x0), history).copy()


@_register
class MackeyGlass(Task):
    """Mackey-Glass chaotic series (tau = 17): one-step-ahead prediction.

    Citation: Mackey, M. C. & Glass, L. (1977). Oscillation and chaos in physiological
    control systems. Science 197(4300), 287-289; the tau = 17, step-1 benchmark as in
    Jang (1993, ANFIS, IEEE Trans. SMC 23(3)) and Jaeger & Haas (2004, Science 304).

    The delay equation dx/dt = 0.2 x(t-17)/(1 + x(t-17)^10) - 0.1 x(t) is integrated by RK4
    with dt = 0.1 from the history x = 1.2 and sampled at step 1; the first ``washout`` = 1000
    samples are discarded. The next ``train_len`` = 2000 samples form the training segment,
    the following ``test_len`` = 1000 the test segment (never overlapping). A dataset is a set
    of windows of ``T`` steps at random positions in its segment: input x_t, target
    x_{t+horizon} (horizon 1). The first ``warmup`` = 10 steps of each window have mask 0 so
    that the net can build up its state. It tests modelling a smooth chaotic dynamical
    system, where a good prediction needs a few steps of memory.

    Choices: the series is standardized by the mean and std of the training segment
    (``standardize``; NRMSE does not depend on it). Solved: NRMSE = RMSE / std(target) over
    the counted steps of the test windows < ``threshold`` = 0.1. Why 0.1: on this series the
    best memoryless predictor of x_{t+1} from x_t alone (persistence, or any function of x_t)
    reaches NRMSE ~ 0.145, whereas a linear predictor on the last 2 samples reaches ~ 0.025;
    0.1 therefore means "uses its recurrent state" without demanding the 1e-4 levels of
    echo-state networks. Rare choices kept configurable: ``history`` ("constant" x = x0 for
    t <= 0, or "zero" as in Jang's data), ``tau``, ``dt``.
    """

    name = "mackey_glass"
    citation = (
        "Mackey, M. C., & Glass, L. (1977). Oscillation and chaos in physiological control "
        "systems. Science, 197(4300), 287-289."
    )
    output = "linear"
    criterion = "NRMSE of the one-step prediction on the test windows < threshold"
    PARAMS = {
        "T": Param(100, "int", lo=2),
        "warmup": Param(10, "int", lo=0),
        "horizon": Param(1, "int", lo=1),
        "tau": Param(17.0, "float", lo=0.0, lo_open=True),
        "dt": Param(0.1, "float", lo=0.0, hi=1.0, lo_open=True),
        "x0": Param(1.2, "float", lo=0.0, lo_open=True),
        "history": Param("constant", "choice", choices=("constant", "zero")),
        "washout": Param(1000, "int", lo=0),
        "train_len": Param(2000, "int", lo=2),
        "test_len": Param(1000, "int", lo=2),
        "standardize": Param(True, "bool"),
        "threshold": Param(0.1, "float", lo=0.0, lo_open=True),
        **_counts(20, 20, 1008),
    }

    def _check(self):
        P = self.params
        _check_mg_grid(P["tau"], P["dt"])
        self._require(P["warmup"] < P["T"], "warmup", f"< T = {P['T']}")
        need = P["T"] + P["horizon"]
        self._require(P["train_len"] >= need, "train_len", f">= T + horizon = {need}")
        self._require(P["test_len"] >= need, "test_len", f">= T + horizon = {need}")

    def series(self) -> np.ndarray:
        """The whole sampled series (washout included), read-only, shape (n,)."""
        P = self.params
        n = P["washout"] + P["train_len"] + P["test_len"]
        return _mackey_glass(n, P["tau"], P["dt"], P["x0"], P["history"])

    def _make(self, rng, n, split):
        P = self.params
        s = self.series()
        w, T, h = P["washout"], P["T"], P["horizon"]
        train = s[w : w + P["train_len"]]
        seg = train if split == "train" else s[w + P["train_len"] :]
        if P["standardize"]:
            seg = (seg - train.mean()) / train.std()
        starts = rng.integers(0, len(seg) - T - h + 1, size=n)
        idx = starts[:, None] + np.arange(T)[None, :]
        x = seg[idx][:, :, None]
        y = seg[idx + h][:, :, None]
        mask = np.ones((n, T))
        mask[:, : P["warmup"]] = 0.0
        return Dataset(x, y, mask)

    def _score(self, yhat, data):
        return _nrmse(yhat, data)

    def _passes(self, score):
        return score < self.params["threshold"]


# --------------------------------------------------------------------------------------
# 9. sine generation
# --------------------------------------------------------------------------------------
@_register
class Sine(Task):
    """Sine-wave generation ("learning to oscillate").

    Citation: Williams, R. J. & Zipser, D. (1989). A learning algorithm for continually
    running fully recurrent neural networks. Neural Computation 1(2), 270-280 (oscillation
    tasks); see also their "Experimental analysis of the real-time recurrent learning
    algorithm", Connection Science 1(1), 87-111 (1989).

    The net must produce y_t = amplitude * sin(2 pi t / period), t = 0..T-1, by itself: the
    input is a single pulse x_0 = 1 (``drive="pulse"``, equivalent to starting from a fixed
    nonzero state) or a constant x_t = 1 (``drive="constant"``). It tests whether training
    finds an oscillatory attractor (complex eigenvalues near the unit circle) rather than a
    fixed point.

    Choices (the paper's exact periods and amplitudes are not reproduced): period 20 steps,
    amplitude 1, T = 100 (5 periods), linear output. The task is deterministic: every
    sequence is the same, so ``n_train`` = ``n_test`` = 1 by default and the test sequence
    equals the training one unless ``T_test`` (None = T) asks for a longer run. The first
    ``warmup`` (0) steps have mask 0. Solved: NRMSE = RMSE / std(target) over the counted
    steps < ``threshold`` = 0.1.
    """

    name = "sine"
    citation = (
        "Williams, R. J., & Zipser, D. (1989). A learning algorithm for continually running "
        "fully recurrent neural networks. Neural Computation, 1(2), 270-280."
    )
    output = "linear"
    criterion = "NRMSE of the generated wave on the test run < threshold"
    PARAMS = {
        "period": Param(20.0, "float", lo=2.0, lo_open=True),
        "amplitude": Param(1.0, "float", lo=0.0, lo_open=True),
        "T": Param(100, "int", lo=2),
        "T_test": Param(None, "int", lo=2, allow_none=True),
        "drive": Param("pulse", "choice", choices=("pulse", "constant")),
        "warmup": Param(0, "int", lo=0),
        "threshold": Param(0.1, "float", lo=0.0, lo_open=True),
        **_counts(1, 1, 1009),
    }

    def _check(self):
        P = self.params
        self._require(P["warmup"] < P["T"], "warmup", f"< T = {P['T']}")
        if P["T_test"] is not None:
            self._require(P["warmup"] < P["T_test"], "T_test", f"> warmup = {P['warmup']}")

    def _make(self, rng, n, split):
        P = self.params
        T = P["T"] if split == "train" or P["T_test"] is None else P["T_test"]
        x = np.zeros((n, T, 1))
        if P["drive"] == "pulse":
            x[:, 0, 0] = 1.0
        else:
            x[:, :, 0] = 1.0
        wave = P["amplitude"] * np.sin(2.0 * np.pi * np.arange(T) / P["period"])
        y = np.broadcast_to(wave[None, :, None], (n, T, 1)).copy()
        mask = np.ones((n, T))
        mask[:, : P["warmup"]] = 0.0
        return Dataset(x, y, mask)

    def _score(self, yhat, data):
        return _nrmse(yhat, data)

    def _passes(self, score):
        return score < self.params["threshold"]


# --------------------------------------------------------------------------------------
# 10. delayed echo
# --------------------------------------------------------------------------------------
@_register
class Echo(Task):
    """Delayed echo: output the input of d steps ago (a control task for smoke tests).

    Citation: no single source; a standard control task (cf. the short-term memory task of
    Jaeger, H. (2001), Short term memory in echo state networks, GMD Report 152).

    Inputs are i.i.d. U[-1, 1] (``dist="uniform"``) or +-1 (``dist="binary"``); the target is
    y_t = x_{t-d}. The first d steps have no target (mask 0). With d = 1 a net with two hidden
    units solves it, so it checks the whole pipeline (task -> net -> trainer -> solved) in
    seconds; larger d measures plain memory span without any nonlinearity to learn.

    Defaults (ours): d = 1, T = 20, linear output. d = 0 is allowed (a feedforward control).
    Solved: NRMSE over the counted steps < ``threshold`` = 0.1.
    """

    name = "echo"
    citation = "Control task (no single source); cf. Jaeger, H. (2001), GMD Report 152."
    output = "linear"
    criterion = "NRMSE of the echo on the test set < threshold"
    PARAMS = {
        "d": Param(1, "int", lo=0),
        "T": Param(20, "int", lo=1),
        "dist": Param("uniform", "choice", choices=("uniform", "binary")),
        "threshold": Param(0.1, "float", lo=0.0, lo_open=True),
        **_counts(20, 50, 1010),
    }

    def _check(self):
        self._require(self.params["T"] > self.params["d"], "T", f"> d = {self.params['d']}")

    def _make(self, rng, n, split):
        d, T = self.params["d"], self.params["T"]
        if self.params["dist"] == "uniform":
            x = rng.uniform(-1.0, 1.0, size=(n, T))
        else:
            x = 2.0 * rng.integers(0, 2, size=(n, T)) - 1.0
        y = np.zeros((n, T))
        y[:, d:] = x[:, : T - d]
        mask = np.ones((n, T))
        mask[:, :d] = 0.0
        return Dataset(x[:, :, None], y[:, :, None], mask)

    def _score(self, yhat, data):
        return _nrmse(yhat, data)

    def _passes(self, score):
        return score < self.params["threshold"]
