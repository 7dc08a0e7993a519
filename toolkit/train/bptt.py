"""Gradient training of Elman networks by backpropagation through time (BPTT).

Registered methods (see :data:`toolkit.train.METHODS`):

* ``bptt_sgd``, ``bptt_momentum``, ``bptt_adam`` -- epochwise BPTT (Werbos 1990) on
  minibatches of whole sequences or the full batch; ``k`` = unfold depth of Williams & Peng's
  truncated BPTT(k) through the core's ``net.loss_and_grad(..., k=k)`` (None = full BPTT).
* ``bptt_online`` -- the classic online algorithm (the textbook pseudo-code of BPTT, e.g.
  Wikipedia "Backpropagation through time"): the context x starts at 0; for each t whose window
  fits, unfold k copies of the step f over a[t..t+k-1] from context x, take the error at the
  window's end y[t+k-1], backpropagate it through the unfolded net to x (held constant), update
  all weights, average the k copies of f, then advance x = f(x, a[t]) with the updated weights.
  Windows whose end target has mask 0 are skipped (the context still advances); the first k-1
  targets of a sequence end no window. ``average``: "copies" keeps k literal copies of f's
  weights (W_xh, W_hh, b_h), each stepped by its own gradient with its own optimizer state,
  then averaged; "shared" (default) steps one set of weights with the mean of the copies'
  gradients for f's weights (the true gradient / k) -- the same trajectory as "copies" for
  SGD and (Nesterov) momentum, which are linear in the gradient, but not for Adam; "sum"
  applies the summed change (the true gradient of the window's error, the later textbook
  version). g's weights (W_hy, b_y) exist once and take their gradient as is.
* ``bptt_k1k2`` -- Williams & Peng (1990) BPTT(h; h') with k1 = h', k2 = h: run forward on a
  stream carrying the state; every k1 steps backpropagate the errors of those k1 steps k2 steps
  back (to the stored state at the window start, held constant) and update. Costs: the
  forward of each block (fwd_steps) plus the gradient over the window (grad_steps, k2 steps).

Every trainer: theta = net.init(rng, scale=init_scale) is the run's first random draw; the
gradient of the summed loss is divided by the number of counted targets in the batch
(``reduction="mean"``, or used as is with ``"sum"``), plus ``weight_decay * theta`` (coupled L2),
clipped to norm ``clip`` (Pascanu et al. 2013) and stepped by the optimizer (toolkit.train.optim)
with the learning rate of the schedule. The trace records, after each gradient, the loss on the
scale of the whole training set (:class:`_EpochLoss`), the norm of the gradient before clipping,
and keeps the best theta. A run that meets a non-finite loss, gradient or parameter ends
``diverged``; any other exception during training ends it ``error`` (bad data or
hyperparameters raise ValueError before training starts). The final theta is the last one
whose loss was evaluated (a stop comes before the update of that evaluation).

Epochwise BPTT, online BPTT (averages "shared" and "sum") and BPTT(k1, k2) on a plain Elman net
run in compiled chunks of updates between the Python checkpoints (:mod:`toolkit.train.chunk`,
:func:`_loop_full_chunked`, :func:`_loop_minibatch_chunked`, :func:`_loop_online_chunked`,
:func:`_loop_k1k2_chunked`), and so does full-batch epochwise BPTT on an LSTM or GRU net
(:mod:`toolkit.train.chunk_gated`, :func:`_loop_full_chunked_gated`), with the Python loop's
results bit for bit.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from toolkit import kernels
from toolkit.nets import Elman, check_k
from toolkit.params import Param
from toolkit.train import chunk
from toolkit.train.optim import (
    OPTIMIZERS,
    SCHEDULES,
    clip_by_norm,
    lr_at,
    make_optimizer,
    update,
)
from toolkit.train.registry import Method, register
from toolkit.train.trace import LOG_FACTOR, Budget, Trace


# ---------------------------------------------------------------------------------------
# hyperparameters, declared once (toolkit.params.Param): defaults, ranges, docs
# ---------------------------------------------------------------------------------------
def _pos(default, doc, **kw):
    return Param(default, "float", lo=0.0, lo_open=True, doc=doc, **kw)


def _unit(default, doc):  # [0, 1)
    return Param(default, "float", lo=0.0, hi=1.0, hi_open=True, doc=doc)


_COMMON = {
    "clip": _pos(
        None, "gradient norm clip (Pascanu et al. 2013); None: no clipping", allow_none=True
    ),
    "weight_decay": Param(0.0, "float", lo=0.0, doc="coupled L2: gradient += weight_decay * theta"),
    "schedule": Param("constant", "choice", choices=tuple(SCHEDULES), doc="learning-rate schedule"),
    "decay_steps": Param(
        None, "int", lo=1, allow_none=True, doc="updates per decay (step, cosine)"
    ),
    "gamma": Param(0.1, "float", lo=0.0, hi=1.0, lo_open=True, doc="step schedule factor"),
    "lr_min": Param(0.0, "float", lo=0.0, doc="cosine schedule floor (<= lr)"),
    "reduction": Param(
        "mean", "choice", choices=("mean", "sum"), doc="gradient per target or summed"
    ),
    "init_scale": _pos(None, "theta ~ U(-s, s); None: 1/sqrt(n_in + n_hidden)", allow_none=True),
}
_MOMENTUM = {
    "momentum": _unit(0.9, "heavy-ball coefficient"),
    "nesterov": Param(False, "bool", doc="Nesterov momentum"),
}
_ADAM = {
    "beta1": _unit(0.9, "Adam first-moment decay"),
    "beta2": _unit(0.999, "Adam second-moment decay"),
    "eps": _pos(1e-8, "Adam epsilon"),
}
_USED_BY = {"sgd": (), "momentum": tuple(_MOMENTUM), "adam": tuple(_ADAM)}
_SCHEDULE_KEYS = {
    "constant": (),
    "step": ("decay_steps", "gamma"),
    "cosine": ("decay_steps", "lr_min"),
}


def _check(optimizer: str | None):
    """Cross-parameter constraints of a BPTT method; drops the keys the chosen optimizer or
    schedule does not use (so they are not in the run key). ``optimizer=None``: the method
    has an ``optimizer`` hyperparameter."""

    def check(out: dict) -> list[tuple[str, str]]:
        opt = out.get("optimizer", optimizer)
        for name in (*_MOMENTUM, *_ADAM):
            if name in out and name not in _USED_BY[opt]:
                del out[name]
        for name in ("decay_steps", "gamma", "lr_min"):
            if name not in _SCHEDULE_KEYS[out["schedule"]]:
                del out[name]
        if out["schedule"] == "step" and out["decay_steps"] is None:
            return [("decay_steps", "expected an integer >= 1 for schedule='step', got None")]
        if out["schedule"] == "cosine" and out["lr_min"] > out["lr"]:
            return [
                (
                    "lr_min",
                    f"expected a number <= lr={out['lr']:g} for schedule='cosine', "
                    f"got {out['lr_min']!r}",
                )
            ]
        if "k1" in out and out["k2"] < out["k1"]:
            return [("k2", f"expected an integer >= k1={out['k1']}, got {out['k2']}")]
        return []

    return check


# ---------------------------------------------------------------------------------------
# what every trainer shares: data checks, the recorded loss, stopping, the update rule
# ---------------------------------------------------------------------------------------


def _data(net, data, hyper):
    """(x (B,T,I), y (B,T,O), mask (B,T)) as float64 C arrays, validated by the net and
    against the hyperparameters that depend on the data's sizes."""
    if isinstance(data, tuple | list):
        x, y, *rest = data
        mask = rest[0] if rest else None
    else:
        x, y, mask = data.x, data.y, getattr(data, "mask", None)
    x, y, mask, _ = net.check_data(x, y, mask)
    if not mask.sum() > 0:
        raise ValueError("data.mask: no target counts (all mask weights are 0)")
    B, T, _I = x.shape
    if (hyper.get("batch_size") or 1) > B:
        raise ValueError(
            f"batch_size: expected an int <= the number of sequences {B} (or None), "
            f"got {hyper['batch_size']}"
        )
    if "average" in hyper:  # online BPTT: windows of k steps must fit and end at a target
        k = hyper["k"]
        if k > T:
            raise ValueError(f"k: expected an int <= the sequence length T={T}, got {k}")
        if not mask[:, k - 1 :].sum() > 0:
            raise ValueError(f"k: no window of length k={k} ends at a counted target")
    return x, y, mask


