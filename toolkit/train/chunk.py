"""BPTT's training loop in compiled chunks (issue 18, point 1).

At the experiments' sizes (H = 2..8, B = 10..100, T = 12..30) a gradient takes microseconds and
the Python around it (the net's wrapper, the trace, the run's stop tests) as long again. The
functions here run a *chunk* of updates inside one Numba call: gradient
(``toolkit.kernels.loss_and_grad``, theta expanded to the full layout when some parameters are
fixed and the gradient restricted to the free ones), the optimizer's per-update arithmetic
(``toolkit.train.optim._update``, the very function the Python loop calls, so the bits are the
same), the cost counters, the best loss and best theta, and the stop tests of
``bptt._Run.evaluated``. At a log-spaced trace point (``Trace._next_log``) where no solved
check is due (no task, or the best theta unchanged since the last check) the chunk writes the
point itself (:func:`_log_point`: the columns ``Trace.record`` logs, into rows the trainer adds
to the trace with an interpolated ``wall_s``, ``Trace.add_points``). A chunk ends *before
recording* the evaluation at which the Python loop would do anything else than count and log:
a trace point with a solved check due (or no rows left), a reached target loss, a spent budget
(evals, fwd_equiv), a non-finite loss, gradient or parameter, or the chunk's length. That last
evaluation (its step already taken, the parameters before it in ``prev``; its loss already
pushed into the epoch loss when the chunk may, :func:`_pushable`) is handed back to Python,
which records it exactly as it records every evaluation (``_Run.evaluated``: trace point,
solved check on the best theta, outcome; the step undone when the run ends there). So the
trace (but ``wall_s`` between two returns), the outcome, the final and best theta and every
counter are the Python loop's, bit for bit (tests/test_train_bits.py,
tests/test_train_chunk.py, tests/test_train_chunk_online.py).

The online algorithm (:func:`online`) and BPTT(k1, k2) (:func:`k1k2`) also carry a state across
updates: they advance it with ``toolkit.kernels.forward``, the kernel that ``net.states`` and
``net.step`` call, so the contexts have the Python loop's bits too; their position in the epoch
(minibatch, window, context; block, stream states) is handed back and forth with each chunk.

Kernels stay pure: arrays and numbers in, numbers out; the trainer (toolkit/train/bptt.py)
owns the trace and the optimizer object and writes the chunk's results back into them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from toolkit import kernels
from toolkit.train.optim import _update

#: the compiled entry points (the trainers look them up on this module at call time, so a
#: benchmark can wrap them: benchmarks/bench_train.py)
ENTRY_POINTS = ("full_batch", "minibatch", "online", "k1k2")


@njit(cache=True)
def _gradient(
    theta, x, y, mask, rows, h0, I, H, O, act, out, kk, work, base, free_idx, all_free
):  # fmt: skip
    """(L, g) at theta on the sequences ``rows`` of x, y, mask: kernels.loss_and_grad_rows at
    the full parameter vector (``base`` with theta at ``free_idx`` unless ``all_free``), g
    restricted to ``free_idx``."""
    if all_free:
        th = theta
    else:
        base[free_idx] = theta
        th = base
    L, g = kernels.loss_and_grad_rows(th, x, y, mask, rows, h0, I, H, O, act, out, kk, work)
    if not all_free:
        g = g[free_idx]
    return L, g


@njit(cache=True)
def _step(
    theta, g, prev, gw, n, mean, wd, clip, kind, lrs, u, mu, nesterov, m, v, b1, ob1, b2,
    ob2, eps, t0, scale, use_scale,
):  # fmt: skip
    """The chunk's u-th optimizer step through optim._update, with learning rate ``lrs[u]``
    (``lrs[0]`` when lrs has one entry), the gradient times ``scale`` first when
    ``use_scale`` (online BPTT's "shared" average) and, for Adam (kind 2), the bias
    corrections 1 - b1**t, 1 - b2**t of step t = t0 + u + 1 (pow of floats, as Python's
    float ** int). Returns (norm of the gradient before clipping, parameters finite)."""
    c1 = 1.0
    c2 = 1.0
    if kind == 2:
        t = float(t0 + u + 1)
        c1 = 1.0 - b1**t
        c2 = 1.0 - b2**t
    lr = lrs[u] if lrs.shape[0] > 1 else lrs[0]
    return _update(
        theta, g, prev, gw, scale, use_scale, n, mean, wd, clip,
        kind, lr, mu, nesterov, m, v, b1, ob1, b2, ob2, c1, c2, eps,
    )  # fmt: skip


@njit(cache=True)
def full_batch(
    theta, x, y, mask, h0, I, H, O, act, out, kk, work, base, free_idx, all_free,
    n, mean, wd, clip, kind, lrs, mu, nesterov, m, v, b1, ob1, b2, ob2, eps, t0, prev, gw,
    n_max, grad_steps_per, evals, fwd_steps, grad_steps, grad_ratio, next_log, max_evals,
    max_fwd, has_target, target_loss, best_loss, best_theta, has_solved, unchecked, pts_i,
    pts_f, log_factor,
):  # fmt: skip
    """Up to ``n_max`` full-batch BPTT(k) updates of 1-D theta (in place).

    Per update, in the order of ``bptt._loop_minibatch`` + ``_Run.update``: (L, g) =
    kernels.loss_and_grad at theta (``base`` with theta at ``free_idx`` unless ``all_free``;
    g restricted to ``free_idx``); evals += 1, grad_steps += grad_steps_per; optim._update
    with learning rate ``lrs[u]`` (``lrs[0]`` when lrs has one entry) and, for Adam (kind 2),
    the bias corrections 1 - b1**t, 1 - b2**t of step t = t0 + u + 1 (pow of floats, as
    Python's float ** int). Then the evaluation is *committed* (best_loss and best_theta :=
    prev when L < best_loss, the loss a full batch records being L itself) unless it is the
    chunk's last or one at which ``_Run.evaluated`` / ``_Run.update`` would act: non-finite L,
    norm or parameters, evals >= next_log, the best loss (with L) <= target_loss, evals >=
    max_evals, fwd_equiv >= max_fwd.

    Returns (updates taken, L, norm and parameters-finite of the last, evals, grad_steps,
    best_loss, whether best_theta changed); the last update's evaluation is not committed:
    the caller records it (prev holds its parameters)."""
    done = 0
    npts = 0
    improved = False
    L = 0.0
    norm = 0.0
    finite = True
    no_scale = np.empty(0)
    rows = np.arange(x.shape[0])
    while True:
        L, g = _gradient(
            theta, x, y, mask, rows, h0, I, H, O, act, out, kk, work, base, free_idx, all_free
        )
        evals += 1
        grad_steps += grad_steps_per
        norm, finite = _step(
            theta, g, prev, gw, n, mean, wd, clip, kind, lrs, done, mu, nesterov, m, v, b1,
            ob1, b2, ob2, eps, t0, no_scale, False,
        )  # fmt: skip
        done += 1
        back, best_loss, improved, npts, next_log = _commit(
            L, L, norm, finite, done, n_max, evals, next_log, fwd_steps, grad_steps, grad_ratio,
            max_evals, max_fwd, has_target, target_loss, best_loss, best_theta, prev, improved,
            has_solved, unchecked, pts_i, pts_f, npts, log_factor,
        )  # fmt: skip
        if back:
            break
    return done, L, norm, finite, evals, grad_steps, best_loss, improved, npts, next_log


@njit(cache=True)
def _fsum(a, head, count):
    """math.fsum of the ring a[head], a[head + 1], ... (count entries, modulo len(a)), bit for
    bit: CPython's algorithm (Shewchuk's exact partials, then the sum from the top with the
    half-even correction across partials); the entries are finite and small enough that no
    partial overflows (the caller makes sure)."""
    C = a.shape[0]
    p = np.empty(count + 1)
    n = 0
    for j in range(count):
        x = a[(head + j) % C]
        i = 0
        for q in range(n):
            y = p[q]
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                p[i] = lo
                i += 1
            x = hi
        n = i
        if x != 0.0:
            p[n] = x
            n += 1
    hi = 0.0
    lo = 0.0
    if n > 0:
        n -= 1
        hi = p[n]
        while n > 0:
            x = hi
            n -= 1
            y = p[n]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        if n > 0 and ((lo < 0.0 and p[n - 1] < 0.0) or (lo > 0.0 and p[n - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
    return hi


@njit(cache=True)
def minibatch(
    theta, x, y, mask, I, H, O, act, out, kk, work, base, free_idx, all_free,
    perms, ep, i, bs, mean, wd, clip, kind, lrs, mu, nesterov, m, v, b1, ob1, b2, ob2, eps,
    t0, prev, gw, n_max, evals, fwd_steps, grad_steps, grad_ratio, next_log, max_evals,
    max_fwd, has_target, target_loss, best_loss, best_theta, has_solved, unchecked, pts_i,
    pts_f, log_factor, ringL, ringN, head, count, Lsum, nsum, pushes, n_total,
):  # fmt: skip
    """Up to ``n_max`` minibatch BPTT(k) updates of 1-D theta (in place), the minibatches
    being slices [i, i + bs) of the epochs' sequence orders ``perms[ep]``, ``perms[ep + 1]``,
    ...; masks hold integers (so every count of targets is exact in any order).

    As :func:`full_batch`, plus the loss recorded being ``bptt._EpochLoss``'s (its deque as
    the ring ringL, ringN from ``head``, ``count`` entries; its running sums Lsum, nsum,
    pushes; the re-sum by :func:`_fsum`): an evaluation is committed to it only when no stop
    test fires. Minibatches without a counted target are skipped (no evaluation).

    Returns (updates taken, whether the last one is pending (its evaluation for the caller
    to record; else the chunk ran out of epochs in ``perms``), L, n, norm and
    parameters-finite of the last, evals, grad_steps, best_loss, whether best_theta changed,
    ep, i (the next minibatch), head, count, Lsum, nsum, pushes, pushed, e): ``pushed`` says
    that the pending evaluation's loss is already in the ring (the Python loop pushes every
    finite loss, so the chunk does it for a pending one it may push, :func:`_pushable`) and
    ``e`` is the loss the trace records for it."""
    B, T = x.shape[0], x.shape[1]
    C = ringL.shape[0]
    h0 = np.zeros((bs, H))
    tail = B % bs if B % bs else bs
    h0_tail = np.zeros((tail, H))
    done = 0
    npts = 0
    pending = False
    pushed = False
    e = 0.0
    improved = False
    L = 0.0
    n = 0.0
    norm = 0.0
    finite = True
    no_scale = np.empty(0)
    E = perms.shape[0]
    while True:
        if i >= B:
            ep += 1
            i = 0
        if ep >= E:
            break
        idx = perms[ep, i : i + bs]
        i += bs
        b = idx.shape[0]
        n = 0.0
        for r in range(b):
            q = idx[r]
            for s in range(T):
                n += mask[q, s]
        if n == 0.0:
            continue
        h0b = h0 if b == bs else h0_tail
        L, g = _gradient(
            theta, x, y, mask, idx, h0b, I, H, O, act, out, kk, work, base, free_idx, all_free
        )
        evals += 1
        grad_steps += b * T
        norm, finite = _step(
            theta, g, prev, gw, n, mean, wd, clip, kind, lrs, done, mu, nesterov, m, v, b1,
            ob1, b2, ob2, eps, t0, no_scale, False,
        )  # fmt: skip
        done += 1
        pending = True
        pushed = False
        if not _pushable(L, Lsum, count, C):  # left to Python, epoch loss and all
            break
        # _EpochLoss.__call__ (the Python loop pushes every finite loss, ending or not)
        head, count, Lsum, nsum, pushes, e = _epoch_push(
            ringL, ringN, head, count, Lsum, nsum, pushes, n_total, L, n
        )
        pushed = True
        back, best_loss, improved, npts, next_log = _commit(
            e, L, norm, finite, done, n_max, evals, next_log, fwd_steps, grad_steps, grad_ratio,
            max_evals, max_fwd, has_target, target_loss, best_loss, best_theta, prev, improved,
            has_solved, unchecked, pts_i, pts_f, npts, log_factor,
        )  # fmt: skip
        if back:
            break
        pending = False
        pushed = False
    return (
        done, pending, L, n, norm, finite, evals, grad_steps, best_loss, improved, ep, i,
        head, count, Lsum, nsum, pushes, pushed, e, npts,
        next_log,
    )  # fmt: skip


@njit(cache=True, inline="always")
def _cut(done, n_max, finite, L, norm):
    """Whether the chunk hands its last evaluation to Python before committing it: the
    chunk's length reached, or non-finite parameters, loss or gradient norm."""
    return done >= n_max or not finite or not (np.isfinite(L) and np.isfinite(norm))


