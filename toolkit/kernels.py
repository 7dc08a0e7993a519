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


# exp(-2^i) for the binary decomposition of e^-m in _tanh
_E1, _E2, _E4 = math.exp(-1.0), math.exp(-2.0), math.exp(-4.0)
_E8, _E16, _E32 = math.exp(-8.0), math.exp(-16.0), math.exp(-32.0)
# 1/n! for the Taylor series of expm1 on |s| <= 1/2 (degree 14: truncation error < 5e-17 |s|)
_C = tuple(1.0 / math.factorial(n) for n in range(1, 15))


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _tanh(x):
    """tanh in float64 with only arithmetic and selects, so loops over it vectorise (libm's
    tanh is a scalar call; without SVML it dominated the run time at H <= 128).

    With u = 2|x| = m + r, m integer, |r| <= 1/2: e^-u = (1 + expm1(-r)) e^-m, e^-m built from
    exact bits of m; tanh|x| = (1 - e^-u)/(1 + e^-u), or -em/(2 + em), em = expm1(-u), when
    m = 0 (no cancellation near 0). Agrees with libm to a few ulp; NaN propagates.
    """
    u = min(2.0 * abs(x), 48.0)  # tanh(24) == 1 in float64
    m = math.floor(u + 0.5)
    s = m - u
    p = _C[13]
    p = p * s + _C[12]
    p = p * s + _C[11]
    p = p * s + _C[10]
    p = p * s + _C[9]
    p = p * s + _C[8]
    p = p * s + _C[7]
    p = p * s + _C[6]
    p = p * s + _C[5]
    p = p * s + _C[4]
    p = p * s + _C[3]
    p = p * s + _C[2]
    p = p * s + _C[1]
    p = p * s + _C[0]
    em = p * s  # expm1(-r)
    E = 1.0
    f = m >= 32.0
    E = E * _E32 if f else E
    m2 = m - 32.0 if f else m
    f = m2 >= 16.0
    E = E * _E16 if f else E
    m2 = m2 - 16.0 if f else m2
    f = m2 >= 8.0
    E = E * _E8 if f else E
    m2 = m2 - 8.0 if f else m2
    f = m2 >= 4.0
    E = E * _E4 if f else E
    m2 = m2 - 4.0 if f else m2
    f = m2 >= 2.0
    E = E * _E2 if f else E
    m2 = m2 - 2.0 if f else m2
    E = E * _E1 if m2 >= 1.0 else E
    e = (1.0 + em) * E
    small = m == 0.0
    t = (-em if small else 1.0 - e) / (2.0 + em if small else 1.0 + e)  # one division
    t = t if x >= 0.0 else -t
    return t if x == x else x


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _act(z, act):
    if act == 0:
        return _tanh(z)
    elif act == 1:
        return 0.5 + 0.5 * _tanh(0.5 * z)  # logistic sigmoid, vectorisable
    else:
        return z if z > 0.0 else 0.0


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _dact(h, act):
    """Derivative of the activation, written in terms of its output h."""
    if act == 0:
        return 1.0 - h * h
    elif act == 1:
        return h * (1.0 - h)
    else:
        return 1.0 if h > 0.0 else 0.0


@njit(cache=True, error_model="numpy", inline="always")
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


@njit(cache=True, error_model="numpy", fastmath=FM)
def _vm_acc(v, M, out):
    """out[c] += sum_r v[r] M[r, c] for M (R,C) with contiguous rows: axpys over rows of M,
    four rows per pass so each pass loads and stores ``out`` once per four rows."""
    R, C = M.shape
    R4 = R - R % 4
    for r in range(0, R4, 4):
        v0, v1, v2, v3 = v[r], v[r + 1], v[r + 2], v[r + 3]
        for c in range(C):
            out[c] += v0 * M[r, c] + v1 * M[r + 1, c] + v2 * M[r + 2, c] + v3 * M[r + 3, c]
    for r in range(R4, R):
        vr = v[r]
        for c in range(C):
            out[c] += vr * M[r, c]


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _step(W_xhT, W_hhT, b_h, a, hp, hout, act):
    """hout = act(W_xh a + W_hh hp + b_h), as vector-matrix products with W^T (rows contiguous)."""
    H = hout.shape[0]
    for j in range(H):
        hout[j] = b_h[j]
    _vm_acc(a, W_xhT, hout)
    _vm_acc(hp, W_hhT, hout)
    if act == 0:
        for j in range(H):
            hout[j] = _tanh(hout[j])
    elif act == 1:
        for j in range(H):
            hout[j] = 0.5 + 0.5 * _tanh(0.5 * hout[j])
    else:
        for j in range(H):
            hout[j] = max(hout[j], 0.0)


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
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


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
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