class _EpochLoss:
    """The loss a stochastic trainer records, on the scale of the full training set: the mean
    loss per counted target over the most recent evaluations that cover ``n_total`` targets
    (about one epoch), times ``n_total``. With full-batch gradients it is the batch loss."""

    def __init__(self, n_total: float):
        self.n_total = float(n_total)
        self.buf = deque()  # (loss, counted targets) of the recent evaluations
        self.L = self.n = 0.0
        self.pushes = 0

    def __call__(self, L: float, n: float) -> float:
        self.buf.append((L, n))
        self.L, self.n, self.pushes = self.L + L, self.n + n, self.pushes + 1
        while self.n - self.buf[0][1] >= self.n_total:
            L0, n0 = self.buf.popleft()
            self.L, self.n = self.L - L0, self.n - n0
        if self.pushes >= len(self.buf):  # re-sum now and then: no drift from the running sums
            self.L = math.fsum(b[0] for b in self.buf)
            self.n = math.fsum(b[1] for b in self.buf)
            self.pushes = 0
        return self.L * (self.n_total / self.n)


class _Run:
    """Bookkeeping of one training run: optimizer, update count, recording and stopping."""

    def __init__(self, trace, budget, target_loss, solved, hyper, optimizer, n_total):
        self.trace, self.target_loss, self.solved = trace, target_loss, solved
        self.budget = Budget.from_dict(budget) if isinstance(budget, dict) else budget
        self.h = hyper
        self.opt = make_optimizer(
            optimizer, **{k: hyper[k] for k in _USED_BY[optimizer] if k in hyper}
        )
        self.schedule = dict(
            schedule=hyper["schedule"],
            decay_steps=hyper.get("decay_steps"),
            gamma=hyper.get("gamma", 0.1),
            lr_min=hyper.get("lr_min", 0.0),
        )
        if hyper["schedule"] == "cosine" and hyper["decay_steps"] is None:
            if self.budget.evals is None:
                raise ValueError(
                    "decay_steps: schedule='cosine' needs decay_steps (updates) "
                    "or a budget with an evals limit, got neither"
                )
            self.schedule["decay_steps"] = int(self.budget.evals)
        self.epoch_loss = _EpochLoss(n_total)
        self.u = 0  # updates taken
        self._checked = None  # the best theta last handed to solved()
        self._prev = self._gw = None  # update()'s workspace: theta before the step, gradient
        self._constant_lr = hyper["schedule"] == "constant"
        self._integer_counts = None

    def integer_counts(self, mask) -> bool:
        """:func:`_integer_counts` of the run's mask (the same array all run), asked once."""
        if self._integer_counts is None:
            self._integer_counts = _integer_counts(mask)
        return self._integer_counts

    @property
    def lr(self) -> float:
        if self._constant_lr:
            return self.h["lr"]
        return lr_at(self.u, self.h["lr"], **self.schedule)

    def gradient(self, g, n, theta):
        """The gradient the optimizer sees: reduced, L2-decayed (before clipping)."""
        if self.h["reduction"] == "mean":
            g = g / n
        if self.h["weight_decay"]:
            g = g + self.h["weight_decay"] * theta
        return g

    def evaluated(self, L, n, theta, grad_norm, recorded=None):
        """Record one gradient evaluation (cost already added); the outcome if the run ends.
        ``recorded``: the loss to record when the caller already pushed the finite L into the
        epoch loss (a compiled chunk, toolkit/train/chunk.py); None: pushed here."""
        tr = self.trace
        if recorded is None and math.isfinite(L):
            recorded = self.epoch_loss(L, n)
        if not (math.isfinite(L) and math.isfinite(grad_norm)):
            tr.record(L if recorded is None else recorded, theta, grad_norm)
            return "diverged", f"non-finite loss or gradient at evaluation {tr.evals}"
        logged = tr.record(recorded, theta, grad_norm)
        target = self.target_loss is not None and tr.best_loss <= self.target_loss
        spent = self.budget.spent_by(tr)
        if (
            self.solved is not None
            and (logged or target or spent)
            and tr.best_theta is not None
            and tr.best_theta is not self._checked
        ):
            self._checked = tr.best_theta
            if self.solved(tr.best_theta):
                return "solved", ""
        if target:
            return "target", ""
        if spent:
            return "budget", ""
        return None

    def update(self, theta, g, n, L, scale=None):
        """One whole update of 1-D theta (in place) from the raw gradient g of the summed loss
        L over n counted targets: g * scale (if given), :meth:`gradient`, clipping,
        :meth:`evaluated` and :meth:`step` -- one compiled call (optim.update). The step is
        taken before the evaluation is recorded (with the parameters from before it, kept in
        a workspace) and undone when the run ends there, so that the result is that of the
        sequence gradient, evaluated, step. The outcome if the run ends."""
        if self._prev is None or self._prev.shape != theta.shape:
            self._prev, self._gw = np.empty_like(theta), np.empty_like(theta)
        norm, finite = update(
            self.opt,
            theta,
            g,
            self._prev,
            self._gw,
            self.lr,
            n=n,
            mean=self.h["reduction"] == "mean",
            wd=self.h["weight_decay"],
            clip=self.h["clip"],
            scale=scale,
        )
        if end := self.evaluated(L, n, self._prev, norm):
            theta[:] = self._prev
            return end
        self.u += 1
        if not finite:
            return "diverged", f"non-finite parameters after update {self.u}"
        return None

    def step(self, theta, g):
        """One optimizer step on theta (in place), g already from :meth:`gradient` and
        clipped; the outcome if the parameters became non-finite."""
        self.opt.step(theta, g, self.lr)
        self.u += 1
        if not np.isfinite(theta).all():
            return "diverged", f"non-finite parameters after update {self.u}"
        return None


