"""The classic online BPTT algorithm in compiled chunks (toolkit.train.chunk.online, issue 18)
gives the Python loop's runs bit for bit: every trace column but wall time, outcome, message,
counters, final and best theta, and the thetas handed to ``solved``; the covered
configurations take the chunk, and the others (average "copies", fractional mask weights,
input windows, other cells) keep the Python loop."""

from __future__ import annotations

import numpy as np
import pytest
from test_train_chunk import assert_same, both, echo

from toolkit.nets import Elman
from toolkit.train import bptt, run


def elman(**kw):
    return lambda: Elman(1, 3, 1, **kw)


def sparse(seed=0, B=7, T=14):
    """Echo data whose targets count only at a few steps (most windows are skipped, the
    context still advances over them), one sequence without any counted target, and
    weights 0, 1 and 2."""
    x, y, mask = echo(seed, B=B, T=T)
    mask[:] = 0.0
    mask[:, [4, 5, 9, T - 1]] = 1.0
    mask[2] = 0.0
    mask[4, 9] = 2.0
    return x, y, mask


def classes(seed=0, B=5, T=9, I=2, O=3):
    """Softmax targets (one-hot classes), two targets masked out."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, I))
    y = np.eye(O)[rng.integers(0, O, size=(B, T))]
    mask = np.ones((B, T))
    mask[0, 4] = mask[1, 2] = 0.0
    return x, y, mask


ECHO, LONG, SPARSE, CLASSES = echo(), echo(T=24), sparse(), classes()

CASES = {  # name -> (net factory, data, hyperparameters, budget, extra run arguments)
    "k1_sgd": (elman(), ECHO, {"lr": 0.1, "k": 1}, {"evals": 300}, {}),
    "k3_sgd_b2_clip_wd": (
        elman(),
        ECHO,
        {"lr": 0.1, "k": 3, "batch_size": 2, "clip": 0.05, "weight_decay": 1e-3},
        {"evals": 300},
        {},
    ),
    "k3_sum_nesterov_noshuffle": (
        elman(),
        ECHO,
        {
            "lr": 0.05,
            "k": 3,
            "average": "sum",
            "optimizer": "momentum",
            "nesterov": True,
            "shuffle": False,
        },
        {"evals": 300},
        {},
    ),
    "k20_momentum_b4_sum_reduction": (
        elman(),
        LONG,
        {"lr": 0.02, "k": 20, "batch_size": 4, "optimizer": "momentum", "reduction": "sum"},
        {"evals": 200},
        {},
    ),
    "k3_adam_step": (
        elman(),
        ECHO,
        {"lr": 0.02, "k": 3, "optimizer": "adam", "schedule": "step", "decay_steps": 10},
        {"evals": 300},
        {},
    ),
    "k5_adam_cosine_b5_fixed": (
        elman(fixed={"b_y": 0.0, "W_hh": [[np.nan, 0.5, np.nan]] * 3}),
        ECHO,
        {
            "lr": 0.02,
            "k": 5,
            "batch_size": 5,
            "optimizer": "adam",
            "schedule": "cosine",
            "lr_min": 0.001,
        },
        {"evals": 300},
        {},
    ),
    "k3_fwd_budget": (elman(), ECHO, {"lr": 0.1, "k": 3}, {"fwd_equiv": 700.0}, {}),
    "k2_sparse_b3_adam": (
        elman(),
        SPARSE,
        {"lr": 0.02, "k": 2, "batch_size": 3, "optimizer": "adam", "clip": 0.5},
        {"evals": 250},
        {},
    ),
    "k1_sparse_sum": (elman(), SPARSE, {"lr": 0.1, "k": 1, "average": "sum"}, {"evals": 250}, {}),
    "softmax_relu_k2_b2": (
        lambda: Elman(2, 4, 3, hidden="relu", output="softmax"),
        CLASSES,
        {"lr": 0.05, "k": 2, "batch_size": 2, "weight_decay": 1e-3},
        {"evals": 250},
        {},
    ),
    "adam_target": (
        elman(),
        ECHO,
        {"lr": 0.05, "k": 3, "optimizer": "adam"},
        {"evals": 2000},
        {"target_loss": 1.8},
    ),
    "adam_solved": (
        elman(),
        ECHO,
        {"lr": 0.05, "k": 3, "optimizer": "adam", "batch_size": 2},
        {"evals": 2000},
        {"task_level": 0.7},
    ),
    "sgd_diverges": (
        elman(),
        ECHO,
        {"lr": 1e6, "k": 3, "init_scale": 3.0},
        {"evals": 100},
        {},
    ),
}


@pytest.mark.trajectory
@pytest.mark.parametrize("name", list(CASES))
def test_online_chunks_equal_python_loop(name):
    make_net, data, hyper, budget, extra = CASES[name]
    for seed in (0, 1, 2):
        a, b = both("bptt_online", make_net, data, seed=seed, budget=budget, **hyper, **extra)
        assert a[2] > 0, "the chunked path was not taken"
        assert_same(a, b)


def test_online_cases_reach_their_stops():
    """The cases above end as they are meant to (else they would test less than they say)."""
    outcomes = {}
    for name in ("k3_fwd_budget", "adam_target", "adam_solved", "sgd_diverges"):
        make_net, data, hyper, budget, extra = CASES[name]
        a, _ = both("bptt_online", make_net, data, seed=0, budget=budget, **hyper, **extra)
        outcomes[name] = a[0].outcome
        if name == "adam_solved":
            assert 1 < a[0].evals < budget["evals"] and len(a[1].seen) > 1  # fired mid-run
    assert outcomes == {
        "k3_fwd_budget": "budget",
        "adam_target": "target",
        "adam_solved": "solved",
        "sgd_diverges": "diverged",
    }


def test_online_fallbacks_keep_the_python_loop():
    """average "copies", fractional mask weights, input windows and other cells run in
    Python; the chunk, once taken, was compiled by the warm-up (its seconds in compile_s)."""
    x, y, mask = ECHO
    kw = dict(seed=0, budget={"evals": 30}, k=3)
    tr = run("bptt_online", Elman(1, 2, 1), None, ECHO, **kw)
    assert "online" in bptt._CHUNKS_WARM and tr.compile_s >= 0.0
    calls = bptt.CHUNK_STATS["calls"]
    run("bptt_online", Elman(1, 2, 1), None, ECHO, average="copies", **kw)
    run("bptt_online", Elman(1, 2, 1), None, (x, y, mask * 0.5), **kw)
    run("bptt_online", Elman(1, 2, 1, window=2), None, ECHO, **kw)
    from toolkit.gated import GRU

    run("bptt_online", GRU(1, 2, 1), None, ECHO, **kw)
    assert bptt.CHUNK_STATS["calls"] == calls


def test_ring_epoch_loss_equals_epoch_loss():
    """The online chunk's ring form of the epoch loss gives _EpochLoss's values bit for bit,
    through its re-sums and when it outgrows its room."""
    rng = np.random.default_rng(0)
    for n_total, capacity in ((7.0, 4), (30.0, 8), (5.0, 100)):
        a = bptt._EpochLoss(n_total)
        b = bptt._RingEpochLoss(bptt._EpochLoss(n_total), capacity)
        for _ in range(500):
            L, n = float(rng.exponential()) * 1e3, float(rng.integers(1, 4))
            assert np.float64(a(L, n)).view(np.uint64) == np.float64(b(L, n)).view(np.uint64)
        assert b.count == len(a.buf)


# -- BPTT(k1, k2) on streams (toolkit.train.chunk.k1k2) ------------------------------------
K1K2 = {  # name -> (net factory, data, hyperparameters, budget, extra run arguments)
    "sgd_3_6": (elman(), LONG, {"lr": 0.1, "k1": 3, "k2": 6}, {"evals": 300}, {}),
    "adam_4_4_clip_wd": (
        elman(),
        LONG,
        {"lr": 0.02, "k1": 4, "k2": 4, "optimizer": "adam", "clip": 0.1, "weight_decay": 1e-3},
        {"evals": 300},
        {},
    ),
    "momentum_5_9_cosine_fixed": (
        elman(fixed={"b_h": [0.1, np.nan, np.nan]}),
        LONG,
        {"lr": 0.05, "k1": 5, "k2": 9, "optimizer": "momentum", "schedule": "cosine"},
        {"evals": 300},
        {},
    ),
    "nesterov_7_30_step_sum": (
        elman(),
        LONG,
        {
            "lr": 0.01,
            "k1": 7,
            "k2": 30,
            "optimizer": "momentum",
            "nesterov": True,
            "schedule": "step",
            "decay_steps": 20,
            "reduction": "sum",
        },
        {"evals": 300},
        {},
    ),
    "sparse_2_5_fwd_budget": (
        elman(),
        SPARSE,
        {"lr": 0.1, "k1": 2, "k2": 5},
        {"fwd_equiv": 3e3},
        {},
    ),
    "softmax_relu_1_3": (
        lambda: Elman(2, 4, 3, hidden="relu", output="softmax"),
        CLASSES,
        {"lr": 0.05, "k1": 1, "k2": 3},
        {"evals": 250},
        {},
    ),
    "adam_target": (
        elman(),
        LONG,
        {"lr": 0.05, "k1": 4, "k2": 8, "optimizer": "adam"},
        {"evals": 2000},
        {"target_loss": 3.0},
    ),
    "adam_solved": (
        elman(),
        LONG,
        {"lr": 0.05, "k1": 4, "k2": 8, "optimizer": "adam"},
        {"evals": 2000},
        {"task_level": 1.5},
    ),
    "sgd_diverges": (
        elman(),
        LONG,
        {"lr": 1e6, "k1": 3, "k2": 6, "init_scale": 3.0},
        {"evals": 100},
        {},
    ),
}


@pytest.mark.trajectory
@pytest.mark.parametrize("name", list(K1K2))
def test_k1k2_chunks_equal_python_loop(name):
    make_net, data, hyper, budget, extra = K1K2[name]
    for seed in (0, 1, 2):
        a, b = both("bptt_k1k2", make_net, data, seed=seed, budget=budget, **hyper, **extra)
        assert a[2] > 0, "the chunked path was not taken"
        assert_same(a, b)


def test_k1k2_cases_reach_their_stops():
    outcomes = {}
    for name in ("sparse_2_5_fwd_budget", "adam_target", "adam_solved", "sgd_diverges"):
        make_net, data, hyper, budget, extra = K1K2[name]
        a, _ = both("bptt_k1k2", make_net, data, seed=0, budget=budget, **hyper, **extra)
        outcomes[name] = a[0].outcome
        if name == "adam_solved":
            assert 1 < a[0].evals < budget["evals"] and len(a[1].seen) > 1  # fired mid-run
    assert outcomes == {
        "sparse_2_5_fwd_budget": "budget",
        "adam_target": "target",
        "adam_solved": "solved",
        "sgd_diverges": "diverged",
    }


def test_k1k2_fallbacks_keep_the_python_loop():
    x, y, mask = LONG
    kw = dict(seed=0, budget={"evals": 30}, k1=3, k2=6)
    run("bptt_k1k2", Elman(1, 2, 1), None, LONG, **kw)
    assert "k1k2" in bptt._CHUNKS_WARM
    calls = bptt.CHUNK_STATS["calls"]
    run("bptt_k1k2", Elman(1, 2, 1), None, (x, y, mask * 0.5), **kw)
    run("bptt_k1k2", Elman(1, 2, 1, window=2), None, LONG, **kw)
    from toolkit.gated import LSTM

    run("bptt_k1k2", LSTM(1, 2, 1), None, LONG, **kw)
    assert bptt.CHUNK_STATS["calls"] == calls


def test_wall_budget_runs_in_short_chunks():
    """A wall_s budget (the clock is read in Python) stops online and BPTT(k1, k2) runs in
    chunks of at most bptt._WALL_CHUNK updates."""
    for method, hyper, data in (
        ("bptt_online", {"k": 3}, ECHO),
        ("bptt_k1k2", {"k1": 3, "k2": 6}, LONG),
    ):
        calls = bptt.CHUNK_STATS["calls"]
        tr = run(method, Elman(1, 2, 1), None, data, seed=0, budget={"wall_s": 0.05}, **hyper)
        assert tr.outcome == "budget" and bptt.CHUNK_STATS["calls"] > calls
        assert bptt.CHUNK_STATS["calls"] - calls >= tr.evals / bptt._WALL_CHUNK
