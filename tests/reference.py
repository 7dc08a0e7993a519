"""Slow, obviously-right NumPy versions of the Elman kernels. Tests compare the kernels to these.

Written for clarity, one sequence and one step at a time, with matrices as in the papers.
"""

import numpy as np


def unpack(theta, I, H, O):
    o = 0
    W_xh = theta[o : o + H * I].reshape(H, I)
    o += H * I
    W_hh = theta[o : o + H * H].reshape(H, H)
    o += H * H
    b_h = theta[o : o + H]
    o += H
    W_hy = theta[o : o + O * H].reshape(O, H)
    o += O * H
    b_y = theta[o : o + O]
    return W_xh, W_hh, b_h, W_hy, b_y


def act(z, kind):
    if kind == "tanh":
        return np.tanh(z)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if kind == "relu":
        return np.maximum(z, 0.0)
    raise ValueError(kind)


def dact_from_h(h, kind):
    if kind == "tanh":
        return 1.0 - h**2
    if kind == "sigmoid":
        return h * (1.0 - h)
    if kind == "relu":
        return (h > 0).astype(float)
    raise ValueError(kind)


def out_fn(z, kind):
    if kind == "linear":
        return z
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if kind == "softmax":
        e = np.exp(z - z.max())
        return e / e.sum()
    raise ValueError(kind)


def step_loss(z, y, kind):
    """l(out(z), y) written from its definition (not the stable form the kernel uses)."""
    yhat = out_fn(z, kind)
    if kind == "linear":
        return 0.5 * np.sum((yhat - y) ** 2)
    if kind == "sigmoid":
        return -np.sum(y * np.log(yhat) + (1 - y) * np.log(1 - yhat))
    if kind == "softmax":
        return -np.sum(y * np.log(yhat))
    raise ValueError(kind)


def step_dloss_dz(z, y, kind):
    yhat = out_fn(z, kind)
    if kind == "softmax":
        return yhat * y.sum() - y
    return yhat - y


def forward(theta, x, sizes, hidden="tanh", output="linear", h0=None):
    I, H, O = sizes
    W_xh, W_hh, b_h, W_hy, b_y = unpack(theta, I, H, O)
    B, T, _ = x.shape
    h = np.zeros((B, T, H))
    yhat = np.zeros((B, T, O))
    for b in range(B):
        hprev = np.zeros(H) if h0 is None else h0[b]
        for t in range(T):
            h[b, t] = act(W_xh @ x[b, t] + W_hh @ hprev + b_h, hidden)
            yhat[b, t] = out_fn(W_hy @ h[b, t] + b_y, output)
            hprev = h[b, t]
    return h, yhat


def loss(theta, x, y, mask, sizes, hidden="tanh", output="linear", h0=None):
    I, H, O = sizes
    W_xh, W_hh, b_h, W_hy, b_y = unpack(theta, I, H, O)
    h, _ = forward(theta, x, sizes, hidden, output, h0)
    B, T, _ = x.shape
    if mask is None:
        mask = np.ones((B, T))
    L = 0.0
    for b in range(B):
        for t in range(T):
            L += mask[b, t] * step_loss(W_hy @ h[b, t] + b_y, y[b, t], output)
    return L


def grad_full(theta, x, y, mask, sizes, hidden="tanh", output="linear", h0=None):
    """Full BPTT: delta_t = (W_hy^T e_t + W_hh^T delta_{t+1}) * act'(h_t)."""
    I, H, O = sizes
    W_xh, W_hh, b_h, W_hy, b_y = unpack(theta, I, H, O)
    h, _ = forward(theta, x, sizes, hidden, output, h0)
    B, T, _ = x.shape
    if mask is None:
        mask = np.ones((B, T))
    g = [np.zeros_like(a) for a in (W_xh, W_hh, b_h, W_hy, b_y)]
    for b in range(B):
        delta_next = np.zeros(H)
        for t in reversed(range(T)):
            e = mask[b, t] * step_dloss_dz(W_hy @ h[b, t] + b_y, y[b, t], output)
            g[3] += np.outer(e, h[b, t])
            g[4] += e
            delta = (W_hy.T @ e + W_hh.T @ delta_next) * dact_from_h(h[b, t], hidden)
            hprev = h[b, t - 1] if t > 0 else (np.zeros(H) if h0 is None else h0[b])
            g[0] += np.outer(delta, x[b, t])
            g[1] += np.outer(delta, hprev)
            g[2] += delta
            delta_next = delta
    return np.concatenate([a.ravel() for a in g])


