"""Fingerprints of evolutionary runs, to show a refactor changes no result bit for bit.

    python benchmarks/fingerprint_evolve.py --out new.json [--compare old.json]

Runs every variant below (the registered DEAP methods with their defaults, plus the options the
experiments do not exercise: (mu + lambda), two-point GA, sep-CMA-ES, IPOP restarts, lambda and
mu overrides, the eager eigendecomposition, ...) on the small teacher-student problem of
``tests/test_evolve.py`` for three seeds, and writes sha256 fingerprints of every deterministic
part of each trace (trace points, best and final theta, DEAP Logbook, outcome, message).
Written for issue 16 (the DEAP methods moved onto one ask/tell loop): run it on the code before
the change (``git archive <base> | tar -x -C /tmp/old``, then ``PYTHONPATH=/tmp/old``) and
after it, and compare. Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

import toolkit.train as T
from toolkit.nets import Elman
from toolkit.tasks import Dataset

VARIANTS = [
    ("cmaes", {}),
    ("cmaes", {"eigen_gap": 1}),
    ("cmaes", {"eigen_gap": 3, "lambda_": 12, "mu": 4}),
    ("cmaes", {"weights": "linear", "sigma": 0.5}),
    ("cmaes", {"weights": "equal"}),
    ("cmaes", {"diagonal": True}),
    ("cmaes", {"diagonal": True, "lambda_": 16}),
    ("cmaes", {"restarts": 2, "tolx": 1e9}),  # a restart after every generation
    ("cmaes", {"restarts": 3, "tolfun": 1e-2, "diagonal": True}),
    ("cmaes", {"restarts": 1, "incpopsize": 3.0, "tolx": 0.5, "mu": 3}),
    ("cmaes", {"init_scale": 0.5}),
    ("es_comma", {}),
    ("es_comma", {"lambda_": 20}),
    ("es_comma", {"lambda_": 20, "mu": 5, "cxpb": 0.4, "mutpb": 0.4}),
    ("es_comma", {"lambda_": 30, "cxpb": 0.3, "mutpb": 0.6, "indpb": 0.5, "alpha": 0.3}),
    ("es_plus", {}),
    ("es_plus", {"lambda_": 20}),
    ("es_plus", {"lambda_": 20, "cxpb": 0.4, "mutpb": 0.4, "indpb": 0.5}),
    ("es_plus", {"mu": 1, "lambda_": 4, "sigma": 0.3}),
    ("ga", {}),
    ("ga", {"pop_size": 20}),
    ("ga", {"pop_size": 20, "crossover": "two_point"}),
    ("ga", {"pop_size": 21, "elite": 0, "cxpb": 0.9, "mutpb": 0.5}),
    ("ga", {"pop_size": 30, "elite": 3, "tournsize": 5, "mut_indpb": 1.0}),
    ("random", {}),
    ("random", {"r": 1.0, "batch": 7}),
]
SEEDS = (0, 1, 2)


def problem(H=2, B=4, T_=10, seed=1):
    net = Elman(1, H, 1)
    rng = np.random.default_rng(seed)
    teacher = net.init(rng, scale=1.0)
    x = rng.standard_normal((B, T_, 1))
    _, y = net.forward(teacher, x)
    return net, Dataset(x, y, np.ones((B, T_)))


def fingerprint(trace) -> str:
    h = hashlib.sha256()
    for c in ("evals", "fwd_steps", "fwd_equiv", "loss", "best_loss"):
        h.update(np.asarray(trace.points[c], dtype=np.float64).tobytes())
    h.update(trace.best_theta.tobytes())
    h.update(trace.final_theta.tobytes())
    h.update(repr([sorted(r.items()) for r in trace.logbook]).encode())
    h.update(f"{trace.outcome}|{trace.evals}|{trace.best_loss!r}|{trace.message}".encode())
    return h.hexdigest()


def key(method: str, hyper: dict, seed: int) -> str:
    return f"{method} {json.dumps(hyper, sort_keys=True)} seed={seed}"


def run_all(evals: int) -> dict[str, str]:
    net, data = problem()
    out = {}
    for method, hyper in VARIANTS:
        for seed in SEEDS:
            tr = T.run(method, net, None, data, seed=seed, budget={"evals": evals}, **hyper)
            out[key(method, hyper, seed)] = fingerprint(tr)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compare", type=Path, default=None)
    ap.add_argument("--evals", type=int, default=1500)
    args = ap.parse_args(argv)
    got = run_all(args.evals)
    args.out.write_text(json.dumps(got, indent=1) + "\n")
    print(f"{len(got)} runs fingerprinted by {T.__file__}")
    if args.compare is None:
        return 0
    want = json.loads(args.compare.read_text())
    bad = [k for k in want if got.get(k) != want[k]]
    for k in bad:
        print(f"DIFFERENT: {k}")
    print(f"{len(want) - len(bad)} of {len(want)} runs identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