def _trainer(loop, params: dict, optimizer=None):
    """Method.train: set up, run ``loop`` and end the trace. ``loop(net, x, y, mask, theta, run,
    rng, **hyper)`` updates theta in place and returns (outcome, message). ``hyper`` is trusted
    (resolved by ``Method.validate``); keys not given take their declared defaults."""

    def train(
        net, data, *, rng, budget, trace, target_loss=None, solved=None, seed_seq=None, **hyper
    ):
        hyper = {**{k: p.default for k, p in params.items()}, **hyper}
        x, y, mask = _data(net, data, hyper)
        run = _Run(
            trace, budget, target_loss, solved, hyper, optimizer or hyper["optimizer"], mask.sum()
        )
        theta = net.init(rng, scale=hyper["init_scale"])
        if loop is _loop_minibatch and _chunked(net, run):
            _warm_chunks(trace)
        elif loop is _loop_online and _online_chunked(net, run, mask, hyper["average"]):
            _warm_chunks(trace, "online")
        elif loop is _loop_k1k2 and _k1k2_chunked(net, run, mask):
            _warm_chunks(trace, "k1k2")
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                outcome, message = loop(net, x, y, mask, theta, run, rng, **hyper)
        except Exception as exc:  # a failing run never takes a sweep down with it
            outcome, message = "error", f"{type(exc).__name__}: {exc}"
        return trace.finish(outcome, theta=theta, message=message)

    return train


# ---------------------------------------------------------------------------------------
# epochwise / truncated minibatch BPTT
# ---------------------------------------------------------------------------------------


def _loop_minibatch(net, x, y, mask, theta, run, rng, *, k, batch_size, shuffle, **_):
    """Epochs over minibatches of whole sequences; one BPTT(k) gradient and update each."""
    B, T, _I = x.shape
    bs = B if batch_size is None else batch_size
    if bs >= B and _chunked(net, run):
        return _loop_full_chunked(net, x, y, mask, theta, run, k)
    if bs >= B and _chunked_gated(net):
        _warm_chunks(run.trace, "gated")
        return _loop_full_chunked_gated(net, x, y, mask, theta, run, k)
    if bs < B and _chunked(net, run) and run.integer_counts(mask):
        return _loop_minibatch_chunked(net, x, y, mask, theta, run, rng, k, bs, shuffle)
    zeros = {}  # h0 per batch size: the kernels only read it
    full = None if bs < B else (x, y, mask, mask.sum())
    while True:  # epochs
        order = rng.permutation(B) if shuffle and bs < B else np.arange(B)
        if not full:  # the epoch's order gathered once: each minibatch is a contiguous slice
            xo, yo, mo = x[order], y[order], mask[order]
        for i in range(0, B, bs):
            if full:
                xb, yb, mb, n = full
            else:
                xb, yb, mb = xo[i : i + bs], yo[i : i + bs], mo[i : i + bs]
                n = mb.sum()
            if n == 0:
                continue
            b = xb.shape[0]
            if b not in zeros:
                zeros[b] = np.zeros((b, net.n_state))
            L, g = net.loss_and_grad(theta, xb, yb, mb, k=k, h0=zeros[b], check=False)
            run.trace.add_cost(evals=1, grad_steps=b * T)
            if end := run.update(theta, g, n, L):
                return end


#: the compiled chunks (toolkit.train.chunk) serve the configurations they cover; False forces
#: the Python loop everywhere (the tests compare the two)
_CHUNKED = True
#: chunk calls and the updates they took in this process (the tests read them)
CHUNK_STATS = {"calls": 0, "updates": 0}
_WALL_CHUNK = 32  # updates per chunk when a wall_s budget is set (the clock is read in Python)
_COSINE_CHUNK = 256  # updates per chunk with a cosine schedule (its rates computed in Python)
_POINTS = 64  # trace points a chunk may log itself before handing back (chunk._log_point)


def _chunked(net, run) -> bool:
    """Whether the compiled chunks cover this run's net: a plain Elman cell (fixed parameters,
    input windows and every activation and output kind included; subclasses, which may
    override its methods, and other cells keep the Python loop). Minibatches also need
    integer mask weights (:func:`_integer_counts`)."""
    return _CHUNKED and type(net) is Elman


def _chunked_gated(net) -> bool:
    """Whether the gated full-batch chunk (:mod:`toolkit.train.chunk_gated`) covers this net:
    exactly an LSTM or a GRU (subclasses keep the Python loop, as Elman's do). Their minibatches
    keep the Python loop."""
    from toolkit.gated import GRU, LSTM

    return _CHUNKED and type(net) in (LSTM, GRU)


def _opt_args(opt, theta):
    """The optimizer's constant arguments of optim._update (kind, mu, nesterov, m, v, b1,
    1-b1, b2, 1-b2, eps) and its step count t, the state allocated as its ``state`` would."""
    if opt.kind == 2:
        if opt.m is None:
            opt.m, opt.v = np.zeros_like(theta), np.zeros_like(theta)
        b1, b2 = opt.beta1, opt.beta2
        return (2, 0.0, False, opt.m, opt.v, b1, 1.0 - b1, b2, 1.0 - b2, opt.eps), opt.t
    if opt.kind == 1:
        if opt.v is None:
            opt.v = np.zeros_like(theta)
        e = np.zeros(0)
        return (1, opt.momentum, opt.nesterov, e, opt.v, 0.0, 0.0, 0.0, 0.0, 0.0), 0
    e = np.zeros(0)
    return (0, 0.0, False, e, e, 0.0, 0.0, 0.0, 0.0, 0.0), 0


def _integer_counts(mask) -> bool:
    """Whether every minibatch's count of targets is exact whatever the order of its sum (the
    minibatch chunk sums them in its own order): integer weights, small totals."""
    return bool(np.array_equal(mask, np.round(mask)) and mask.sum() < 2.0**52)


