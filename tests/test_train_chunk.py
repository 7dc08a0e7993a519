"""BPTT's compiled chunks (toolkit.train.chunk, issue 18 point 1) give the Python loop's runs bit
for bit: every trace column but wall time, outcome, message, counters, final and best theta, and
the thetas handed to ``solved``; and the covered configurations do take the chunks."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.nets import Elman
from toolkit.train import bptt, run
from toolkit.train.trace import COLUMNS, TIMING_COLUMNS, Trace


def echo(seed=0, B=6, T=12, d=2, I=1):
    x = np.random.default_rng(seed).uniform(-1, 1, size=(B, T, I))
    y = np.zeros((B, T, 1))
    y[:, d:, 0] = x[:, :-d, 0]
    mask = np.ones((B, T))
    mask[:, :d] = 0.0
    return x, y, mask


class LossBelow:
    """A task whose ``solved`` says whether the loss on its data is below ``level``; it keeps
    the thetas it was shown."""

    def __init__(self, data, level):
        self.data, self.level, self.seen = data, level, []

    def solved(self, net, theta):
        self.seen.append(np.array(theta))
        return net.loss(theta, *self.data) < self.level


def both(method, make_net, data, *, seed, budget, task_level=None, **kw):
    """(chunked, python) results of the same run, and the chunk calls the first made."""
    out = []
    for chunked in (True, False):
        bptt._CHUNKED = chunked
        try:
            task = LossBelow(data, task_level) if task_level is not None else None
            calls = bptt.CHUNK_STATS["calls"]
            tr = run(method, make_net(), task, data, seed=seed, budget=budget, **kw)
            out.append((tr, task, bptt.CHUNK_STATS["calls"] - calls))
        finally:
            bptt._CHUNKED = True
    return out


def assert_same(a, b):
    (ta, task_a, _), (tb, task_b, calls_b) = a, b
    assert calls_b == 0  # the switch forced the Python loop
    for c in COLUMNS:
        if c in TIMING_COLUMNS:
            continue
        va, vb = np.asarray(ta.points[c], float), np.asarray(tb.points[c], float)
        assert np.array_equal(va.view(np.uint64), vb.view(np.uint64)), c
    assert (ta.outcome, ta.message) == (tb.outcome, tb.message)
    for name in ("evals", "fwd_steps", "grad_steps"):
        assert getattr(ta, name) == getattr(tb, name), name
    for name in ("loss", "best_loss"):
        bits = [np.float64(getattr(t, name)).view(np.uint64) for t in (ta, tb)]
        assert bits[0] == bits[1], name
    assert np.array_equal(ta.final_theta.view(np.uint64), tb.final_theta.view(np.uint64))
    if tb.best_theta is None:
        assert ta.best_theta is None
    else:
        assert np.array_equal(ta.best_theta.view(np.uint64), tb.best_theta.view(np.uint64))
    if task_b is not None:
        assert len(task_a.seen) == len(task_b.seen)
        for sa, sb in zip(task_a.seen, task_b.seen, strict=True):
            assert np.array_equal(sa, sb)


def elman(**kw):
    return lambda: Elman(1, 3, 1, **kw)


CASES = {  # name -> (method, net factory, hyperparameters, budget, extra run arguments)
    "sgd": ("bptt_sgd", elman(), {"lr": 0.2}, {"evals": 150}, {}),
    "sgd_k_clip_wd_sum": (
        "bptt_sgd",
        elman(),
        {"lr": 0.3, "k": 4, "clip": 0.05, "weight_decay": 1e-3, "reduction": "sum"},
        {"evals": 150},
        {},
    ),
    "sgd_step": (
        "bptt_sgd",
        elman(),
        {"lr": 0.3, "schedule": "step", "decay_steps": 9, "gamma": 0.5},
        {"evals": 150},
        {},
    ),
    "momentum_fwd_budget": (
        "bptt_momentum",
        elman(),
        {"lr": 0.05, "momentum": 0.8},
        {"fwd_equiv": 4000.0},
        {},
    ),
    "nesterov_fixed": (
        "bptt_momentum",
        elman(fixed={"b_y": 0.0, "W_hh": [[np.nan, 0.5, np.nan]] * 3}),
        {"lr": 0.05, "nesterov": True, "batch_size": 6},
        {"evals": 150},
        {},
    ),
    "adam": ("bptt_adam", elman(), {"lr": 0.05}, {"evals": 200}, {}),
    "adam_cosine_window": (
        "bptt_adam",
        elman(window=2),
        {"lr": 0.05, "schedule": "cosine", "lr_min": 0.001, "beta1": 0.8, "eps": 1e-6},
        {"evals": 300, "fwd_equiv": 1e9},
        {},
    ),
    "adam_target": ("bptt_adam", elman(), {"lr": 0.05}, {"evals": 400}, {"target_loss": 0.4}),
    "adam_solved": ("bptt_adam", elman(), {"lr": 0.05}, {"evals": 400}, {"task_level": 0.6}),
    "sgd_diverges": ("bptt_sgd", elman(), {"lr": 1e6, "init_scale": 3.0}, {"evals": 100}, {}),
    "adam_relu_diverges": (
        "bptt_adam",
        elman(hidden="relu"),
        {"lr": 1e3, "init_scale": 2.0},
        {"evals": 100},
        {},
    ),
    # minibatches (shuffled epochs, the epoch loss's running sums and re-sums)
    "sgd_mb_tail": ("bptt_sgd", elman(), {"lr": 0.2, "batch_size": 4}, {"evals": 500}, {}),
    "sgd_mb_noshuffle_k": (
        "bptt_sgd",
        elman(),
        {
            "lr": 0.2,
            "batch_size": 2,
            "shuffle": False,
            "k": 3,
            "schedule": "step",
            "decay_steps": 7,
        },
        {"evals": 300},
        {},
    ),
    "momentum_mb_fwd_fixed": (
        "bptt_momentum",
        elman(fixed={"b_h": [0.1, np.nan, np.nan]}),
        {"lr": 0.05, "batch_size": 1, "clip": 0.1, "weight_decay": 1e-3, "reduction": "sum"},
        {"fwd_equiv": 9000.0},
        {},
    ),
    "adam_mb_cosine": (
        "bptt_adam",
        elman(window=3),
        {"lr": 0.05, "batch_size": 5, "schedule": "cosine", "lr_min": 0.001},
        {"evals": 700},
        {},
    ),
    "adam_mb_target": (
        "bptt_adam",
        elman(),
        {"lr": 0.05, "batch_size": 3},
        {"evals": 600},
        {"target_loss": 0.4},
    ),
    "adam_mb_solved": (
        "bptt_adam",
        elman(),
        {"lr": 0.05, "batch_size": 2},
        {"evals": 600},
        {"task_level": 0.6},
    ),
    "sgd_mb_diverges": (
        "bptt_sgd",
        elman(),
        {"lr": 1e6, "init_scale": 3.0, "batch_size": 2},
        {"evals": 100},
        {},
    ),
}


def sparse_rows(seed=0):
    """Echo data whose first and fourth sequences count no target (their minibatches of one
    are skipped) and whose other masks hold weights 0, 1, 2."""
    x, y, mask = echo(seed, B=7)
    mask[0] = mask[3] = 0.0
    mask[5, 4:8] = 2.0
    return x, y, mask


@pytest.mark.trajectory
@pytest.mark.parametrize("seed", (0, 1))
def test_chunks_skip_empty_minibatches(seed):
    data = sparse_rows(seed)
    for hyper in ({"batch_size": 1}, {"batch_size": 3, "k": 2}):
        a, b = both("bptt_adam", elman(), data, seed=seed, budget={"evals": 250}, lr=0.05, **hyper)
        assert a[2] > 0
        assert_same(a, b)


@pytest.mark.trajectory
@pytest.mark.parametrize("name", list(CASES))
def test_chunks_equal_python_loop(name):
    method, make_net, hyper, budget, extra = CASES[name]
    data = echo()
    for seed in (0, 1, 2):
        a, b = both(method, make_net, data, seed=seed, budget=budget, **hyper, **extra)
        assert a[2] > 0, "the chunked path was not taken"
        assert_same(a, b)


def test_cases_reach_their_stops():
    """The cases above end as they are meant to (else they would test less than they say)."""
    data = echo()
    outcomes = {}
    names = ("momentum_fwd_budget", "adam_target", "adam_solved", "sgd_diverges")
    for name in names + ("momentum_mb_fwd_fixed", "adam_mb_target", "adam_mb_solved"):
        method, make_net, hyper, budget, extra = CASES[name]
        a, _ = both(method, make_net, data, seed=0, budget=budget, **hyper, **extra)
        outcomes[name] = a[0].outcome
        if name.endswith("solved"):
            assert 1 < a[0].evals < budget["evals"] and len(a[1].seen) > 1  # fired mid-run
    assert outcomes == {
        "momentum_fwd_budget": "budget",
        "adam_target": "target",
        "adam_solved": "solved",
        "sgd_diverges": "diverged",
        "momentum_mb_fwd_fixed": "budget",
        "adam_mb_target": "target",
        "adam_mb_solved": "solved",
    }


def test_wall_budget_and_uncovered_cells():
    """A wall_s budget stays in Python (chunks of a few updates); minibatches of fractional
    target weights and other cells' minibatches take the Python loop (full-batch LSTM and GRU
    runs take the gated chunk: tests/test_train_chunk_gated.py)."""
    data = echo()
    calls = bptt.CHUNK_STATS["calls"]
    tr = run("bptt_sgd", Elman(1, 2, 1), None, data, seed=0, budget={"wall_s": 0.05}, lr=0.1)
    assert tr.outcome == "budget" and bptt.CHUNK_STATS["calls"] > calls
    assert bptt.CHUNK_STATS["calls"] - calls >= tr.evals / bptt._WALL_CHUNK
    calls = bptt.CHUNK_STATS["calls"]
    x, y, mask = data
    mask = mask * 0.5  # fractional weights: the minibatch counts' sums depend on their order
    run("bptt_sgd", Elman(1, 2, 1), None, (x, y, mask), seed=0, budget={"evals": 20}, batch_size=2)
    assert bptt.CHUNK_STATS["calls"] == calls
    from toolkit.gated import GRU

    run("bptt_sgd", GRU(1, 2, 1), None, data, seed=0, budget={"evals": 20}, batch_size=2)
    assert bptt.CHUNK_STATS["calls"] == calls


@pytest.mark.parametrize("B", [1, 2, 10, 25, 100])
@pytest.mark.parametrize("block", [1, 3, 64])
def test_orders_are_one_permutation_per_epoch(B, block):
    """_orders draws a block of epochs' orders in one rng.permuted call: the same orders as one
    rng.permutation(B) per epoch (the Python loop's draw), and the generator left in the same
    state."""
    seed = 1000 * B + block
    one, many = np.random.default_rng(seed), np.random.default_rng(seed)
    perms, nxt = bptt._orders(many, B, block, True)
    assert perms.dtype == np.int64 and perms.shape == (block, B)
    assert np.array_equal(perms, np.stack([one.permutation(B) for _ in range(block)]))
    assert one.bit_generator.state == many.bit_generator.state
    assert nxt == min(2 * block, bptt._PERM_BLOCK)
    fixed, _ = bptt._orders(many, B, block, False)
    assert np.array_equal(fixed, np.tile(np.arange(B), (block, 1)))
    assert one.bit_generator.state == many.bit_generator.state  # no draw without shuffling


IN_CHUNK = {  # method, hyperparameters: one per kind of chunk (gated: test_train_chunk_gated)
    "full_batch": ("bptt_adam", {"lr": 0.05}),
    "minibatch": ("bptt_adam", {"lr": 0.05, "batch_size": 2}),
    "online": ("bptt_online", {"lr": 0.05, "k": 3}),
    "k1k2": ("bptt_k1k2", {"lr": 0.05, "k1": 2, "k2": 4}),
}


class NeverSolved(LossBelow):
    """A solved check that never passes: the chunks log trace points themselves wherever the
    best theta has already been checked."""

    def solved(self, net, theta):
        super().solved(net, theta)
        return False


@pytest.mark.trajectory
@pytest.mark.parametrize("rows", [1, 2, 64])
@pytest.mark.parametrize("kind", list(IN_CHUNK))
def test_trace_points_logged_in_chunks(kind, rows, monkeypatch):
    """Trace points the chunks log themselves (no solved check due: no task, or the best theta
    already checked) are the Python loop's, bit for bit, also when their rows run out
    (``rows`` per chunk); their interpolated wall_s runs from 0 to the run's end in order."""
    method, hyper = IN_CHUNK[kind]
    monkeypatch.setattr(bptt, "_POINTS", rows)
    logged = []
    monkeypatch.setattr(
        Trace, "add_points", lambda self, i, *a, f=Trace.add_points: (logged.append(len(i)),
                                                                       f(self, i, *a))[1]
    )  # fmt: skip
    data = echo()
    for task_level in (None, -1.0):
        for seed in (0, 1):
            out = []
            for chunked in (True, False):
                bptt._CHUNKED = chunked
                try:
                    task = None if task_level is None else NeverSolved(data, task_level)
                    calls = bptt.CHUNK_STATS["calls"]
                    tr = run(method, elman()(), task, data, seed=seed, budget={"evals": 300},
                             **hyper)  # fmt: skip
                    out.append((tr, task, bptt.CHUNK_STATS["calls"] - calls))
                finally:
                    bptt._CHUNKED = True
            assert out[0][2] > 0, "the chunked path was not taken"
            assert_same(*out)
            wall = np.asarray(out[0][0].points["wall_s"])
            assert wall[0] >= 0 and np.all(np.diff(wall) >= 0)
            assert wall[-1] == out[0][0].summary()["wall_s"]
    assert sum(logged) > 0 and max(logged) <= rows
