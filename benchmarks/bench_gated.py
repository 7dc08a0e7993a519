"""LSTM and GRU in the Numba core beside PyTorch eager and JAX (issue 17's targets).

One thread, steady state, T = 100, medians of repeated calls in this one process, printed as
ratios (ours is N times faster), so a noisy shared machine still gives comparable numbers:

* loss and full-BPTT gradient at H = 8 and 32 with B = 1 (targets: >= 20x torch, >= 2x JAX)
  and at H = 128 with B = 32 (>= 1.5x torch, >= 1.2x JAX);
* population loss, P = 64, H = 32, B = 8, against JAX ``jit(vmap(loss))`` (>= 2x).

torch: ``nn.LSTM`` / ``nn.GRU`` + ``nn.Linear`` in float64 with our weights, autograd; JAX:
``jit(value_and_grad)`` over ``lax.scan`` of the same equations. Each competitor's loss (and
JAX's gradient) is checked against ours before it is timed. PyTorch and JAX are optional
(``pip install -e .[bench]``); a missing one is reported and skipped.

    python benchmarks/bench_gated.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core as bc  # noqa: E402  (sets one thread for numpy/torch/jax first)
import numpy as np  # noqa: E402

CELLS = ("lstm", "gru")
GRAD_CASES = ((8, 1), (32, 1), (128, 32))  # (H, B) at T = 100
T = 100
TARGETS = {  # (vs torch, vs JAX) per (H, B); population: vs JAX vmap
    (8, 1): (20.0, 2.0),
    (32, 1): (20.0, 2.0),
    (128, 32): (1.5, 1.2),
    "population": (None, 2.0),
}


def _offsets(net, theta) -> dict:
    """name -> (offset, shape) of each block of theta (net.unpack returns views)."""
    base = theta.__array_interface__["data"][0]
    out = {}
    for k, v in net.unpack(theta).items():
        out[k] = ((v.__array_interface__["data"][0] - base) // theta.itemsize, v.shape)
    return out


def torch_grad(cell, H, Tn, B):
    import torch

    torch.set_num_threads(1)
    net, theta, x, y = bc.make_data(H, Tn, B, cell=cell)
    p = net.unpack(theta)
    Mod = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    rnn = Mod(1, H, batch_first=True, dtype=torch.float64)
    lin = torch.nn.Linear(H, 1, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["W_xh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W_hh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b_h"]))
        b_hh = np.zeros(rnn.bias_hh_l0.shape[0])
        if cell == "gru":
            b_hh[2 * H :] = p["b_hn"]
        rnn.bias_hh_l0.copy_(torch.from_numpy(b_hh))
        lin.weight.copy_(torch.from_numpy(p["W_hy"]))
        lin.bias.copy_(torch.from_numpy(p["b_y"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    params = [*rnn.parameters(), *lin.parameters()]

    def f():
        for q in params:
            q.grad = None
        h, _ = rnn(xt)
        loss = 0.5 * ((lin(h) - yt) ** 2).sum()
        loss.backward()
        return loss.item()

    L = net.loss(theta, x, y)
    assert abs(f() - L) <= 1e-8 * max(1.0, abs(L)), f"torch {cell} loss differs"
    return f


def _jax_loss_fn(cell, net, theta):
    import jax
    import jax.numpy as jnp

    off = _offsets(net, theta)
    H = net.n_hidden

    def block(th, k):
        o, shape = off[k]
        return th[o : o + int(np.prod(shape))].reshape(shape)

    def loss(th, x, y):
        W_xh, W_hh, b_h = block(th, "W_xh"), block(th, "W_hh"), block(th, "b_h")
        W_hy, b_y = block(th, "W_hy"), block(th, "b_y")
        B = x.shape[0]
        if cell == "lstm":

            def step(s, a):
                h, c = s
                z = a @ W_xh.T + h @ W_hh.T + b_h
                i, f = jax.nn.sigmoid(z[:, :H]), jax.nn.sigmoid(z[:, H : 2 * H])
                g, o = jnp.tanh(z[:, 2 * H : 3 * H]), jax.nn.sigmoid(z[:, 3 * H :])
                c = f * c + i * g
                h = o * jnp.tanh(c)
                return (h, c), h

            s0 = (jnp.zeros((B, H)), jnp.zeros((B, H)))
        else:
            b_hn = block(th, "b_hn")

            def step(h, a):
                gi = a @ W_xh.T + b_h
                gh = h @ W_hh.T
                r = jax.nn.sigmoid(gi[:, :H] + gh[:, :H])
                u = jax.nn.sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
                n = jnp.tanh(gi[:, 2 * H :] + r * (gh[:, 2 * H :] + b_hn))
                h = (1.0 - u) * n + u * h
                return h, h

            s0 = jnp.zeros((B, H))
        _, hs = jax.lax.scan(step, s0, jnp.swapaxes(x, 0, 1))
        yhat = hs @ W_hy.T + b_y
        return 0.5 * jnp.sum((yhat - jnp.swapaxes(y, 0, 1)) ** 2)

    return loss


def jax_grad(cell, H, Tn, B):
    import jax

    net, theta, x, y = bc.make_data(H, Tn, B, cell=cell)
    f = jax.jit(jax.value_and_grad(_jax_loss_fn(cell, net, theta)))
    args = [jax.device_put(a) for a in (theta, x, y)]
    L, g = f(*args)
    L_ours, g_ours = net.loss_and_grad(theta, x, y)
    assert abs(float(L) - L_ours) <= 1e-8 * max(1.0, abs(L_ours)), f"jax {cell} loss differs"
    assert np.allclose(np.asarray(g), g_ours, rtol=1e-7, atol=1e-9), f"jax {cell} grad differs"

    def run():
        _, g = f(*args)
        g.block_until_ready()

    return run


def numba_population(cell, P, H, Tn, B):
    net, theta, x, y = bc.make_data(H, Tn, B, cell=cell)
    thetas = np.random.default_rng(1).normal(scale=0.2, size=(P, net.n_params))
    x, y, mask, h0 = net.check_data(x, y)
    return lambda: net.population_loss(thetas, x, y, mask, h0=h0, check=False)


def jax_population(cell, P, H, Tn, B):
    import jax

    net, theta, x, y = bc.make_data(H, Tn, B, cell=cell)
    thetas = np.random.default_rng(1).normal(scale=0.2, size=(P, net.n_params))
    f = jax.jit(jax.vmap(_jax_loss_fn(cell, net, theta), in_axes=(0, None, None)))
    args = [jax.device_put(a) for a in (thetas, x, y)]
    assert np.allclose(np.asarray(f(*args)), net.population_loss(thetas, x, y), rtol=1e-9)
    return lambda: f(*args).block_until_ready()


def _verdict(ratio, target) -> str:
    if target is None or not np.isfinite(ratio):
        return ""
    return f">= {target:g}x: {'met' if ratio >= target else 'MISSED'}"


def measure(quick: bool = False) -> list[dict]:
    """One row per (cell, case): our median seconds per call and the ratios (theirs / ours)."""
    has_torch, has_jax = bc.available("torch"), bc.available("jax")
    t = 0.1 if quick else 0.5
    rows = []
    for cell in CELLS:
        for H, B in GRAD_CASES[:2] if quick else GRAD_CASES:
            ours = bc.timeit(bc.numba_grad(H, T, B, cell=cell), min_time=t)
            tt = bc.timeit(torch_grad(cell, H, T, B), min_time=t) if has_torch else np.nan
            tj = bc.timeit(jax_grad(cell, H, T, B), min_time=t) if has_jax else np.nan
            rows.append(
                {"cell": cell, "case": f"gradient H={H} B={B}", "key": (H, B), "ours_s": ours}
                | {"torch": tt / ours, "jax": tj / ours}
            )
        P, H, B = 64, 32, 8
        ours = bc.timeit(numba_population(cell, P, H, T, B), min_time=t)
        tj = bc.timeit(jax_population(cell, P, H, T, B), min_time=t) if has_jax else np.nan
        rows.append(
            {"cell": cell, "case": f"population P={P} H={H} B={B}", "key": "population"}
            | {"ours_s": ours, "torch": np.nan, "jax": tj / ours}
        )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="H = 8, 32 only, shorter timings")
    args = ap.parse_args(argv)
    missing = [m for m in ("torch", "jax") if not bc.available(m)]
    print(f"LSTM and GRU, one thread, T = {T}: ours vs torch eager and JAX (ratio = theirs / ours)")
    if missing:
        print(f"  not installed, skipped: {', '.join(missing)} (pip install -e .[bench])")
    print(f"  {'cell':5} {'case':26} {'ours ms':>8} {'x torch':>8} {'target':>16} {'x JAX':>7}")
    for r in measure(args.quick):
        tt, tj = TARGETS[r["key"]]
        print(
            f"  {r['cell']:5} {r['case']:26} {1e3 * r['ours_s']:8.3f} {r['torch']:8.1f} "
            f"{_verdict(r['torch'], tt):>16} {r['jax']:7.2f} {_verdict(r['jax'], tj)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
