"""Numba kernels for the gated cells, LSTM and GRU: forward, loss, BPTT(k) gradients,
population loss. Pure functions over contiguous float64 arrays and ints, like
:mod:`toolkit.kernels.elman`; :mod:`toolkit.gated` validates, converts and allocates.

``cell`` code 0 is the LSTM with forget gate (Hochreiter & Schmidhuber 1997; Gers,
Schmidhuber & Cummins 2000) as ``torch.nn.LSTM`` computes it, gates in torch's order
i, f, g, o, state (h, c)::

    [i; f; g; o] = [sig; sig; tanh; sig](W_xh a_t + W_hh h_{t-1} + b_h)      (4H,)
    c_t = f * c_{t-1} + i * g,      h_t = o * tanh(c_t)

``cell`` code 1 is the GRU (Cho et al. 2014) as ``torch.nn.GRU`` computes it, rows in
torch's order r, z, n, with the reset gate applied to (W_hn h + b_hn) as torch does::

    r = sig(W_xr a + W_hr h + b_r),  z = sig(W_xz a + W_hz h + b_z)
    n = tanh(W_xn a + b_n + r * (W_hn h + b_hn)),    h_t = (1 - z) * n + z * h_{t-1}

The readout and the losses are those of the Elman kernels: yhat_t = out(W_hy h_t + b_y),
L = sum_{b,t} mask[b,t] * l(yhat, y) (linear/mse, sigmoid/bce, softmax/ce; dl/dz = yhat - y,
softmax yhat * sum(y) - y).

theta layout (C order), n_g = 4 (LSTM) or 3 (GRU) gate blocks of H rows each:
W_xh (n_g H, I), W_hh (n_g H, H), b_h (n_g H,), [GRU only: b_hn (H,)], W_hy (O,H), b_y (O,).
One bias per gate row: torch's two (b_ih + b_hh) only enter as their sum, except the GRU's
b_hn, which sits inside r * (...) and is its own block.

State arrays: HS (B, T+1, H) with HS[b, t+1] = h_t and HS[b, 0] = h_{-1}; CS (B, T+1, H) the
LSTM's cells likewise (unused by the GRU); G (B, T, 5H) per step: the LSTM's gate values
i, f, g, o and tanh(c_t) (so the backward pass need not recompute it), or the GRU's r, z, n
and W_hn h_{t-1} + b_hn (its last H unused).

Gradients: ``k <= 0`` or ``k >= T`` is full BPTT; ``k >= 1`` is Williams & Peng's BPTT(h)
with unfold depth k: the error at step s reaches the parameter uses at steps s-k+1..s, and
the state at s-k (h and, for the LSTM, c) is held constant. O(T k H^2) per sequence.

Floating point: no fast-math flags at all (strict IEEE operations in program order), so
every function computes the same bits wherever it is inlined. ``loss``, ``loss_and_grad``
and ``population_loss`` run one forward routine (:func:`_run`) and one loss routine
(:func:`_loss`), which sum over b, then t, in that fixed order: ``population_loss`` gives
exactly the bits of ``loss`` for each network, and ``loss_and_grad`` the same loss.

Speed without changing a bit: every product runs with independent outputs in its inner loop
(W_hh^T, W_xh^T and W_hh copies made once per call), while each output still adds its terms
one at a time in the order of the plain scalar loop (``acc + p0 + p1 + p2 + p3`` is evaluated
left to right), so LLVM vectorises across outputs without reassociating any sum; W_hh's
gradient terms are held for KC steps and then added in order, tile by tile. The results are
those of the plain scalar loops (commit e1c29d3) bit for bit: tests/test_gated_bits.py
compares them with a fixture written by those loops.
"""

import math

import numpy as np
from numba import njit

LSTM, GRU = 0, 1
#: gate blocks of H rows: 4 for the LSTM (i, f, g, o), 3 for the GRU (r, z, n)
N_GATES = (4, 3)


