"""Architecture A1 of Schmidhuber, Hochreiter & Bengio (2001): a small fully recurrent net
whose output unit is recurrent and reads the hidden units of the same step.

Paper: Schmidhuber, J., Hochreiter, S. & Bengio, Y. (2001). Evaluating benchmark problems by
random guessing. In Kolen & Kremer (eds.), A Field Guide to Dynamical Recurrent Networks,
sections "Random guessing" (A1: "a recurrent, fully connected net with 1 input, 1 output,
and n hidden units", every unit biased, activations 0 at the start of each sequence) and
"Parity problem" (A1 with n = 1, "identical to Bengio et al.'s 1994 architecture"; "the
output neuron has a sigmoid activation function; the target at sequence end is 1.0 for odd
and 0.0 for even").

Within a step t the hidden units update first, then the output unit::

    h_t = act(W_hx x_t + W_hh h_{t-1} + w_ho o_{t-1} + b_h)      (H,)
    o_t = out(w_ox . x_t + w_oh . h_t + w_oo o_{t-1} + b_o)       scalar
    h_{-1} = 0, o_{-1} = 0

so the output unit sees the hidden units' *current* values (and its own previous one), the
hidden units see the output's previous value. A synchronous update (every unit from the
previous step's values) would give the input a path of one step to the output and leave no
room for parity's "state XOR input" with one hidden unit; with this order one hidden unit can
compute AND(input, state) and the output OR minus AND, i.e. XOR.

The flat ``theta`` (n_params = H*I + H*H + 2*H + I + H + 2; 8 for I = H = 1):
``W_hx (H,I), W_hh (H,H), w_ho (H,), b_h (H,), w_ox (I,), w_oh (H,), w_oo, b_o``.

Choices where the paper is silent: the hidden units' activation (``hidden``, default
"tanh"; "sigmoid" is the alternative), the output's loss (sigmoid -> binary cross-entropy,
linear -> 0.5 squared error, as for Elman nets). A1 is only guessed or evolved here: it has
no gradient (``loss_and_grad`` raises, and :func:`toolkit.train.run` refuses a gradient
method for it before any work).

The population loss is one Numba function over contiguous float64 arrays (pure, like the
kernels of :mod:`toolkit.kernels`); ``tests/reference.py`` holds the slow NumPy version it is
tested against.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

from toolkit.nets import (
    _as_array,
    _check_finite,
    _inf_for_nonfinite,
    _positive_int,
    check_sequences,
    register_cell,
)
from toolkit.params import Param

_ACT = {"tanh": 0, "sigmoid": 1}
_OUT = {"sigmoid": 1, "linear": 0}
_LOSS_OF_OUTPUT = {"linear": "mse", "sigmoid": "bce"}


def n_params_of(I: int, H: int) -> int:
    """Length of an A1 theta with I inputs and H hidden units."""
    return H * I + H * H + 2 * H + I + H + 2


@njit(cache=True)
def _sig(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True)
def _run(theta, x, H, act, out, h, o, z):
    """Forward pass of one theta over x (B,T,I): fills h (B,T,H), o (B,T) with the output
    activations and z (B,T) with the output's net input (for a stable loss)."""
    B, T, I = x.shape
    i_hh = H * I
    i_ho = i_hh + H * H
    i_bh = i_ho + H
    i_ox = i_bh + H
    i_oh = i_ox + I
    i_oo = i_oh + H
    i_bo = i_oo + 1
    hp = np.zeros(H)
    hn = np.zeros(H)
    for b in range(B):
        for j in range(H):
            hp[j] = 0.0
        op = 0.0
        for t in range(T):
            for j in range(H):
                s = theta[i_bh + j] + theta[i_ho + j] * op
                for i in range(I):
                    s += theta[j * I + i] * x[b, t, i]
                for k in range(H):
                    s += theta[i_hh + j * H + k] * hp[k]
                hn[j] = math.tanh(s) if act == 0 else _sig(s)
            s = theta[i_bo] + theta[i_oo] * op
            for i in range(I):
                s += theta[i_ox + i] * x[b, t, i]
            for j in range(H):
                s += theta[i_oh + j] * hn[j]
                hp[j] = hn[j]
                h[b, t, j] = hn[j]
            op = _sig(s) if out == 1 else s
            o[b, t] = op
            z[b, t] = s


