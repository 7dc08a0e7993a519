"""Speed of the evolutionary baselines: CMA-ES generations per second and DEAP/Python overhead.

Setting of issue 5: CMA-ES with P = lambda = 64 on an Elman net with H = 32 (I = O = 1,
n = 1,121 weights), T = 100, B = 8. A run goes through ``toolkit.train.run`` exactly as in a
sweep; the network's ``population_loss`` is wrapped to time every fitness call, so

    overhead = 1 - (time inside population_loss) / (wall time)

is the share of DEAP, NumPy linear algebra and Python around the fitness kernel. Steady state:
the first generations (strategy set-up) are skipped; numbers are medians over repeats. Also
times ``deap.cma.Strategy.update`` against ``LazyStrategy.update`` at n = 1,121.
Everything runs on one thread, as inside a sweep worker.

    python benchmarks/bench_evolve.py [--quick] [--repeats R] [--gens G]

G counts the timed generations (default 30, a multiple of the eigendecomposition gaps timed
here, so the lazy variants' amortised cost is exact).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import toolkit.train as T  # noqa: E402
from toolkit.nets import Elman  # noqa: E402
from toolkit.tasks import Dataset  # noqa: E402
from toolkit.train import es_common  # noqa: E402
from toolkit.train.es_cmaes import LazyStrategy  # noqa: E402

H, B, T_LEN, P = 32, 8, 100, 64
SKIP = 3  # generations of set-up not counted


class TimedElman(Elman):
    """Elman whose population_loss records (start, seconds, P) of every call."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.calls: list[tuple[float, float, int]] = []

    def population_loss(self, thetas, *a, **k):
        t0 = time.perf_counter()
        out = super().population_loss(thetas, *a, **k)
        self.calls.append((t0, time.perf_counter() - t0, len(thetas)))
        return out


def problem():
    net = TimedElman(1, H, 1)
    assert net.n_params == 1121
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T_LEN, 1))
    _, y = net.forward(net.init(rng), x)
    return net, Dataset(x, y, np.ones((B, T_LEN)))


def run_once(method: str, evals: int, seed: int, **hyper) -> dict:
    """One run through ``toolkit.train.run``; steady-state rates from the fitness calls."""
    net, data = problem()
    T.run(method, net, None, data, seed=seed, budget={"evals": evals}, **hyper)
    starts = np.array([c[0] for c in net.calls])
    kernel = np.array([c[1] for c in net.calls])
    # generation g spans starts[g] .. starts[g+1]; the window covers whole generations
    span = starts[-1] - starts[SKIP]
    n_gen = len(starts) - 1 - SKIP
    return {
        "gen_per_s": n_gen / span,
        "overhead": 1.0 - kernel[SKIP:-1].sum() / span,
        "kernel_ms": 1e3 * float(np.median(kernel[SKIP:])),
        "P": float(np.median([c[2] for c in net.calls[SKIP:]])),
    }


def report(label: str, method: str, evals: int, repeats: int, **hyper) -> None:
    rs = [run_once(method, evals, seed, **hyper) for seed in range(repeats)]
    med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    print(
        f"{label:<34} {med['P']:>5.0f} {med['gen_per_s']:>8.2f} {100 * med['overhead']:>8.1f}% "
        f"{med['kernel_ms']:>14.2f}"
    )


def time_updates(calls: int) -> dict:
    """Median seconds of one update: DEAP's Strategy (eigh every call) vs LazyStrategy."""
    from deap import cma

    n = 1121
    rng = np.random.default_rng(1)
    out = {}
    for name, make in (
        ("deap", lambda: cma.Strategy(np.zeros(n), 0.1, lambda_=P)),
        (
            "lazy",
            lambda: LazyStrategy(
                np.zeros(n), 0.1, eigen_gap="auto", lambda_=P, random_state=np.random.RandomState(0)
            ),
        ),
    ):
        np.random.seed(0)  # noqa: NPY002  (DEAP's own Strategy samples from numpy.random)
        s = make()
        ts = []
        for _ in range(calls):
            pop = s.generate(es_common.individual)
            for ind, f in zip(pop, rng.random(len(pop)), strict=True):
                ind.fitness.values = (float(f),)
            t0 = time.perf_counter()
            s.update(pop)
            ts.append(time.perf_counter() - t0)
        out[name] = (statistics.median(ts), statistics.fmean(ts))
        if name == "lazy":
            out["gap"] = s.eigen_gap
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer generations and repeats")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--gens", type=int, default=None)
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    gens = args.gens or 30

    net, data = problem()
    net.warmup()
    X = np.random.default_rng(2).uniform(-0.2, 0.2, (P, net.n_params))
    net.population_loss(X, data.x, data.y, data.mask)

    print(
        f"# CMA-ES, Elman H={H} (n={net.n_params}), T={T_LEN}, B={B}, P={P}; one thread; "
        f"medians of {repeats} runs x {gens} timed generations (after {SKIP} set-up ones)"
    )
    print(f"{'variant':<34} {'P':>5} {'gen/s':>8} {'overhead':>9} {'kernel ms/gen':>14}")
    variants = (
        ("cmaes eigen_gap=1 (= deap.cma)", {"eigen_gap": 1}, 10),  # 0.2 s per generation
        ("cmaes eigen_gap=auto (lazy)", {"eigen_gap": "auto"}, gens),
        ("cmaes eigen_gap=10 (lazy)", {"eigen_gap": 10}, gens),
        ("cmaes no eigh at all (the floor)", {"eigen_gap": 10**9}, gens),
        ("cmaes diagonal (sep-CMA-ES)", {"diagonal": True}, gens),
    )
    for label, hyper, g in variants:
        report(label, "cmaes", (SKIP + 1 + g) * P, repeats, lambda_=P, **hyper)
    print("# the other methods at their default population sizes")
    report("es_comma (15, 100)", "es_comma", 15 + (SKIP + gens) * 100, repeats)
    report("es_plus (15 + 100)", "es_plus", 15 + (SKIP + gens) * 100, repeats)
    report("ga (100, elite 1)", "ga", (SKIP + 1 + gens) * 60, repeats)
    report("random (batch 64)", "random", (SKIP + 1 + gens) * 64, repeats)

    up = time_updates(calls=30)
    print(f"\n# Strategy.update at n=1121, lambda={P} (seconds; median / mean over calls)")
    print(f"deap.cma.Strategy.update      {up['deap'][0]:.4f} / {up['deap'][1]:.4f}")
    print(f"LazyStrategy.update (gap={up['gap']})  {up['lazy'][0]:.4f} / {up['lazy'][1]:.4f}")


if __name__ == "__main__":
    main()