@njit(cache=True, error_model="numpy", inline="always")
def _sig(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True, error_model="numpy")
def offsets(cell, I, H, O):
    """Offsets in theta: W_xh, W_hh, b_h, b_hn (GRU; = W_hy's for the LSTM), W_hy, b_y, n."""
    ng = 4 if cell == LSTM else 3
    whh = ng * H * I
    bh = whh + ng * H * H
    bhn = bh + ng * H
    wy = bhn + (H if cell == GRU else 0)
    by = wy + O * H
    return whh, bh, bhn, wy, by, by + O


def n_params(cell: int, I: int, H: int, O: int) -> int:
    """Length of theta: n_g H (I + H + 1) [+ H for the GRU's b_hn] + O (H + 1)."""
    return int(offsets(cell, I, H, O)[5])


@njit(cache=True, error_model="numpy")
def _acc_t(acc, M, v, n, m):
    """acc[q] += sum_j M[j, q] v[j] for q < m, each acc[q] adding its n terms one at a time
    in the order j = 0..n-1 (the bits of the scalar loop ``for j: acc[q] += M[j, q] * v[j]``).
    The inner loops run over independent q, so they vectorise without reassociation; j is
    unrolled by 4 as ``acc + p0 + p1 + p2 + p3``, which Python and Numba evaluate left to
    right, i.e. in the same order."""
    j = 0
    while j + 4 <= n:
        v0 = v[j]
        v1 = v[j + 1]
        v2 = v[j + 2]
        v3 = v[j + 3]
        for q in range(m):
            acc[q] = acc[q] + M[j, q] * v0 + M[j + 1, q] * v1 + M[j + 2, q] * v2 + M[j + 3, q] * v3
        j += 4
    while j < n:
        vj = v[j]
        for q in range(m):
            acc[q] += M[j, q] * vj
        j += 1


@njit(cache=True, error_model="numpy")
def _run(cell, theta, x, h0, I, H, O, HS, CS, G, WX, WT, a, r_):
    """Forward pass of one theta over x (B,T,I) from the state h0 (B, H) (GRU) or (B, 2H)
    (LSTM: [h, c]): fills HS, CS and G (module docstring). Scratch: WX (I, n_g H), WT (H,
    n_g H) get W_xh^T and W_hh^T of this theta; a, r_ (n_g H,)."""
    B, T = x.shape[0], x.shape[1]
    whh, bh, bhn, _, _, _ = offsets(cell, I, H, O)
    ng = 4 if cell == LSTM else 3
    n = ng * H
    for q in range(n):
        for i in range(I):
            WX[i, q] = theta[q * I + i]
        for j in range(H):
            WT[j, q] = theta[whh + q * H + j]
    for b in range(B):
        for j in range(H):
            HS[b, 0, j] = h0[b, j]
            if cell == LSTM:
                CS[b, 0, j] = h0[b, H + j]
        for t in range(T):
            # x-side pre-activations from b_h, h-side products W_hh h_{t-1} from 0.0
            for q in range(n):
                a[q] = theta[bh + q]
                r_[q] = 0.0
            _acc_t(a, WX, x[b, t], I, n)
            _acc_t(r_, WT, HS[b, t], H, n)
            if cell == LSTM:
                for j in range(H):
                    ig = _sig(a[j] + r_[j])
                    fg = _sig(a[H + j] + r_[H + j])
                    gg = math.tanh(a[2 * H + j] + r_[2 * H + j])
                    og = _sig(a[3 * H + j] + r_[3 * H + j])
                    c = fg * CS[b, t, j] + ig * gg
                    G[b, t, j] = ig
                    G[b, t, H + j] = fg
                    G[b, t, 2 * H + j] = gg
                    G[b, t, 3 * H + j] = og
                    CS[b, t + 1, j] = c
                    tc = math.tanh(c)
                    G[b, t, 4 * H + j] = tc
                    HS[b, t + 1, j] = og * tc
            else:
                for j in range(H):
                    rg = _sig(a[j] + r_[j])
                    zg = _sig(a[H + j] + r_[H + j])
                    hn = r_[2 * H + j] + theta[bhn + j]
                    n_ = math.tanh(a[2 * H + j] + rg * hn)
                    G[b, t, j] = rg
                    G[b, t, H + j] = zg
                    G[b, t, 2 * H + j] = n_
                    G[b, t, 3 * H + j] = hn
                    HS[b, t + 1, j] = (1.0 - zg) * n_ + zg * HS[b, t, j]


