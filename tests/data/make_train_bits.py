"""Write tests/data/train_bits_<target>.npz: every gradient method's Trace on small problems for
several seeds, as the implementation at the time of writing produces it, so that a faster optimizer
step or trainer loop (issue 18) can be shown to give the same results bit for bit
(tests/test_train_bits.py compares with np.array_equal).

The fixture was made with the code of commit e1c29d3 (before issue 18's optimizer changes):

    PYTHONPATH=. python tests/data/make_train_bits.py                 # AVX-512 host
    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=... NUMBA_CACHE_DIR=.numba-avx2-cache \
        PYTHONPATH=. python tests/data/make_train_bits.py             # AVX2 (tests/avx2.py's env)

One file per kernel target (``avx2`` for tests/avx2.py's haswell target, ``avx512-znver4``
for this project's machine; see :func:`target`): the kernels' summation order, and so a
trajectory's rounding, differs between the two.

Rerun it only when a change is meant to alter the trajectories, and say so in the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from toolkit.gated import GRU, LSTM  # noqa: E402
from toolkit.nets import Elman  # noqa: E402
from toolkit.train import run  # noqa: E402
from toolkit.train.trace import COLUMNS, TIMING_COLUMNS  # noqa: E402


def target() -> str:
    """The kernels' compile target: the rounding of a trajectory depends on it. The Elman
    kernels' scalar code may be reassociated by LLVM, and how depends on the CPU it tunes for,
    not only on AVX-512 against AVX2; so a fixture holds for one CPU name. ``avx2`` is
    tests/avx2.py's fixed ``haswell`` target, which every x86-64 machine with AVX2 runs (`make
    test` runs these tests that way too), so every machine checks at least that fixture."""
    import os

    from llvmlite import binding

    from toolkit.kernels.simd import target_has_avx512

    cpu = os.environ.get("NUMBA_CPU_NAME") or binding.get_host_cpu_name()
    if cpu == "haswell":
        return "avx2"
    return f"{'avx512' if target_has_avx512() else 'avx2'}-{cpu}"


def fixture_path() -> Path:
    return HERE / f"train_bits_{target()}.npz"


SEEDS = (0, 1, 2)
EVALS = 60


def echo(seed=0, B=6, T=12, d=2):
    """Delayed echo: y[t] = x[t-d], the first d targets masked."""
    x = np.random.default_rng(seed).uniform(-1, 1, size=(B, T, 1))
    y = np.zeros_like(x)
    y[:, d:] = x[:, :-d]
    mask = np.ones((B, T))
    mask[:, :d] = 0.0
    return x, y, mask


def classes(output, seed=0, B=5, T=9, I=2, O=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, I))
    if output == "sigmoid":
        y = (rng.uniform(size=(B, T, O)) < 0.5) * 1.0
    else:
        y = np.eye(O)[rng.integers(0, O, size=(B, T))]
    mask = np.ones((B, T))
    mask[0, 4] = mask[1, 2] = 0.0
    return x, y, mask


def sparse(seed=0, B=4, T=14):
    """Echo data whose targets count only at a few steps: online BPTT skips most windows (the
    context still advances)."""
    x, y, mask = echo(seed, B=B, T=T)
    mask[:] = 0.0
    mask[:, [5, 6, 11, T - 1]] = 1.0
    return x, y, mask


def elman(H=3, **kw):
    return lambda: Elman(1, H, 1, **kw)


# name -> (net factory, data, method, hyperparameters, budget extras)
CASES = {
    "sgd_full": (elman(), echo(), "bptt_sgd", {"lr": 0.2}, {}),
    "sgd_mb_k": (elman(), echo(), "bptt_sgd", {"lr": 0.2, "batch_size": 2, "k": 3}, {}),
    "sgd_noshuffle": (
        elman(),
        echo(),
        "bptt_sgd",
        {"lr": 0.2, "batch_size": 4, "shuffle": False},
        {},
    ),
    "sgd_clip_wd": (
        elman(),
        echo(),
        "bptt_sgd",
        {"lr": 0.5, "clip": 0.05, "weight_decay": 1e-3, "reduction": "sum"},
        {},
    ),
    "sgd_step": (
        elman(),
        echo(),
        "bptt_sgd",
        {"lr": 0.3, "schedule": "step", "decay_steps": 7, "gamma": 0.5},
        {},
    ),
    "sgd_cosine": (
        elman(),
        echo(),
        "bptt_sgd",
        {"lr": 0.3, "schedule": "cosine", "lr_min": 0.01, "batch_size": 3},
        {},
    ),
    "momentum": (elman(), echo(), "bptt_momentum", {"lr": 0.05, "momentum": 0.8}, {}),
    "nesterov_mb_clip": (
        elman(),
        echo(),
        "bptt_momentum",
        {"lr": 0.05, "nesterov": True, "batch_size": 2, "clip": 0.1, "weight_decay": 1e-2},
        {},
    ),
    "adam_full": (elman(), echo(), "bptt_adam", {"lr": 0.05}, {}),
    "adam_mb_k_clip": (
        elman(H=4),
        echo(),
        "bptt_adam",
        {"lr": 0.05, "batch_size": 2, "k": 4, "clip": 0.2, "weight_decay": 1e-3},
        {},
    ),
    "adam_cosine_sum": (
        elman(),
        echo(),
        "bptt_adam",
        {"lr": 0.05, "schedule": "cosine", "decay_steps": 30, "reduction": "sum", "beta1": 0.8},
        {},
    ),
    "adam_softmax": (
        lambda: Elman(2, 4, 3, output="softmax"),
        classes("softmax"),
        "bptt_adam",
        {"lr": 0.05, "batch_size": 2},
        {},
    ),
    "adam_sigmoid_relu": (
        lambda: Elman(2, 4, 3, output="sigmoid", hidden="relu"),
        classes("sigmoid"),
        "bptt_adam",
        {"lr": 0.05, "eps": 1e-6},
        {},
    ),
    "online_sgd": (elman(), echo(), "bptt_online", {"lr": 0.1, "k": 3}, {}),
    "online_sgd_b2_clip": (
        elman(),
        echo(),
        "bptt_online",
        {"lr": 0.1, "k": 4, "batch_size": 2, "clip": 0.05, "weight_decay": 1e-3},
        {},
    ),
    "online_sum_momentum": (
        elman(),
        echo(),
        "bptt_online",
        {"lr": 0.05, "k": 3, "average": "sum", "optimizer": "momentum", "nesterov": True},
        {},
    ),
    "online_adam": (
        elman(),
        echo(),
        "bptt_online",
        {"lr": 0.02, "k": 3, "optimizer": "adam", "schedule": "step", "decay_steps": 10},
        {},
    ),
    "online_copies_adam": (
        elman(),
        echo(),
        "bptt_online",
        {"lr": 0.02, "k": 3, "average": "copies", "optimizer": "adam", "clip": 0.1},
        {},
    ),
    "online_copies_momentum": (
        elman(),
        echo(),
        "bptt_online",
        {"lr": 0.05, "k": 2, "average": "copies", "optimizer": "momentum", "batch_size": 3},
        {},
    ),
    "online_sparse": (elman(), sparse(), "bptt_online", {"lr": 0.1, "k": 3}, {}),
    "online_sparse_b2_adam": (
        elman(),
        sparse(),
        "bptt_online",
        {"lr": 0.02, "k": 4, "batch_size": 2, "optimizer": "adam"},
        {},
    ),
    "online_sparse_copies": (
        elman(),
        sparse(),
        "bptt_online",
        {"lr": 0.05, "k": 2, "average": "copies", "optimizer": "momentum"},
        {},
    ),
    "online_gru_sparse": (lambda: GRU(1, 3, 1), sparse(), "bptt_online", {"lr": 0.1, "k": 3}, {}),
    "online_lstm": (lambda: LSTM(1, 3, 1), echo(), "bptt_online", {"lr": 0.1, "k": 4}, {}),
    "k1k2_sgd": (elman(), echo(T=24), "bptt_k1k2", {"lr": 0.1, "k1": 3, "k2": 6}, {}),
    "k1k2_adam_clip": (
        elman(),
        echo(T=24),
        "bptt_k1k2",
        {"lr": 0.02, "k1": 4, "k2": 4, "optimizer": "adam", "clip": 0.1, "weight_decay": 1e-3},
        {},
    ),
    "k1k2_momentum": (
        elman(),
        echo(T=24),
        "bptt_k1k2",
        {"lr": 0.05, "k1": 5, "k2": 9, "optimizer": "momentum", "schedule": "cosine"},
        {},
    ),
    "lstm_adam": (lambda: LSTM(1, 3, 1), echo(), "bptt_adam", {"lr": 0.05, "batch_size": 3}, {}),
    "gru_momentum": (lambda: GRU(1, 3, 1), echo(), "bptt_momentum", {"lr": 0.05, "k": 5}, {}),
    "target": (elman(), echo(), "bptt_adam", {"lr": 0.05}, {"target_loss": 0.5}),
    "diverged": (elman(), echo(), "bptt_sgd", {"lr": 1e6, "init_scale": 3.0}, {}),
    "fwd_budget": (elman(), echo(), "bptt_online", {"lr": 0.1, "k": 3}, {"fwd_equiv": 300.0}),
}


def one(name, seed):
    make, data, method, hyper, extra = CASES[name]
    extra = dict(extra)
    target = extra.pop("target_loss", None)
    budget = {"evals": EVALS, **extra}
    tr = run(method, make(), None, data, seed=seed, budget=budget, target_loss=target, **hyper)
    out = {c: np.asarray(tr.points[c]) for c in COLUMNS if c not in TIMING_COLUMNS}
    out.update(
        outcome=np.array(tr.outcome),
        evals=np.array(tr.evals),
        fwd_equiv=np.array(tr.fwd_equiv),
        last_loss=np.array(tr.loss),
        best=np.array(tr.best_loss),
        final_theta=np.asarray(tr.final_theta),
        best_theta=np.asarray(tr.best_theta if tr.best_theta is not None else []),
    )
    return out


def all_results() -> dict:
    arrays = {}
    for name in CASES:
        for seed in SEEDS:
            for k, v in one(name, seed).items():
                arrays[f"{name}/{seed}/{k}"] = v
    return arrays


if __name__ == "__main__":
    arrays = all_results()
    out = fixture_path()
    np.savez_compressed(out, **arrays)
    outcomes = {n: str(arrays[f"{n}/0/outcome"]) for n in CASES}
    print(f"wrote {out} ({len(arrays)} arrays); outcomes at seed 0: {outcomes}")