@njit(cache=True, inline="always")
def _hands_back(has_solved, unchecked, improved, e, best_loss, npts, pts_i):
    """At a trace point (evals >= next_log), whether the evaluation goes to Python rather than
    being logged here: a solved check is due there (``_Run.evaluated`` checks the best theta
    at a trace point when it changed since the last check: unchecked when the chunk started,
    improved in it, or improved by this evaluation's recorded loss e) or no room is left."""
    return (has_solved and (unchecked or improved or e < best_loss)) or npts >= pts_i.shape[0]


@njit(cache=True)
def _log_point(pts_i, pts_f, npts, evals, fwd_steps, grad_steps, e, best_loss, norm, next_log,
               log_factor):  # fmt: skip
    """``Trace.record``'s trace point for a committed evaluation, in row ``npts`` of pts_i
    (evals, fwd_steps, grad_steps) and pts_f (loss, best_loss, grad_norm), and its advance of
    the next mark (max(next_log * log_factor, next_log + 1) until past evals). Returns the
    rows used and the next mark; the trainer adds the rows to the trace (with wall_s)."""
    pts_i[npts, 0] = evals
    pts_i[npts, 1] = fwd_steps
    pts_i[npts, 2] = grad_steps
    pts_f[npts, 0] = e
    pts_f[npts, 1] = best_loss
    pts_f[npts, 2] = norm
    while next_log <= evals:
        next_log = max(next_log * log_factor, next_log + 1.0)
    return npts + 1, next_log