class _Chunks:
    """What the compiled chunks of one run share: the net's arrays in the kernels' layout, the
    optimizer's arguments, the stop limits, the learning rates of the next chunk, and the
    bookkeeping after a chunk (counters, best theta, optimizer steps, the last evaluation
    recorded as _Run.update records every evaluation)."""

    def __init__(self, net, x, y, mask, theta, run, bs):
        T = x.shape[1]
        self.run, self.tr, h, b = run, run.trace, run.h, run.budget
        self.sizes = net._sizes()
        self.xw = np.ascontiguousarray(net._windowed(x))
        self.y, self.mask = np.ascontiguousarray(y), np.ascontiguousarray(mask)
        I, H, O = self.sizes[:3]
        self.work = np.empty(kernels.grad_work_size(T, bs, I, H, O))
        self.base = net._base.copy()
        self.free_idx = np.ascontiguousarray(net._free_idx, dtype=np.int64)
        self.all_free = net._all_free
        if run._prev is None or run._prev.shape != theta.shape:
            run._prev, run._gw = np.empty_like(theta), np.empty_like(theta)
        self.prev, self.gw = run._prev, run._gw
        self.opt_args, _ = _opt_args(run.opt, theta)
        self.kind = self.opt_args[0]
        self.reduce = (
            h["reduction"] == "mean",
            float(h["weight_decay"]),
            -1.0 if h["clip"] is None else float(h["clip"]),
        )
        self.cap = _WALL_CHUNK if b.wall_s is not None else 1 << 40
        self.max_evals = math.inf if b.evals is None else float(b.evals)
        self.max_fwd = math.inf if b.fwd_equiv is None else float(b.fwd_equiv)
        self.has_target = run.target_loss is not None
        self.target = float(run.target_loss) if self.has_target else 0.0
        self.best_buf = np.empty_like(theta)
        self.lrs = np.array([float(h["lr"])])
        # the trace points the chunk logs itself (no solved check due there): its rows
        self.pts_i = np.zeros((_POINTS, 3), dtype=np.int64)  # evals, fwd_steps, grad_steps
        self.pts_f = np.zeros((_POINTS, 3))  # loss, best_loss, grad_norm
        self.has_solved = run.solved is not None
        self._t_call, self._evals_call = 0.0, 0

    def rates(self):
        """(updates the next chunk may take, their learning rates: one, or one per update)."""
        run, sched = self.run, self.run.h["schedule"]
        n_max = self.cap
        if sched == "step":  # one rate until the next decay
            d = run.schedule["decay_steps"]
            n_max = min(n_max, d - run.u % d)
            self.lrs = np.array([float(run.lr)])
        elif sched == "cosine":
            n_max = min(n_max, _COSINE_CHUNK)
            lr = run.h["lr"]
            self.lrs = np.array([float(lr_at(run.u + i, lr, **run.schedule)) for i in range(n_max)])
        return n_max, self.lrs

    def limits(self):
        """The trace's counters, the stop tests' arguments and the trace point rows the
        chunks take (called right before the chunk: the time and evals it starts at)."""
        tr, run = self.tr, self.run
        unchecked = tr.best_theta is not None and tr.best_theta is not run._checked
        self._evals_call = tr.evals
        self._t_call = time.perf_counter()
        return (
            tr.evals, tr.fwd_steps, tr.grad_steps, float(tr.grad_ratio), float(tr._next_log),
            self.max_evals, self.max_fwd, self.has_target, self.target, float(tr.best_loss),
            self.best_buf, self.has_solved, unchecked, self.pts_i, self.pts_f, LOG_FACTOR,
        )  # fmt: skip

    def after(self, done, evals, gsteps, best_loss, improved, npts, next_log):
        """Write a chunk's counters and the trace points it logged back (its last evaluation,
        if pending, not yet recorded)."""
        tr, run = self.tr, self.run
        if npts:
            tr.add_points(
                self.pts_i[:npts], self.pts_f[:npts], self._t_call, time.perf_counter(),
                self._evals_call, int(evals),
            )  # fmt: skip
        tr._next_log = next_log
        CHUNK_STATS["calls"] += 1
        CHUNK_STATS["updates"] += done
        tr.evals, tr.grad_steps = int(evals), int(gsteps)
        if improved:  # a new array, as Trace.record makes one (solved checks go by identity)
            tr.best_loss, tr.best_theta = float(best_loss), self.best_buf.copy()
        if self.kind == 2:
            run.opt.t += done
        run.u += done

    def whole_batch_loss(self, L, n):
        """The loss the epoch loss records for a full batch's L (n targets, all of them): L
        itself (after one push of n = n_total its one entry is re-summed, fsum([L]) * 1.0),
        so that its deque need not be kept; None (pushed as usual) unless L > 0 is finite."""
        if n == self.run.epoch_loss.n_total and 0.0 < L < math.inf:
            return float(L)
        return None

    def last(self, theta, L, n, norm, finite, recorded=None):
        """Record the chunk's last evaluation (its step taken, the parameters before it in
        prev) as _Run.update does: the outcome if the run ends. ``recorded``: its loss as
        the epoch loss gives it, when the chunk pushed it there (None: pushed here)."""
        run = self.run
        run.u -= 1
        if end := run.evaluated(float(L), n, self.prev, float(norm), recorded):
            theta[:] = self.prev
            return end
        run.u += 1
        if not finite:
            return "diverged", f"non-finite parameters after update {run.u}"
        return None


def _loop_full_chunked(net, x, y, mask, theta, run, k):
    """Full-batch epochwise BPTT(k) in compiled chunks (toolkit.train.chunk.full_batch): the
    chunk takes the updates at which the Python loop only counts; the evaluation that ends
    it is recorded here by _Run.evaluated, as the Python loop records every evaluation, so
    the results are the Python loop's bit for bit."""
    B, T, _I = x.shape
    c = _Chunks(net, x, y, mask, theta, run, B)
    h0 = np.zeros((B, net.n_state))
    n = float(mask.sum())
    kind, mu, nesterov, m, v, b1, ob1, b2, ob2, eps = c.opt_args
    while True:
        n_max, lrs = c.rates()
        t0 = run.opt.t if kind == 2 else 0
        done, L, norm, finite, evals, gsteps, best_loss, improved, *pts = chunk.full_batch(
            theta, c.xw, c.y, c.mask, h0, *c.sizes, check_k(k), c.work, c.base, c.free_idx,
            c.all_free, n, *c.reduce, kind, lrs, mu, nesterov, m, v, b1, ob1, b2, ob2, eps,
            t0, c.prev, c.gw, n_max, B * T, *c.limits(),
        )  # fmt: skip
        c.after(done, evals, gsteps, best_loss, improved, *pts)
        if end := c.last(theta, L, n, norm, finite, c.whole_batch_loss(L, n)):
            return end


