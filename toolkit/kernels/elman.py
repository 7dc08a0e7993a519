"""Numba kernels for Elman networks: forward, loss, BPTT gradients, population loss.

Pure functions over contiguous float64 arrays and ints; no Python objects, no printing, no
random numbers. ``toolkit.nets`` validates, converts and allocates; these trust their inputs.

Network (Elman 1990), for one sequence a_0..a_{T-1}:

    h_t    = act(W_xh a_t + W_hh h_{t-1} + b_h),     h_{-1} = h0 (zero by default)
    yhat_t = out(W_hy h_t + b_y)
    L      = sum_t mask_t * l(yhat_t, y_t)

with (act, out, l) codes: act 0 tanh, 1 sigmoid, 2 relu; out 0 linear (l = 0.5||yhat - y||^2),
1 sigmoid (binary cross-entropy), 2 softmax (categorical cross-entropy). For each of these
canonical pairs dl/dz_out = yhat - y (softmax: yhat * sum(y) - y), z_out the output pre-activation.

theta layout (C order): W_xh (H,I), W_hh (H,H), b_h (H,), W_hy (O,H), b_y (O,).

Gradients: ``k <= 0`` is full BPTT (Rumelhart et al. 1986; Werbos 1990) in O(T H^2) per
sequence. ``k >= 1`` is Williams & Peng's (1990) BPTT(h) with unfold depth k: the error at step
s reaches the parameter uses at steps s-k+1..s, and h_{s-k} is held constant; O(T k H^2).
Both store the per-step deltas D_t (rows t*B + b) and form the weight gradients as matrix
products over blocks of 32 rows (dW_hh += D^T h_{t-1}, [dW_xh | db_h] += D^T [a_t, 1],
dW_hy += dz^T h_t); full BPTT does each block as soon as it is complete, while it is in cache.
At H = 8 with AVX-512 and I <= 3, tiles.wgrad8 does the first two in one pass (same bits).

Products: every matrix product (a batch step, W_hh^T delta, the weight gradients) is one
``product`` call of :mod:`toolkit.kernels.tiles`: register-blocked tiles of 8 or 4 rows x 16
columns over 8-lane float64 vectors (exact IEEE operations, one fused multiply-add per term,
each element summed in the same order whatever tile it falls in), then the activation 8
lanes at a time. The output layer (``zout``, ``loss_nonlinear``) and the delta update
(``dmul``) are tile-module calls too. This module is a cell: plain loops over arrays and
flat offsets, and calls of the tile module; it holds no vector.

Pointers here are opaque: ``ptr(a)`` (from the tile module) is only ever handed back to a
tile-module function (``product``, ``loss_nonlinear``), never indexed, stored, returned or
offset; the offsets travel as separate ints. They are used because Numba brackets every
call that passes an array with two atomic reference-count updates per array, which at small
H cost more than a tile (an inlined array-taking wrapper measured 1.1-1.5x slower at H <= 32).
**A pointer does not keep its array alive**: Numba frees an array after the last use of its
name, so every array whose pointer is handed on must be used by name after that call, with
``keep(a)`` if nothing else uses it (the end of ``loss_and_grad``).

Floating point: scalar code uses ``fastmath`` limited to reassociation and FMA contraction;
vector code uses no fast-math at all. There are no finite-math assumptions, so overflow still
yields inf/nan for divergence checks. Results are identical run to run on the same machine.

Invariants a contributor must keep (summation order, pointer lifetime, tile contracts, the
AVX2 and AVX-512 paths): docs/KERNELS.md.
"""

import math

import numpy as np
from numba import njit

from .tiles import (
    FM,
    WGRAD8_I,
    WIDE,
    dact,
    dmul,
    keep,
    loss_nonlinear,
    product,
    ptr,
    wgrad8,
    zout,
)

ACT = {"tanh": 0, "sigmoid": 1, "relu": 2}
OUT = {"linear": 0, "sigmoid": 1, "softmax": 2}