@njit(cache=True, inline="always")
def _pushable(L, Lsum, count, C):
    """Whether the chunk pushes evaluation loss L into the epoch loss's ring itself: L finite
    and no partial of :func:`_fsum` near overflow (so it is math.fsum's bits), and room for
    one more entry; else the evaluation is handed to Python before any bookkeeping."""
    return np.isfinite(L) and abs(L) <= 1e300 and abs(Lsum) <= 1e300 and count + 1 < C


@njit(cache=True, inline="always")
def _commit(e, L, norm, finite, done, n_max, evals, next_log, fwd_steps, grad_steps, grad_ratio,
            max_evals, max_fwd, has_target, target_loss, best_loss, best_theta, prev, improved,
            has_solved, unchecked, pts_i, pts_f, npts, log_factor):  # fmt: skip
    """What ``_Run.evaluated`` does with an evaluation whose recorded loss is e, where the
    chunk may do it: nothing (returns True: the chunk hands it back uncommitted) at a trace
    point with a solved check due or no rows left (:func:`_hands_back`), at the chunk's length,
    a non-finite value (:func:`_cut`) or a stop test (:func:`_stops`); else the best loss and
    theta (prev) when e improves on it, and the trace point when evals reached next_log
    (:func:`_log_point`). Returns (hand back, best_loss, improved, npts, next_log)."""
    log = evals >= next_log
    if log and _hands_back(has_solved, unchecked, improved, e, best_loss, npts, pts_i):
        return True, best_loss, improved, npts, next_log
    if _cut(done, n_max, finite, L, norm) or _stops(
        e, best_loss, has_target, target_loss, evals, max_evals, fwd_steps, grad_ratio,
        grad_steps, max_fwd,
    ):  # fmt: skip
        return True, best_loss, improved, npts, next_log
    if e < best_loss:  # Trace.record: the best theta is the one evaluated
        best_loss = e
        best_theta[:] = prev
        improved = True
    if log:
        npts, next_log = _log_point(
            pts_i, pts_f, npts, evals, fwd_steps, grad_steps, e, best_loss, norm, next_log,
            log_factor,
        )  # fmt: skip
    return False, best_loss, improved, npts, next_log


