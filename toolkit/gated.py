"""Gated recurrent cells, LSTM and GRU, with the public API of :class:`toolkit.nets.Elman`.

* **LSTM** (``[net] cell = "lstm"``): Hochreiter & Schmidhuber (1997) with the forget gate of
  Gers, Schmidhuber & Cummins (2000), as ``torch.nn.LSTM`` computes it::

      [i; f; g; o] = [sig; sig; tanh; sig](W_xh a_t + W_hh h_{t-1} + b_h)
      c_t = f * c_{t-1} + i * g,    h_t = o * tanh(c_t)

  blocks W_xh (4H, I), W_hh (4H, H), b_h (4H,) with rows in torch's gate order i, f, g, o;
  the recurrent state is [h, c], n_state = 2H.
* **GRU** (``[net] cell = "gru"``): Cho et al. (2014) as ``torch.nn.GRU`` computes it, the
  reset gate applied to (W_hn h + b_hn)::

      r = sig(W_xr a + W_hr h + b_r),   z = sig(W_xz a + W_hz h + b_z)
      n = tanh(W_xn a + b_n + r * (W_hn h + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}

  blocks W_xh (3H, I), W_hh (3H, H), b_h (3H,) in torch's order r, z, n, and b_hn (H,);
  n_state = H.

**One bias per gate row.** torch keeps two bias vectors (b_ih, b_hh) whose sum is all that
matters, except the GRU's b_hn inside r * (...). Here b_h is that sum (torch's weights map
to ours with b_h = b_ih + b_hh, and for the GRU b_h = b_ih + [b_hr, b_hz, 0], b_hn =
b_hh[2H:]), so no two parameters of theta have the same effect.

Both read out from h as an Elman net does, yhat_t = out(W_hy h_t + b_y), with the same
outputs and losses (a sum over batch and time, weighted by mask), the same unfold depth k
(the state at s-k, h and c, held constant), the same bad-input errors. Parameter counts:
LSTM 4H(I + H + 1) + O(H + 1), GRU 3H(I + H + 1) + H + O(H + 1). Initialisation as torch:
every parameter ~ U(-1/sqrt(H), 1/sqrt(H)) (no forget-gate bias offset).

The kernels are in :mod:`toolkit.kernels.gated`.
"""

from __future__ import annotations

import time

import numpy as np

from toolkit import kernels
from toolkit.kernels import gated as kernels_gated
from toolkit.nets import (
    LOSS_OF_OUTPUT,
    OUTPUTS,
    _as_array,
    _check_finite,
    _inf_for_nonfinite,
    _kept,
    _positive_int,
    check_k,
    check_sequences,
    register_cell,
    uniform_init,
)
from toolkit.params import REQUIRED, Param


