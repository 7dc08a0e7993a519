"""BPTT's compiled full-batch chunk for LSTM and GRU (toolkit.train.chunk_gated, issue 18 point 1)
gives the Python loop's runs bit for bit: every trace column but wall time, outcome, message,
counters, final and best theta, and the thetas handed to ``solved``; the covered
configurations (full batch, exactly LSTM or GRU) take the chunk, and gated minibatches and
subclasses keep the Python loop."""

from __future__ import annotations

import numpy as np
import pytest
from test_train_chunk import assert_same, both

from toolkit import tasks
from toolkit.gated import GRU, LSTM
from toolkit.train import bptt, run


def echo(seed=0, B=6, T=12, d=2, output="linear"):
    """x ~ U(-1, 1); the target d steps later: x itself (linear), whether it is positive
    (sigmoid), or that as one-hot over two classes (softmax); the first d steps not counted."""
    x = np.random.default_rng(seed).uniform(-1, 1, size=(B, T, 1))
    past = x[:, :-d, 0]
    if output == "linear":
        y = np.zeros((B, T, 1))
        y[:, d:, 0] = past
    elif output == "sigmoid":
        y = np.zeros((B, T, 1))
        y[:, d:, 0] = past > 0
    else:
        y = np.zeros((B, T, 2))
        y[:, d:, 0] = past > 0
        y[:, d:, 1] = past <= 0
    mask = np.ones((B, T))
    mask[:, :d] = 0.0
    return x, y, mask


def lstm(O=1, output="linear"):
    return lambda: LSTM(1, 3, O, output=output)


def gru(O=1, output="linear"):
    return lambda: GRU(1, 3, O, output=output)


CASES = {  # name -> (method, net factory, output, hyperparameters, budget, extra run arguments)
    "lstm_sgd": ("bptt_sgd", lstm(), "linear", {"lr": 0.3}, {"evals": 150}, {}),
    "gru_sgd_k_clip_wd_sum": (
        "bptt_sgd",
        gru(),
        "linear",
        {"lr": 0.3, "k": 4, "clip": 0.05, "weight_decay": 1e-3, "reduction": "sum"},
        {"evals": 150},
        {},
    ),
    "lstm_sgd_step_k": (
        "bptt_sgd",
        lstm(),
        "linear",
        {"lr": 0.5, "k": 3, "schedule": "step", "decay_steps": 9, "gamma": 0.5},
        {"evals": 150},
        {},
    ),
    "gru_momentum_fwd_budget": (
        "bptt_momentum",
        gru(),
        "linear",
        {"lr": 0.05, "momentum": 0.8},
        {"fwd_equiv": 4000.0},
        {},
    ),
    "lstm_nesterov_clip": (
        "bptt_momentum",
        lstm(),
        "linear",
        {"lr": 0.05, "nesterov": True, "clip": 0.5, "batch_size": 6},  # 6 = B: the full batch
        {"evals": 150},
        {},
    ),
    "lstm_adam": ("bptt_adam", lstm(), "linear", {"lr": 0.05}, {"evals": 200}, {}),
    "gru_adam_cosine": (
        "bptt_adam",
        gru(),
        "linear",
        {"lr": 0.05, "schedule": "cosine", "lr_min": 0.001, "beta1": 0.8, "eps": 1e-6},
        {"evals": 300, "fwd_equiv": 1e9},
        {},
    ),
    "lstm_adam_cosine_steps_wd": (
        "bptt_adam",
        lstm(),
        "linear",
        {"lr": 0.05, "schedule": "cosine", "decay_steps": 100, "weight_decay": 1e-2, "k": 5},
        {"evals": 300},
        {},
    ),
    "gru_adam_sigmoid": ("bptt_adam", gru(), "sigmoid", {"lr": 0.05}, {"evals": 200}, {}),
    "lstm_sgd_sigmoid_k": ("bptt_sgd", lstm(), "sigmoid", {"lr": 0.5, "k": 2}, {"evals": 150}, {}),
    "lstm_adam_softmax": (
        "bptt_adam",
        lstm(2, "softmax"),
        "softmax",
        {"lr": 0.05, "clip": 1.0},
        {"evals": 200},
        {},
    ),
    "gru_momentum_softmax_k": (
        "bptt_momentum",
        gru(2, "softmax"),
        "softmax",
        {"lr": 0.1, "k": 3, "reduction": "sum"},
        {"evals": 150},
        {},
    ),
    "lstm_adam_target": (
        "bptt_adam",
        lstm(),
        "linear",
        {"lr": 0.05},
        {"evals": 400},
        {"target_loss": 0.5},
    ),
    "gru_adam_target": (
        "bptt_adam",
        gru(),
        "linear",
        {"lr": 0.05},
        {"evals": 400},
        {"target_loss": 0.5},
    ),
    "lstm_adam_solved": (
        "bptt_adam",
        lstm(),
        "linear",
        {"lr": 0.05},
        {"evals": 400},
        {"task_level": 0.8},
    ),
    "gru_adam_solved": (
        "bptt_adam",
        gru(),
        "linear",
        {"lr": 0.05},
        {"evals": 400},
        {"task_level": 0.8},
    ),
    "lstm_sgd_diverges": (
        "bptt_sgd",
        lstm(),
        "linear",
        {"lr": 1e6, "init_scale": 3.0},
        {"evals": 100},
        {},
    ),
    "gru_sgd_diverges": (
        "bptt_sgd",
        gru(),
        "linear",
        {"lr": 1e6, "init_scale": 3.0},
        {"evals": 100},
        {},
    ),
}