@njit(cache=True, error_model="numpy", inline="always")
def _offsets(I, H, O):
    """Offsets in theta of W_xh (H,I), W_hh (H,H), b_h (H,), W_hy (O,H), b_y (O,)."""
    return 0, H * I, H * I + H * H, H * I + H * H + H, H * I + H * H + H + O * H


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _transpose_w(theta, I, H, W_xhT, W_hhT):
    """W_xhT (I*H) = W_xh^T, W_hhT (H*H) = W_hh^T, flat."""
    for j in range(H):
        for i in range(I):
            W_xhT[i * H + j] = theta[j * I + i]
        for r in range(H):
            W_hhT[r * H + j] = theta[H * I + j * H + r]


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _prepare_into(theta, x, I, H, W_xhT, W_hhT, XT):
    """W_xhT (I*H) = W_xh^T, W_hhT (H*H) = W_hh^T, XT (T*B*I) = x as (T,B,I), all flat."""
    B, T = x.shape[0], x.shape[1]
    _transpose_w(theta, I, H, W_xhT, W_hhT)
    for t in range(T):
        for b in range(B):
            for i in range(I):
                XT[(t * B + b) * I + i] = x[b, t, i]


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _prepare_rows_into(theta, x, rows, I, H, W_xhT, W_hhT, XT):
    """_prepare_into for the sequences ``rows`` of x: XT (T*B*I) = x[rows] as (T,B,I)."""
    B, T = rows.shape[0], x.shape[1]
    _transpose_w(theta, I, H, W_xhT, W_hhT)
    for t in range(T):
        for b in range(B):
            q = rows[b]
            for i in range(I):
                XT[(t * B + b) * I + i] = x[q, t, i]


@njit(cache=True, error_model="numpy", fastmath=FM)
def _prepare(theta, x, I, H, O):
    """Flat W_xh^T (I,H), W_hh^T (H,H) and x as (T,B,I), for lock-step products."""
    B, T = x.shape[0], x.shape[1]
    W_xhT = np.empty(I * H)
    W_hhT = np.empty(H * H)
    XT = np.empty(T * B * I)
    _prepare_into(theta, x, I, H, W_xhT, W_hhT, XT)
    return W_xhT, W_hhT, XT


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _step(theta, W_xhT, W_hhT, XT, xo, HP, po, HO, oo, B, I, H, act):
    """HO[oo:] = act(b_h + A W_xh^T + HP[po:] W_hh^T) for the batch, A = XT[xo:] (B,I)."""
    product(ptr(XT), xo, I, 1, ptr(W_xhT), 0, I, ptr(HP), po, H, 1, ptr(W_hhT), 0, H,
            ptr(HO), oo, B, H, ptr(theta), H * I + H * H, 1, act)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _out_loss(theta, wy, by, HS, ho, H, y, yo, m, out, zo, DZ, dzo):
    """Output pre-activation of h = HS[ho:ho+H] into zo; returns m * l(yhat, y) for the
    target y[yo:yo+O] and writes m * dl/dz into DZ[dzo:dzo+O]."""
    zout(theta, wy, by, HS, ho, H, zo)
    if out != 0:
        return loss_nonlinear(ptr(zo), zo.shape[0], ptr(y), yo, m, out, ptr(DZ), dzo)
    L = 0.0
    for o in range(zo.shape[0]):
        d = zo[o] - y[yo + o]
        L += 0.5 * d * d
        DZ[dzo + o] = m * d
    return m * L


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _yhat(zo, out, yh, yo):
    O = zo.shape[0]
    if out == 0:
        for o in range(O):
            yh[yo + o] = zo[o]
    elif out == 1:
        for o in range(O):
            z = zo[o]
            if z >= 0.0:
                yh[yo + o] = 1.0 / (1.0 + math.exp(-z))
            else:
                e = math.exp(z)
                yh[yo + o] = e / (1.0 + e)
    else:
        zmax = zo[0]
        for o in range(1, O):
            zmax = max(zmax, zo[o])
        s = 0.0
        for o in range(O):
            e = math.exp(zo[o] - zmax)
            yh[yo + o] = e
            s += e
        for o in range(O):
            yh[yo + o] /= s


def forward_work(B, T, I, H, O):
    """The scratch arrays forward_into takes for a (B,T,I) input: W_xhT (I*H), W_hhT (H*H),
    XT (T*B*I), HS ((T+1)*B*H), zo (O); and yhat (B,T,O), its output."""
    return (
        np.empty(I * H), np.empty(H * H), np.empty(T * B * I), np.empty((T + 1) * B * H),
        np.empty(O), np.empty((B, T, O)),
    )  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=FM)
