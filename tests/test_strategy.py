"""The ask/tell protocol and its one generation loop (issue 16), and the README's worked example
of a user-defined strategy, registered and run in a sweep."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _convex import DATA, Quadratic
from test_evolve import problem  # the teacher-student problem

import toolkit.train as T
from toolkit.params import Param, ParamError
from toolkit.train.registry import PLUGINS

ROOT = Path(__file__).resolve().parent.parent


def readme_block(lang: str, marker: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for lg, b in re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S) if lg == lang]
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"README.md: expected one ```{lang} block with {marker!r}"
    return found[0]


# -- the loop -----------------------------------------------------------------------------------
class Fixed(T.Strategy):
    """Asks the same P rows each generation (row 0 gives NaN losses), stops after `gens`."""

    def __init__(self, ctx, P=4, gens=0, shape=None):
        self.ctx, self.P, self.gens, self.shape = ctx, P, gens, shape
        self.X = np.stack([ctx.init(0.5) for _ in range(P)])
        self.told = []
        self.t = 0

    def ask(self):
        return np.zeros(self.shape) if self.shape else self.X

    def tell(self, losses):
        self.told.append(losses.copy())
        self.t += 1

    def stop(self):
        return "tired" if self.gens and self.t % self.gens == 0 else None

    def counters(self):
        return {"widgets": 1}


@pytest.fixture
def fixed_method():
    made = []

    def make(ctx, **h):
        s = Fixed(ctx, **h)
        made.append(s)
        return s

    params = {
        "P": Param(4, "int", lo=1),
        "gens": Param(0, "int", lo=0),
        "shape": Param(None, "any", allow_none=True),
    }
    T.register_strategy("_fixed", make, params=params)
    yield made
    T.unregister("_fixed")


def test_loop_charges_cost_restarts_and_counts(fixed_method):
    net, data = problem()
    tr = T.run("_fixed", net, None, data, seed=1, budget={"evals": 40}, gens=3)
    assert tr.outcome == "budget" and tr.evals == 40  # 10 generations of 4
    assert tr.fwd_steps == 40 * data.x.shape[0] * data.x.shape[1]
    # restarts after generations 3, 6, 9; every strategy's counters summed
    assert len(fixed_method) == 4
    assert tr.message.endswith("3 restarts (tired x3), 4 widgets")
    losses = fixed_method[0].told[0]
    assert losses.shape == (4,) and np.isfinite(losses).all()


def test_loop_rejects_a_wrong_population_shape(fixed_method):
    net, data = problem()
    with pytest.raises(ValueError, match=r"Fixed.ask\(\): expected an array \(P, n_params="):
        T.run("_fixed", net, None, data, seed=1, budget={"evals": 40}, shape=(3, 2))


def test_nonfinite_losses_arrive_as_inf_and_rank_last(fixed_method, monkeypatch):
    net, data = problem()
    real = type(net).population_loss

    def nan_first(self, X, *a, **k):
        L = np.array(real(self, X, *a, **k))
        L[0] = np.nan
        return L

    monkeypatch.setattr(type(net), "population_loss", nan_first)
    tr = T.run("_fixed", net, None, data, seed=1, budget={"evals": 8})
    told = fixed_method[0].told[0]
    assert told[0] == np.inf and np.argsort(told)[-1] == 0
    assert np.isfinite(tr.best_loss)


def test_register_strategy_errors_name_the_argument():
    with pytest.raises(TypeError, match="make must be callable"):
        T.register_strategy("_bad", 3, params={})
    with pytest.raises(ValueError, match="registered twice"):
        T.register_strategy("cmaes", Fixed, params={})


def test_every_population_method_is_a_strategy_on_the_loop():
    from toolkit.train.registry import by_family

    for name in by_family("evolution"):
        m = T.METHODS[name]
        assert "population" in m.tags and callable(m.train.strategy), name


# -- the README's worked example ----------------------------------------------------------------
@pytest.fixture
def readme_example(tmp_path):
    (tmp_path / "one_plus_one.py").write_text(readme_block("python", "one_plus_one.py"))
    (tmp_path / "one_plus_one.toml").write_text(readme_block("toml", "one_plus_one.toml"))
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        if "one_plus_one" in T.METHODS:
            T.unregister("one_plus_one")
        sys.modules.pop("one_plus_one", None)


def test_readme_strategy_registers_validates_and_converges(readme_example):
    import one_plus_one  # noqa: F401  (registers)

    assert "one_plus_one" in T.METHODS and "one_plus_one" in PLUGINS
    m = T.METHODS["one_plus_one"]
    assert m.label == "(1+1)-ES" and m.color == "#117733" and m.family == "evolution"
    with pytest.raises(ParamError, match="sigma"):
        m.validate({"sigma": 0.0})
    # on a convex quadratic (n = 10, condition 10) it gets within 1e-6 of the minimum, every
    # seed, and the same seed gives the same bits
    for seed in range(4):
        tr = T.run("one_plus_one", Quadratic(10), None, DATA, seed=seed, budget={"evals": 4000})
        again = T.run("one_plus_one", Quadratic(10), None, DATA, seed=seed, budget={"evals": 4000})
        assert np.array_equal(tr.best_theta, again.best_theta)
        assert tr.best_loss < 1e-6, (seed, tr.best_loss)
    T.unregister("one_plus_one")
    assert "one_plus_one" not in PLUGINS


def test_readme_sweep_command_runs_the_user_strategy_in_workers(readme_example):
    cmd = readme_block("sh", "BPTT_PLUGINS=one_plus_one").strip()
    env_part, _, rest = cmd.partition(" python ")
    argv = rest.split()
    argv[argv.index("--results") + 1] = str(readme_example / "res")
    env = {**__import__("os").environ, **dict([env_part.split("=", 1)])}
    env.pop("BPTT_REGISTRY", None)
    r = subprocess.run(
        [sys.executable, *argv, "--no-progress"],
        cwd=readme_example,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    runs = pd.read_parquet(readme_example / "res" / "one_plus_one" / "runs.parquet")
    mine = runs[runs["method"] == "one_plus_one"]
    assert len(mine) == 3 and (mine["outcome"] != "error").all(), mine["message"].tolist()
    assert set(runs["method"]) == {"one_plus_one", "cmaes"}


def test_median_is_numpys():
    """strategy._median (the Logbook's median) gives np.median's bits on finite arrays."""
    from toolkit.train.strategy import _median

    rng = np.random.default_rng(0)
    for n in list(range(1, 40)) + [100, 101, 1000]:
        for a in (
            rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300),
            rng.integers(0, 3, n).astype(float),  # ties
            np.full(n, 1e308),  # the two middle values overflow when summed
        ):
            want = float(np.median(a))
            got = _median(a)
            assert np.float64(got).view(np.uint64) == np.float64(want).view(np.uint64), (n, a)
