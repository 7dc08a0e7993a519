"""Elman networks: sizes, the flat parameter layout, initialisation and the public API.

Only this module knows the layout of ``theta`` (float64, 1-D), the common currency of the
toolkit: W_xh (H,I), W_hh (H,H), b_h (H,), W_hy (O,H), b_y (O,), each in C order.

    h_t    = act(W_xh a_t + W_hh h_{t-1} + b_h),   h_{-1} = 0 (or h0)
    yhat_t = out(W_hy h_t + b_y)
    L      = sum_{b,t} mask[b,t] * l(yhat[b,t], y[b,t])        (a sum, not a mean)

Loss follows the output kind: linear -> 0.5 ||yhat - y||^2, sigmoid -> binary cross-entropy,
softmax -> categorical cross-entropy. ``k`` is the unfold depth of Williams & Peng's BPTT(h):
the error at step s reaches the parameter uses at steps s-k+1..s and h_{s-k} is held constant;
k=1 is Elman's copy-back training, k=None (or k >= T) is full BPTT. This differs from the
"chunked" scheme that detaches the state every k steps (there, an error near the start of a
chunk is propagated almost no steps back); here every error is propagated exactly k-1 steps.

Public methods validate and convert their inputs (int or float32 become float64), then call
the Numba kernels in :mod:`toolkit.kernels`, which trust their inputs.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from pathlib import Path

import numpy as np

from toolkit import kernels
from toolkit.params import REQUIRED, Param

HIDDEN = tuple(kernels.ACT)
OUTPUTS = tuple(kernels.OUT)
LOSS_OF_OUTPUT = {"linear": "mse", "sigmoid": "bce", "softmax": "ce"}
_PARTS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


def _as_array(value, name: str, ndim: int) -> np.ndarray:
    """float64 C-contiguous copy/view of ``value``; TypeError/ValueError naming ``name``."""
    if (
        type(value) is np.ndarray
        and value.dtype == np.float64
        and value.ndim == ndim
        and value.flags.c_contiguous
    ):  # already what the checks below would return (the same object): skip them
        return value
    if isinstance(value, str | bytes | dict) or value is None:
        raise TypeError(f"{name}: expected an array-like of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"{name}: could not convert to an array ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _inf_for_nonfinite(losses: np.ndarray) -> None:
    """Set the non-finite entries of ``losses`` to +inf, in place (population_loss's rule:
    optimizers rank them last). One sum decides whether any work is needed: it is finite
    only when every entry is (a sum that overflows just takes the full path)."""
    if not math.isfinite(losses.sum()):
        losses[~np.isfinite(losses)] = np.inf


def _check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: contains non-finite values (first at index {tuple(bad)})")


def _positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer):
        raise TypeError(f"{name}: expected an int >= 1, got {v!r}")
    if v < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {v}")
    return int(v)


_BLOCKS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


#: in a ``fixed`` table, the word that marks a free entry, like nan. Experiment files use it:
#: nan never equals itself, so a config holding nan would never compare equal to its stored copy
FREE = "free"


def _free_to_nan(v):
    """``v`` with every ``"free"`` (nested lists too) replaced by nan."""
    if isinstance(v, list | tuple):
        return [_free_to_nan(e) for e in v]
    return math.nan if isinstance(v, str) and v == FREE else v


def _check_fixed(v) -> tuple[bool, object]:
    """A ``fixed`` table: {block: number or (nested) list of numbers}; nan or "free" marks a
    free entry. (True, v) or (False, message); shapes are checked when the net is built."""
    if not isinstance(v, dict) or not v:
        return False, f"expected a table of blocks ({', '.join(_BLOCKS)}) -> values, got {v!r}"
    for k, x in v.items():
        if k not in _BLOCKS:
            return False, f"unknown block {k!r}; blocks are {', '.join(_BLOCKS)}"
        items, stack = [], [x]
        while stack:
            e = stack.pop()
            if isinstance(e, list):
                stack.extend(e)
            else:
                items.append(e)
        if not items or any(
            e != FREE and (isinstance(e, bool) or not isinstance(e, int | float)) for e in items
        ):
            return False, (
                f'{k}: expected a number or a list of numbers (nan or "{FREE}" = free), got {x!r}'
            )
    return True, v


#: the network cells by name (``[net] cell = "..."``); a cell class registers itself here
CELLS: dict[str, type] = {}


def check_sequences(x, y, mask, n_in: int, n_out: int):
    """Validate and convert x (B,T,n_in), y (B,T,n_out) or None, mask (B,T) non-negative
    (None = ones): what every network class checks before its kernels see the data."""
    x = _as_array(x, "x", 3)
    B, T, I = x.shape
    if B < 1 or T < 1:
        raise ValueError(f"x: expected B >= 1 and T >= 1, got shape {x.shape}")
    if I != n_in:
        raise ValueError(f"x: expected shape (B, T, {n_in}), got {x.shape}")
    _check_finite(x, "x")
    if y is not None:
        y = _as_array(y, "y", 3)
        if y.shape != (B, T, n_out):
            raise ValueError(f"y: expected shape ({B}, {T}, {n_out}), got {y.shape}")
        _check_finite(y, "y")
    if mask is None:
        mask = np.ones((B, T))
    else:
        mask = _as_array(mask, "mask", 2)
        if mask.shape != (B, T):
            raise ValueError(f"mask: expected shape ({B}, {T}), got {mask.shape}")
        _check_finite(mask, "mask")
        if (mask < 0).any():
            raise ValueError("mask: expected non-negative weights, got a negative value")
    return x, y, mask


def check_k(k) -> int:
    """The unfold depth k (None or an int >= 1) as the kernels take it: 0 for None (full)."""
    if k is None:
        return 0
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k: expected None or an int >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"k: expected None or an int >= 1 (the unfold depth), got {k}")
    return int(k)


def uniform_init(rng, n: int, n_hidden: int, scale: float | None) -> np.ndarray:
    """n parameters ~ U(-s, s), s = 1/sqrt(n_hidden) (PyTorch's nn.RNN/LSTM/GRU) unless
    ``scale`` is given. rng: numpy.random.Generator or int seed."""
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        rng = np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator or int, got {rng!r}")
    s = 1.0 / math.sqrt(n_hidden) if scale is None else float(scale)
    if not (s > 0) or not math.isfinite(s):
        raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
    return rng.uniform(-s, s, size=n)


def register_cell(cls: type) -> type:
    """Class decorator: ``CELLS[cls.cell] = cls`` (see docs/CONTRACTS.md, the net protocol)."""
    if cls.cell in CELLS:
        raise ValueError(f"cell {cls.cell!r} is registered twice")
    CELLS[cls.cell] = cls
    return cls


def make_net(n_in: int, n_out: int, output: str, cfg: dict):
    """The net of an experiment's ``[net]`` table (``cell``, default "elman", picks the class;
    the other keys are its :meth:`from_config` settings) for a task's sizes and output."""
    cfg = dict(cfg)
    name = cfg.pop("cell", "elman")
    if name not in CELLS:
        raise ValueError(f"cell: unknown network cell {name!r}; known: {', '.join(CELLS)}")
    return CELLS[name].from_config(n_in, n_out, output, cfg)


