"""First-order optimizers on the flat parameter vector ``theta``, in NumPy.

Every function works elementwise on arrays of any shape, so the same optimizer steps one
``theta`` (n_params,) or a stack of copies (k, n_params) -- the latter is how online BPTT keeps
k literal copies of the recurrent weights, each with its own optimizer state.

* :class:`SGD` -- plain gradient descent; with ``momentum`` > 0 heavy-ball momentum
  (Polyak 1964) in the form ``v <- mu v + g; theta <- theta - lr v``, and with ``nesterov``
  Nesterov's accelerated gradient in the form of Sutskever et al. (2013):
  ``theta <- theta - lr (g + mu v)``.
* :class:`Adam` -- Kingma & Ba (2015), Algorithm 1, with bias correction.
* :func:`clip_by_norm` -- gradient-norm clipping, Pascanu, Mikolov & Bengio (2013), Alg. 2:
  ``g <- c g / ||g||`` when ``||g|| > c``.
* :func:`lr_at` -- learning-rate schedules: constant, step (x ``gamma`` every ``decay_steps``
  updates), cosine (Loshchilov & Hutter 2017, one period without restarts, from ``lr`` to
  ``lr_min`` over ``decay_steps`` updates, then held at ``lr_min``).

L2 weight decay is added to the gradient by the caller (``g + weight_decay * theta``, i.e.
coupled L2 as in the original papers, also for Adam -- not AdamW's decoupled decay).

The steps run as small Numba kernels that update theta and the optimizer state in place, one
call per step (issue 18: at 2-16 hidden units a NumPy Adam step cost as much as the gradient).
:func:`update` does a trainer's whole per-update work in one call: reduce, decay, measure and
clip the gradient, step. Every kernel keeps NumPy's operation order and grouping, and the norm
is NumPy's pairwise sum (:func:`sum_squares`), so the results are NumPy's bit for bit
(tests/test_optim.py, tests/test_train_bits.py). No fastmath: it would reassociate.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "step", "cosine")


KINDS = {"sgd": 0, "momentum": 1, "adam": 2}  # the kernels' optimizer codes
_PW_BLOCK = 128  # NumPy's PW_BLOCKSIZE


# ---------------------------------------------------------------------------------------
# kernels: elementwise, in place, NumPy's operation order (no fastmath)
# ---------------------------------------------------------------------------------------
@njit(cache=True)
def _pairwise_leaf(a, lo, n):
    """sum(a[lo:lo+n] ** 2), n <= 128, in NumPy's order (numpy/_core/src/umath/loops_utils.h,
    pairwise_sum over the products a*a, which are rounded first as in ``np.sum(g * g)``)."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i] * a[i]
        return res
    r0 = a[lo] * a[lo]
    r1 = a[lo + 1] * a[lo + 1]
    r2 = a[lo + 2] * a[lo + 2]
    r3 = a[lo + 3] * a[lo + 3]
    r4 = a[lo + 4] * a[lo + 4]
    r5 = a[lo + 5] * a[lo + 5]
    r6 = a[lo + 6] * a[lo + 6]
    r7 = a[lo + 7] * a[lo + 7]
    m = n - n % 8
    i = 8
    while i < m:
        j = lo + i
        r0 += a[j] * a[j]
        r1 += a[j + 1] * a[j + 1]
        r2 += a[j + 2] * a[j + 2]
        r3 += a[j + 3] * a[j + 3]
        r4 += a[j + 4] * a[j + 4]
        r5 += a[j + 5] * a[j + 5]
        r6 += a[j + 6] * a[j + 6]
        r7 += a[j + 7] * a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i] * a[lo + i]
        i += 1
    return res