def forward_into(theta, x, h0, I, H, O, act, out, W_xhT, W_hhT, XT, HS, zo, yhat):
    """forward's computation, with no allocation: x (B,T,I), h0 (B,H) -> yhat (B,T,O) written
    in place, the states left in HS ((T+1)*B*H, flat: step t's batch at (t+1)*B*H); the other
    arrays are scratch (sizes: forward_work). The same bits as forward's."""
    B, T = x.shape[0], x.shape[1]
    _, _, _, wy, by = _offsets(I, H, O)
    _prepare_into(theta, x, I, H, W_xhT, W_hhT, XT)
    for b in range(B):
        for j in range(H):
            HS[b * H + j] = h0[b, j]
    yh = yhat.reshape(B * T * O)
    for t in range(T):
        _step(theta, W_xhT, W_hhT, XT, t * B * I, HS, t * B * H, HS, (t + 1) * B * H, B, I, H, act)
        for b in range(B):
            zout(theta, wy, by, HS, ((t + 1) * B + b) * H, H, zo)
            _yhat(zo, out, yh, (b * T + t) * O)


@njit(cache=True, error_model="numpy", fastmath=FM)
def forward(theta, x, h0, I, H, O, act, out):
    """x (B,T,I), h0 (B,H) -> h (B,T,H), yhat (B,T,O)."""
    B, T = x.shape[0], x.shape[1]
    W_xhT, W_hhT, XT = np.empty(I * H), np.empty(H * H), np.empty(T * B * I)
    HS, zo, yhat = np.empty((T + 1) * B * H), np.empty(O), np.empty((B, T, O))
    forward_into(theta, x, h0, I, H, O, act, out, W_xhT, W_hhT, XT, HS, zo, yhat)
    h = np.empty((B, T, H))
    for t in range(T):
        for b in range(B):
            for j in range(H):
                h[b, t, j] = HS[((t + 1) * B + b) * H + j]
    return h, yhat


@njit(cache=True, error_model="numpy", fastmath=FM)
def _loss_one(theta, XT, y, mask, h0, B, T, I, H, O, act, out, W_xhT, W_hhT, HA, HB, zo, dz):
    """Loss of one parameter vector over the batch (lock-step; two flat (B*H) state buffers).
    y is flat (B*T*O)."""
    _, _, _, wy, by = _offsets(I, H, O)
    HA[:] = h0
    L = 0.0
    for t in range(T):
        _step(theta, W_xhT, W_hhT, XT, t * B * I, HA, 0, HB, 0, B, I, H, act)
        for b in range(B):
            m = mask[b, t]
            if m != 0.0:
                L += _out_loss(theta, wy, by, HB, b * H, H, y, (b * T + t) * O, m, out, zo, dz, 0)
        HA, HB = HB, HA
    return L


@njit(cache=True, error_model="numpy", fastmath=FM)
def loss(theta, x, y, mask, h0, I, H, O, act, out):
    """Scalar loss: sum over b, t of mask[b,t] * l(yhat[b,t], y[b,t])."""
    B, T = x.shape[0], x.shape[1]
    W_xhT, W_hhT, XT = _prepare(theta, x, I, H, O)
    return _loss_one(
        theta,
        XT,
        np.ascontiguousarray(y).reshape(B * T * O),
        mask,
        np.ascontiguousarray(h0).reshape(B * H),
        B,
        T,
        I,
        H,
        O,
        act,
        out,
        W_xhT,
        W_hhT,
        np.empty(B * H),
        np.empty(B * H),
        np.empty(O),
        np.empty(O),
    )


@njit(cache=True, error_model="numpy", fastmath=FM)
def _loss_two(th0, th1, XT, y, mask, h0, B, T, I, H, O, act, out, Wx0, Wh0, Wx1, Wh1, zo, dz):
    """_loss_one for two parameter vectors advanced together, so that the work of one fills
    the time the other waits on its dependency chains. Each loss gets the same operations in
    the same order as _loss_one, hence the same bits."""
    _, _, _, wy, by = _offsets(I, H, O)
    HA0 = h0.copy()
    HA1 = h0.copy()
    HB0 = np.empty(B * H)
    HB1 = np.empty(B * H)
    L0 = 0.0
    L1 = 0.0
    for t in range(T):
        _step(th0, Wx0, Wh0, XT, t * B * I, HA0, 0, HB0, 0, B, I, H, act)
        _step(th1, Wx1, Wh1, XT, t * B * I, HA1, 0, HB1, 0, B, I, H, act)
        for b in range(B):
            m = mask[b, t]
            if m != 0.0:
                yo = (b * T + t) * O
                L0 += _out_loss(th0, wy, by, HB0, b * H, H, y, yo, m, out, zo, dz, 0)
                L1 += _out_loss(th1, wy, by, HB1, b * H, H, y, yo, m, out, zo, dz, 0)
        HA0, HB0 = HB0, HA0
        HA1, HB1 = HB1, HA1
    return L0, L1