def grad_truncated(theta, x, y, mask, k, sizes, hidden="tanh", output="linear", h0=None):
    """BPTT(h=k) of Williams & Peng: for every step s, backpropagate l_s through k copies of the
    recurrent step (uses at s-k+1..s), holding h_{s-k} constant."""
    I, H, O = sizes
    W_xh, W_hh, b_h, W_hy, b_y = unpack(theta, I, H, O)
    h, _ = forward(theta, x, sizes, hidden, output, h0)
    B, T, _ = x.shape
    if mask is None:
        mask = np.ones((B, T))
    g = [np.zeros_like(a) for a in (W_xh, W_hh, b_h, W_hy, b_y)]
    for b in range(B):
        for s in range(T):
            e = mask[b, s] * step_dloss_dz(W_hy @ h[b, s] + b_y, y[b, s], output)
            g[3] += np.outer(e, h[b, s])
            g[4] += e
            delta = (W_hy.T @ e) * dact_from_h(h[b, s], hidden)
            for r in range(s, max(0, s - k + 1) - 1, -1):
                hprev = h[b, r - 1] if r > 0 else (np.zeros(H) if h0 is None else h0[b])
                g[0] += np.outer(delta, x[b, r])
                g[1] += np.outer(delta, hprev)
                g[2] += delta
                delta = (W_hh.T @ delta) * dact_from_h(hprev, hidden)
    return np.concatenate([a.ravel() for a in g])


def truncated_objective(
    theta, theta_const, x, y, mask, k, sizes, hidden="tanh", output="linear", h0=None
):
    """The objective whose gradient at theta = theta_const is the BPTT(k) gradient: each loss
    term l_s is computed by running k steps with ``theta`` from the state h_{s-k} of a forward
    pass with ``theta_const`` (held constant)."""
    I, H, O = sizes
    hc, _ = forward(theta_const, x, sizes, hidden, output, h0)
    W_xh, W_hh, b_h, W_hy, b_y = unpack(theta, I, H, O)
    B, T, _ = x.shape
    if mask is None:
        mask = np.ones((B, T))
    J = 0.0
    for b in range(B):
        for s in range(T):
            lo = max(0, s - k + 1)
            hs = hc[b, lo - 1] if lo > 0 else (np.zeros(H) if h0 is None else h0[b])
            for r in range(lo, s + 1):
                hs = act(W_xh @ x[b, r] + W_hh @ hs + b_h, hidden)
            J += mask[b, s] * step_loss(W_hy @ hs + b_y, y[b, s], output)
    return J


def central_diff(f, theta, eps=1e-6):
    g = np.zeros_like(theta)
    for i in range(theta.size):
        tp = theta.copy()
        tm = theta.copy()
        tp[i] += eps
        tm[i] -= eps
        g[i] = (f(tp) - f(tm)) / (2 * eps)
    return g


def central_diff4(f, theta, eps=1e-3):
    """Fourth-order central differences, (8 (f(+e) - f(-e)) - (f(+2e) - f(-2e))) / 12e:
    truncation O(eps^4), so a larger eps keeps the rounding error of f small too."""
    g = np.zeros_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = eps
        g[i] = (8 * (f(theta + e) - f(theta - e)) - (f(theta + 2 * e) - f(theta - 2 * e))) / (
            12 * eps
        )
    return g


# --------------------------------------------------------------------------------------
# architecture A1 (toolkit/a1.py): hidden units first, then the recurrent output unit
# --------------------------------------------------------------------------------------
def a1_forward(theta, x, I, H, hidden="tanh", output="sigmoid"):
    """h (B,T,H), o (B,T): one sequence and one step at a time, with the paper's order
    (hidden units from x_t, h_{t-1}, o_{t-1}; output from x_t, h_t, o_{t-1})."""
    o_ = 0
    W_hx = theta[o_ : o_ + H * I].reshape(H, I)
    o_ += H * I
    W_hh = theta[o_ : o_ + H * H].reshape(H, H)
    o_ += H * H
    w_ho = theta[o_ : o_ + H]
    o_ += H
    b_h = theta[o_ : o_ + H]
    o_ += H
    w_ox = theta[o_ : o_ + I]
    o_ += I
    w_oh = theta[o_ : o_ + H]
    o_ += H
    w_oo, b_o = theta[o_], theta[o_ + 1]
    assert o_ + 2 == theta.size
    B, T, _ = x.shape
    hs = np.zeros((B, T, H))
    os_ = np.zeros((B, T))
    for b in range(B):
        h_prev, o_prev = np.zeros(H), 0.0
        for t in range(T):
            h = act(W_hx @ x[b, t] + W_hh @ h_prev + w_ho * o_prev + b_h, hidden)
            o = out_fn(np.array([w_ox @ x[b, t] + w_oh @ h + w_oo * o_prev + b_o]), output)[0]
            hs[b, t], os_[b, t] = h, o
            h_prev, o_prev = h, o
    return hs, os_


def a1_loss(theta, x, y, mask, I, H, hidden="tanh", output="sigmoid"):
    """sum_{b,t} mask * l(o, y) from the definition of the loss."""
    _, o = a1_forward(theta, x, I, H, hidden, output)
    L = 0.0
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            if mask[b, t] != 0:
                yt = y[b, t, 0]
                if output == "sigmoid":
                    L -= mask[b, t] * (yt * np.log(o[b, t]) + (1 - yt) * np.log(1 - o[b, t]))
                else:
                    L += mask[b, t] * 0.5 * (o[b, t] - yt) ** 2
    return L