@njit(cache=True)
def _loss(z, o, y, mask, out):
    """sum_{b,t} mask * l: binary cross-entropy from the net input z (stable form) for a
    sigmoid output, 0.5 (o - y)^2 for a linear one."""
    B, T = z.shape
    L = 0.0
    for b in range(B):
        for t in range(T):
            m = mask[b, t]
            if m == 0.0:
                continue
            if out == 1:
                s = z[b, t]
                sp = s + math.log1p(math.exp(-s)) if s > 0.0 else math.log1p(math.exp(s))
                L += m * (sp - y[b, t, 0] * s)
            else:
                d = o[b, t] - y[b, t, 0]
                L += m * 0.5 * d * d
    return L


@njit(cache=True)
def population_loss_kernel(thetas, x, y, mask, H, act, out):
    """thetas (P, n) -> losses (P,) on x (B,T,I), y (B,T,1), mask (B,T)."""
    P = thetas.shape[0]
    B, T, _ = x.shape
    h = np.empty((B, T, H))
    o = np.empty((B, T))
    z = np.empty((B, T))
    Ls = np.empty(P)
    for p in range(P):
        _run(thetas[p], x, H, act, out, h, o, z)
        Ls[p] = _loss(z, o, y, mask, out)
    return Ls


@register_cell
class A1:
    """Architecture A1 (Schmidhuber, Hochreiter & Bengio 2001): I inputs, H hidden units and
    one output unit, all biased, fully recurrent, the output unit recurrent and reading the
    hidden units of the same step (module docstring for the equations and the layout).

    The protocol of docs/CONTRACTS.md (the net protocol) without gradients: ``init``,
    ``forward``, ``loss``, ``population_loss``, ``check_data``, ``warmup``; ``loss_and_grad``
    and ``step`` raise. n_out must be 1; output "sigmoid" (the paper's parity) or "linear".
    """

    cell = "a1"
    #: no gradient: toolkit.train.run refuses gradient methods for this net
    has_gradient = False
    CONFIG = {
        "n_hidden": Param(1, "int", lo=1, doc="hidden units n (the parity setup: 1)"),
        "hidden": Param("tanh", "choice", choices=tuple(_ACT), doc="hidden nonlinearity"),
    }

    @classmethod
    def from_config(cls, n_in: int, n_out: int, output: str, cfg: dict) -> A1:
        unknown = sorted(set(cfg) - set(cls.CONFIG))
        if unknown:
            raise ValueError(f"{unknown[0]}: not a setting of an A1 net ({', '.join(cls.CONFIG)})")
        kw = {k: cfg.get(k, p.default) for k, p in cls.CONFIG.items()}
        return cls(n_in, kw["n_hidden"], n_out, hidden=kw["hidden"], output=output)

    def __init__(
        self, n_in: int = 1, n_hidden: int = 1, n_out: int = 1, hidden="tanh", output="sigmoid"
    ):
        self.n_in = _positive_int(n_in, "n_in")
        self.n_hidden = _positive_int(n_hidden, "n_hidden")
        self.n_out = _positive_int(n_out, "n_out")
        if self.n_out != 1:
            raise ValueError(f"n_out: A1 has one output unit, got n_out = {n_out}")
        if hidden not in _ACT:
            raise ValueError(f"hidden: expected one of {tuple(_ACT)}, got {hidden!r}")
        if output not in _OUT:
            raise ValueError(
                f"output: expected one of {tuple(_OUT)} (A1's recurrent output unit), "
                f"got {output!r}"
            )
        self.hidden = hidden
        self.output = output
        self.n_params = n_params_of(self.n_in, self.n_hidden)

    @property
    def loss_kind(self) -> str:
        return _LOSS_OF_OUTPUT[self.output]

    def __repr__(self) -> str:
        return (
            f"A1(n_in={self.n_in}, n_hidden={self.n_hidden}, n_out=1, "
            f"hidden={self.hidden!r}, output={self.output!r})"
        )

    def describe(self) -> str:
        return repr(self)

    def __eq__(self, other) -> bool:
        return isinstance(other, A1) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    # -- parameters ---------------------------------------------------------------------
    def init(self, rng, scale: float | None = None) -> np.ndarray:
        """theta with every weight ~ U(-s, s), s = 1/sqrt(n_hidden) unless ``scale``."""
        if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
            rng = np.random.default_rng(int(rng))
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator or int, got {rng!r}")
        s = 1.0 / math.sqrt(self.n_hidden) if scale is None else float(scale)
        if not (s > 0) or not math.isfinite(s):
            raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
        return rng.uniform(-s, s, size=self.n_params)

    def unpack(self, theta) -> dict:
        """dict of the blocks W_hx (H,I), W_hh (H,H), w_ho (H,), b_h (H,), w_ox (I,),
        w_oh (H,), w_oo (), b_o () (views into theta)."""
        t = self._theta(theta, check_finite=False)
        I, H = self.n_in, self.n_hidden
        out, o = {}, 0
        for name, shape in (
            ("W_hx", (H, I)),
            ("W_hh", (H, H)),
            ("w_ho", (H,)),
            ("b_h", (H,)),
            ("w_ox", (I,)),
            ("w_oh", (H,)),
            ("w_oo", ()),
            ("b_o", ()),
        ):
            n = int(np.prod(shape))
            out[name] = t[o : o + n].reshape(shape)
            o += n
        return out

    # -- validation ---------------------------------------------------------------------
    def _theta(self, theta, check_finite=True) -> np.ndarray:
        t = _as_array(theta, "theta", 1)
        if t.shape[0] != self.n_params:
            raise ValueError(f"theta: expected shape ({self.n_params},), got {t.shape}")
        if check_finite:
            _check_finite(t, "theta")
        return t

    def check_data(self, x, y=None, mask=None, h0=None):
        """Validate and convert (x (B,T,I), y (B,T,1), mask (B,T)); h0 must be None (every
        unit starts at 0, as in the paper) and is returned as None."""
        if h0 is not None:
            raise ValueError("h0: A1 starts every sequence from zero activations; pass None")
        x, y, mask = check_sequences(x, y, mask, self.n_in, 1)
        return x, y, mask, None

    def _prep(self, x, y, mask, h0, check):
        if check:
            return self.check_data(x, y, mask, h0)[:3]
        x = np.ascontiguousarray(x, dtype=np.float64)
        mask = np.ones(x.shape[:2]) if mask is None else np.ascontiguousarray(mask)
        y = None if y is None else np.ascontiguousarray(y, dtype=np.float64)
        return x, y, mask

    # -- computation --------------------------------------------------------------------
    def forward(self, theta, x, h0=None, check=True):
        """x (B,T,I) -> h (B,T,H), yhat (B,T,1): the hidden and the output activations."""
        theta = self._theta(theta, check_finite=check)
        x, _, _ = self._prep(x, None, None, h0, check)
        B, T, _ = x.shape
        h, o, z = np.empty((B, T, self.n_hidden)), np.empty((B, T)), np.empty((B, T))
        _run(theta, x, self.n_hidden, _ACT[self.hidden], _OUT[self.output], h, o, z)
        return h, o[:, :, None]

    def loss(self, theta, x, y, mask=None, h0=None, check=True) -> float:
        """Scalar loss (a sum over batch and time, weighted by mask)."""
        theta = self._theta(theta, check_finite=check)
        return float(self.population_loss(theta[None, :], x, y, mask, h0, check=check)[0])

    def population_loss(self, thetas, x, y, mask=None, h0=None, check=True) -> np.ndarray:
        """thetas (P, n_params) -> losses (P,), one compiled call; non-finite -> +inf."""
        thetas = _as_array(thetas, "thetas", 2)
        if thetas.shape[1] != self.n_params or thetas.shape[0] < 1:
            raise ValueError(f"thetas: expected shape (P, {self.n_params}), got {thetas.shape}")
        x, y, mask = self._prep(x, y, mask, h0, check)
        Ls = population_loss_kernel(
            thetas,
            x,
            y,
            mask,
            self.n_hidden,
            _ACT[self.hidden],
            _OUT[self.output],
        )
        _inf_for_nonfinite(Ls)
        return Ls

    def loss_and_grad(self, *args, **kwargs):
        raise NotImplementedError(
            "A1 has no gradient in this toolkit: it is only guessed or evolved (methods of "
            "the 'evolution' family, e.g. random, cmaes)"
        )

    def step(self, *args, **kwargs):
        raise NotImplementedError("A1 has no step(): online BPTT cannot train it")

    def warmup(self) -> float:
        """Compile (or load from Numba's cache) the A1 functions; returns the seconds."""
        t0 = time.perf_counter()
        global _WARM
        if not _WARM:
            net = A1(1, 1, 1)
            x = np.zeros((1, 2, 1))
            net.population_loss(np.zeros((1, net.n_params)), x, x)
            net.forward(np.zeros(net.n_params), x)
            A1(1, 1, 1, hidden="sigmoid", output="linear").population_loss(
                np.zeros((1, net.n_params)), x, x
            )
            _WARM = True
        return time.perf_counter() - t0


_WARM = False