@njit(cache=True, inline="always")
def _stops(e, best_loss, has_target, target_loss, evals, max_evals, fwd_steps, grad_ratio,
           grad_steps, max_fwd):  # fmt: skip
    """_Run.evaluated's stop tests at the recorded loss e: non-finite, target reached (by the
    best loss so far), evals or fwd_equiv budget spent."""
    best = e if e < best_loss else best_loss
    return (
        not np.isfinite(e)
        or (has_target and best <= target_loss)
        or evals >= max_evals
        or float(fwd_steps) + grad_ratio * float(grad_steps) >= max_fwd
    )


@njit(cache=True)
def _epoch_push(ringL, ringN, head, count, Lsum, nsum, pushes, n_total, L, n):
    """``bptt._EpochLoss.__call__`` on its state kept as the ring ringL, ringN (``count``
    entries from ``head``) and the running sums: push (L, n), drop the oldest entries while
    the rest cover n_total, re-sum by :func:`_fsum` now and then. Returns the new (head,
    count, Lsum, nsum, pushes) and the recorded loss; the caller keeps the old state to undo
    it, and makes sure that the ring has room."""
    C = ringL.shape[0]
    q = (head + count) % C
    ringL[q] = L
    ringN[q] = n
    count += 1
    Lsum, nsum, pushes = Lsum + L, nsum + n, pushes + 1
    while nsum - ringN[head] >= n_total:
        Lsum, nsum = Lsum - ringL[head], nsum - ringN[head]
        head = (head + 1) % C
        count -= 1
    if pushes >= count:
        Lsum = _fsum(ringL, head, count)
        nsum = _fsum(ringN, head, count)
        pushes = 0
    return head, count, Lsum, nsum, pushes, Lsum * (n_total / nsum)


