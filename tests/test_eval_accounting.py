"""The solved checks are evaluation, not training (issue 18, point 2): their forward
sequence-steps and seconds are recorded apart (``eval_fwd_steps``, ``eval_s``), out of the
training cost, the budget and ``wall_s``."""

import time

import numpy as np
import pytest

from toolkit import tasks
from toolkit.nets import Elman, make_net
from toolkit.train import Trace, run

SLEEP = 0.05


class CountingTask:
    """A real task whose solved check is counted and made slow (it sleeps ``SLEEP`` s)."""

    def __init__(self, task, answer=False):
        self.task, self.answer, self.calls = task, answer, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def solved(self, net, theta):
        self.calls += 1
        time.sleep(SLEEP)
        self.task.solved(net, theta)
        return self.answer


@pytest.mark.parametrize("method", ["bptt_adam", "cmaes", "bptt_online"])
def test_solved_checks_are_counted_apart(method):
    base = tasks.get("latch", T=10, n_train=20, n_test=30)
    task = CountingTask(base)
    data = base.generate(np.random.default_rng(0))
    net = Elman(base.n_in, 3, base.n_out, output=base.output)
    t0 = time.perf_counter()
    tr = run(method, net, task, data, seed=1, budget={"evals": 300})
    outside = time.perf_counter() - t0
    test = base.test_set()
    assert task.calls >= 1
    assert tr.eval_fwd_steps == task.calls * test.x.shape[0] * test.x.shape[1]
    assert tr.eval_s >= task.calls * SLEEP  # every check's seconds are in eval_s ...
    s = tr.summary()
    assert s["eval_fwd_steps"] == tr.eval_fwd_steps and s["eval_s"] == tr.eval_s
    assert s["wall_s"] + s["eval_s"] <= outside  # ... and none in wall_s


def test_evaluation_is_not_training_cost():
    """The same run with and without solved checks: the same training cost and trajectory."""
    base = tasks.get("latch", T=10, n_train=20, n_test=30)
    data = base.generate(np.random.default_rng(0))
    net = Elman(base.n_in, 3, base.n_out, output=base.output)
    a = run("bptt_adam", net, CountingTask(base), data, seed=2, budget={"evals": 200})
    b = run("bptt_adam", net, base, data, seed=2, budget={"evals": 200}, check_solved=False)
    assert a.eval_fwd_steps > 0 and b.eval_fwd_steps == 0 and b.eval_s == 0.0
    for col in ("evals", "fwd_steps", "grad_steps", "fwd_equiv", "final_loss", "best_loss"):
        assert a.summary()[col] == b.summary()[col], col


def test_trace_wall_s_excludes_eval_seconds():
    tr = Trace(method="x")
    tr.start()
    time.sleep(SLEEP)
    before = tr.wall_s
    tr.add_eval(1000.0, 5)
    assert tr.wall_s < before  # the evaluation's seconds are taken out
    assert tr.eval_fwd_steps == 5 and tr.eval_s == 1000.0


# -- the solved checks' forward pass without allocation (net.predict) -------------------------
PREDICT_NETS = [
    ("elman", {"n_hidden": 4}, "sigmoid"),
    ("elman", {"n_hidden": 5, "hidden": "relu", "window": 2}, "linear"),
    ("elman", {"n_hidden": 3, "recurrent": False}, "softmax"),
    ("elman", {"n_hidden": 3, "fixed": {"b_h": [0.5, float("nan"), -0.25]}}, "linear"),
    ("lstm", {"n_hidden": 4}, "sigmoid"),
    ("lstm", {"n_hidden": 3}, "linear"),
    ("gru", {"n_hidden": 6}, "softmax"),
]


@pytest.mark.parametrize("cell,cfg,output", PREDICT_NETS)
def test_predict_is_forward_bit_for_bit(cell, cfg, output):
    """net.predict gives forward's yhat, the same bits, for every cell and variant, and hands
    back the same array for the same sizes (kept, not allocated again)."""
    net = make_net(3, 2, output, {"cell": cell, **cfg})
    rng = np.random.default_rng(7)
    prev, same = None, 0
    for B, T in ((1, 7), (5, 13), (5, 13), (2, 1), (5, 13)):
        theta = net.init(rng, scale=1.5)
        x = rng.normal(size=(B, T, 3))
        want = net.forward(theta, x)[1]
        got = net.predict(theta, x)
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), (B, T)
        if prev is not None and prev.shape == got.shape:
            assert got is prev  # the same sizes again: the same buffer, no new arrays
            same += 1
        prev = got
    assert same == 1


def test_metric_uses_predict_unless_forward_is_overridden():
    """The solved checks go through net.predict (same score as through forward), but a
    subclass that overrides forward alone is evaluated by its own forward."""
    task = tasks.get("latch", T=10, n_test=30)
    net = Elman(task.n_in, 3, task.n_out, output=task.output)
    theta = net.init(np.random.default_rng(1), scale=2.0)
    calls = []

    class OwnForward(Elman):
        def forward(self, theta, x, h0=None, check=True):
            calls.append(1)
            return super().forward(theta, x, h0, check)

    other = OwnForward(task.n_in, 3, task.n_out, output=task.output)
    assert task.metric(net, theta) == task.metric(other, theta)
    assert calls  # the override was used
    n_pred = []
    real = Elman.predict

    def spy(self, *a, **k):
        n_pred.append(1)
        return real(self, *a, **k)

    Elman.predict = spy
    try:
        task.metric(net, theta)
    finally:
        Elman.predict = real
    assert n_pred == [1]