@njit(cache=True, error_model="numpy")
def _scratch(cell, I, H):
    """WX (I, n_g H), WT (H, n_g H), a, r_ (n_g H,): the forward pass's scratch."""
    n = (4 if cell == LSTM else 3) * H
    return np.empty((I, n)), np.empty((H, n)), np.empty(n), np.empty(n)


@njit(cache=True, error_model="numpy")
def _zout(theta, wy, by, HS, b, t1, H, zo):
    """zo = W_hy h + b_y for h = HS[b, t1]."""
    for o in range(zo.shape[0]):
        s = theta[by + o]
        for j in range(H):
            s += theta[wy + o * H + j] * HS[b, t1, j]
        zo[o] = s


@njit(cache=True, error_model="numpy")
def _step_loss(zo, y, b, t, m, out, DZ):
    """m * l(out(zo), y[b, t]); writes m * dl/dz into DZ[b, t]."""
    O = zo.shape[0]
    L = 0.0
    if out == 0:
        for o in range(O):
            d = zo[o] - y[b, t, o]
            L += 0.5 * d * d
            DZ[b, t, o] = m * d
    elif out == 1:
        for o in range(O):
            z = zo[o]
            L += max(z, 0.0) + math.log1p(math.exp(-abs(z))) - y[b, t, o] * z
            DZ[b, t, o] = m * (_sig(z) - y[b, t, o])
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
            ysum += y[b, t, o]
            L += y[b, t, o] * (lse - zo[o])
        for o in range(O):
            DZ[b, t, o] = m * (math.exp(zo[o] - lse) * ysum - y[b, t, o])
    return m * L


@njit(cache=True, error_model="numpy")
def _loss(cell, theta, HS, y, mask, I, H, O, out, zo, DZ):
    """sum over b, then t, of mask[b,t] * l(yhat, y); DZ (B,T,O) gets mask * dl/dz (zero
    where the mask is zero)."""
    B, T = mask.shape[0], mask.shape[1]
    _, _, _, wy, by, _ = offsets(cell, I, H, O)
    L = 0.0
    for b in range(B):
        for t in range(T):
            m = mask[b, t]
            if m != 0.0:
                _zout(theta, wy, by, HS, b, t + 1, H, zo)
                L += _step_loss(zo, y, b, t, m, out, DZ)
            else:
                for o in range(O):
                    DZ[b, t, o] = 0.0
    return L


def forward_work(cell, B, T, I, H, O):
    """The arrays forward_into takes for a (B,T,I) input: HS, CS (B,T+1,H), G (B,T,5H), the
    scratch WX (I,nH), WT (H,nH), a, r_ (nH,) (n = 4 LSTM, 3 GRU), zo (O); yhat (B,T,O)."""
    n = (4 if cell == LSTM else 3) * H
    return (
        np.empty((B, T + 1, H)), np.empty((B, T + 1, H)), np.empty((B, T, 5 * H)),
        np.empty((I, n)), np.empty((H, n)), np.empty(n), np.empty(n), np.empty(O),
        np.empty((B, T, O)),
    )  # fmt: skip


@njit(cache=True, error_model="numpy")
def forward_into(cell, theta, x, h0, I, H, O, out, HS, CS, G, WX, WT, a, r_, zo, yhat):
    """forward's computation, with no allocation: fills HS, CS (B,T+1,H) and yhat (B,T,O)
    in place (sizes: forward_work). The same bits as forward's."""
    B, T = x.shape[0], x.shape[1]
    CS[:] = 0.0
    _run(cell, theta, x, h0, I, H, O, HS, CS, G, WX, WT, a, r_)
    _, _, _, wy, by, _ = offsets(cell, I, H, O)
    for b in range(B):
        for t in range(T):
            _zout(theta, wy, by, HS, b, t + 1, H, zo)
            if out == 0:
                for o in range(O):
                    yhat[b, t, o] = zo[o]
            elif out == 1:
                for o in range(O):
                    yhat[b, t, o] = _sig(zo[o])
            else:
                zmax = zo[0]
                for o in range(1, O):
                    zmax = max(zmax, zo[o])
                s = 0.0
                for o in range(O):
                    e = math.exp(zo[o] - zmax)
                    yhat[b, t, o] = e
                    s += e
                for o in range(O):
                    yhat[b, t, o] /= s


