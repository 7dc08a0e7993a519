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


@njit(cache=True, error_model="numpy", fastmath=FM)
def _mm_acc(V, M, OUT):
    """OUT[b, c] += sum_r V[b, r] M[r, c]: V (B,R), M (R,C), OUT (B,C), all C-contiguous.

    Row by row, four rows of M per pass (M stays in cache across the batch). Pairing rows of
    OUT to share loads of M was measured slower: it defeats LLVM's vectoriser.
    """
    B, R = V.shape
    C = M.shape[1]
    R4 = R - R % 4
    for b in range(B):
        for r in range(0, R4, 4):
            v0, v1, v2, v3 = V[b, r], V[b, r + 1], V[b, r + 2], V[b, r + 3]
            for c in range(C):
                OUT[b, c] += v0 * M[r, c] + v1 * M[r + 1, c] + v2 * M[r + 2, c] + v3 * M[r + 3, c]
        for r in range(R4, R):
            vr = V[b, r]
            for c in range(C):
                OUT[b, c] += vr * M[r, c]


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _act_block(Z, act):
    """Z <- act(Z) in place over a C-contiguous block, one flat loop so it vectorises."""
    z = Z.reshape(Z.size)
    n = z.shape[0]
    if act == 0:
        for i in range(n):
            z[i] = _tanh(z[i])
    elif act == 1:
        for i in range(n):
            z[i] = 0.5 + 0.5 * _tanh(0.5 * z[i])
    else:
        for i in range(n):
            z[i] = max(z[i], 0.0)


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _step_block(W_xhT, W_hhT, b_h, A, HP, HOUT, act):
    """HOUT = act(A W_xh^T + HP W_hh^T + b_h) for a batch: A (B,I), HP, HOUT (B,H)."""
    B, H = HOUT.shape
    for b in range(B):
        for j in range(H):
            HOUT[b, j] = b_h[j]
    _mm_acc(A, W_xhT, HOUT)
    _mm_acc(HP, W_hhT, HOUT)
    _act_block(HOUT, act)


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
def _prepare(theta, x, I, H, O):
    """W_xh^T, W_hh^T (contiguous) and x as (T,B,I), for lock-step products."""
    W_xh, W_hh, _, _, _ = _unpack(theta, I, H, O)
    return (
        np.ascontiguousarray(W_xh.T),
        np.ascontiguousarray(W_hh.T),
        np.ascontiguousarray(x.transpose(1, 0, 2)),
    )


@njit(cache=True, error_model="numpy", fastmath=FM)
def forward(theta, x, h0, I, H, O, act, out):
    """x (B,T,I), h0 (B,H) -> h (B,T,H), yhat (B,T,O)."""
    B, T = x.shape[0], x.shape[1]
    _, _, b_h, W_hy, b_y = _unpack(theta, I, H, O)
    W_xhT, W_hhT, XT = _prepare(theta, x, I, H, O)
    HS = np.empty((T + 1, B, H))
    HS[0] = h0
    yhat = np.empty((B, T, O))
    zo = np.empty(O)
    for t in range(T):
        _step_block(W_xhT, W_hhT, b_h, XT[t], HS[t], HS[t + 1], act)
        for b in range(B):
            for o in range(O):
                s = b_y[o]
                for j in range(H):
                    s += W_hy[o, j] * HS[t + 1, b, j]
                zo[o] = s
            _yhat(zo, out, yhat[b, t])
    return np.ascontiguousarray(HS[1:].transpose(1, 0, 2)), yhat


@njit(cache=True, error_model="numpy", fastmath=FM)
def _loss_one(theta, XT, y, mask, h0, I, H, O, act, out, W_xhT, W_hhT, HA, HB, zo, dz):
    """Loss of one parameter vector over the batch (lock-step; two (B,H) state buffers)."""
    T = XT.shape[0]
    B = XT.shape[1]
    _, _, b_h, W_hy, b_y = _unpack(theta, I, H, O)
    HA[:] = h0
    L = 0.0
    for t in range(T):
        _step_block(W_xhT, W_hhT, b_h, XT[t], HA, HB, act)
        for b in range(B):
            m = mask[b, t]
            if m != 0.0:
                L += _out_loss(W_hy, b_y, HB[b], y[b, t], m, out, zo, dz)
        HA, HB = HB, HA
    return L


@njit(cache=True, error_model="numpy", fastmath=FM)
def loss(theta, x, y, mask, h0, I, H, O, act, out):
    """Scalar loss: sum over b, t of mask[b,t] * l(yhat[b,t], y[b,t])."""
    B = x.shape[0]
    W_xhT, W_hhT, XT = _prepare(theta, x, I, H, O)
    return _loss_one(
        theta,
        XT,
        y,
        mask,
        h0,
        I,
        H,
        O,
        act,
        out,
        W_xhT,
        W_hhT,
        np.empty((B, H)),
        np.empty((B, H)),
        np.empty(O),
        np.empty(O),
    )