@register_cell
class Elman:
    """Elman (1990) simple recurrent network with one hidden layer.

    Parameters: n_in (I), n_hidden (H), n_out (O) >= 1; hidden in ("tanh", "sigmoid", "relu");
    output in ("linear", "sigmoid", "softmax"), which also picks the loss (mse, bce, ce).

    Variants, for controls and for the setups of the random-guessing study:

    * ``window`` w >= 1: the input at step t is the window [a_t, a_{t-1}, .., a_{t-w+1}]
      (zeros before the start), so W_xh is (H, I*w). With ``recurrent=False`` this is a
      feed-forward time-delay net: the "same net with the recurrence removed".
    * ``recurrent=False``: W_hh is fixed at 0.
    * ``fixed``: {block name: array broadcastable to the block's shape}; finite entries are
      fixed at that value, NaN (or "free") entries stay free. Only free entries are in theta, so
      ``n_params`` counts free parameters and optimizers see nothing else.

    The constructor only stores and checks parameters.
    """

    cell = "elman"
    #: the ``[net]`` settings of this cell, declared once (toolkit.params.Param)
    CONFIG = {
        "n_hidden": Param(REQUIRED, "int", lo=1, doc="hidden units, an integer >= 1"),
        "hidden": Param("tanh", "choice", choices=HIDDEN, doc="hidden nonlinearity"),
        "recurrent": Param(True, "bool", doc="false: W_hh = 0 (feed-forward, e.g. with a window)"),
        "window": Param(1, "int", lo=1, doc="input window w: the input at t is [a_t..a_{t-w+1}]"),
        "fixed": Param(
            None,
            "any",
            allow_none=True,
            check=_check_fixed,
            doc="fixed entries per block (W_xh, W_hh, b_h, W_hy, b_y) -> number or nested list "
            'of numbers; nan or "free" = free',
        ),
    }

    @classmethod
    def from_config(cls, n_in: int, n_out: int, output: str, cfg: dict) -> Elman:
        """The net of a ``[net]`` table (keys of :attr:`CONFIG`) for a task's sizes/output."""
        unknown = sorted(set(cfg) - set(cls.CONFIG))
        if unknown:
            raise ValueError(
                f"{unknown[0]}: not a setting of an Elman net ({', '.join(cls.CONFIG)})"
            )
        kw = {k: cfg.get(k, p.default) for k, p in cls.CONFIG.items() if k != "n_hidden"}
        return cls(n_in, cfg.get("n_hidden"), n_out, output=output, **kw)

    def describe(self) -> str:
        """One line for the report: the cell, its sizes and variants."""
        return repr(self)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        hidden: str = "tanh",
        output: str = "linear",
        *,
        recurrent: bool = True,
        window: int = 1,
        fixed: dict | None = None,
    ):
        self.n_in = _positive_int(n_in, "n_in")
        self.n_hidden = _positive_int(n_hidden, "n_hidden")
        self.n_out = _positive_int(n_out, "n_out")
        if hidden not in kernels.ACT:
            raise ValueError(f"hidden: expected one of {HIDDEN}, got {hidden!r}")
        if output not in kernels.OUT:
            raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
        if not isinstance(recurrent, bool):
            raise TypeError(f"recurrent: expected True or False, got {recurrent!r}")
        self.window = _positive_int(window, "window")
        self.hidden = hidden
        self.output = output
        self.recurrent = recurrent
        self._act = kernels.ACT[hidden]
        self._out = kernels.OUT[output]
        I, H, O = self.n_in * self.window, self.n_hidden, self.n_out
        self._I_eff = I
        self.shapes = {"W_xh": (H, I), "W_hh": (H, H), "b_h": (H,), "W_hy": (O, H), "b_y": (O,)}
        self.n_full = H * I + H * H + H + O * H + O
        self.fixed = self._fixed_spec(fixed)
        base = np.zeros(self.n_full)
        free = np.ones(self.n_full, dtype=bool)
        o = 0
        for name in _PARTS:
            n = int(np.prod(self.shapes[name]))
            if name in self.fixed:
                vals = self.fixed[name].ravel()
                fin = np.isfinite(vals)
                base[o : o + n][fin] = vals[fin]
                free[o : o + n] = ~fin
            o += n
        self._base = base
        self._free_idx = np.flatnonzero(free)
        self._all_free = bool(free.all())
        self.n_params = int(free.sum())
        if self.n_params < 1:
            raise ValueError("fixed: every parameter is fixed; at least one must stay free")

    def _fixed_spec(self, fixed) -> dict:
        spec = {}
        if fixed is not None:
            if not isinstance(fixed, dict):
                raise TypeError(f"fixed: expected a dict of block name -> values, got {fixed!r}")
            for name, v in fixed.items():
                if name not in self.shapes:
                    raise ValueError(f"fixed: unknown block {name!r}; blocks are {_PARTS}")
                try:
                    a = np.asarray(_free_to_nan(v), dtype=np.float64)
                    a = np.broadcast_to(a, self.shapes[name])
                except (ValueError, TypeError):
                    raise ValueError(
                        f"fixed[{name!r}]: expected values broadcastable to "
                        f"{self.shapes[name]}, got {np.shape(v)}"
                    ) from None
                if np.isinf(a).any():
                    raise ValueError(f"fixed[{name!r}]: infinite value (use NaN for free)")
                spec[name] = np.array(a)
        if not self.recurrent:
            if "W_hh" in spec:
                raise ValueError("fixed: W_hh given and recurrent=False; use one of them")
            spec["W_hh"] = np.zeros(self.shapes["W_hh"])
        return spec

    # -- the full layout the kernels see ------------------------------------------------
    def _full(self, theta: np.ndarray) -> np.ndarray:
        if self._all_free:
            return theta
        f = self._base.copy()
        f[self._free_idx] = theta
        return f

    def _full_pop(self, thetas: np.ndarray) -> np.ndarray:
        if self._all_free:
            return thetas
        F = np.tile(self._base, (thetas.shape[0], 1))
        F[:, self._free_idx] = thetas
        return F

    def _windowed(self, x: np.ndarray) -> np.ndarray:
        """(B,T,I) -> (B,T,I*w): [a_t, a_{t-1}, .., a_{t-w+1}], zeros before the start."""
        w = self.window
        if w == 1:
            return x
        B, T, I = x.shape
        xw = np.zeros((B, T, I * w))
        for lag in range(w):
            xw[:, lag:, lag * I : (lag + 1) * I] = x[:, : T - lag, :]
        return xw

    @property
    def loss_kind(self) -> str:
        return LOSS_OF_OUTPUT[self.output]

    def __repr__(self) -> str:
        extra = ""
        if not self.recurrent:
            extra += ", recurrent=False"
        if self.window != 1:
            extra += f", window={self.window}"
        user_fixed = {k for k in self.fixed if self.recurrent or k != "W_hh"}
        if user_fixed:
            extra += f", fixed={sorted(user_fixed)}"
        return (
            f"Elman(n_in={self.n_in}, n_hidden={self.n_hidden}, n_out={self.n_out}, "
            f"hidden={self.hidden!r}, output={self.output!r}{extra})"
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, Elman) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    # -- parameters ---------------------------------------------------------------------
    def init(self, rng, scale: float | None = None) -> np.ndarray:
        """theta with every weight and bias ~ U(-s, s), s = 1/sqrt(n_hidden) (as PyTorch's
        nn.RNN) unless ``scale`` is given. rng: numpy.random.Generator or int seed."""
        return uniform_init(rng, self.n_params, self.n_hidden, scale)

    def unpack(self, theta) -> dict:
        """dict of the five blocks. Views into theta (writing into them writes theta) when no
        parameter is fixed; otherwise new arrays holding the fixed values too."""
        theta = self._full(self._theta(theta, check_finite=False))
        out, o = {}, 0
        for name in _PARTS:
            shape = self.shapes[name]
            n = int(np.prod(shape))
            out[name] = theta[o : o + n].reshape(shape)
            o += n
        return out

    def pack(self, p: dict) -> np.ndarray:
        """Inverse of :meth:`unpack`: a new flat theta from a dict of the five arrays."""
        if not isinstance(p, dict):
            raise TypeError(f"p: expected a dict with keys {_PARTS}, got {type(p).__name__}")
        missing = [k for k in _PARTS if k not in p]
        extra = [k for k in p if k not in _PARTS]
        if missing or extra:
            raise ValueError(f"p: expected keys {_PARTS}; missing {missing}, unexpected {extra}")
        parts = []
        for name in _PARTS:
            a = _as_array(p[name], f"p[{name!r}]", len(self.shapes[name]))
            if a.shape != self.shapes[name]:
                raise ValueError(f"p[{name!r}]: expected shape {self.shapes[name]}, got {a.shape}")
            parts.append(a.ravel())
        full = np.concatenate(parts)
        return full if self._all_free else full[self._free_idx]

    # -- validation ---------------------------------------------------------------------
    def _theta(self, theta, check_finite=True) -> np.ndarray:
        if (
            isinstance(theta, np.ndarray)
            and theta.dtype == np.float64
            and theta.ndim == 1
            and theta.flags.c_contiguous
        ):
            t = theta
        else:
            t = _as_array(theta, "theta", 1)
        if t.shape[0] != self.n_params:
            raise ValueError(f"theta: expected shape ({self.n_params},), got {t.shape}")
        if check_finite:
            _check_finite(t, "theta")
        return t

    def check_data(self, x, y=None, mask=None, h0=None):
        """Validate and convert (x, y, mask, h0); returns float64 C arrays (mask, h0 filled).

        x (B,T,I), y (B,T,O), mask (B,T) non-negative (None = ones), h0 (B,H) (None = zeros).
        """
        x, y, mask = check_sequences(x, y, mask, self.n_in, self.n_out)
        B = x.shape[0]
        if h0 is None:
            h0 = np.zeros((B, self.n_hidden))
        else:
            h0 = _as_array(h0, "h0", 2)
            if h0.shape != (B, self.n_hidden):
                raise ValueError(f"h0: expected shape ({B}, {self.n_hidden}), got {h0.shape}")
            _check_finite(h0, "h0")
        return x, y, mask, h0

    def _sizes(self):
        return self._I_eff, self.n_hidden, self.n_out, self._act, self._out

    def _fast(self, x, y, mask, h0):
        """check=False path: trust the values, fill in the default mask and h0, and make
        every array C-contiguous (a strided view would make Numba compile another version)."""
        B, T = x.shape[0], x.shape[1]
        mask = np.ones((B, T)) if mask is None else np.ascontiguousarray(mask)
        h0 = np.zeros((B, self.n_hidden)) if h0 is None else np.ascontiguousarray(h0)
        x = np.ascontiguousarray(x)
        y = None if y is None else np.ascontiguousarray(y)
        return x, y, mask, h0

    # -- computation --------------------------------------------------------------------
    def forward(self, theta, x, h0=None, check=True):
        """x (B,T,I) -> h (B,T,H), yhat (B,T,O). h0 (B,H) is the initial context (zeros)."""
        theta = self._theta(theta, check_finite=check)
        if check:
            x, _, _, h0 = self.check_data(x, None, None, h0)
        else:
            x, _, _, h0 = self._fast(x, None, None, h0)
        return kernels.forward(self._full(theta), self._windowed(x), h0, *self._sizes())

    def predict(self, theta, x, check=True):
        """yhat (B,T,O) of forward(theta, x)[1] from the zero state, the same bits, computed
        without allocating: into arrays kept per thread for the last input shape and handed
        back. The array is overwritten by the next predict() call of any net of this thread
        with the same sizes: copy it to keep it. The solved checks use this (issue 18)."""
        theta = self._theta(theta, check_finite=check)
        if check:
            x, _, _, _ = self.check_data(x, None, None, None)
        xw = np.ascontiguousarray(self._windowed(x))
        B, T = xw.shape[0], xw.shape[1]
        I, H, O, act, out = self._sizes()

        def make():
            return (*kernels.forward_work(B, T, I, H, O), np.zeros((B, H)))

        W_xhT, W_hhT, XT, HS, zo, yhat, h0 = _kept(("elman", B, T, I, H, O), make)
        kernels.forward_into(self._full(theta), xw, h0, I, H, O, act, out, W_xhT, W_hhT, XT,
                             HS, zo, yhat)  # fmt: skip
        return yhat

    @property
    def n_state(self) -> int:
        """Width of the recurrent state that h0 takes and step() returns: H (the state is h)."""
        return self.n_hidden

    def states(self, theta, x, h0=None, check=True):
        """The state after every step, (B,T,n_state): h, as forward() gives it. Trainers that
        carry the state across windows (BPTT(k1, k2)) use this, so they serve every cell."""
        return self.forward(theta, x, h0=h0, check=check)[0]

    def step(self, theta, h_prev, a, check=True):
        """One recurrent step f(h_prev, a) = act(W_xh a + W_hh h_prev + b_h): (B,H),(B,I)->(B,H)."""
        a = _as_array(a, "a", 2) if check else np.asarray(a)
        h, _ = self.forward(theta, a[:, None, :], h0=h_prev, check=check)
        return h[:, 0, :]

    def loss(self, theta, x, y, mask=None, h0=None, check=True) -> float:
        """Scalar loss (a sum over batch and time, weighted by mask)."""
        theta = self._theta(theta, check_finite=check)
        if check:
            x, y, mask, h0 = self.check_data(x, y, mask, h0)
        else:
            x, y, mask, h0 = self._fast(x, y, mask, h0)
        return float(
            kernels.loss(self._full(theta), self._windowed(x), y, mask, h0, *self._sizes())
        )

    def loss_and_grad(self, theta, x, y, mask=None, k=None, h0=None, check=True):
        """(L, g): the loss and its gradient by BPTT with unfold depth k (None = full).

        h0 (B,H), the initial context, is held constant. ``check=False`` skips validation of
        x, y, mask, h0 (for trainers that validated them once with :meth:`check_data`).
        """
        kk = check_k(k)
        theta = self._theta(theta, check_finite=check)
        if check:
            x, y, mask, h0 = self.check_data(x, y, mask, h0)
        else:
            x, y, mask, h0 = self._fast(x, y, mask, h0)
        xw = self._windowed(x)
        work = _workspace(
            kernels.grad_work_size(xw.shape[1], xw.shape[0], xw.shape[2], self.n_hidden, self.n_out)
        )
        L, g = kernels.loss_and_grad(self._full(theta), xw, y, mask, h0, *self._sizes(), kk, work)
        if not self._all_free:
            g = g[self._free_idx]
        return float(L), g

    def population_loss(self, thetas, x, y, mask=None, h0=None, check=True) -> np.ndarray:
        """thetas (P, n_params) -> losses (P,), one kernel call. A non-finite loss (or a theta
        with non-finite entries) is reported as +inf, so optimizers can rank it last."""
        thetas = _as_array(thetas, "thetas", 2)
        if thetas.shape[1] != self.n_params or thetas.shape[0] < 1:
            raise ValueError(f"thetas: expected shape (P, {self.n_params}), got {thetas.shape}")
        if check:
            x, y, mask, h0 = self.check_data(x, y, mask, h0)
        else:
            x, y, mask, h0 = self._fast(x, y, mask, h0)
        Ls = kernels.population_loss(
            self._full_pop(thetas), self._windowed(x), y, mask, h0, *self._sizes()
        )
        _inf_for_nonfinite(Ls)
        return Ls

    def warmup(self) -> float:
        """Compile (or load from Numba's on-disk cache) every kernel; returns the seconds."""
        return warmup()


