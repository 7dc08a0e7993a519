"""A trivial task, network and method for testing sweeps without the real toolkit layers.

Used through ``registry=REGISTRY`` or ``BPTT_REGISTRY=_fake_registry:REGISTRY`` (the tests
directory must be on the workers' ``sys.path``: loky and dask's LocalCluster copy the parent's
``sys.path``; subprocesses get it through ``PYTHONPATH``).

Task ``sine``: params T (int >= 1, default 6), B (int >= 1, default 3).
Method ``walk``: a (1+1) random walk on a quadratic whose minimum is set by the data;
hyperparameters step (> 0, default 0.5), sleep (seconds >= 0, default 0), fail (bool), log
(path: append the run's seed to this file, one line per execution, default ""), threads
(bool: put the worker's thread settings in the trace message).
Method ``boom``: always raises.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from toolkit.params import ParamError
from toolkit.train.trace import Budget, Trace

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass
class Data:
    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray


class FakeTask:
    name = "sine"
    output = "linear"
    n_in = 1
    n_out = 1

    def __init__(self, T=6, B=3):
        for k, v in (("T", T), ("B", B)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParamError([(k, f"expected an integer >= 1, got {v!r}")])
        self.T, self.B = T, B
        self.params = {"T": T, "B": B}

    def generate(self, rng):
        x = rng.standard_normal((self.B, self.T, 1))
        y = np.sin(x)
        return Data(x, y, np.ones((self.B, self.T)))


class FakeNet:
    def __init__(self, n_in, n_hidden, n_out, hidden="tanh", output="linear"):
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.hidden, self.output = hidden, output
        self.n_params = n_hidden * (n_in + n_hidden) + n_hidden + n_out * n_hidden + n_out


DEFAULTS = {
    "walk": {"step": 0.5, "sleep": 0.0, "fail": False, "log": "", "threads": False},
    "boom": {},
}


class FakeRegistry:
    label = "fake"

    def task_names(self):
        return ["sine"]

    def make_task(self, name, params):
        if name != "sine":
            raise ValueError(f"unknown task {name!r}")
        unknown = set(params) - {"T", "B"}
        if unknown:
            raise ParamError([(sorted(unknown)[0], "unknown parameter; allowed: B, T")])
        return FakeTask(**params)

    def method_names(self):
        return sorted(DEFAULTS)

    def validate_method(self, name, hyper):
        d = DEFAULTS[name]
        for k in hyper:
            if k not in d:
                raise ParamError([(k, f"unknown hyperparameter; allowed: {', '.join(d)}")])
        h = {**d, **hyper}
        if name == "walk":
            if (
                isinstance(h["step"], bool)
                or not isinstance(h["step"], int | float)
                or not (h["step"] > 0)
            ):
                raise ParamError([("step", f"expected a positive number, got {h['step']!r}")])
            if not isinstance(h["sleep"], int | float) or h["sleep"] < 0:
                raise ParamError([("sleep", f"expected a number >= 0, got {h['sleep']!r}")])
        return h

    def method_family(self, name):
        return "evolution"

    def make_net(self, task, net):
        return FakeNet(
            task.n_in, net["n_hidden"], task.n_out, hidden=net["hidden"], output=task.output
        )

    def train(self, method, net, task, data, *, seed, budget, target_loss, hyper):
        if hyper.get("log"):
            with open(hyper["log"], "a") as f:
                f.write(f"{seed.entropy}\n")
        if method == "boom" or hyper.get("fail"):
            raise RuntimeError("fake failure")
        if hyper["sleep"]:
            time.sleep(hyper["sleep"])
        budget = Budget.from_dict(budget)
        rng = np.random.default_rng(seed)
        center = float(np.mean(data.y))
        theta = rng.uniform(-1, 1, net.n_params)
        trace = Trace(method=method, seed=int(seed.entropy))
        trace.start(0.0)

        def loss(th):
            return float(np.sum((th - center) ** 2))

        cur = loss(theta)
        steps = data.x.shape[0] * data.x.shape[1]
        while True:
            cand = theta + hyper["step"] * rng.standard_normal(net.n_params)
            trace.add_cost(evals=1, fwd_steps=steps)
            lc = loss(cand)
            if lc < cur:
                theta, cur = cand, lc
            trace.record(cur, theta)
            if target_loss is not None and trace.best_loss <= target_loss:
                return trace.finish("target", theta)
            if budget.spent(trace.evals, trace.fwd_equiv, trace.wall_s):
                msg = ""
                if hyper.get("threads"):
                    msg = ",".join(f"{v}={os.environ.get(v)}" for v in THREAD_VARS)
                return trace.finish("budget", theta, message=msg)

    def warmup(self, runs):
        return 0.0


REGISTRY = FakeRegistry()
