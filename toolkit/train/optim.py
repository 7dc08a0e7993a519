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
"""

from __future__ import annotations

import math

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "step", "cosine")


class SGD:
    """Gradient descent, optionally with (Nesterov) momentum. ``step`` updates theta in place."""

    def __init__(self, momentum: float = 0.0, nesterov: bool = False):
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.v = None  # velocity, same shape as theta (allocated on the first step)

    def step(self, theta: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        if self.momentum == 0.0:
            theta -= lr * g
            return theta
        if self.v is None:
            self.v = np.zeros_like(theta)
        self.v *= self.momentum
        self.v += g
        if self.nesterov:
            theta -= lr * (g + self.momentum * self.v)
        else:
            theta -= lr * self.v
        return theta


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1). ``step`` updates theta in place."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = self.v = None  # first and second moment estimates
        self.t = 0  # steps taken (for the bias correction)

    def step(self, theta: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        if self.m is None:
            self.m, self.v = np.zeros_like(theta), np.zeros_like(theta)
        self.t += 1
        self.m = self.beta1 * self.m + (1.0 - self.beta1) * g
        self.v = self.beta2 * self.v + (1.0 - self.beta2) * (g * g)
        m_hat = self.m / (1.0 - self.beta1**self.t)
        v_hat = self.v / (1.0 - self.beta2**self.t)
        theta -= lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return theta


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