@njit(cache=True)
def sum_squares(a):
    """``np.sum(a * a)`` of a 1-D float64 array, bit for bit: NumPy's pairwise summation
    (blocks of at most 128 summed by :func:`_pairwise_leaf`, halves split at a multiple of 8
    and added), walked with an explicit stack (Numba's cache and recursion do not mix)."""
    n = a.shape[0]
    if n <= _PW_BLOCK:
        return 0.0 + _pairwise_leaf(a, 0, n)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    state = np.empty(64, np.int64)  # 0: left half next, 1: right half next, 2: add them
    vals = np.empty(64)
    sp, vp = 0, 0
    los[0], ns[0], state[0] = 0, n, 0
    while sp >= 0:
        lo, m = los[sp], ns[sp]
        if m <= _PW_BLOCK:
            vals[vp] = _pairwise_leaf(a, lo, m)
            vp += 1
            sp -= 1
            continue
        n2 = m // 2
        n2 -= n2 % 8
        if state[sp] == 0:
            state[sp] = 1
            sp += 1
            los[sp], ns[sp], state[sp] = lo, n2, 0
        elif state[sp] == 1:
            state[sp] = 2
            sp += 1
            los[sp], ns[sp], state[sp] = lo + n2, m - n2, 0
        else:
            vals[vp - 2] = vals[vp - 2] + vals[vp - 1]
            vp -= 1
            sp -= 1
    return 0.0 + vals[0]


@njit(cache=True)
def _step(theta, g, kind, lr, mu, nesterov, m, v, b1, ob1, b2, ob2, c1, c2, eps):
    """One step of optimizer ``kind`` (0 SGD, 1 momentum, 2 Adam) on 1-D theta, in place, with
    the state m (Adam's first moment), v (velocity or second moment). ob1 = 1 - b1, ob2 =
    1 - b2, c1 = 1 - b1**t, c2 = 1 - b2**t are computed by the caller (Python's pow). True when
    theta is finite afterwards."""
    finite = True
    n = theta.shape[0]
    if kind == 0:  # theta -= lr * g
        for i in range(n):
            theta[i] = theta[i] - lr * g[i]
            finite &= np.isfinite(theta[i])
    elif kind == 1:  # v *= mu; v += g; theta -= lr * (g + mu * v)  |  lr * v
        for i in range(n):
            vi = v[i] * mu
            vi = vi + g[i]
            v[i] = vi
            if nesterov:
                theta[i] = theta[i] - lr * (g[i] + mu * vi)
            else:
                theta[i] = theta[i] - lr * vi
            finite &= np.isfinite(theta[i])
    else:  # Kingma & Ba (2015), Algorithm 1
        for i in range(n):
            gi = g[i]
            mi = b1 * m[i] + ob1 * gi
            vi = b2 * v[i] + ob2 * (gi * gi)
            m[i] = mi
            v[i] = vi
            theta[i] = theta[i] - (lr * (mi / c1)) / (np.sqrt(vi / c2) + eps)
            finite &= np.isfinite(theta[i])
    return finite


@njit(cache=True)
def _update(
    theta, g, prev, gw, scale, use_scale, n, mean, wd, clip,
    kind, lr, mu, nesterov, m, v, b1, ob1, b2, ob2, c1, c2, eps,
):  # fmt: skip
    """A trainer's per-update work on 1-D arrays, in one call: prev[:] = theta; the gradient
    gw = ((g * scale) / n) + wd * theta (each part only when asked: use_scale, mean, wd != 0);
    its norm; gw *= clip / norm when clip >= 0 and norm > clip; the step. Returns (norm,
    theta finite). The operations and their order are those of the NumPy code they replace."""
    N = theta.shape[0]
    for i in range(N):
        prev[i] = theta[i]
        gi = g[i]
        if use_scale:
            gi = gi * scale[i]
        if mean:
            gi = gi / n
        if wd != 0.0:
            gi = gi + wd * theta[i]
        gw[i] = gi
    norm = np.sqrt(sum_squares(gw))
    if clip >= 0.0 and norm > clip:
        f = clip / norm
        for i in range(N):
            gw[i] = gw[i] * f
    finite = _step(theta, gw, kind, lr, mu, nesterov, m, v, b1, ob1, b2, ob2, c1, c2, eps)
    return norm, finite


_EMPTY = np.zeros(0)