def _loop_full_chunked_gated(net, x, y, mask, theta, run, k):
    """Full-batch epochwise BPTT(k) of an LSTM or GRU in compiled chunks
    (toolkit.train.chunk_gated.full_batch_gated), recorded as in _loop_full_chunked, so the
    results are the Python loop's bit for bit. Gated nets have no fixed parameters and no input
    windows: _Chunks sees the net through a view whose theta is the whole parameter vector and
    whose input window is the input itself (its Elman work array and base theta go unused)."""
    from types import SimpleNamespace

    from toolkit.train import chunk_gated

    B, T, _I = x.shape
    view = SimpleNamespace(
        _sizes=net._sizes, _windowed=lambda a: a, _base=np.empty(0), n_hidden=0,
        _free_idx=np.empty(0, dtype=np.int64), _all_free=True,
    )  # fmt: skip
    c = _Chunks(view, x, y, mask, theta, run, B)
    h0 = np.zeros((B, net.n_state))
    n = float(mask.sum())
    kind, mu, nesterov, m, v, b1, ob1, b2, ob2, eps = c.opt_args
    while True:
        n_max, lrs = c.rates()
        t0 = run.opt.t if kind == 2 else 0
        out = chunk_gated.full_batch_gated(
            net._CODE, theta, c.xw, c.y, c.mask, h0, *c.sizes, check_k(k), n, *c.reduce, kind,
            lrs, mu, nesterov, m, v, b1, ob1, b2, ob2, eps, t0, c.prev, c.gw, n_max, B * T,
            *c.limits(),
        )  # fmt: skip
        done, L, norm, finite, evals, gsteps, best_loss, improved = out[:8]
        c.after(done, evals, gsteps, best_loss, improved, *out[8:])
        if end := c.last(theta, L, n, norm, finite, c.whole_batch_loss(L, n)):
            return end


_CHUNKS_WARM: set[str] = set()  # the kinds of chunk compiled (or loaded) in this process


def _warm_chunks(trace, kind: str = "epochwise") -> None:
    """Compile (or load from Numba's cache) the chunk functions of one kind once per process
    ("epochwise": full_batch and minibatch; "online"; "k1k2"; "gated": chunk_gated's
    full_batch_gated, one signature for LSTM and GRU), on a tiny run of their single
    signature, before the first run that takes them; the seconds are added to the trace's
    compile time and kept out of its wall clock (as net.warmup's)."""
    if kind in _CHUNKS_WARM:
        return
    _CHUNKS_WARM.add(kind)
    t0 = time.perf_counter()
    net, x, m = Elman(1, 2, 1), np.zeros((2, 2, 1)), np.ones((2, 2))
    hyper = {k: p.default for k, p in _COMMON.items()} | {"lr": 0.1}
    for bs in (None, 1) if kind == "epochwise" else (1,):
        run = _Run(Trace("warmup"), Budget(evals=2), None, None, hyper, "adam", m.sum())
        theta = np.zeros(net.n_params)
        rng = np.random.default_rng(0)
        if kind == "epochwise":
            _loop_minibatch(net, x, x, m, theta, run, rng, k=None, batch_size=bs, shuffle=True)
        elif kind == "k1k2":
            _loop_k1k2(net, x, x, m, theta, run, rng, k1=1, k2=2)
        elif kind == "gated":  # full batch, both cells (the same signature)
            from toolkit.gated import GRU, LSTM

            for g in (LSTM(1, 2, 1), GRU(1, 2, 1)):
                run = _Run(Trace("warmup"), Budget(evals=2), None, None, hyper, "adam", m.sum())
                _loop_minibatch(g, x, x, m, np.zeros(g.n_params), run, rng, k=None,
                                batch_size=None, shuffle=True)  # fmt: skip
        else:
            _loop_online(net, x, x, m, theta, run, rng, k=1, average="shared", batch_size=bs,
                         shuffle=True)  # fmt: skip
    dt = time.perf_counter() - t0
    trace.compile_s += dt
    if trace._t0 is not None:
        trace._t0 += dt


_PERM_BLOCK = 64  # epochs' orders drawn ahead at most (the run's generator draws nothing else)