@njit(cache=True, error_model="numpy", fastmath=FM)
def population_loss(thetas, x, y, mask, h0, I, H, O, act, out):
    """thetas (P, n_params) -> losses (P,): P networks x B sequences in one call, two
    networks at a time. Each loss has the same bits as loss() of that network."""
    P, B, T = thetas.shape[0], x.shape[0], x.shape[1]
    Ls = np.empty(P)
    zo = np.empty(O)
    dz = np.empty(O)
    yf = np.ascontiguousarray(y).reshape(B * T * O)
    h0f = np.ascontiguousarray(h0).reshape(B * H)
    for p in range(0, P - 1, 2):
        Wx0, Wh0, XT = _prepare(thetas[p], x, I, H, O)
        Wx1, Wh1, _ = _prepare(thetas[p + 1], x[:, :0], I, H, O)
        Ls[p], Ls[p + 1] = _loss_two(
            thetas[p], thetas[p + 1], XT, yf, mask, h0f, B, T, I, H, O, act, out,
            Wx0, Wh0, Wx1, Wh1, zo, dz,
        )  # fmt: skip
    if P % 2:
        theta = thetas[P - 1]
        W_xhT, W_hhT, XT = _prepare(theta, x, I, H, O)
        Ls[P - 1] = _loss_one(
            theta, XT, yf, mask, h0f, B, T, I, H, O, act, out, W_xhT, W_hhT,
            np.empty(B * H), np.empty(B * H), zo, dz,
        )  # fmt: skip
    return Ls


@njit(cache=True, error_model="numpy", inline="always")
def _fused(I, H):
    """Whether tiles.wgrad8 forms the weight gradients (reading x as XT, no [a_t, 1] rows)."""
    return WIDE and H == 8 and I <= WGRAD8_I


@njit(cache=True, error_model="numpy", fastmath=FM)
def _wgrad(D, HS, X1, XT, r0, r1, g, GX, I, H):
    """Weight gradients from the delta rows r0..r1 of D (row t*B + b, flat), in blocks of 32
    rows, each while it is in cache: gW_hh += D^T h_{t-1} into g, and
    [W_xh | b_h]^T gradient += [a_t, 1]^T D into GX (I+1, H), X1 = [a_t, 1] rows (T*B, I+1);
    when _fused(I, H), tiles.wgrad8 does both in one pass from the rows a_t of XT (X1 is
    empty then)."""
    if _fused(I, H):
        wgrad8(ptr(D), r0 * H, ptr(HS), r0 * H, ptr(XT), r0 * I, I, r1 - r0, ptr(g), H * I,
               ptr(GX))  # fmt: skip
        return
    pD, pHS, pX, pg, pGX = ptr(D), ptr(HS), ptr(X1), ptr(g), ptr(GX)
    J = I + 1
    for c0 in range(r0, r1, 32):
        n = min(c0 + 32, r1) - c0
        # gW_hh[j, c] += sum_r D[c0 + r, j] HS[c0 + r, c]  (V = the block of D, transposed)
        product(pD, c0 * H, 1, H, pHS, c0 * H, n, pD, 0, 1, H, pHS, 0, 0, pg, H * I, H, H,
                pHS, 0, 0, -1)  # fmt: skip
        # GX[i, j] += sum_r X1[c0 + r, i] D[c0 + r, j]
        product(pX, c0 * J, 1, J, pD, c0 * H, n, pX, 0, 1, J, pD, 0, 0, pGX, 0, J, H,
                pD, 0, 0, -1)  # fmt: skip