@njit(cache=True, error_model="numpy")
def forward(cell, theta, x, h0, I, H, O, out):
    """x (B,T,I), h0 (B, n_state) -> HS (B,T+1,H), CS (B,T+1,H), yhat (B,T,O)."""
    B, T = x.shape[0], x.shape[1]
    HS = np.empty((B, T + 1, H))
    CS = np.empty((B, T + 1, H))  # zeroed by forward_into
    G = np.empty((B, T, 5 * H))
    WX, WT, a, r_ = _scratch(cell, I, H)
    yhat = np.empty((B, T, O))
    forward_into(cell, theta, x, h0, I, H, O, out, HS, CS, G, WX, WT, a, r_, np.empty(O), yhat)
    return HS, CS, yhat


@njit(cache=True, error_model="numpy")
def loss(cell, theta, x, y, mask, h0, I, H, O, out):
    """Scalar loss: sum over b, then t, of mask[b,t] * l(yhat[b,t], y[b,t])."""
    B, T = x.shape[0], x.shape[1]
    HS = np.empty((B, T + 1, H))
    CS = np.empty((B, T + 1, H))
    G = np.empty((B, T, 5 * H))
    WX, WT, a, r_ = _scratch(cell, I, H)
    _run(cell, theta, x, h0, I, H, O, HS, CS, G, WX, WT, a, r_)
    return _loss(cell, theta, HS, y, mask, I, H, O, out, np.empty(O), np.empty((B, T, O)))


@njit(cache=True, error_model="numpy")
def population_loss(cell, thetas, x, y, mask, h0, I, H, O, out):
    """thetas (P, n_params) -> losses (P,): the routines of :func:`loss`, one network at a
    time over buffers allocated once, so each loss has the bits of loss() of that network."""
    P, B, T = thetas.shape[0], x.shape[0], x.shape[1]
    HS = np.empty((B, T + 1, H))
    CS = np.empty((B, T + 1, H))
    G = np.empty((B, T, 5 * H))
    zo = np.empty(O)
    DZ = np.empty((B, T, O))
    Ls = np.empty(P)
    WX, WT, a, r_ = _scratch(cell, I, H)
    for p in range(P):
        theta = thetas[p]
        _run(cell, theta, x, h0, I, H, O, HS, CS, G, WX, WT, a, r_)
        Ls[p] = _loss(cell, theta, HS, y, mask, I, H, O, out, zo, DZ)
    return Ls


#: steps whose W_hh gradient terms are held before they are added, in order, to GH
KC = 64


@njit(cache=True, error_model="numpy")
def _flush(GH, EST, HP, k):
    """GH[q, j] += EST[q, s] HP[s, j] for s = 0..k-1, one term at a time in that order (the
    bits of adding each step's outer product as it comes): four rows of GH at a time, four
    steps per pass as ``GH + p0 + p1 + p2 + p3`` (evaluated left to right), so the rows stay
    in L1 and each element is loaded and stored once per four terms."""
    n, H = GH.shape[0], GH.shape[1]
    q = 0
    while q + 4 <= n:
        s = 0
        while s + 4 <= k:
            a0 = EST[q, s]
            a1 = EST[q, s + 1]
            a2 = EST[q, s + 2]
            a3 = EST[q, s + 3]
            b0 = EST[q + 1, s]
            b1 = EST[q + 1, s + 1]
            b2 = EST[q + 1, s + 2]
            b3 = EST[q + 1, s + 3]
            c0 = EST[q + 2, s]
            c1 = EST[q + 2, s + 1]
            c2 = EST[q + 2, s + 2]
            c3 = EST[q + 2, s + 3]
            d0 = EST[q + 3, s]
            d1 = EST[q + 3, s + 1]
            d2 = EST[q + 3, s + 2]
            d3 = EST[q + 3, s + 3]
            for j in range(H):
                h0 = HP[s, j]
                h1 = HP[s + 1, j]
                h2 = HP[s + 2, j]
                h3 = HP[s + 3, j]
                GH[q, j] = GH[q, j] + a0 * h0 + a1 * h1 + a2 * h2 + a3 * h3
                GH[q + 1, j] = GH[q + 1, j] + b0 * h0 + b1 * h1 + b2 * h2 + b3 * h3
                GH[q + 2, j] = GH[q + 2, j] + c0 * h0 + c1 * h1 + c2 * h2 + c3 * h3
                GH[q + 3, j] = GH[q + 3, j] + d0 * h0 + d1 * h1 + d2 * h2 + d3 * h3
            s += 4
        while s < k:
            a0 = EST[q, s]
            b0 = EST[q + 1, s]
            c0 = EST[q + 2, s]
            d0 = EST[q + 3, s]
            for j in range(H):
                h0 = HP[s, j]
                GH[q, j] += a0 * h0
                GH[q + 1, j] += b0 * h0
                GH[q + 2, j] += c0 * h0
                GH[q + 3, j] += d0 * h0
            s += 1
        q += 4
    while q < n:
        for s in range(k):
            e = EST[q, s]
            for j in range(H):
                GH[q, j] += e * HP[s, j]
        q += 1