def _first_block(B: int) -> int:
    """Epochs whose orders the first ``_orders`` call draws: as many as fit in about 4,096
    entries (at most _PERM_BLOCK), so that short runs on small data make one call, not the
    five a block of 1 doubling to 16 took; drawing ahead changes no draw."""
    return max(1, min(_PERM_BLOCK, 4096 // max(1, B)))


def _orders(rng, B, block, shuffle):
    """The next ``block`` epochs' orders, rng.permutation(B) each as the Python loop draws them
    (or 0..B-1 without shuffling), and the next block's size (doubling up to _PERM_BLOCK).

    ``rng.permuted`` of the rows 0..B-1 along axis 1 shuffles row after row with the same
    Fisher-Yates draws as one ``rng.permutation(B)`` per row, so it gives the same orders and
    leaves the generator in the same state (tests/test_train_chunk.py checks both), in one call
    instead of ``block``: at B = 10 and 2 updates per epoch the per-epoch call was about a tenth
    of a minibatch run."""
    perms = np.tile(np.arange(B), (block, 1))
    if shuffle:
        perms = rng.permuted(perms, axis=1, out=perms)
    return perms, min(2 * block, _PERM_BLOCK)


def _loop_minibatch_chunked(net, x, y, mask, theta, run, rng, k, bs, shuffle):
    """Minibatch BPTT(k) in compiled chunks (toolkit.train.chunk.minibatch), for masks of
    integer weights. The epochs' orders are drawn here, rng.permutation(B) per epoch as the
    Python loop draws them, a few epochs ahead (the generator draws nothing else in a run);
    the chunk gathers each minibatch, keeps the epoch loss in a ring (:class:`_RingEpochLoss`,
    read and written in place, as the online chunk does) and hands back the evaluation that
    ends it, recorded here as in _loop_full_chunked."""
    B, T, _I = x.shape
    c = _Chunks(net, x, y, mask, theta, run, bs)
    kind, mu, nesterov, m, v, b1, ob1, b2, ob2, eps = c.opt_args
    # room for more than _EpochLoss ever holds (about two epochs of minibatches)
    el = run.epoch_loss = _RingEpochLoss(run.epoch_loss, 4 * (-(-B // bs)) + 16)
    perms, ep, i, block = np.zeros((0, B), dtype=np.int64), 0, 0, _first_block(B)
    while True:
        if ep >= perms.shape[0]:
            perms, block = _orders(rng, B, block, shuffle)
            ep, i = 0, 0
        n_max, lrs = c.rates()
        t0 = run.opt.t if kind == 2 else 0
        out = chunk.minibatch(
            theta, c.xw, c.y, c.mask, *c.sizes, check_k(k), c.work, c.base, c.free_idx,
            c.all_free, perms, ep, i, bs, *c.reduce, kind, lrs, mu, nesterov, m, v, b1, ob1,
            b2, ob2, eps, t0, c.prev, c.gw, n_max, *c.limits(), el.ringL, el.ringN, el.head,
            el.count, float(el.L), float(el.n), el.pushes, el.n_total,
        )  # fmt: skip
        done, pending, L, n, norm, finite, evals, gsteps, best_loss, improved = out[:10]
        ep, i, el.head, el.count, el.L, el.n, el.pushes, pushed, e, npts, next_log = out[10:]
        c.after(done, evals, gsteps, best_loss, improved, npts, next_log)
        if pending and (end := c.last(theta, L, n, norm, finite, e if pushed else None)):
            return end


# ---------------------------------------------------------------------------------------
# online BPTT: the classic algorithm, unfold depth k
# ---------------------------------------------------------------------------------------


_DACT = {  # act'(pre-activation) from h = act(pre-activation)
    "tanh": lambda h: 1.0 - h * h,
    "sigmoid": lambda h: h * (1.0 - h),
    "relu": lambda h: (h > 0.0).astype(np.float64),
}


class _Copies:
    """The literal version of the unfolded network: k copies of f's weights (W_xh, W_hh, b_h),
    one of g's (W_hy, b_y). :meth:`grads` returns each copy's gradient of one window's end
    error, by backpropagation written out in NumPy."""

    def __init__(self, net, k):
        if getattr(net, "cell", "elman") != "elman":
            raise ValueError(
                f"average: 'copies' is written out for Elman nets only, not {net.cell!r}; "
                "use 'shared' (the same trajectory for SGD and momentum)"
            )
        self.net, self.dact = net, _DACT[net.hidden]
        self.G = np.zeros((k, net.n_params))  # row i: copy i's gradient, as a full theta
        self.rows = [net.unpack(self.G[i]) for i in range(k)]  # views into the rows

    def grads(self, theta, x_ctx, a, y_end, m_end):
        """x_ctx (b,H) context (held constant), a (b,k,I) inputs, y_end (b,O), m_end (b,) the
        end target and its weight -> (L, G (k, n_params)). Row i of G holds the gradient of
        f's weights as used by copy i (unfolded step i) and the gradient of g's weights, the
        same in every row. With each output's matching loss (linear/mse, sigmoid/bce,
        softmax/ce) the error at the output pre-activation z is yhat - y (Bishop 1995, 6.9)."""
        net, p = self.net, self.net.unpack(theta)
        h, _ = net.forward(theta, a, h0=x_ctx, check=False)  # (b,k,H)
        z = h[:, -1] @ p["W_hy"].T + p["b_y"]  # (b,O)
        if net.output == "linear":
            l, dz = 0.5 * np.sum((z - y_end) ** 2, axis=1), z - y_end
        elif net.output == "sigmoid":
            l = np.sum(np.logaddexp(0.0, z) - y_end * z, axis=1)
            dz = 1.0 / (1.0 + np.exp(-z)) - y_end
        else:  # softmax
            lse = np.logaddexp.reduce(z, axis=1, keepdims=True)
            sy = y_end.sum(axis=1, keepdims=True)
            l, dz = np.sum(y_end * (lse - z), axis=1), np.exp(z - lse) * sy - y_end
        dz = dz * m_end[:, None]
        dh = dz @ p["W_hy"]  # dL/dh at the window's last step
        for i in range(a.shape[1] - 1, -1, -1):  # copy i of f, from the last one back
            delta = dh * self.dact(h[:, i])  # dL/d(pre-activation) of copy i
            r = self.rows[i]
            r["W_xh"][...] = delta.T @ a[:, i]
            r["W_hh"][...] = delta.T @ (h[:, i - 1] if i > 0 else x_ctx)
            r["b_h"][...] = delta.sum(axis=0)
            r["W_hy"][...] = dz.T @ h[:, -1]
            r["b_y"][...] = dz.sum(axis=0)
            dh = delta @ p["W_hh"]
        return float(np.sum(m_end * l)), self.G

    @staticmethod
    def clip(G, clip):
        """Clip the copies' gradients by the norm of their mean, the gradient that shared
        weights would take (so clipping keeps copies and shared weights equivalent)."""
        _, norm = clip_by_norm(G.mean(axis=0), None)
        return (G * (clip / norm) if clip is not None and norm > clip else G), norm

    @staticmethod
    def step(run, theta, G):
        """Update each copy by its own gradient (and its own optimizer state), then average
        the copies so that they are identical again; theta is updated in place."""
        thetas = np.repeat(theta[None, :], G.shape[0], axis=0)
        end = run.step(thetas, G)
        theta[:] = thetas.mean(axis=0)
        return end


def _online_chunked(net, run, mask, average) -> bool:
    """Whether the compiled chunk (toolkit.train.chunk.online) serves this online run: a plain
    Elman cell (:func:`_chunked`) without input windows (with lags, the Python loop's
    one-step context advance sees no lags, and the chunk does not copy that), the averages
    "shared" and "sum" ("copies" keeps :class:`_Copies`), and masks of integer weights
    (:func:`_integer_counts`: each window's count of targets is summed in the chunk's
    order)."""
    return (
        average != "copies" and _chunked(net, run) and net.window == 1 and run.integer_counts(mask)
    )


def _loop_online(net, x, y, mask, theta, run, rng, *, k, average, batch_size, shuffle, **_):
    """The classic online algorithm; ``batch_size`` sequences run side by side, each with its
    own context (batch_size=1 is the textbook algorithm). Runs in compiled chunks
    (:func:`_loop_online_chunked`) where :func:`_online_chunked` says so."""
    B, T, _I = x.shape
    f_part = net.pack(
        {n: np.full(s, n not in ("W_hy", "b_y"), dtype=float) for n, s in net.shapes.items()}
    ).astype(bool)  # f's weights in theta: all but the readout g's
    scale = np.where(f_part, 1.0 / k, 1.0)  # shared: mean of the k copies' gradients of f
    shared = scale if average == "shared" else None
    if _online_chunked(net, run, mask, average):
        return _loop_online_chunked(net, x, y, mask, theta, run, rng, k, batch_size, shuffle,
                                    shared)  # fmt: skip
    copies = _Copies(net, k) if average == "copies" else None
    # the context is advanced lazily: the steps between two updates use the same theta, so
    # they run as one call when the cell's states over a block are its steps one by one
    # (Elman without input lags: one kernel, each step computed alone); the context after a
    # sequence's last window is never used, and its steps are counted, not computed
    block = getattr(net, "cell", "elman") == "elman" and getattr(net, "window", 1) == 1
    while True:  # epochs
        order = rng.permutation(B) if shuffle else np.arange(B)
        for i in range(0, B, batch_size):
            idx = order[i : i + batch_size]
            xs, ys, ms = x[idx], y[idx], mask[idx]
            b = len(idx)
            x_ctx = np.zeros((b, net.n_state))  # the context x starts at the zero vector
            t_ctx = 0  # x_ctx is the context before step t_ctx
            mw = np.zeros((b, k))  # the window's mask: its end target only
            counts = (ms[:, k - 1 :] > 0).any(axis=0)  # windows that end at a counted target
            fwd = 0  # forward steps not yet added to the trace
            for t in range(T - k + 1):
                if counts[t]:  # the mask is non-negative: m_end.sum() > 0
                    m_end = ms[:, t + k - 1]  # the window's end target y[t+k-1], its weight
                    n = m_end.sum()
                    if t > t_ctx:  # x = f(x, a[s]) for s = t_ctx..t-1, with the current theta
                        if block and t - t_ctx > 1:
                            hs = net.states(theta, xs[:, t_ctx:t], h0=x_ctx, check=False)
                            x_ctx = hs[:, -1]
                        else:
                            for s in range(t_ctx, t):
                                x_ctx = net.step(theta, x_ctx, xs[:, s], check=False)
                        t_ctx = t
                    run.trace.add_cost(fwd_steps=fwd)
                    fwd = 0
                    a = np.ascontiguousarray(xs[:, t : t + k])  # inputs a[t..t+k-1]
                    if copies:
                        L, g = copies.grads(theta, x_ctx, a, ys[:, t + k - 1], m_end)
                        g, grad_norm = copies.clip(run.gradient(g, n, theta), run.h["clip"])
                        run.trace.add_cost(evals=1, grad_steps=b * k)
                        if end := run.evaluated(L, n, theta, grad_norm):
                            return end
                        if end := copies.step(run, theta, g):
                            return end
                    else:
                        mw[:, -1] = m_end
                        yw = np.ascontiguousarray(ys[:, t : t + k])
                        L, g = net.loss_and_grad(theta, a, yw, mw, h0=x_ctx, check=False)
                        run.trace.add_cost(evals=1, grad_steps=b * k)
                        if end := run.update(theta, g, n, L, scale=shared):
                            return end
                fwd += b  # x = f(x, a[t]) (computed when the next window needs it)
            run.trace.add_cost(fwd_steps=fwd)


class _RingEpochLoss:
    """:class:`_EpochLoss` with its deque kept as a ring of two arrays (``count`` entries from
    ``head``), the form in which the online chunk reads and writes it in place: the same
    arithmetic in the same order (math.fsum over the same entries), hence the same bits,
    without converting between a deque and arrays at every chunk."""

    def __init__(self, el: _EpochLoss, capacity: int):
        self.n_total = el.n_total
        self.count = len(el.buf)
        C = max(int(capacity), 2 * self.count + 16)
        self.ringL, self.ringN = np.zeros(C), np.zeros(C)
        for j, (Lj, nj) in enumerate(el.buf):
            self.ringL[j], self.ringN[j] = Lj, nj
        self.head, self.L, self.n, self.pushes = 0, el.L, el.n, el.pushes

    def _entries(self, ring):
        """The ``count`` entries from ``head``, in order (a view when they do not wrap)."""
        end = self.head + self.count
        if end <= ring.shape[0]:
            return ring[self.head : end]
        return np.concatenate((ring[self.head :], ring[: end - ring.shape[0]]))

    def __call__(self, L: float, n: float) -> float:
        ringL, ringN = self.ringL, self.ringN
        if self.count + 1 >= ringL.shape[0]:  # full: twice the room, the entries from 0
            C = 2 * ringL.shape[0]
            Ls, ns = self._entries(ringL), self._entries(ringN)
            self.ringL, self.ringN = ringL, ringN = np.zeros(C), np.zeros(C)
            ringL[: self.count], ringN[: self.count], self.head = Ls, ns, 0
        C = ringL.shape[0]
        q = (self.head + self.count) % C
        ringL[q], ringN[q] = L, n
        self.count += 1
        self.L, self.n, self.pushes = self.L + L, self.n + n, self.pushes + 1
        while self.n - ringN[self.head] >= self.n_total:
            self.L, self.n = self.L - ringL[self.head], self.n - ringN[self.head]
            self.head = (self.head + 1) % C
            self.count -= 1
        if self.pushes >= self.count:  # re-sum now and then, as _EpochLoss
            self.L = math.fsum(self._entries(ringL).tolist())
            self.n = math.fsum(self._entries(ringN).tolist())
            self.pushes = 0
        return self.L * (self.n_total / self.n)


def _loop_online_chunked(net, x, y, mask, theta, run, rng, k, bs, shuffle, shared):
    """Online BPTT in compiled chunks (toolkit.train.chunk.online). The epochs' orders are
    drawn here as in _loop_minibatch_chunked (rng.permutation(B) per epoch when shuffling,
    as the Python loop draws them, a few epochs ahead); the loop's position within an epoch
    (minibatch, window, lazily advanced context, forward steps not yet counted) lives in
    the chunk's arguments and results between calls; the evaluation that ends a chunk is
    recorded here as in _loop_full_chunked."""
    B, T, _I = x.shape
    tr = run.trace
    c = _Chunks(net, x, y, mask, theta, run, bs)
    kind, mu, nesterov, m, v, b1, ob1, b2, ob2, eps = c.opt_args
    use_scale = shared is not None
    scale = np.ascontiguousarray(shared, dtype=np.float64) if use_scale else np.zeros(0)
    # the epoch loss holds at most about 2 n_total evaluations (each counts >= 1 target)
    n_total = run.epoch_loss.n_total
    el = run.epoch_loss = _RingEpochLoss(run.epoch_loss, min(2.0 * n_total, 1 << 16) + 16)
    ctx = np.zeros(bs * net.n_state)  # the minibatch's context, carried between chunks
    perms, ep, i, block = np.zeros((0, B), dtype=np.int64), 0, 0, _first_block(B)
    t = t_ctx = fwd = 0
    while True:
        if ep >= perms.shape[0]:
            perms, block = _orders(rng, B, block, shuffle)
            ep, i = 0, 0
        n_max, lrs = c.rates()
        t0 = run.opt.t if kind == 2 else 0
        out = chunk.online(
            theta, c.xw, c.y, c.mask, *c.sizes, c.work, c.base, c.free_idx, c.all_free,
            perms, ep, i, t, t_ctx, fwd, ctx, bs, k, scale, use_scale, *c.reduce, kind, lrs,
            mu, nesterov, m, v, b1, ob1, b2, ob2, eps, t0, c.prev, c.gw, n_max, *c.limits(),
            el.ringL, el.ringN, el.head, el.count, float(el.L), float(el.n), el.pushes, n_total,
        )  # fmt: skip
        done, pending, L, n, norm, finite, evals, fwd_steps, gsteps, best_loss, improved = out[:11]
        ep, i, t, t_ctx, fwd, el.head, el.count, el.L, el.n, el.pushes = out[11:21]
        pushed, e, npts, next_log = out[21:]
        tr.fwd_steps = int(fwd_steps)
        c.after(done, evals, gsteps, best_loss, improved, npts, next_log)
        if pending and (end := c.last(theta, L, n, norm, finite, e if pushed else None)):
            return end


# ---------------------------------------------------------------------------------------
# BPTT(k1, k2) on streams (Williams & Peng 1990, BPTT(h; h') with h = k2, h' = k1)
# ---------------------------------------------------------------------------------------


def _k1k2_chunked(net, run, mask) -> bool:
    """Whether the compiled chunk (toolkit.train.chunk.k1k2) serves this BPTT(k1, k2) run: a
    plain Elman cell (:func:`_chunked`) without input windows (net.states windows each block
    on its own, which the chunk does not copy) and masks of integer weights
    (:func:`_integer_counts`)."""
    return _chunked(net, run) and net.window == 1 and run.integer_counts(mask)


def _loop_k1k2(net, x, y, mask, theta, run, rng, *, k1, k2, **_):
    """Every k1 steps of the B streams (run forward with the current weights, state carried),
    backpropagate the errors of those k1 steps through the last k2 steps (the window's states
    are recomputed from the stored state k2 steps back, which is held constant) and update.
    Each epoch starts the streams from the zero state. Runs in compiled chunks
    (:func:`_loop_k1k2_chunked`) where :func:`_k1k2_chunked` says so."""
    B, T, _I = x.shape
    if _k1k2_chunked(net, run, mask):
        return _loop_k1k2_chunked(net, x, y, mask, theta, run, k1, k2)
    while True:  # epochs
        hist = np.zeros((B, T + 1, net.n_state))  # hist[:, s] = state before step s
        for t0 in range(0, T, k1):
            t1 = min(t0 + k1, T)  # this block: steps t0..t1-1
            hist[:, t0 + 1 : t1 + 1] = net.states(theta, x[:, t0:t1], h0=hist[:, t0], check=False)
            run.trace.add_cost(fwd_steps=B * (t1 - t0))
            s = max(0, t1 - k2)  # the window: steps s..t1-1, errors of steps t0..t1-1 only
            mw = np.zeros((B, t1 - s))
            mw[:, t0 - s :] = mask[:, t0:t1]
            n = mw.sum()
            if n == 0:
                continue
            xw, yw, h0 = (np.ascontiguousarray(v) for v in (x[:, s:t1], y[:, s:t1], hist[:, s]))
            L, g = net.loss_and_grad(theta, xw, yw, mw, h0=h0, check=False)
            run.trace.add_cost(evals=1, grad_steps=B * (t1 - s))
            if end := run.update(theta, g, n, L):
                return end


def _loop_k1k2_chunked(net, x, y, mask, theta, run, k1, k2):
    """BPTT(k1, k2) in compiled chunks (toolkit.train.chunk.k1k2): the streams' states of the
    epoch (hist) and the next block live in the chunk's arguments and results between
    calls, the epoch loss in a ring (:class:`_RingEpochLoss`); the evaluation that ends a
    chunk is recorded here as in _loop_full_chunked."""
    B, T, _I = x.shape
    tr = run.trace
    c = _Chunks(net, x, y, mask, theta, run, B)
    kind, mu, nesterov, m, v, b1, ob1, b2, ob2, eps = c.opt_args
    n_total = run.epoch_loss.n_total
    el = run.epoch_loss = _RingEpochLoss(run.epoch_loss, min(2.0 * n_total, 1 << 16) + 16)
    hist = np.zeros((B, T + 1, net.n_state))  # hist[:, s] = state before step s
    p = 0
    while True:
        n_max, lrs = c.rates()
        t0 = run.opt.t if kind == 2 else 0
        out = chunk.k1k2(
            theta, c.xw, c.y, c.mask, *c.sizes, c.work, c.base, c.free_idx, c.all_free,
            hist, p, k1, k2, *c.reduce, kind, lrs, mu, nesterov, m, v, b1, ob1, b2, ob2, eps,
            t0, c.prev, c.gw, n_max, *c.limits(),
            el.ringL, el.ringN, el.head, el.count, float(el.L), float(el.n), el.pushes, n_total,
        )  # fmt: skip
        done, pending, L, n, norm, finite, evals, fwd_steps, gsteps, best_loss, improved = out[:11]
        p, el.head, el.count, el.L, el.n, el.pushes, pushed, e, npts, next_log = out[11:]
        tr.fwd_steps = int(fwd_steps)
        c.after(done, evals, gsteps, best_loss, improved, npts, next_log)
        if pending and (end := c.last(theta, L, n, norm, finite, e if pushed else None)):
            return end


# ---------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------

_EPOCHWISE = {
    "k": Param(None, "int", lo=1, allow_none=True, doc="unfold depth; None: full BPTT"),
    "batch_size": Param(
        None, "int", lo=1, allow_none=True, doc="sequences per gradient; None: all"
    ),
    "shuffle": Param(True, "bool", doc="reshuffle the sequences every epoch"),
}
_SELECTABLE = {
    "optimizer": Param("sgd", "choice", choices=tuple(OPTIMIZERS), doc="the update rule"),
    **_MOMENTUM,
    **_ADAM,
}


def _method(name, loop, params, optimizer=None, doc="", *, style):
    register(
        Method(
            name=name,
            family="gradient",
            params=params,
            check=_check(optimizer),
            train=_trainer(loop, params, optimizer),
            doc=doc,
            **style,
        )
    )


_method(
    "bptt_sgd",
    _loop_minibatch,
    {"lr": _pos(0.1, "learning rate"), **_EPOCHWISE, **_COMMON},
    "sgd",
    "Epochwise/minibatch BPTT(k), plain gradient descent.",
    style=dict(label="BPTT (SGD)", color="#56B4E9", marker="v", order=1),  # sky blue
)
_method(
    "bptt_momentum",
    _loop_minibatch,
    {"lr": _pos(0.01, "learning rate"), **_MOMENTUM, **_EPOCHWISE, **_COMMON},
    "momentum",
    "Epochwise/minibatch BPTT(k), heavy-ball or Nesterov momentum.",
    style=dict(label="BPTT (momentum)", color="#009E73", marker="^", order=2),  # bluish green
)
_method(
    "bptt_adam",
    _loop_minibatch,
    {"lr": _pos(0.001, "learning rate"), **_ADAM, **_EPOCHWISE, **_COMMON},
    "adam",
    "Epochwise/minibatch BPTT(k), Adam (Kingma & Ba 2015).",
    style=dict(label="BPTT (Adam)", color="#0072B2", marker="o", order=0),  # blue
)
_method(
    "bptt_online",
    _loop_online,
    {
        "lr": _pos(0.1, "learning rate"),
        "k": Param(4, "int", lo=1, doc="unfold depth (window length)"),
        "average": Param(
            "shared", "choice", choices=("shared", "copies", "sum"), doc="how f's copies combine"
        ),
        "batch_size": Param(1, "int", lo=1, doc="sequences per update step"),
        "shuffle": Param(True, "bool", doc="reshuffle the sequences every epoch"),
        **_SELECTABLE,
        **_COMMON,
    },
    doc="The classic online BPTT algorithm, unfold depth k, one update per window.",
    style=dict(label="BPTT online (classic)", color="#CC79A7", marker="D", order=3),  # purple
)
_method(
    "bptt_k1k2",
    _loop_k1k2,
    {
        "lr": _pos(0.1, "learning rate"),
        "k1": Param(10, "int", lo=1, doc="steps between updates"),
        "k2": Param(20, "int", lo=1, doc="steps back per update (>= k1)"),
        **_SELECTABLE,
        **_COMMON,
    },
    doc="Williams & Peng BPTT(k1, k2) on streams, state carried forward.",
    style=dict(label="BPTT(k1, k2)", color="#332288", marker="<", order=4),  # indigo (Tol)
)
