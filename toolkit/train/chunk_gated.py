"""BPTT's full-batch training loop in compiled chunks for the gated cells, LSTM and GRU (issue 18,
point 1; :mod:`toolkit.train.chunk` does the same for Elman nets and says why).

:func:`full_batch_gated` is :func:`toolkit.train.chunk.full_batch` with the gated gradient,
``toolkit.kernels.gated.loss_and_grad`` (the very function ``LSTM.loss_and_grad`` and
``GRU.loss_and_grad`` call), in place of the Elman one; the optimizer step is chunk.py's
``_step`` (``toolkit.train.optim._update``, the function the Python loop calls). Gated nets have
no fixed parameters and no input windows, so theta is the kernel's parameter vector and x its
input as they are. As for Elman nets, a chunk ends *before recording* the evaluation at which
the Python loop would do anything but count, and that evaluation is recorded in Python by
``bptt._Run.evaluated`` (``bptt._loop_full_chunked_gated``), so the trace, the outcome, the
final and best theta and every counter are the Python loop's bit for bit
(tests/test_train_chunk_gated.py, tests/test_train_bits.py).

Minibatches of gated nets keep the Python loop (``bptt._loop_minibatch``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from toolkit.kernels import gated as kernels_gated
from toolkit.train.chunk import _commit, _step

#: the compiled entry points (the trainer looks them up on this module at call time, so a
#: benchmark can wrap them, as chunk.ENTRY_POINTS)
ENTRY_POINTS = ("full_batch_gated",)


@njit(cache=True)
def full_batch_gated(
    cell, theta, x, y, mask, h0, I, H, O, out, kk,
    n, mean, wd, clip, kind, lrs, mu, nesterov, m, v, b1, ob1, b2, ob2, eps, t0, prev, gw,
    n_max, grad_steps_per, evals, fwd_steps, grad_steps, grad_ratio, next_log, max_evals,
    max_fwd, has_target, target_loss, best_loss, best_theta, has_solved, unchecked, pts_i,
    pts_f, log_factor,
):  # fmt: skip
    """Up to ``n_max`` full-batch BPTT(k) updates of the gated net ``cell``
    (kernels_gated.LSTM or .GRU) with 1-D theta (in place).

    Per update, in the order of ``bptt._loop_minibatch`` + ``_Run.update``: (L, g) =
    kernels_gated.loss_and_grad(cell, theta, x, y, mask, h0, I, H, O, out, kk); evals += 1,
    grad_steps += grad_steps_per; chunk._step (optim._update, learning rate ``lrs[u]``, Adam's
    bias corrections of step t0 + u + 1). Then the evaluation is *committed* (best_loss and
    best_theta := prev when L < best_loss) unless it is the chunk's last or one at which
    ``_Run.evaluated`` / ``_Run.update`` would act: non-finite L, norm or parameters,
    evals >= next_log, the best loss (with L) <= target_loss, evals >= max_evals,
    fwd_equiv >= max_fwd.

    Returns (updates taken, L, norm and parameters-finite of the last, evals, grad_steps,
    best_loss, whether best_theta changed), as chunk.full_batch; the last update's evaluation
    is not committed: the caller records it (prev holds its parameters)."""
    done = 0
    npts = 0
    improved = False
    L = 0.0
    norm = 0.0
    finite = True
    no_scale = np.empty(0)  # chunk._step's gradient scale (online BPTT's): none here
    while True:
        L, g = kernels_gated.loss_and_grad(cell, theta, x, y, mask, h0, I, H, O, out, kk)
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