_WARM = False
_WORK = threading.local()
_WORK_KEEP = 1 << 24  # float64 elements (128 MiB): larger scratch arrays are not kept


def _workspace(n: int) -> np.ndarray:
    """A float64 scratch array of at least n elements for loss_and_grad, kept per thread
    between calls. Allocating it afresh cost about 1,500 page faults per gradient at
    H=128, B=32, T=100 (a quarter of the time): the C library returns large blocks to the
    operating system on free."""
    buf = getattr(_WORK, "buf", None)
    if buf is not None and buf.shape[0] >= n:
        return buf
    buf = np.empty(n)
    if n <= _WORK_KEEP:
        _WORK.buf = buf
    return buf


_KEPT = threading.local()


def _kept(key, make):
    """The arrays ``make()`` returns, kept per thread for the last ``key`` (sizes) and
    returned again while the key stays the same (Net.predict's buffers); arrays of more than
    _WORK_KEEP elements in all are made afresh each time."""
    if getattr(_KEPT, "key", None) == key:
        return _KEPT.arrays
    arrays = make()
    if sum(a.size for a in arrays) <= _WORK_KEEP:
        _KEPT.key, _KEPT.arrays = key, arrays
    return arrays


def warmup() -> float:
    """Trigger compilation of every kernel signature used by :class:`Elman`; seconds spent."""
    global _WARM
    t0 = time.perf_counter()
    if not _WARM:
        net = Elman(1, 2, 1)
        th = np.zeros(net.n_params)
        x = np.zeros((1, 2, 1))
        net.forward(th, x)
        net.loss(th, x, x)
        net.loss_and_grad(th, x, x)
        net.population_loss(th[None, :], x, x)
        _WARM = True
    return time.perf_counter() - t0