class _Gated:
    """What LSTM and GRU share: everything but the block layout and the state width."""

    cell = ""
    _CODE = -1
    CONFIG = {"n_hidden": Param(REQUIRED, "int", lo=1, doc="hidden units H, an integer >= 1")}

    @classmethod
    def from_config(cls, n_in: int, n_out: int, output: str, cfg: dict):
        """The net of a ``[net]`` table (keys of :attr:`CONFIG`) for a task's sizes/output."""
        unknown = sorted(set(cfg) - set(cls.CONFIG))
        if unknown:
            raise ValueError(
                f"{unknown[0]}: not a setting of an {cls.__name__} net ({', '.join(cls.CONFIG)})"
            )
        return cls(n_in, cfg.get("n_hidden"), n_out, output=output)

    def __init__(self, n_in: int, n_hidden: int, n_out: int, output: str = "linear"):
        self.n_in = _positive_int(n_in, "n_in")
        self.n_hidden = _positive_int(n_hidden, "n_hidden")
        self.n_out = _positive_int(n_out, "n_out")
        if output not in kernels.OUT:
            raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
        self.output = output
        self._out = kernels.OUT[output]
        I, H, O = self.n_in, self.n_hidden, self.n_out
        self.shapes = self._shapes(I, H, O)
        self.n_params = kernels_gated.n_params(self._CODE, I, H, O)
        assert self.n_params == sum(int(np.prod(s)) for s in self.shapes.values())

    def _shapes(self, I: int, H: int, O: int) -> dict:
        raise NotImplementedError

    @property
    def loss_kind(self) -> str:
        return LOSS_OF_OUTPUT[self.output]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_in={self.n_in}, n_hidden={self.n_hidden}, "
            f"n_out={self.n_out}, output={self.output!r})"
        )

    def describe(self) -> str:
        """One line for the report: the cell and its sizes."""
        return repr(self)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    # -- parameters ---------------------------------------------------------------------
    def init(self, rng, scale: float | None = None) -> np.ndarray:
        """theta with every parameter ~ U(-s, s), s = 1/sqrt(n_hidden) (as torch's LSTM and
        GRU) unless ``scale`` is given. rng: numpy.random.Generator or int seed."""
        return uniform_init(rng, self.n_params, self.n_hidden, scale)

    def unpack(self, theta) -> dict:
        """dict of the named blocks (module docstring), views into theta."""
        theta = self._theta(theta, check_finite=False)
        out, o = {}, 0
        for name, shape in self.shapes.items():
            n = int(np.prod(shape))
            out[name] = theta[o : o + n].reshape(shape)
            o += n
        return out

    def pack(self, p: dict) -> np.ndarray:
        """Inverse of :meth:`unpack`: a new flat theta from a dict of the blocks."""
        names = tuple(self.shapes)
        if not isinstance(p, dict):
            raise TypeError(f"p: expected a dict with keys {names}, got {type(p).__name__}")
        missing = [k for k in names if k not in p]
        extra = [k for k in p if k not in names]
        if missing or extra:
            raise ValueError(f"p: expected keys {names}; missing {missing}, unexpected {extra}")
        parts = []
        for name, shape in self.shapes.items():
            a = _as_array(p[name], f"p[{name!r}]", len(shape))
            if a.shape != shape:
                raise ValueError(f"p[{name!r}]: expected shape {shape}, got {a.shape}")
            parts.append(a.ravel())
        return np.concatenate(parts)

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

        x (B,T,I), y (B,T,O), mask (B,T) non-negative (None = ones), h0 (B, n_state) the
        initial state (None = zeros).
        """
        x, y, mask = check_sequences(x, y, mask, self.n_in, self.n_out)
        B = x.shape[0]
        if h0 is None:
            h0 = np.zeros((B, self.n_state))
        else:
            h0 = _as_array(h0, "h0", 2)
            if h0.shape != (B, self.n_state):
                raise ValueError(
                    f"h0: expected shape ({B}, {self.n_state}) ({self._STATE}), got {h0.shape}"
                )
            _check_finite(h0, "h0")
        return x, y, mask, h0

    def _prep(self, x, y, mask, h0, check):
        if check:
            return self.check_data(x, y, mask, h0)
        B, T = x.shape[0], x.shape[1]
        mask = np.ones((B, T)) if mask is None else np.ascontiguousarray(mask)
        h0 = np.zeros((B, self.n_state)) if h0 is None else np.ascontiguousarray(h0)
        y = None if y is None else np.ascontiguousarray(y)
        return np.ascontiguousarray(x), y, mask, h0

    def _sizes(self):
        return self.n_in, self.n_hidden, self.n_out, self._out

    # -- computation --------------------------------------------------------------------
    def _forward(self, theta, x, h0, check):
        theta = self._theta(theta, check_finite=check)
        x, _, _, h0 = self._prep(x, None, None, h0, check)
        return kernels_gated.forward(self._CODE, theta, x, h0, *self._sizes())

    def forward(self, theta, x, h0=None, check=True):
        """x (B,T,I) -> h (B,T,H), yhat (B,T,O). h0 (B, n_state): the initial state."""
        HS, _, yhat = self._forward(theta, x, h0, check)
        return HS[:, 1:], yhat

    def predict(self, theta, x, check=True):
        """yhat (B,T,O) of forward(theta, x)[1] from the zero state, the same bits, computed
        without allocating (see Elman.predict: the array is reused by the next call)."""
        theta = self._theta(theta, check_finite=check)
        x, _, _, _ = self._prep(x, None, None, None, check)
        B, T = x.shape[0], x.shape[1]
        I, H, O, out = self._sizes()
        c = self._CODE

        def make():
            return (*kernels_gated.forward_work(c, B, T, I, H, O), np.zeros((B, self.n_state)))

        HS, CS, G, WX, WT, a, r_, zo, yhat, h0 = _kept(("gated", c, B, T, I, H, O), make)
        kernels_gated.forward_into(c, theta, x, h0, I, H, O, out, HS, CS, G, WX, WT, a, r_, zo,
                                   yhat)  # fmt: skip
        return yhat

    def states(self, theta, x, h0=None, check=True):
        """The state after every step, (B, T, n_state): what step() returns and h0 takes."""
        HS, CS, _ = self._forward(theta, x, h0, check)
        return self._state_of(HS[:, 1:], CS[:, 1:])

    def _state_of(self, h, c):
        return np.ascontiguousarray(h)

    def step(self, theta, h_prev, a, check=True):
        """One recurrent step: state (B, n_state), input a (B,I) -> the next state."""
        a = _as_array(a, "a", 2) if check else np.asarray(a)
        return self.states(theta, a[:, None, :], h0=h_prev, check=check)[:, 0, :]

    def loss(self, theta, x, y, mask=None, h0=None, check=True) -> float:
        """Scalar loss (a sum over batch and time, weighted by mask)."""
        theta = self._theta(theta, check_finite=check)
        x, y, mask, h0 = self._prep(x, y, mask, h0, check)
        return float(kernels_gated.loss(self._CODE, theta, x, y, mask, h0, *self._sizes()))

    def loss_and_grad(self, theta, x, y, mask=None, k=None, h0=None, check=True):
        """(L, g): the loss and its gradient by BPTT with unfold depth k (None = full).

        h0 (B, n_state), the initial state, is held constant. ``check=False`` skips
        validation of x, y, mask, h0 (for trainers that validated them with check_data).
        """
        kk = check_k(k)
        theta = self._theta(theta, check_finite=check)
        x, y, mask, h0 = self._prep(x, y, mask, h0, check)
        L, g = kernels_gated.loss_and_grad(self._CODE, theta, x, y, mask, h0, *self._sizes(), kk)
        return float(L), g

    def population_loss(self, thetas, x, y, mask=None, h0=None, check=True) -> np.ndarray:
        """thetas (P, n_params) -> losses (P,), one kernel call; each the bits of loss().
        A non-finite loss (or a theta with non-finite entries) is reported as +inf."""
        thetas = _as_array(thetas, "thetas", 2)
        if thetas.shape[1] != self.n_params or thetas.shape[0] < 1:
            raise ValueError(f"thetas: expected shape (P, {self.n_params}), got {thetas.shape}")
        x, y, mask, h0 = self._prep(x, y, mask, h0, check)
        Ls = kernels_gated.population_loss(self._CODE, thetas, x, y, mask, h0, *self._sizes())
        _inf_for_nonfinite(Ls)
        return Ls

    def warmup(self) -> float:
        """Compile (or load from Numba's on-disk cache) the gated kernels; the seconds."""
        return warmup()


@register_cell
class LSTM(_Gated):
    """LSTM with forget gate, as torch.nn.LSTM (module docstring); state [h, c] (B, 2H).

    Parameters: n_in (I), n_hidden (H), n_out (O) >= 1; output in ("linear", "sigmoid",
    "softmax"), which also picks the loss. The constructor only stores and checks them."""

    cell = "lstm"
    _CODE = kernels_gated.LSTM
    _STATE = "[h, c]"

    @property
    def n_state(self) -> int:
        """Width of the recurrent state [h, c]: 2H."""
        return 2 * self.n_hidden

    def _shapes(self, I, H, O):
        return {"W_xh": (4 * H, I), "W_hh": (4 * H, H), "b_h": (4 * H,), "W_hy": (O, H),
                "b_y": (O,)}  # fmt: skip

    def _state_of(self, h, c):
        return np.concatenate([h, c], axis=-1)


@register_cell
class GRU(_Gated):
    """GRU as torch.nn.GRU (module docstring); state h (B, H).

    Parameters: n_in (I), n_hidden (H), n_out (O) >= 1; output in ("linear", "sigmoid",
    "softmax"), which also picks the loss. The constructor only stores and checks them."""

    cell = "gru"
    _CODE = kernels_gated.GRU
    _STATE = "h"

    @property
    def n_state(self) -> int:
        """Width of the recurrent state h: H."""
        return self.n_hidden

    def _shapes(self, I, H, O):
        return {"W_xh": (3 * H, I), "W_hh": (3 * H, H), "b_h": (3 * H,), "b_hn": (H,),
                "W_hy": (O, H), "b_y": (O,)}  # fmt: skip


_WARM = False


def warmup() -> float:
    """Trigger compilation of every gated kernel signature; seconds spent."""
    global _WARM
    t0 = time.perf_counter()
    if not _WARM:
        net = LSTM(1, 1, 1)
        th = np.zeros(net.n_params)
        x = np.zeros((1, 2, 1))
        net.forward(th, x)
        net.loss(th, x, x)
        net.loss_and_grad(th, x, x)
        net.population_loss(th[None, :], x, x)
        _WARM = True
    return time.perf_counter() - t0