@njit(cache=True)
def online(
    theta, x, y, mask, I, H, O, act, out, work, base, free_idx, all_free,
    perms, ep, i, t, t_ctx, fwd, ctx, bs, k, scale, use_scale,
    mean, wd, clip, kind, lrs, mu, nesterov, m, v, b1, ob1, b2, ob2, eps,
    t0, prev, gw, n_max, evals, fwd_steps, grad_steps, grad_ratio, next_log, max_evals,
    max_fwd, has_target, target_loss, best_loss, best_theta, has_solved, unchecked, pts_i,
    pts_f, log_factor, ringL, ringN, head, count, Lsum, nsum, pushes, n_total,
):  # fmt: skip
    """Up to ``n_max`` updates of the classic online BPTT algorithm (``bptt._loop_online``,
    averages "shared" and "sum") on 1-D theta (in place), the minibatches being slices
    [i, i + bs) of the epochs' sequence orders ``perms[ep]``, ``perms[ep + 1]``, ...; masks
    hold integers (so every count of targets is exact in any order); Elman cells without
    input windows.

    The loop's position is (ep, i, t, t_ctx, fwd) as the Python loop's variables: the
    minibatch, its next window t, the step t_ctx before which its context (``ctx``, b x H
    flat) is, and its forward steps not yet counted. Per window t whose end target
    t + k - 1 counts: the context advanced to t by ``kernels.forward`` over the steps
    t_ctx..t-1 with the current theta (the kernel net.states and net.step call), the
    pending forward steps counted, (L, g) = kernels.loss_and_grad over the k steps from
    the context with the end target's weights only, evals += 1, grad_steps += b k, the
    step (g times ``scale`` first when ``use_scale``); every window adds b forward steps
    after its update, and the minibatch's rest is counted at its end. Evaluations are
    committed as in :func:`minibatch` (``_EpochLoss`` in the ring, the best loss and theta)
    unless one of its stop tests fires.

    Returns (updates taken, whether the last one is pending, L, n, norm and
    parameters-finite of the last, evals, fwd_steps, grad_steps, best_loss, whether
    best_theta changed, ep, i, t, t_ctx, fwd, head, count, Lsum, nsum, pushes, pushed, e),
    pushed and e as in :func:`minibatch`."""
    B, T = x.shape[0], x.shape[1]
    C = ringL.shape[0]
    E = perms.shape[0]
    W = T - k + 1  # windows per sequence
    rows = np.arange(bs)  # a window batch's rows (rows[:b])
    done = 0
    npts = 0
    pending = False
    pushed = False
    e = 0.0
    improved = False
    stop = False
    L = 0.0
    n = 0.0
    norm = 0.0
    finite = True
    while ep < E:
        idx = perms[ep, i : i + bs]
        b = idx.shape[0]
        xs = x[idx]
        ys = y[idx]
        ms = mask[idx]
        x_ctx = np.empty((b, H))
        for r in range(b):
            for j in range(H):
                x_ctx[r, j] = ctx[r * H + j]
        mw = np.zeros((b, k))
        while t < W:
            e_t = t + k - 1  # the window's end target
            counts = False
            nt = 0.0
            for r in range(b):
                w = ms[r, e_t]
                nt += w
                if w > 0.0:
                    counts = True
            if not counts:
                fwd += b
                t += 1
                continue
            if t > t_ctx:  # x = f(x, a[s]) for s = t_ctx..t-1, with the current theta
                if all_free:
                    th = theta
                else:
                    base[free_idx] = theta
                    th = base
                hs, _ = kernels.forward(
                    th, np.ascontiguousarray(xs[:, t_ctx:t]), x_ctx, I, H, O, act, out
                )
                last = t - t_ctx - 1
                for r in range(b):
                    for j in range(H):
                        x_ctx[r, j] = hs[r, last, j]
                t_ctx = t
            fwd_steps += fwd
            fwd = 0
            for r in range(b):
                mw[r, k - 1] = ms[r, e_t]
            L, g = _gradient(
                theta, np.ascontiguousarray(xs[:, t : t + k]),
                np.ascontiguousarray(ys[:, t : t + k]), mw, rows[:b], x_ctx, I, H, O, act,
                out, 0, work, base, free_idx, all_free,
            )  # fmt: skip
            evals += 1
            grad_steps += b * k
            n = nt
            norm, finite = _step(
                theta, g, prev, gw, n, mean, wd, clip, kind, lrs, done, mu, nesterov, m, v,
                b1, ob1, b2, ob2, eps, t0, scale, use_scale,
            )  # fmt: skip
            done += 1
            pending = True
            fwd += b  # x = f(x, a[t]), computed when the next window needs it
            t += 1
            stop = True
            pushed = False
            if not _pushable(L, Lsum, count, C):  # left to Python, epoch loss and all
                break
            head, count, Lsum, nsum, pushes, e = _epoch_push(
                ringL, ringN, head, count, Lsum, nsum, pushes, n_total, L, n
            )
            pushed = True
            back, best_loss, improved, npts, next_log = _commit(
                e, L, norm, finite, done, n_max, evals, next_log, fwd_steps, grad_steps, grad_ratio,
                max_evals, max_fwd, has_target, target_loss, best_loss, best_theta, prev, improved,
                has_solved, unchecked, pts_i, pts_f, npts, log_factor,
            )  # fmt: skip
            if back:
                break
            stop = False
            pending = False
            pushed = False
        for r in range(b):
            for j in range(H):
                ctx[r * H + j] = x_ctx[r, j]
        if stop:
            break
        # the minibatch's end: its remaining forward steps counted, the next one from zero
        fwd_steps += fwd
        fwd = 0
        t = 0
        t_ctx = 0
        ctx[:] = 0.0
        i += bs
        if i >= B:
            ep += 1
            i = 0
    return (
        done, pending, L, n, norm, finite, evals, fwd_steps, grad_steps, best_loss, improved,
        ep, i, t, t_ctx, fwd, head, count, Lsum, nsum, pushes, pushed, e, npts,
        next_log,
    )  # fmt: skip


