"""Speed of the Numba BPTT core beside the NumPy reference, PyTorch and JAX (`make bench`).

Everything runs on one thread, steady state (compiled/warmed first), timings are medians of
repeated calls in this one process, printed as sequence-steps per second with ratios, so a
noisy shared machine still gives comparable numbers. PyTorch and JAX are optional
(`pip install -e .[bench]`); a missing one is reported and skipped.

    python benchmarks/bench_core.py [--quick] [--calibrate [CELL ...]]

--calibrate also measures the cost of a gradient relative to a forward loss pass for a range
of hidden sizes and writes toolkit/grad_cost.json (forward-pass equivalents use it), for
every cell with a gradient, or only for the cells named (``--calibrate lstm gru``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# one thread everywhere, set before numpy/torch/jax are imported
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_ENABLE_X64", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def timeit(fn, min_time=0.3, min_reps=5, max_reps=2000):
    """Median seconds of one call of fn over repeated calls (after one warm-up call)."""
    fn()
    times = []
    t_end = time.perf_counter() + min_time
    while len(times) < min_reps or (time.perf_counter() < t_end and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_data(H, T, B, seed=0, I=1, O=1, cell="elman"):
    from toolkit.nets import CELLS

    rng = np.random.default_rng(seed)
    net = CELLS[cell](I, H, O)
    theta = net.init(rng)
    x = rng.normal(size=(B, T, I))
    y = rng.normal(size=(B, T, O))
    return net, theta, x, y


# -- competitors ---------------------------------------------------------------------------
def numba_grad(H, T, B, cell="elman"):
    net, theta, x, y = make_data(H, T, B, cell=cell)
    x, y, mask, h0 = net.check_data(x, y)
    return lambda: net.loss_and_grad(theta, x, y, mask, h0=h0, check=False)


def numba_forward(H, T, B, cell="elman"):
    net, theta, x, y = make_data(H, T, B, cell=cell)
    x, y, mask, h0 = net.check_data(x, y)
    return lambda: net.loss(theta, x, y, mask, h0=h0, check=False)


def numpy_grad(H, T, B):
    import reference as ref

    net, theta, x, y = make_data(H, T, B)
    return lambda: ref.grad_full(theta, x, y, None, (1, H, 1))


def torch_grad(H, T, B):
    import torch

    torch.set_num_threads(1)
    net, theta, x, y = make_data(H, T, B)
    p = net.unpack(theta)
    rnn = torch.nn.RNN(1, H, nonlinearity="tanh", batch_first=True, bias=True).double()
    lin = torch.nn.Linear(H, 1).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["W_xh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W_hh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b_h"]))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(p["W_hy"]))
        lin.bias.copy_(torch.from_numpy(p["b_y"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    params = list(rnn.parameters()) + list(lin.parameters())

    def f():
        for q in params:
            q.grad = None
        h, _ = rnn(xt)
        loss = 0.5 * ((lin(h) - yt) ** 2).sum()
        loss.backward()
        return loss.item()

    # sanity: same loss as ours
    L_ours = net.loss(theta, x, y)
    assert abs(f() - L_ours) <= 1e-8 * max(1.0, abs(L_ours)), "torch loss differs"
    return f


def _jax_loss_fn(H, I=1, O=1):
    import jax
    import jax.numpy as jnp

    def loss(theta, x, y):
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

        def step(h, a):
            h = jnp.tanh(a @ W_xh.T + h @ W_hh.T + b_h)
            return h, h

        B = x.shape[0]
        _, hs = jax.lax.scan(step, jnp.zeros((B, H)), jnp.swapaxes(x, 0, 1))
        yhat = hs @ W_hy.T + b_y
        return 0.5 * jnp.sum((yhat - jnp.swapaxes(y, 0, 1)) ** 2)

    return loss


def jax_grad(H, T, B):
    import jax

    net, theta, x, y = make_data(H, T, B)
    f = jax.jit(jax.value_and_grad(_jax_loss_fn(H)))
    args = [jax.device_put(a) for a in (theta, x, y)]
    L, g = f(*args)
    g_ours = net.loss_and_grad(theta, x, y)[1]
    assert np.allclose(np.asarray(g), g_ours, rtol=1e-8, atol=1e-10), "jax gradient differs"

    def run():
        L, g = f(*args)
        g.block_until_ready()

    return run


def numba_population(P, H, T, B):
    net, theta, x, y = make_data(H, T, B)
    thetas = np.random.default_rng(1).normal(scale=0.2, size=(P, net.n_params))
    x, y, mask, h0 = net.check_data(x, y)
    return lambda: net.population_loss(thetas, x, y, mask, h0=h0, check=False)


def jax_population(P, H, T, B):
    import jax

    net, theta, x, y = make_data(H, T, B)
    thetas = np.random.default_rng(1).normal(scale=0.2, size=(P, net.n_params))
    f = jax.jit(jax.vmap(_jax_loss_fn(H), in_axes=(0, None, None)))
    args = [jax.device_put(a) for a in (thetas, x, y)]
    assert np.allclose(np.asarray(f(*args)), net.population_loss(thetas, x, y), rtol=1e-9)
    return lambda: f(*args).block_until_ready()


def available(mod):
    try:
        __import__(mod)
        return True
    except Exception:
        return False


# -- compile times -------------------------------------------------------------------------
def compile_times():
    """Cold (empty cache dir) and warm (second process, same dir) times of warmup()."""
    code = (
        "import time; t=time.perf_counter(); import toolkit.nets as n; n.warmup(); "
        "print(time.perf_counter()-t)"
    )
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        out = []
        for _ in range(2):
            r = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            out.append(float(r.stdout.strip().splitlines()[-1]))
    return out


def calibrate(quick=False, cells=()):
    """Gradient cost / forward-loss cost, per hidden size (B=8, T=100), into grad_cost.json:
    Elman's table (``ratio_by_hidden``) and each other cell's (``ratio_by_cell``). ``cells``
    names the tables to measure (empty: all); the others are kept as they are."""
    from toolkit.nets import CELLS

    path = ROOT / "toolkit" / "grad_cost.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    by_cell = dict(old.get("ratio_by_cell", {}))
    elman = old.get("ratio_by_hidden", {})
    todo = list(cells) or [c for c, k in CELLS.items() if getattr(k, "has_gradient", True)]
    for cell in todo:
        ratios = {}
        for H in (1, 2, 4, 8, 16, 32, 64, 128):
            tg = timeit(numba_grad(H, 100, 8, cell), min_time=0.1 if quick else 0.4)
            tf = timeit(numba_forward(H, 100, 8, cell), min_time=0.1 if quick else 0.4)
            ratios[str(H)] = round(tg / tf, 2)
            print(f"  calibrate {cell} H={H:4d}: gradient / forward = {tg / tf:.2f}")
        if cell == "elman":
            elman = ratios
        else:
            by_cell[cell] = ratios
    path.write_text(
        json.dumps(
            {
                "note": "cost of one BPTT gradient / one forward loss pass, B=8, T=100, "
                "one thread; written by `python benchmarks/bench_core.py --calibrate`",
                "ratio_by_hidden": elman,
                "ratio_by_cell": by_cell,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"  wrote {path.relative_to(ROOT)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes, shorter timings")
    ap.add_argument(
        "--calibrate",
        nargs="*",
        metavar="CELL",
        default=None,
        help="rewrite toolkit/grad_cost.json: the tables of the cells named (none: all)",
    )
    args = ap.parse_args(argv)
    min_time = 0.15 if args.quick else 0.5
    has_torch, has_jax = available("torch"), available("jax")

    from toolkit.nets import warmup

    cold, warm = compile_times()
    t_in = warmup()
    print("== Numba BPTT core: compile")
    print(
        f"  cold compile (empty cache) {cold:.2f} s; warm start from the on-disk cache "
        f"(second process) {warm:.2f} s; in this process {t_in:.2f} s"
    )
    if not has_torch or not has_jax:
        print(
            f"  (PyTorch {'found' if has_torch else 'not installed'}, JAX "
            f"{'found' if has_jax else 'not installed'}: `pip install -e .[bench]` to compare)"
        )

    print("== Gradient (loss + full BPTT gradient), one thread, sequence-steps per second")
    print(
        f"  {'H':>4} {'T':>5} {'B':>3} | {'numba':>10} {'numpy ref':>10} {'torch':>10} "
        f"{'jax':>10} | {'x numpy':>8} {'x torch':>8} {'x jax':>8}"
    )
    sizes = [(H, T, B) for H in (8, 32, 128) for T in (100, 1000) for B in (1, 32)]
    if args.quick:
        sizes = [(8, 100, 1), (32, 100, 1), (128, 100, 32)]
    rows = []
    for H, T, B in sizes:
        steps = B * T
        t_nb = timeit(numba_grad(H, T, B), min_time)
        t_np = timeit(numpy_grad(H, T, B), min_time, min_reps=2) if B * T <= 3200 else np.nan
        t_to = timeit(torch_grad(H, T, B), min_time) if has_torch else np.nan
        t_jx = timeit(jax_grad(H, T, B), min_time) if has_jax else np.nan
        row = dict(
            H=H,
            T=T,
            B=B,
            numba=steps / t_nb,
            numpy=steps / t_np,
            torch=steps / t_to,
            jax=steps / t_jx,
        )
        rows.append(row)
        print(
            f"  {H:4d} {T:5d} {B:3d} | {row['numba']:10.3g} {row['numpy']:10.3g} "
            f"{row['torch']:10.3g} {row['jax']:10.3g} | {t_np / t_nb:8.1f} "
            f"{t_to / t_nb:8.1f} {t_jx / t_nb:8.1f}"
        )

    print("== Population loss, P=64, H=32, T=100, B=8 (P x B x T sequence-steps per second)")
    P, H, T, B = 64, 32, 100, 8
    t_nb = timeit(numba_population(P, H, T, B), min_time)
    t_jx = timeit(jax_population(P, H, T, B), min_time) if has_jax else np.nan
    print(
        f"  numba {P * B * T / t_nb:.3g}/s, jax vmap {P * B * T / t_jx:.3g}/s, "
        f"numba is {t_jx / t_nb:.1f}x jax"
    )
    if args.calibrate is not None:
        print("== Calibration of forward-pass equivalents")
        calibrate(args.quick, args.calibrate)
    return rows


if __name__ == "__main__":
    main()