@njit(cache=True, error_model="numpy", fastmath=FM)
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


@njit(cache=True, error_model="numpy", fastmath=FM)
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


@njit(cache=True, error_model="numpy", fastmath=FM)
def loss(theta, x, y, mask, h0, I, H, O, act, out):
    """Scalar loss: sum over b, t of mask[b,t] * l(yhat[b,t], y[b,t])."""
    W_xh, W_hh, _, _, _ = _unpack(theta, I, H, O)
    W_xhT = np.ascontiguousarray(W_xh.T)
    W_hhT = np.ascontiguousarray(W_hh.T)
    return _loss_one(theta, x, y, mask, h0, I, H, O, act, out, W_xhT, W_hhT,
                     np.empty(H), np.empty(H), np.empty(O), np.empty(O))


@njit(cache=True, error_model="numpy", fastmath=FM)
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


@njit(cache=True, error_model="numpy", fastmath=FM)
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
    HS = np.empty((T + 1, H))  # HS[0] = h0, HS[t + 1] = h_t of the current sequence
    dp = np.empty((T, H))  # act'(h_t)
    DT = np.zeros((H, T))  # delta_t (error at the pre-activation of h_t), transposed
    zo = np.empty(O)
    dz = np.empty(O)
    gr = np.empty(H)
    dl = np.empty(H)
    L = 0.0
    full = k <= 0 or k >= T
    for b in range(B):
        # forward, keeping the states
        for j in range(H):
            HS[0, j] = h0[b, j]
        for t in range(T):
            _step(W_xhT, W_hhT, b_h, x[b, t], HS[t], HS[t + 1], act)
            for j in range(H):
                dp[t, j] = _dact(HS[t + 1, j], act)
        # the steps with an error: delta is zero outside [lo, hi]
        hi = -1
        first = T
        for t in range(T):
            if mask[b, t] != 0.0:
                hi = t
                first = min(first, t)
        if hi < 0:
            continue
        lo = 0 if full else max(0, first - k + 1)
        for t in range(lo, hi + 1):
            for j in range(H):
                DT[j, t] = 0.0
        if full:
            # delta_t = (W_hy^T dz_t + W_hh^T delta_{t+1}) * act'(h_t)
            for j in range(H):
                gr[j] = 0.0
            for t in range(hi, -1, -1):
                m = mask[b, t]
                if m != 0.0:
                    L += _out_loss(W_hy, b_y, HS[t + 1], y[b, t], m, out, zo, dz)
                    _vm_acc(dz, W_hy, gr)
                    for o in range(O):
                        gb_y[o] += dz[o]
                        gw = gW_hy[o]
                        d = dz[o]
                        for j in range(H):
                            gw[j] += d * HS[t + 1, j]
                for j in range(H):
                    dl[j] = gr[j] * dp[t, j]
                    DT[j, t] = dl[j]
                    gr[j] = 0.0
                if t > 0:
                    _vm_acc(dl, W_hh, gr)
        else:
            for s in range(first, hi + 1):
                m = mask[b, s]
                if m == 0.0:
                    continue
                L += _out_loss(W_hy, b_y, HS[s + 1], y[b, s], m, out, zo, dz)
                for j in range(H):
                    gr[j] = 0.0
                _vm_acc(dz, W_hy, gr)
                for o in range(O):
                    gb_y[o] += dz[o]
                    gw = gW_hy[o]
                    d = dz[o]
                    for j in range(H):
                        gw[j] += d * HS[s + 1, j]
                for j in range(H):
                    dl[j] = gr[j] * dp[s, j]
                r_lo = max(0, s - k + 1)
                for r in range(s, r_lo - 1, -1):
                    for j in range(H):
                        DT[j, r] += dl[j]
                    if r > r_lo:
                        for j in range(H):
                            gr[j] = 0.0
                        _vm_acc(dl, W_hh, gr)
                        for j in range(H):
                            dl[j] = gr[j] * dp[r - 1, j]
        # weight gradients from the deltas, one vector-matrix product per row:
        # gW_hh[j] += sum_t delta_t[j] h_{t-1},  gW_xh[j] += sum_t delta_t[j] a_t
        xb = x[b]
        for j in range(H):
            dj = DT[j, lo : hi + 1]
            s_ = 0.0
            for t in range(dj.shape[0]):
                s_ += dj[t]
            gb_h[j] += s_
            _vm_acc(dj, HS[lo : hi + 1], gW_hh[j])
            _vm_acc(dj, xb[lo : hi + 1], gW_xh[j])
    return L, g