def grad_work_size(T, B, I, H, O):
    """Length of the scratch array loss_and_grad needs for x (B,T,I), H units, O outputs: the
    states and deltas, and every other array it works in (so that a call allocates only
    the gradient it returns)."""
    return (2 * T + 1) * B * H + T * B * (O + 2 * I + 1) + 2 * B * H + (2 * I + 2 + H) * H + O


@njit(cache=True, error_model="numpy", fastmath=FM)
def loss_and_grad(theta, x, y, mask, h0, I, H, O, act, out, k, work):
    """Loss and its gradient w.r.t. theta by BPTT. k <= 0: full; k >= 1: BPTT(h=k).

    x (B,T,I), y (B,T,O), mask (B,T), h0 (B,H) held constant. Returns (L, g), g like theta.
    loss_and_grad_rows over all the rows (see there)."""
    return loss_and_grad_rows(
        theta, x, y, mask, np.arange(x.shape[0]), h0, I, H, O, act, out, k, work
    )


@njit(cache=True, error_model="numpy", fastmath=FM)
def loss_and_grad_rows(theta, x, y, mask, rows, h0, I, H, O, act, out, k, work):
    """loss_and_grad on the batch of sequences ``rows`` (B indices) of x, y and mask: the
    bits of loss_and_grad(theta, x[rows], y[rows], mask[rows], h0, ...), without the copies
    (a minibatch trainer's gathers cost about a tenth of a small update).

    x (N,T,I), y (N,T,O), mask (N,T), h0 (B,H) held constant. Returns (L, g), g like theta.
    work: scratch, a float64 array of at least grad_work_size(T, B, I, H, O) elements, reused
    by the caller: fresh multi-megabyte arrays cost a page fault per 4 KiB per call, and at
    small sizes the allocations were a few per cent of a call.
    The batch advances in lock-step, forward and backward. The output errors dz are kept from
    the forward pass; the deltas are stored as D (T*B, H), row t*B + b, and the weight
    gradients formed from blocks of 32 rows (in full BPTT as soon as a block is complete,
    while it is still in cache).
    """
    B, T = rows.shape[0], x.shape[1]
    _, whh, bh, wy, by = _offsets(I, H, O)
    yf = np.ascontiguousarray(y).reshape(y.shape[0] * T * O)
    g = np.zeros_like(theta)
    # the scratch arrays, cut from work (sizes: grad_work_size)
    HS = work[: (T + 1) * B * H]  # HS[(t + 1) B H + b H + j] = h_t[b, j], h_{-1} = h0
    w = (T + 1) * B * H
    D = work[w : w + T * B * H]  # deltas, row t*B + b
    w += T * B * H
    DZ = work[w : w + T * B * O]  # mask * dl/dz_out, row t*B + b
    w += T * B * O
    XT = work[w : w + T * B * I]
    w += T * B * I
    nx = 0 if _fused(I, H) else T * B  # rows [a_t, 1] of X1 (wgrad8 reads XT instead)
    X1 = work[w : w + nx * (I + 1)]
    w += T * B * (I + 1)
    GR = work[w : w + B * H]
    w += B * H
    DL = work[w : w + B * H]
    w += B * H
    GX = work[w : w + (I + 1) * H]
    w += (I + 1) * H
    W_xhT = work[w : w + I * H]
    w += I * H
    W_hhT = work[w : w + H * H]
    w += H * H
    zo = work[w : w + O]
    w += O
    ZH = work[w : w + H]  # zeros: the start of the backward products' sums
    ZH[:] = 0.0
    _prepare_rows_into(theta, x, rows, I, H, W_xhT, W_hhT, XT)
    HS[: B * H] = np.ascontiguousarray(h0).reshape(B * H)
    DZ[:] = 0.0
    L = 0.0  # summed in the same order as loss(), so both give the same bits
    hi = -1  # the steps that carry an error; deltas vanish outside [lo, hi]
    first = T
    for t in range(T):
        _step(theta, W_xhT, W_hhT, XT, t * B * I, HS, t * B * H, HS, (t + 1) * B * H, B, I, H, act)
        for b in range(B):
            m = mask[rows[b], t]
            if m != 0.0:
                L += _out_loss(
                    theta, wy, by, HS, ((t + 1) * B + b) * H, H, yf, (rows[b] * T + t) * O, m, out,
                    zo, DZ, (t * B + b) * O,
                )  # fmt: skip
                hi = t
                first = min(first, t)
    if hi < 0:
        return L, g
    pth, pHS, pDZ = ptr(theta), ptr(HS), ptr(DZ)
    # output layer: gW_hy[o, j] += sum_(t,b) dz[o] h_t[j], gb_y += sum dz
    r0, r1 = first * B, (hi + 1) * B
    product(pDZ, r0 * O, 1, O, pHS, (r0 + B) * H, r1 - r0, pDZ, 0, 1, O, pHS, 0, 0, ptr(g), wy,
            O, H, pHS, 0, 0, -1)  # fmt: skip
    for i in range(r0 * O, r1 * O):
        g[by + i % O] += DZ[i]
    for i in range(nx):  # rows [a_t, 1], for the gradients of W_xh and b_h
        for ii in range(I):
            X1[i * (I + 1) + ii] = XT[i * I + ii]
        X1[i * (I + 1) + I] = 1.0
    GX[:] = 0.0
    if k <= 0 or k >= T:
        # delta_t = (W_hy^T dz_t + W_hh^T delta_{t+1}) * act'(h_t), for the whole batch at once
        pD, pGR, pZ = ptr(D), ptr(GR), ptr(ZH)
        done = (hi + 1) * B  # rows done..(hi+1)*B of D are waiting for _wgrad
        for t in range(hi, -1, -1):
            # GR = delta_{t+1} W_hh + dz_t W_hy (each element from 0.0: the zero "bias" ZH)
            product(pD, (t + 1) * B * H, H, 1, pth, whh, H if t < hi else 0,
                    pDZ, t * B * O, O, 1, pth, wy, O, pGR, 0, B, H, pZ, 0, 1, -1)  # fmt: skip
            dmul(GR, HS, (t + 1) * B * H, D, t * B * H, B * H, act)
            if done - t * B >= 32 or t == 0:
                _wgrad(D, HS, X1, XT, t * B, done, g, GX, I, H)
                done = t * B
    else:
        # BPTT(h=k), the batch in lock-step: the error at step s (rows b with a target there)
        # reaches the deltas of steps s..s-k+1, one B-row product W_hh per step back. Each
        # delta D[r, b] sums its errors' contributions in increasing s, as the per-sequence
        # walk did, and a product sums each element in the same order whatever the number of
        # rows, so the bits are those of the walk one sequence at a time (issue 18, point 3).
        lo = max(0, first - k + 1)
        D[:] = 0.0
        pGR, pDL, pZ = ptr(GR), ptr(DL), ptr(ZH)
        for s in range(first, hi + 1):
            live = False
            for b in range(B):
                bo = b * H
                if mask[rows[b], s] == 0.0:
                    for j in range(H):
                        DL[bo + j] = 0.0
                    continue
                live = True
                for j in range(H):
                    GR[bo + j] = 0.0
                for o in range(O):
                    d = DZ[(s * B + b) * O + o]
                    for j in range(H):
                        GR[bo + j] += d * theta[wy + o * H + j]
                ho = ((s + 1) * B + b) * H
                for j in range(H):
                    DL[bo + j] = GR[bo + j] * dact(HS[ho + j], act)
            if not live:
                continue
            r_lo = max(0, s - k + 1)
            for r in range(s, r_lo - 1, -1):
                ro = r * B * H
                for b in range(B):
                    if mask[rows[b], s] != 0.0:
                        for j in range(H):
                            D[ro + b * H + j] += DL[b * H + j]
                if r > r_lo:  # DL = (DL W_hh) * act'(h_{r-1}), HS row r holding h_{r-1}
                    product(pDL, 0, H, 1, pth, whh, H, pDL, 0, H, 1, pth, whh, 0,
                            pGR, 0, B, H, pZ, 0, 1, -1)  # fmt: skip
                    for i in range(B * H):
                        DL[i] = GR[i] * dact(HS[ro + i], act)
        keep(DL)
        _wgrad(D, HS, X1, XT, lo * B, (hi + 1) * B, g, GX, I, H)
    for j in range(H):
        for ii in range(I):
            g[j * I + ii] += GX[ii * H + j]
        g[bh + j] += GX[I * H + j]
    keep(DZ)  # pointers to DZ, GR and D were in use up to here (see the module docstring)
    keep(GR)
    keep(D)
    keep(ZH)
    return L, g