@njit(cache=True, error_model="numpy")
def _back_step(
    cell,
    theta,
    x,
    HS,
    CS,
    G,
    b,
    t,
    I,
    H,
    O,
    dh,
    dc,
    g,
    dz,
    dzh,
    dh_prev,
    dc_prev,
    W,
    GH,
    EST,
    HP,
    HN,
):
    """Backpropagate through step t of sequence b: given dh = dL/dh_t and (LSTM) dc =
    dL/dc_t from later steps, add the gradients of the parameter uses at step t into g and
    write dL/dh_{t-1} into dh_prev and (LSTM) dL/dc_{t-1} into dc_prev. dz, dzh: scratch
    (4H,) for the x-side and the h-side pre-activation errors. W (n_g H, H): a copy of W_hh;
    GH (n_g H, H): W_hh's gradient, copied into g by the caller; its terms are held in EST
    (n_g H, KC), HP (KC, H), HN[0] of them, and added by :func:`_flush`."""
    _, bh, bhn, _, _, _ = offsets(cell, I, H, O)
    ng = 4 if cell == LSTM else 3
    if cell == LSTM:
        for j in range(H):
            ig = G[b, t, j]
            fg = G[b, t, H + j]
            gg = G[b, t, 2 * H + j]
            og = G[b, t, 3 * H + j]
            tc = G[b, t, 4 * H + j]  # tanh(c_t), kept by the forward pass
            dct = dc[j] + dh[j] * og * (1.0 - tc * tc)
            dz[j] = dct * gg * ig * (1.0 - ig)
            dz[H + j] = dct * CS[b, t, j] * fg * (1.0 - fg)
            dz[2 * H + j] = dct * ig * (1.0 - gg * gg)
            dz[3 * H + j] = dh[j] * tc * og * (1.0 - og)
            dc_prev[j] = dct * fg
            dh_prev[j] = 0.0
        for q in range(ng * H):
            dzh[q] = dz[q]
    else:
        for j in range(H):
            rg = G[b, t, j]
            zg = G[b, t, H + j]
            n = G[b, t, 2 * H + j]
            hn = G[b, t, 3 * H + j]
            dan = dh[j] * (1.0 - zg) * (1.0 - n * n)  # error of n's pre-activation
            dz[j] = dan * hn * rg * (1.0 - rg)
            dz[H + j] = dh[j] * (HS[b, t, j] - n) * zg * (1.0 - zg)
            dz[2 * H + j] = dan
            dzh[j] = dz[j]
            dzh[H + j] = dz[H + j]
            dzh[2 * H + j] = dan * rg  # error of W_hn h + b_hn
            g[bhn + j] += dzh[2 * H + j]
            dh_prev[j] = dh[j] * zg
    n = ng * H
    for i in range(I):  # each element gets one term per step: any loop order, same bits
        xi = x[b, t, i]
        for q in range(n):
            g[q * I + i] += dz[q] * xi
    for q in range(n):
        g[bh + q] += dz[q]
    # W_hh's gradient: hold this step's (dzh, h_{t-1}) in column/row kh of EST, HP
    kh = HN[0]
    for q in range(n):
        EST[q, kh] = dzh[q]
    for j in range(H):
        HP[kh, j] = HS[b, t, j]
    HN[0] = kh + 1
    if kh + 1 == KC:
        _flush(GH, EST, HP, KC)
        HN[0] = 0
    # dh_prev[j] += W_hh[q, j] dzh[q] in the order q = 0..n-1
    _acc_t(dh_prev, W, dzh, n, H)