# --------------------------------------------------------------------------------------
# gated cells (toolkit/gated.py): LSTM with forget gate and GRU, as torch.nn.LSTM / nn.GRU
# --------------------------------------------------------------------------------------
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def gated_unpack(cell, theta, I, H, O):
    """The named blocks: LSTM W_xh (4H,I), W_hh (4H,H), b_h (4H,); GRU W_xh (3H,I),
    W_hh (3H,H), b_h (3H,), b_hn (H,); then W_hy (O,H), b_y (O,)."""
    n = 4 if cell == "lstm" else 3
    shapes = [("W_xh", (n * H, I)), ("W_hh", (n * H, H)), ("b_h", (n * H,))]
    if cell == "gru":
        shapes.append(("b_hn", (H,)))
    shapes += [("W_hy", (O, H)), ("b_y", (O,))]
    p, o = {}, 0
    for name, shape in shapes:
        size = int(np.prod(shape))
        p[name] = theta[o : o + size].reshape(shape)
        o += size
    assert o == theta.size, (o, theta.size)
    return p


def lstm_step(p, a, h, c):
    """One LSTM step, the equations of torch.nn.LSTM: gates i, f, g, o."""
    H = h.size
    zz = p["W_xh"] @ a + p["W_hh"] @ h + p["b_h"]
    i, f = sigmoid(zz[:H]), sigmoid(zz[H : 2 * H])
    g, o = np.tanh(zz[2 * H : 3 * H]), sigmoid(zz[3 * H :])
    c = f * c + i * g
    return o * np.tanh(c), c


def gru_step(p, a, h):
    """One GRU step, the equations of torch.nn.GRU: r applied to (W_hn h + b_hn)."""
    H = h.size
    W_x, W_h, b = p["W_xh"], p["W_hh"], p["b_h"]
    r = sigmoid(W_x[:H] @ a + W_h[:H] @ h + b[:H])
    z = sigmoid(W_x[H : 2 * H] @ a + W_h[H : 2 * H] @ h + b[H : 2 * H])
    n = np.tanh(W_x[2 * H :] @ a + b[2 * H :] + r * (W_h[2 * H :] @ h + p["b_hn"]))
    return (1.0 - z) * n + z * h


def gated_step(cell, p, a, s):
    """state s ([h, c] for the LSTM, h for the GRU) -> the next state."""
    if cell == "lstm":
        H = s.size // 2
        return np.concatenate(lstm_step(p, a, s[:H], s[H:]))
    return gru_step(p, a, s)


def gated_forward(cell, theta, x, sizes, output="linear", h0=None):
    """h (B,T,H), yhat (B,T,O), states (B,T,n_state): one sequence and one step at a time."""
    I, H, O = sizes
    p = gated_unpack(cell, theta, I, H, O)
    n_state = 2 * H if cell == "lstm" else H
    B, T, _ = x.shape
    S = np.zeros((B, T, n_state))
    yhat = np.zeros((B, T, O))
    for b in range(B):
        s = np.zeros(n_state) if h0 is None else h0[b]
        for t in range(T):
            s = gated_step(cell, p, x[b, t], s)
            S[b, t] = s
            yhat[b, t] = out_fn(p["W_hy"] @ s[:H] + p["b_y"], output)
    return S[:, :, :H], yhat, S


def gated_loss(cell, theta, x, y, mask, sizes, output="linear", h0=None):
    I, H, O = sizes
    p = gated_unpack(cell, theta, I, H, O)
    h, _, _ = gated_forward(cell, theta, x, sizes, output, h0)
    B, T, _ = x.shape
    mask = np.ones((B, T)) if mask is None else mask
    return sum(
        mask[b, t] * step_loss(p["W_hy"] @ h[b, t] + p["b_y"], y[b, t], output)
        for b in range(B)
        for t in range(T)
    )


def gated_truncated_objective(cell, theta, theta_const, x, y, mask, k, sizes, output, h0=None):
    """As :func:`truncated_objective`: each loss term l_s from k steps with ``theta`` run from
    the state at s-k (h and c) of a forward pass with ``theta_const``."""
    I, H, O = sizes
    _, _, Sc = gated_forward(cell, theta_const, x, sizes, output, h0)
    p = gated_unpack(cell, theta, I, H, O)
    n_state = Sc.shape[2]
    B, T, _ = x.shape
    mask = np.ones((B, T)) if mask is None else mask
    J = 0.0
    for b in range(B):
        for s in range(T):
            lo = max(0, s - k + 1)
            st = Sc[b, lo - 1] if lo > 0 else (np.zeros(n_state) if h0 is None else h0[b])
            for r in range(lo, s + 1):
                st = gated_step(cell, p, x[b, r], st)
            J += mask[b, s] * step_loss(p["W_hy"] @ st[:H] + p["b_y"], y[b, s], output)
    return J
