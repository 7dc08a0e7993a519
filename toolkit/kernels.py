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
Both accumulate per-step deltas D_t first and then form the weight gradients with one
outer-product sweep per sequence (dW_hh = sum_t D_t h_{t-1}^T, dW_xh = sum_t D_t a_t^T).

Floating point: ``fastmath`` is limited to reassociation and FMA contraction (no finite-math
assumptions, so overflow still yields inf/nan for divergence checks). Results are identical
run to run on the same machine.
"""

import math

import numpy as np
from numba import njit

FM = {"reassoc", "contract", "nsz"}
ACT = {"tanh": 0, "sigmoid": 1, "relu": 2}
OUT = {"linear": 0, "sigmoid": 1, "softmax": 2}


@njit(cache=True, fastmath=FM, inline="always")
def _act(z, act):
    if act == 0:
        return math.tanh(z)
    elif act == 1:
        if z >= 0.0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    else:
        return z if z > 0.0 else 0.0


@njit(cache=True, fastmath=FM, inline="always")
def _dact(h, act):
    """Derivative of the activation, written in terms of its output h."""
    if act == 0:
        return 1.0 - h * h
    elif act == 1:
        return h * (1.0 - h)
    else:
        return 1.0 if h > 0.0 else 0.0


@njit(cache=True)
def _unpack(theta, I, H, O):
    """Views of theta: W_xh (H,I), W_hh (H,H), b_h (H,), W_hy (O,H), b_y (O,)."""
    o = 0
    W_xh = theta[o : o + H * I].reshape((H, I))
    o += H * I
    W_hh = theta[o : o + H * H].reshape((H, H))
    o += H * H
    b_h = theta[o : o + H]
    o += H
    W_hy = theta[o : o + O * H].reshape((O, H))
    o += O * H
    b_y = theta[o : o + O]
    return W_xh, W_hh, b_h, W_hy, b_y


@njit(cache=True, fastmath=FM)
def _step(W_xhT, W_hhT, b_h, a, hp, hout, act):
    """hout = act(W_xh a + W_hh hp + b_h), written as axpys over contiguous rows of W^T."""
    H = hout.shape[0]
    for j in range(H):
        hout[j] = b_h[j]
    for i in range(a.shape[0]):
        ai = a[i]
        w = W_xhT[i]
        for j in range(H):
            hout[j] += ai * w[j]
    for kk in range(H):
        hk = hp[kk]
        w = W_hhT[kk]
        for j in range(H):
            hout[j] += hk * w[j]
    for j in range(H):
        hout[j] = _act(hout[j], act)


@njit(cache=True, fastmath=FM)
def _out_loss(W_hy, b_y, h, y, m, out, zo, dz):
    """Output pre-activation into zo, returns m * l(yhat, y) and writes m * dl/dz into dz."""
    O = zo.shape[0]
    H = h.shape[0]
    for o in range(O):
        s = b_y[o]
        w = W_hy[o]
        for j in range(H):
            s += w[j] * h[j]
        zo[o] = s
    L = 0.0
    if out == 0:
        for o in range(O):
            d = zo[o] - y[o]
            L += 0.5 * d * d
            dz[o] = m * d
    elif out == 1:
        for o in range(O):
            z = zo[o]
            # softplus(z) - y z, stably
            sp = max(z, 0.0) + math.log1p(math.exp(-abs(z)))
            L += sp - y[o] * z
            if z >= 0.0:
                p = 1.0 / (1.0 + math.exp(-z))
            else:
                e = math.exp(z)
                p = e / (1.0 + e)
            dz[o] = m * (p - y[o])
    else:
        zmax = zo[0]
        for o in range(1, O):
            zmax = max(zmax, zo[o])
        s = 0.0
        for o in range(O):
            s += math.exp(zo[o] - zmax)
        lse = zmax + math.log(s)
        ysum = 0.0
        for o in range(O):
            ysum += y[o]
            L += y[o] * (lse - zo[o])
        for o in range(O):
            dz[o] = m * (math.exp(zo[o] - lse) * ysum - y[o])
    return m * L


@njit(cache=True, fastmath=FM)
def _yhat(zo, out, yh):
    O = zo.shape[0]
    if out == 0:
        for o in range(O):
            yh[o] = zo[o]
    elif out == 1:
        for o in range(O):
            z = zo[o]
            if z >= 0.0:
                yh[o] = 1.0 / (1.0 + math.exp(-z))
            else:
                e = math.exp(z)
                yh[o] = e / (1.0 + e)
    else:
        zmax = zo[0]
        for o in range(1, O):
            zmax = max(zmax, zo[o])
        s = 0.0
        for o in range(O):
            yh[o] = math.exp(zo[o] - zmax)
            s += yh[o]
        for o in range(O):
            yh[o] /= s


@njit(cache=True, fastmath=FM)
def forward(theta, x, h0, I, H, O, act, out):
    """x (B,T,I), h0 (B,H) -> h (B,T,H), yhat (B,T,O)."""
    B, T = x.shape[0], x.shape[1]
    W_xh, W_hh, b_h, W_hy, b_y = _unpack(theta, I, H, O)
    W_xhT = np.ascontiguousarray(W_xh.T)
    W_hhT = np.ascontiguousarray(W_hh.T)
    h = np.empty((B, T, H))
    yhat = np.empty((B, T, O))
    zo = np.empty(O)
    for b in range(B):
        for t in range(T):
            hp = h0[b] if t == 0 else h[b, t - 1]
            _step(W_xhT, W_hhT, b_h, x[b, t], hp, h[b, t], act)
            for o in range(O):
                s = b_y[o]
                w = W_hy[o]
                for j in range(H):
                    s += w[j] * h[b, t, j]
                zo[o] = s
            _yhat(zo, out, yhat[b, t])
    return h, yhat


@njit(cache=True, fastmath=FM)
def _loss_one(theta, x, y, mask, h0, I, H, O, act, out, W_xhT, W_hhT, hA, hB, zo, dz):
    """Loss of one parameter vector over the batch; O(H) memory (two state buffers)."""
    B, T = x.shape[0], x.shape[1]
    _, _, b_h, W_hy, b_y = _unpack(theta, I, H, O)
    L = 0.0
    for b in range(B):
        for j in range(H):
            hA[j] = h0[b, j]
        for t in range(T):
            _step(W_xhT, W_hhT, b_h, x[b, t], hA, hB, act)
            m = mask[b, t]
            if m != 0.0:
                L += _out_loss(W_hy, b_y, hB, y[b, t], m, out, zo, dz)
            hA, hB = hB, hA
    return L


@njit(cache=True, fastmath=FM)
def loss(theta, x, y, mask, h0, I, H, O, act, out):
    """Scalar loss: sum over b, t of mask[b,t] * l(yhat[b,t], y[b,t])."""
    W_xh, W_hh, _, _, _ = _unpack(theta, I, H, O)
    W_xhT = np.ascontiguousarray(W_xh.T)
    W_hhT = np.ascontiguousarray(W_hh.T)
    return _loss_one(theta, x, y, mask, h0, I, H, O, act, out, W_xhT, W_hhT,
                     np.empty(H), np.empty(H), np.empty(O), np.empty(O))


@njit(cache=True, fastmath=FM)
def population_loss(thetas, x, y, mask, h0, I, H, O, act, out):
    """thetas (P, n_params) -> losses (P,): P networks x B sequences in one call."""
    P = thetas.shape[0]
    Ls = np.empty(P)
    hA = np.empty(H)
    hB = np.empty(H)
    zo = np.empty(O)
    dz = np.empty(O)
    for p in range(P):
        theta = thetas[p]
        W_xh, W_hh, _, _, _ = _unpack(theta, I, H, O)
        W_xhT = np.ascontiguousarray(W_xh.T)
        W_hhT = np.ascontiguousarray(W_hh.T)
        Ls[p] = _loss_one(theta, x, y, mask, h0, I, H, O, act, out, W_xhT, W_hhT,
                          hA, hB, zo, dz)
    return Ls


@njit(cache=True, fastmath=FM)
def loss_and_grad(theta, x, y, mask, h0, I, H, O, act, out, k):
    """Loss and its gradient w.r.t. theta by BPTT. k <= 0: full; k >= 1: BPTT(h=k).

    x (B,T,I), y (B,T,O), mask (B,T), h0 (B,H) held constant. Returns (L, g), g like theta.
    """
    B, T = x.shape[0], x.shape[1]
    W_xh, W_hh, b_h, W_hy, b_y = _unpack(theta, I, H, O)
    W_xhT = np.ascontiguousarray(W_xh.T)
    W_hhT = np.ascontiguousarray(W_hh.T)
    g = np.zeros_like(theta)
    gW_xh, gW_hh, gb_h, gW_hy, gb_y = _unpack(g, I, H, O)
    hs = np.empty((T, H))  # states of the current sequence
    dp = np.empty((T, H))  # act'(h_t)
    D = np.empty((T, H))  # accumulated delta_t (error at pre-activation of h_t)
    zo = np.empty(O)
    dz = np.empty(O)
    gr = np.empty(H)
    dl = np.empty(H)
    L = 0.0
    full = k <= 0 or k >= T
    for b in range(B):
        # forward, keeping the states
        for t in range(T):
            hp = h0[b] if t == 0 else hs[t - 1]
            _step(W_xhT, W_hhT, b_h, x[b, t], hp, hs[t], act)
            for j in range(H):
                dp[t, j] = _dact(hs[t, j], act)
        if full:
            # delta_t = (W_hy^T dz_t + W_hh^T delta_{t+1}) * act'(h_t)
            for j in range(H):
                gr[j] = 0.0
            for t in range(T - 1, -1, -1):
                m = mask[b, t]
                if m != 0.0:
                    L += _out_loss(W_hy, b_y, hs[t], y[b, t], m, out, zo, dz)
                    for o in range(O):
                        d = dz[o]
                        gb_y[o] += d
                        w = W_hy[o]
                        gw = gW_hy[o]
                        for j in range(H):
                            gr[j] += d * w[j]
                            gw[j] += d * hs[t, j]
                for j in range(H):
                    D[t, j] = gr[j] * dp[t, j]
                for j in range(H):
                    gr[j] = 0.0
                if t > 0:
                    for j in range(H):
                        dj = D[t, j]
                        w = W_hh[j]
                        for kk in range(H):
                            gr[kk] += dj * w[kk]
        else:
            for t in range(T):
                for j in range(H):
                    D[t, j] = 0.0
            for s in range(T):
                m = mask[b, s]
                if m == 0.0:
                    continue
                L += _out_loss(W_hy, b_y, hs[s], y[b, s], m, out, zo, dz)
                for j in range(H):
                    gr[j] = 0.0
                for o in range(O):
                    d = dz[o]
                    gb_y[o] += d
                    w = W_hy[o]
                    gw = gW_hy[o]
                    for j in range(H):
                        gr[j] += d * w[j]
                        gw[j] += d * hs[s, j]
                for j in range(H):
                    dl[j] = gr[j] * dp[s, j]
                lo = max(0, s - k + 1)
                for r in range(s, lo - 1, -1):
                    for j in range(H):
                        D[r, j] += dl[j]
                    if r > lo:
                        for j in range(H):
                            gr[j] = 0.0
                        for j in range(H):
                            dj = dl[j]
                            w = W_hh[j]
                            for kk in range(H):
                                gr[kk] += dj * w[kk]
                        for j in range(H):
                            dl[j] = gr[j] * dp[r - 1, j]
        # weight gradients from the deltas: one outer-product sweep over the sequence
        for t in range(T):
            hp = h0[b] if t == 0 else hs[t - 1]
            a = x[b, t]
            for j in range(H):
                dj = D[t, j]
                if dj == 0.0:
                    continue
                gb_h[j] += dj
                gw = gW_hh[j]
                for kk in range(H):
                    gw[kk] += dj * hp[kk]
                gx = gW_xh[j]
                for i in range(I):
                    gx[i] += dj * a[i]
    return L, g
