"""The solved checks are evaluation, not training (issue 18, point 2): their forward
sequence-steps and seconds are recorded apart (``eval_fwd_steps``, ``eval_s``), out of the
training cost, the budget and ``wall_s``."""

import time

import numpy as np
import pytest

from toolkit import tasks
from toolkit.nets import Elman
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
