"""Slow, obviously-right NumPy transcription of the classic online BPTT pseudo-code.

The textbook algorithm (e.g. Wikipedia, "Backpropagation through time", pseudo-code), in this
toolkit's index convention (the output at step s predicts y[s]):

    unfold the network to contain k instances of f
    do until the stopping criterion is met:
        x := the zero-magnitude vector                      # the current context
        for t from 0 to n - k:
            set the network inputs to x, a[t], a[t+1], ..., a[t+k-1]
            p := forward-propagate the inputs over the whole unfolded network
            e := y[t+k-1] - p                               # error = target - prediction
            back-propagate the error e across the whole unfolded network
            update all the weights in the network
            average the weights in each instance of f together, so that each f is identical
            x := f(x, a[t])                                 # the context for the next step

``combine="sum"`` is the later version of the same page: the weight changes of the k instances
of f are summed, then applied to every instance. Windows whose end target has mask weight 0
are skipped (no update), the context still advances. Sequences are visited in order 0..B-1,
one after the other, each from the zero context. Plain SGD on the summed loss.

f(x, a) = act(W_xh a + W_hh x + b_h); g(x) = out(W_hy x + b_y). The error at g's
pre-activation is -e for every output with its matching loss (linear/mse, sigmoid/bce,
softmax/ce with one-hot targets).
"""

from __future__ import annotations

import numpy as np

ACT = {
    "tanh": (np.tanh, lambda h: 1.0 - h**2),
    "sigmoid": (lambda s: 1.0 / (1.0 + np.exp(-s)), lambda h: h * (1.0 - h)),
    "relu": (lambda s: np.maximum(s, 0.0), lambda h: (h > 0.0) * 1.0),
}


def out_fn(output: str, z: np.ndarray) -> np.ndarray:
    if output == "linear":
        return z
    if output == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z - z.max())
    return e / e.sum()


def online_bptt(
    params: dict,
    x,
    y,
    mask,
    k: int,
    lr: float,
    n_updates: int,
    hidden="tanh",
    output="linear",
    combine="average",
) -> list[dict]:
    """params: W_xh (H,I), W_hh (H,H), b_h (H,), W_hy (O,H), b_y (O,); x (B,T,I), y (B,T,O),
    mask (B,T). Returns the parameters before the first update and after each of
    ``n_updates`` updates (a list of n_updates + 1 dicts)."""
    act, dact = ACT[hidden]
    f = [{n: params[n].copy() for n in ("W_xh", "W_hh", "b_h")} for _ in range(k)]  # k copies
    g = {n: params[n].copy() for n in ("W_hy", "b_y")}  # one instance of g
    history = [{**f[0], **g}]
    B, T, _ = x.shape
    H = params["W_hh"].shape[0]
    while True:  # epochs
        for b in range(B):
            a = x[b]
            ctx = np.zeros(H)  # x := the zero-magnitude vector
            for t in range(T - k + 1):
                if mask[b, t + k - 1] > 0:
                    # forward-propagate the inputs over the whole unfolded network
                    hs = [ctx]
                    for i in range(k):
                        fi = f[i]
                        hs.append(act(fi["W_xh"] @ a[t + i] + fi["W_hh"] @ hs[-1] + fi["b_h"]))
                    p = out_fn(output, g["W_hy"] @ hs[-1] + g["b_y"])
                    e = y[b, t + k - 1] - p  # error = target - prediction
                    # back-propagate e across the whole unfolded network
                    d_out = -e * mask[b, t + k - 1]
                    grad_g = {"W_hy": np.outer(d_out, hs[-1]), "b_y": d_out}
                    grad_f = [None] * k
                    dh = g["W_hy"].T @ d_out
                    for i in range(k - 1, -1, -1):
                        d = dh * dact(hs[i + 1])
                        grad_f[i] = {
                            "W_xh": np.outer(d, a[t + i]),
                            "W_hh": np.outer(d, hs[i]),
                            "b_h": d,
                        }
                        dh = f[i]["W_hh"].T @ d
                    # update all the weights in the network
                    for n in g:
                        g[n] = g[n] - lr * grad_g[n]
                    if combine == "average":
                        for i in range(k):
                            for n in f[i]:
                                f[i][n] = f[i][n] - lr * grad_f[i][n]
                        # average the weights in each instance of f, so that each is identical
                        mean = {n: sum(f[i][n] for i in range(k)) / k for n in f[0]}
                    else:  # sum the weight changes of the k instances, apply them to each
                        mean = {n: f[0][n] - lr * sum(grad_f[i][n] for i in range(k)) for n in f[0]}
                    f = [{n: v.copy() for n, v in mean.items()} for _ in range(k)]
                    history.append({**f[0], **g})
                    if len(history) > n_updates:
                        return history
                f0 = f[0]
                ctx = act(f0["W_xh"] @ a[t] + f0["W_hh"] @ ctx + f0["b_h"])  # x := f(x, a[t])