# -- cost of a gradient relative to a forward pass, for forward-pass equivalents -----------
_RATIO_FILE = Path(__file__).with_name("grad_cost.json")
_RATIO_CACHE: dict | None = None


def grad_cost_ratio(net) -> float:
    """Measured cost of one BPTT gradient over a batch relative to one forward loss pass over
    the same batch, for this cell and hidden size (log-interpolated in H from the calibration
    table ``toolkit/grad_cost.json``, written by ``python benchmarks/bench_core.py
    --calibrate``: ``ratio_by_hidden`` for Elman nets, ``ratio_by_cell[cell]`` for the other
    cells, Elman's where a cell has no table). A table, not a live measurement, so
    forward-pass equivalents are deterministic."""
    return _ratio(getattr(net, "cell", "elman"), net.n_hidden)


@functools.cache
def _ratio(cell: str, n_hidden: int) -> float:
    """grad_cost_ratio's value for a cell and hidden size (the table is read once)."""
    global _RATIO_CACHE
    if _RATIO_CACHE is None:
        _RATIO_CACHE = json.loads(_RATIO_FILE.read_text())
    by_cell = _RATIO_CACHE.get("ratio_by_cell", {})
    ratios = by_cell.get(cell, _RATIO_CACHE["ratio_by_hidden"])
    table = sorted((int(h), float(r)) for h, r in ratios.items())
    hs = np.log([h for h, _ in table])
    rs = [r for _, r in table]
    return float(np.interp(math.log(n_hidden), hs, rs))


# the other network cells register themselves on import (after everything above is defined)
from toolkit import a1 as _a1  # noqa: E402,F401
from toolkit import gated as _gated  # noqa: E402,F401