@njit(cache=True, error_model="numpy", fastmath=FM)
def population_loss(thetas, x, y, mask, h0, I, H, O, act, out):
    """thetas (P, n_params) -> losses (P,): P networks x B sequences in one call."""
    P, B = thetas.shape[0], x.shape[0]
    XT = np.ascontiguousarray(x.transpose(1, 0, 2))
    Ls = np.empty(P)
    HA = np.empty((B, H))
    HB = np.empty((B, H))
    zo = np.empty(O)
    dz = np.empty(O)
    for p in range(P):
        theta = thetas[p]
        W_xh, W_hh, _, _, _ = _unpack(theta, I, H, O)
        W_xhT = np.ascontiguousarray(W_xh.T)
        W_hhT = np.ascontiguousarray(W_hh.T)
        Ls[p] = _loss_one(theta, XT, y, mask, h0, I, H, O, act, out, W_xhT, W_hhT, HA, HB, zo, dz)
    return Ls


@njit(cache=True, error_model="numpy", fastmath=FM)
def loss_and_grad(theta, x, y, mask, h0, I, H, O, act, out, k):
    """Loss and its gradient w.r.t. theta by BPTT. k <= 0: full; k >= 1: BPTT(h=k).

    x (B,T,I), y (B,T,O), mask (B,T), h0 (B,H) held constant. Returns (L, g), g like theta.
    The batch advances in lock-step; the deltas are stored as D (T*B, H), row t*B + b, and
    the weight gradients are vector-matrix products over blocks of 32 (t, b) rows, so the
    block of states stays in cache while every row of the gradient is formed.
    """
    B, T = x.shape[0], x.shape[1]
    _, W_hh, b_h, W_hy, b_y = _unpack(theta, I, H, O)
    W_xhT, W_hhT, XT = _prepare(theta, x, I, H, O)
    g = np.zeros_like(theta)
    gW_xh, gW_hh, gb_h, gW_hy, gb_y = _unpack(g, I, H, O)
    HS = np.empty((T + 1, B, H))  # HS[0] = h0, HS[t + 1] = h_t
    DP = np.empty((T, B, H))  # act'(h_t)
    HS[0] = h0
    zo = np.empty(O)
    dz = np.empty(O)
    L = 0.0  # summed in the same order as loss(), so both give the same bits
    hi = -1  # the steps that carry an error; deltas vanish outside [lo, hi]
    first = T
    for t in range(T):
        _step_block(W_xhT, W_hhT, b_h, XT[t], HS[t], HS[t + 1], act)
        for b in range(B):
            for j in range(H):
                DP[t, b, j] = _dact(HS[t + 1, b, j], act)
            m = mask[b, t]
            if m != 0.0:
                L += _out_loss(W_hy, b_y, HS[t + 1, b], y[b, t], m, out, zo, dz)
                hi = t
                first = min(first, t)
    if hi < 0:
        return L, g
    full = k <= 0 or k >= T
    lo = 0 if full else max(0, first - k + 1)
    D = np.zeros((T * B, H))
    if full:
        # delta_t = (W_hy^T dz_t + W_hh^T delta_{t+1}) * act'(h_t), for the whole batch at once
        GR = np.zeros((B, H))
        DL = np.empty((B, H))
        for t in range(hi, -1, -1):
            for b in range(B):
                m = mask[b, t]
                if m != 0.0:
                    _out_loss(W_hy, b_y, HS[t + 1, b], y[b, t], m, out, zo, dz)
                    _vm_acc(dz, W_hy, GR[b])
                    for o in range(O):
                        gb_y[o] += dz[o]
                        d = dz[o]
                        for j in range(H):
                            gW_hy[o, j] += d * HS[t + 1, b, j]
            for b in range(B):
                for j in range(H):
                    d = GR[b, j] * DP[t, b, j]
                    DL[b, j] = d
                    D[t * B + b, j] = d
                    GR[b, j] = 0.0
            if t > 0:
                _mm_acc(DL, W_hh, GR)
    else:
        gr = np.empty(H)
        dl = np.empty(H)
        for b in range(B):
            for s in range(first, hi + 1):
                m = mask[b, s]
                if m == 0.0:
                    continue
                _out_loss(W_hy, b_y, HS[s + 1, b], y[b, s], m, out, zo, dz)
                gr[:] = 0.0
                _vm_acc(dz, W_hy, gr)
                for o in range(O):
                    gb_y[o] += dz[o]
                    d = dz[o]
                    for j in range(H):
                        gW_hy[o, j] += d * HS[s + 1, b, j]
                for j in range(H):
                    dl[j] = gr[j] * DP[s, b, j]
                r_lo = max(0, s - k + 1)
                for r in range(s, r_lo - 1, -1):
                    for j in range(H):
                        D[r * B + b, j] += dl[j]
                    if r > r_lo:
                        gr[:] = 0.0
                        _vm_acc(dl, W_hh, gr)
                        for j in range(H):
                            dl[j] = gr[j] * DP[r - 1, b, j]
    # weight gradients: gW_hh[j] += sum_(t,b) delta[j] h_{t-1}, gW_xh[j] += sum delta[j] a_t
    HSf = HS.reshape(((T + 1) * B, H))
    XTf = XT.reshape((T * B, I))
    for c0 in range(lo * B, (hi + 1) * B, 32):
        c1 = min(c0 + 32, (hi + 1) * B)
        for j in range(H):
            dj = D[c0:c1, j]
            acc = 0.0
            for i in range(dj.shape[0]):
                acc += dj[i]
            gb_h[j] += acc
            _vm_acc(dj, HSf[c0:c1], gW_hh[j])
            _vm_acc(dj, XTf[c0:c1], gW_xh[j])
    return L, g