class SGD:
    """Gradient descent, optionally with (Nesterov) momentum. ``step`` updates theta in place."""

    def __init__(self, momentum: float = 0.0, nesterov: bool = False):
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.v = None  # velocity, same shape as theta (allocated on the first step)

    kind = property(lambda self: 0 if self.momentum == 0.0 else 1)

    def state(self, theta: np.ndarray):
        """The kernels' arguments after (kind, lr): mu, nesterov, m, v, b1, 1-b1, b2, 1-b2,
        1-b1**t, 1-b2**t, eps (unused ones as placeholders); allocates v on the first call."""
        if self.momentum == 0.0:
            return 0.0, False, _EMPTY, _EMPTY, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0
        if self.v is None:
            self.v = np.zeros_like(theta)
        return (
            (self.momentum, self.nesterov, _EMPTY, self.v.reshape(-1))
            + (0.0,) * 4
            + (
                1.0,
                1.0,
                0.0,
            )
        )

    def step(self, theta: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        _step_any(self, theta, g, lr)
        return theta


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1). ``step`` updates theta in place."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = self.v = None  # first and second moment estimates
        self.t = 0  # steps taken (for the bias correction)

    kind = 2

    def state(self, theta: np.ndarray):
        """As :meth:`SGD.state`; counts the step (t += 1) for the bias correction."""
        if self.m is None:
            self.m, self.v = np.zeros_like(theta), np.zeros_like(theta)
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        return (0.0, False, self.m.reshape(-1), self.v.reshape(-1), b1, 1.0 - b1, b2, 1.0 - b2) + (
            1.0 - b1**self.t,
            1.0 - b2**self.t,
            self.eps,
        )

    def step(self, theta: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        _step_any(self, theta, g, lr)
        return theta


def _flat(a: np.ndarray, name: str) -> np.ndarray:
    """A 1-D view of a C-contiguous float64 array (the kernels' argument)."""
    if a.dtype != np.float64 or not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous float64 array, got {a.dtype}")
    return a.reshape(-1)


def _step_any(opt, theta: np.ndarray, g: np.ndarray, lr: float) -> bool:
    """opt.step: theta (any shape, C-contiguous float64) stepped in place by g (same shape)."""
    g = np.ascontiguousarray(np.broadcast_to(np.asarray(g, dtype=np.float64), theta.shape))
    st = opt.state(theta)
    return _step(_flat(theta, "theta"), g.reshape(-1), opt.kind, float(lr), *st)


def update(opt, theta, g, prev, gw, lr, *, n=1.0, mean=False, wd=0.0, clip=None, scale=None):
    """One trainer update through ``opt`` (SGD or Adam) on 1-D theta, in one kernel call:
    prev[:] = theta (the parameters before the step); gw = the gradient the optimizer sees:
    g * scale (if given), / n (if ``mean``), + wd * theta (if wd), clipped to norm ``clip``
    (Pascanu et al. 2013; None: no clipping), then the step. Returns (norm of the gradient
    before clipping, whether theta is finite after the step). prev and gw are the caller's
    workspace, reused across updates. Bit for bit the NumPy sequence g / n, + wd * theta,
    :func:`clip_by_norm`, ``opt.step``."""
    st = opt.state(theta)
    use = scale is not None
    return _update(
        theta, g, prev, gw, scale if use else _EMPTY, use, float(n), bool(mean), float(wd),
        -1.0 if clip is None else float(clip), opt.kind, float(lr), *st,
    )  # fmt: skip


def make_optimizer(
    name: str,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
):
    """``"sgd"`` -> SGD(), ``"momentum"`` -> SGD(momentum, nesterov), ``"adam"`` -> Adam(...)."""
    if name == "sgd":
        return SGD()
    if name == "momentum":
        return SGD(momentum, nesterov)
    if name == "adam":
        return Adam(beta1, beta2, eps)
    raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {name!r}")


def clip_by_norm(g: np.ndarray, clip: float | None) -> tuple[np.ndarray, float]:
    """Pascanu et al. (2013): rescale ``g`` to norm ``clip`` when its norm exceeds it.

    Returns (g or a rescaled copy, the norm before clipping). ``clip=None``: no clipping.
    """
    norm = float(np.sqrt(np.sum(g * g)))
    if clip is not None and norm > clip:
        return g * (clip / norm), norm
    return g, norm


def lr_at(
    u: int,
    lr: float,
    schedule: str = "constant",
    decay_steps: int | None = None,
    gamma: float = 0.1,
    lr_min: float = 0.0,
) -> float:
    """Learning rate for update number ``u`` (0-based).

    constant: lr; step: lr * gamma ** (u // decay_steps);
    cosine: lr_min + (lr - lr_min) * (1 + cos(pi * min(u / decay_steps, 1))) / 2.
    """
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * gamma ** (u // decay_steps)
    if schedule == "cosine":
        return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * min(u / decay_steps, 1.0)))
    raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