@njit(cache=True, error_model="numpy")
def loss_and_grad(cell, theta, x, y, mask, h0, I, H, O, out, k):
    """Loss and its gradient w.r.t. theta by BPTT; k <= 0 or k >= T: full, else BPTT(h=k).

    x (B,T,I), y (B,T,O), mask (B,T), h0 (B, n_state) held constant. Returns (L, g)."""
    B, T = x.shape[0], x.shape[1]
    _, _, _, wy, by, _ = offsets(cell, I, H, O)
    HS = np.empty((B, T + 1, H))
    CS = np.zeros((B, T + 1, H))
    G = np.empty((B, T, 5 * H))
    DZ = np.empty((B, T, O))
    WX, WT, a, r_ = _scratch(cell, I, H)
    _run(cell, theta, x, h0, I, H, O, HS, CS, G, WX, WT, a, r_)
    L = _loss(cell, theta, HS, y, mask, I, H, O, out, np.empty(O), DZ)
    g = np.zeros_like(theta)
    dh = np.empty(H)
    dc = np.empty(H)
    dh2 = np.empty(H)
    dc2 = np.empty(H)
    dz = np.empty(4 * H)
    dzh = np.empty(4 * H)
    full = k <= 0 or k >= T
    whh = offsets(cell, I, H, O)[0]
    n = WT.shape[1]
    W = np.empty((n, H))
    for q in range(n):
        for j in range(H):
            W[q, j] = theta[whh + q * H + j]
    GH = np.zeros((n, H))
    EST = np.empty((n, KC))
    HP = np.empty((KC, H))
    HN = np.zeros(1, np.int64)
    for b in range(B):
        hi = -1
        for t in range(T):
            if mask[b, t] != 0.0:
                hi = t
                # readout: gW_hy += dz h_t^T, gb_y += dz
                for o in range(O):
                    d = DZ[b, t, o]
                    for j in range(H):
                        g[wy + o * H + j] += d * HS[b, t + 1, j]
                    g[by + o] += d
        if full:
            for j in range(H):
                dh2[j] = 0.0  # dL/dh_t, dL/dc_t from the steps after t
                dc2[j] = 0.0
            for t in range(hi, -1, -1):
                for j in range(H):
                    dh[j] = dh2[j]
                    dc[j] = dc2[j]
                for o in range(O):  # dh[j] += W_hy[o, j] dz_o in the order o = 0..O-1
                    d = DZ[b, t, o]
                    for j in range(H):
                        dh[j] += theta[wy + o * H + j] * d
                _back_step(cell, theta, x, HS, CS, G, b, t, I, H, O, dh, dc, g, dz, dzh, dh2, dc2,
                           W, GH, EST, HP, HN)  # fmt: skip
        else:
            for s_ in range(hi + 1):
                if mask[b, s_] == 0.0:
                    continue
                for j in range(H):
                    dh[j] = 0.0
                    dc[j] = 0.0
                for o in range(O):
                    d = DZ[b, s_, o]
                    for j in range(H):
                        dh[j] += theta[wy + o * H + j] * d
                for r in range(s_, max(0, s_ - k + 1) - 1, -1):
                    _back_step(cell, theta, x, HS, CS, G, b, r, I, H, O, dh, dc, g, dz, dzh,
                               dh2, dc2, W, GH, EST, HP, HN)  # fmt: skip
                    dh, dh2 = dh2, dh
                    dc, dc2 = dc2, dc
    _flush(GH, EST, HP, HN[0])
    for q in range(n):
        for j in range(H):
            g[whh + q * H + j] = GH[q, j]
    return L, g