@pytest.mark.trajectory
@pytest.mark.parametrize("name", list(CASES))
def test_gated_chunk_equals_python_loop(name):
    method, make_net, output, hyper, budget, extra = CASES[name]
    data = echo(output=output)
    for seed in (0, 1, 2):
        a, b = both(method, make_net, data, seed=seed, budget=budget, **hyper, **extra)
        assert a[2] > 0, "the chunked path was not taken"
        assert_same(a, b)


@pytest.mark.trajectory
@pytest.mark.parametrize("make_net", (lstm(), gru()), ids=("lstm", "gru"))
def test_gated_chunk_fractional_and_empty_mask_rows(make_net):
    """Full batches take the chunk whatever the mask weights (the count of targets is the same
    mask.sum() in both loops): fractional weights, a sequence that counts nothing."""
    x, y, mask = echo(seed=3)
    mask = mask * 0.3
    mask[1] = 0.0
    mask[4, 5:9] = 2.5
    for seed in (0, 1):
        for hyper in ({"lr": 0.05}, {"lr": 0.05, "k": 3, "reduction": "sum"}):
            a, b = both("bptt_adam", make_net, (x, y, mask), seed=seed, budget={"evals": 200},
                        **hyper)  # fmt: skip
            assert a[2] > 0
            assert_same(a, b)


@pytest.mark.trajectory
@pytest.mark.parametrize(
    "cls, task_name, params, H, lr",
    [(LSTM, "delayed_recall", {"p": 4}, 4, 0.1), (GRU, "two_sequence", {"T": 5}, 3, 0.01)],
)
def test_gated_chunk_with_a_tasks_solved_check(cls, task_name, params, H, lr):
    """The lag experiment's tasks (sigmoid outputs) with their own solved checks, which end
    these runs part way."""
    task = tasks.get(task_name, **params)
    data = task.generate(np.random.default_rng(0))
    outcomes = []
    for seed in (0, 1):
        out = []
        for chunked in (True, False):
            bptt._CHUNKED = chunked
            try:
                calls = bptt.CHUNK_STATS["calls"]
                net = cls(task.n_in, H, task.n_out, output=task.output)
                tr = run("bptt_adam", net, task, data, seed=seed, budget={"evals": 1500}, lr=lr,
                         clip=1.0)  # fmt: skip
                out.append((tr, None, bptt.CHUNK_STATS["calls"] - calls))
            finally:
                bptt._CHUNKED = True
        assert out[0][2] > 0
        assert_same(*out)
        outcomes.append(out[0][0].outcome)
    assert "solved" in outcomes


def test_cases_reach_their_stops():
    """The cases above end as they are meant to (else they would test less than they say)."""
    outcomes = {}
    for name, (method, make_net, output, hyper, budget, extra) in CASES.items():
        a, _ = both(method, make_net, echo(output=output), seed=0, budget=budget, **hyper, **extra)
        outcomes[name] = a[0].outcome
        if name.endswith("solved"):
            assert 1 < a[0].evals < budget["evals"] and len(a[1].seen) > 1  # fired mid-run
        if name.endswith("target"):
            assert 1 < a[0].evals < budget["evals"]
    want = {name: "budget" for name in CASES}
    want |= {name: name.rsplit("_", 1)[1] for name in CASES if name.endswith(("solved", "target"))}
    want |= {name: "diverged" for name in CASES if name.endswith("diverges")}
    assert outcomes == want


def test_wall_budget_takes_short_chunks():
    """A wall_s budget is read in Python between chunks of a few updates."""
    calls = bptt.CHUNK_STATS["calls"]
    tr = run("bptt_sgd", GRU(1, 2, 1), None, echo(), seed=0, budget={"wall_s": 0.05}, lr=0.1)
    assert tr.outcome == "budget" and bptt.CHUNK_STATS["calls"] > calls
    assert bptt.CHUNK_STATS["calls"] - calls >= tr.evals / bptt._WALL_CHUNK


class MyLSTM(LSTM):
    """A subclass may override what the kernel computes: it keeps the Python loop."""


class MyGRU(GRU):
    pass


def test_minibatches_and_subclasses_keep_the_python_loop():
    data = echo()
    calls, updates = bptt.CHUNK_STATS["calls"], bptt.CHUNK_STATS["updates"]
    for make in (lambda: LSTM(1, 2, 1), lambda: GRU(1, 2, 1)):
        tr = run("bptt_adam", make(), None, data, seed=0, budget={"evals": 20}, batch_size=2)
        assert tr.evals == 20
    for cls in (MyLSTM, MyGRU):
        tr = run("bptt_adam", cls(1, 2, 1), None, data, seed=0, budget={"evals": 20})
        assert tr.evals == 20
    assert (bptt.CHUNK_STATS["calls"], bptt.CHUNK_STATS["updates"]) == (calls, updates)


def test_warm_up_is_compile_time(monkeypatch):
    """The first gated chunked run of a process warms the chunk up (compiles it or loads it
    from Numba's cache) and books the seconds as compile time, not wall time."""
    monkeypatch.setattr(bptt, "_CHUNKS_WARM", bptt._CHUNKS_WARM - {"gated"})
    tr = run("bptt_adam", LSTM(1, 2, 1), None, echo(), seed=0, budget={"evals": 5})
    assert "gated" in bptt._CHUNKS_WARM
    assert tr.compile_s > 0.0
    again = run("bptt_adam", LSTM(1, 2, 1), None, echo(), seed=0, budget={"evals": 5})
    assert again.compile_s < tr.compile_s