@njit(cache=True)
def k1k2(
    theta, x, y, mask, I, H, O, act, out, work, base, free_idx, all_free,
    hist, p, k1, k2, mean, wd, clip, kind, lrs, mu, nesterov, m, v, b1, ob1, b2, ob2, eps,
    t0, prev, gw, n_max, evals, fwd_steps, grad_steps, grad_ratio, next_log, max_evals,
    max_fwd, has_target, target_loss, best_loss, best_theta, has_solved, unchecked, pts_i,
    pts_f, log_factor, ringL, ringN, head, count, Lsum, nsum, pushes, n_total,
):  # fmt: skip
    """Up to ``n_max`` updates of BPTT(k1, k2) on the B streams (``bptt._loop_k1k2``) on 1-D
    theta (in place); masks hold integers (so every count of targets is exact in any
    order); Elman cells without input windows.

    The loop's position is the next block's first step ``p`` (T: the epoch is over) and
    ``hist`` (B, T+1, H), the states before each step of this epoch. Per block p..t1-1
    (t1 = min(p + k1, T)): the states over it by ``kernels.forward`` from hist[:, p] with
    the current theta (the kernel net.states calls), fwd_steps += B (t1 - p); unless the
    block counts no target, (L, g) = kernels.loss_and_grad over the window s..t1-1 (s =
    max(0, t1 - k2)) from hist[:, s], the block's targets only, evals += 1, grad_steps +=
    B (t1 - s), the step. Evaluations are committed as in :func:`online`. A new epoch
    starts the streams from the zero state.

    Returns (updates taken, whether the last one is pending, L, n, norm and
    parameters-finite of the last, evals, fwd_steps, grad_steps, best_loss, whether
    best_theta changed, p, head, count, Lsum, nsum, pushes, pushed, e), pushed and e as in
    :func:`minibatch`."""
    B, T = x.shape[0], x.shape[1]
    C = ringL.shape[0]
    done = 0
    npts = 0
    pending = False
    pushed = False
    e = 0.0
    improved = False
    L = 0.0
    n = 0.0
    norm = 0.0
    finite = True
    no_scale = np.empty(0)
    rows = np.arange(B)
    while True:
        if p >= T:  # a new epoch, from the zero state
            p = 0
            hist[:] = 0.0
        t1 = min(p + k1, T)
        if all_free:
            th = theta
        else:
            base[free_idx] = theta
            th = base
        hs, _ = kernels.forward(
            th, np.ascontiguousarray(x[:, p:t1]), np.ascontiguousarray(hist[:, p]), I, H, O,
            act, out,
        )  # fmt: skip
        hist[:, p + 1 : t1 + 1] = hs
        fwd_steps += B * (t1 - p)
        s = max(0, t1 - k2)  # the window: steps s..t1-1, errors of steps p..t1-1 only
        mw = np.zeros((B, t1 - s))
        n = 0.0
        for r in range(B):
            for q in range(p, t1):
                w = mask[r, q]
                mw[r, q - s] = w
                n += w
        p = t1
        if n == 0.0:
            continue
        L, g = _gradient(
            theta, np.ascontiguousarray(x[:, s:t1]), np.ascontiguousarray(y[:, s:t1]), mw,
            rows, np.ascontiguousarray(hist[:, s]), I, H, O, act, out, 0, work, base,
            free_idx, all_free,
        )  # fmt: skip
        evals += 1
        grad_steps += B * (t1 - s)
        norm, finite = _step(
            theta, g, prev, gw, n, mean, wd, clip, kind, lrs, done, mu, nesterov, m, v, b1,
            ob1, b2, ob2, eps, t0, no_scale, False,
        )  # fmt: skip
        done += 1
        pending = True
        pushed = False
        if not _pushable(L, Lsum, count, C):  # left to Python, epoch loss and all
            break
        head, count, Lsum, nsum, pushes, e = _epoch_push(
            ringL, ringN, head, count, Lsum, nsum, pushes, n_total, L, n
        )
        pushed = True
        back, best_loss, improved, npts, next_log = _commit(
            e, L, norm, finite, done, n_max, evals, next_log, fwd_steps, grad_steps, grad_ratio,
            max_evals, max_fwd, has_target, target_loss, best_loss, best_theta, prev, improved,
            has_solved, unchecked, pts_i, pts_f, npts, log_factor,
        )  # fmt: skip
        if back:
            break
        pending = False
        pushed = False
    return (
        done, pending, L, n, norm, finite, evals, fwd_steps, grad_steps, best_loss, improved,
        p, head, count, Lsum, nsum, pushes, pushed, e, npts,
        next_log,
    )  # fmt: skip
