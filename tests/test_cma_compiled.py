"""CMA-ES's compiled generation (toolkit/kernels/cma.py) against the NumPy code, bit for bit.

``LazyStrategy.compiled`` (default True) runs ``ask_array`` and ``tell_array`` (sort,
``update_sorted``, the due ``decompose``) as one compiled call each; False runs the NumPy code
(the one tests/test_evolve.py checks against ``deap.cma.Strategy``). Every array and scalar of
the strategy must be identical after every generation, and whole runs must leave identical
traces, restarts (numerics ones included) and messages.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_evolve import fingerprint as evolve_fingerprint
from test_evolve import problem as evolve_problem

import toolkit.train as T
from toolkit import kernels
from toolkit.kernels import cma as kcma
from toolkit.train.es_cmaes import LazyStrategy, SepStrategy

STATE = ("centroid", "C", "B", "diagD", "BD", "ps", "pc")
SCALARS = ("sigma", "cond", "update_count", "eigen_count", "n_eigen")


def ellipsoid(n: int, seed: int):
    """A rotated ellipsoid (condition 1e4) whose losses are rounded to 1e-3 in every 5th
    generation (ties, kept in ask order) and have an infinite one in every 7th."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    scale = 10.0 ** (2 * np.arange(n) / max(1, n - 1))
    gen = [0]

    def losses(X):
        f = (((X - 1.0) @ Q) * scale) ** 2
        f = f.sum(axis=1)
        gen[0] += 1
        if gen[0] % 5 == 0:
            f = np.round(f, 3)
        if gen[0] % 7 == 0:
            f[gen[0] % len(f)] = np.inf
        return f

    return losses


def snapshot(s) -> dict:
    out = {k: np.array(getattr(s, k), copy=True) for k in STATE}
    out.update({k: getattr(s, k) for k in SCALARS})
    out["types"] = tuple(type(getattr(s, k)) for k in ("sigma", "cond"))
    out["layouts"] = tuple(
        (getattr(s, k).flags.c_contiguous, getattr(s, k).flags.f_contiguous) for k in STATE
    )
    out["healthy"] = s.healthy()
    out["axis_std_max"] = s.axis_std_max()
    return out


def trajectory(compiled, n, gap, weights, gens, seed=0, lambda_=None, mu=None):
    params = {"weights": weights}
    if lambda_ is not None:
        params["lambda_"] = lambda_
    if mu is not None:
        params["mu"] = mu
    s = LazyStrategy(
        np.full(n, 0.3),
        0.5,
        eigen_gap=gap,
        random_state=np.random.RandomState(seed),
        **params,
    )
    s.compiled = compiled  # instance attribute: the class default stays as it is
    f = ellipsoid(n, seed)
    snaps = []
    for _ in range(gens):
        X = s.ask_array()
        s.tell_array(X, f(X))
        snaps.append((X, snapshot(s)))
    return snaps


def assert_same(a, b, where=""):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert np.array_equal(a[k], b[k], equal_nan=True), (where, k)
        elif isinstance(a[k], float) and np.isnan(a[k]):
            assert np.isnan(b[k]), (where, k)
        else:
            assert a[k] == b[k], (where, k, a[k], b[k])


CASES = [
    (n, gap, w)
    for n in (3, 11, 29, 97)
    for gap, w in ((1, "superlinear"), ("auto", "linear"), (3, "equal"), ("auto", "superlinear"))
]


@pytest.mark.parametrize("n, gap, weights", CASES)
def test_every_generation_is_the_numpy_codes_bits(n, gap, weights):
    gens = 60 if n == 97 else 200
    ref = trajectory(False, n, gap, weights, gens)
    got = trajectory(True, n, gap, weights, gens)
    for g, ((Xa, a), (Xb, b)) in enumerate(zip(ref, got, strict=True)):
        assert np.array_equal(Xa, Xb), ("X", g)
        assert_same(a, b, g)
    assert ref[-1][1]["n_eigen"] > 1  # decompositions were done (and compared)


def test_larger_population_and_mu():
    ref = trajectory(False, 11, 2, "superlinear", 80, seed=4, lambda_=40, mu=13)
    got = trajectory(True, 11, 2, "superlinear", 80, seed=4, lambda_=40, mu=13)
    for g, ((Xa, a), (Xb, b)) in enumerate(zip(ref, got, strict=True)):
        assert np.array_equal(Xa, Xb), ("X", g)
        assert_same(a, b, g)


def counted(calls: dict, name: str, fn):
    """fn, counting its calls in calls[name]."""

    def f(*a):
        calls[name] += 1
        return fn(*a)

    return f


def test_the_compiled_path_is_the_one_taken(monkeypatch):
    """ask and tell reach the kernels (no silent NumPy fallback), NumPy's eigh is not called."""
    calls = {"ask": 0, "tell": 0}
    ask, tell = kernels.cma_ask, kernels.cma_tell

    def no_eigh(*a, **k):
        raise AssertionError("numpy.linalg.eigh called on the compiled path")

    s = LazyStrategy(np.zeros(11), 0.5, eigen_gap=1, random_state=np.random.RandomState(0))
    monkeypatch.setattr(kernels, "cma_ask", counted(calls, "ask", ask))
    monkeypatch.setattr(kernels, "cma_tell", counted(calls, "tell", tell))
    monkeypatch.setattr(np.linalg, "eigh", no_eigh)  # (DEAP's __init__ called it above)
    f = ellipsoid(11, 0)
    for _ in range(20):
        X = s.ask_array()
        s.tell_array(X, f(X))
    assert calls == {"ask": 20, "tell": 20}
    assert s.n_eigen == 20


def test_stable_order_is_numpys_stable_argsort():
    rng = np.random.default_rng(0)
    for m in (1, 2, 3, 7, 16, 17, 100, 333):
        for _ in range(20):
            x = rng.integers(0, 5, m).astype(np.float64)
            x[rng.random(m) < 0.1] = np.inf
            x[rng.random(m) < 0.1] = np.nan
            x[rng.random(m) < 0.1] = -np.inf
            x[rng.random(m) < 0.1] = -0.0
            assert np.array_equal(kcma.stable_order(x), np.argsort(x, kind="stable"))


# -- where the decomposition is left to NumPy ---------------------------------------------------
def _strategy(compiled, n=6, gap=1):
    s = LazyStrategy(np.full(n, 0.3), 0.5, eigen_gap=gap, random_state=np.random.RandomState(1))
    s.compiled = compiled
    return s


def _count_set_eigen(monkeypatch):
    calls = [0]
    orig = LazyStrategy._set_eigen

    def spy(self, w, V):
        calls[0] += 1
        return orig(self, w, V)

    monkeypatch.setattr(LazyStrategy, "_set_eigen", spy)
    return calls


@pytest.mark.parametrize("n", [6, 20])
def test_tied_eigenvalues_are_ordered_by_numpy(monkeypatch, n):
    """Every theta at the mean: C becomes a multiple of I, n equal eigenvalues, where NumPy's
    default argsort (not stable) decides B's column order; the kernel leaves the ordering of
    its eigh's result to NumPy's code, without a second eigh."""
    calls = _count_set_eigen(monkeypatch)
    states = []
    for compiled in (False, True):
        s = _strategy(compiled, n=n)
        X = np.tile(s.centroid, (s.lambda_, 1))
        with monkeypatch.context() as m:
            if compiled:  # (after DEAP's __init__, which calls it)
                m.setattr(np.linalg, "eigh", None)
            s.tell_array(X, np.arange(s.lambda_, dtype=np.float64))
        states.append(snapshot(s))
    # LAPACK's eigenvalues of a I are tied with OpenBLAS's SkylakeX kernels (this machine's
    # default), only close with its Haswell ones: then no ordering is left to NumPy
    ties = len(np.unique(states[0]["diagD"])) < n
    assert calls == [2 if ties else 1]  # the NumPy path's, and the compiled one's if tied
    assert_same(*states)


@pytest.mark.parametrize("gap", [1, 3])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_C_gives_numpys_state(monkeypatch, gap, bad):
    """A non-finite parent (mu = lambda) makes C non-finite: NumPy's eigh returns NaNs or
    raises LinAlgError; the compiled path leaves the decomposition to it and ends in the same
    state, with the same exception if any."""
    states = []
    for compiled in (False, True):
        s = _strategy(compiled, gap=gap)
        s.mu = s.lambda_
        s.weights = np.full(s.mu, 1.0 / s.mu)
        X = s.ask_array()
        X[2, 1] = bad
        error = None
        with np.errstate(all="ignore"):
            try:
                s.tell_array(X, np.zeros(s.lambda_))
                assert not s.healthy()
            except np.linalg.LinAlgError as e:
                error = str(e)
        states.append({k: np.array(getattr(s, k), copy=True) for k in STATE + SCALARS})
        states[-1]["error"] = error
    assert not np.isfinite(states[0]["C"]).all()
    assert states[0].pop("error") == states[1].pop("error")
    for k in states[0]:
        assert np.array_equal(states[0][k], states[1][k], equal_nan=True), k


def test_eigh_failure_raises_linalgerror_after_the_same_updates(monkeypatch):
    """If NumPy's eigh raises LinAlgError (as when LAPACK does not converge), the compiled path
    raises it too, with sigma and the arrays updated as the NumPy code leaves them."""

    def failing_eigh(a, *args, **kw):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    states = []
    for compiled in (False, True):
        s = _strategy(compiled)
        monkeypatch.setattr(np.linalg, "eigh", failing_eigh)  # (after DEAP's __init__)
        X = s.ask_array()
        X[0, 0] = np.inf
        s.mu = s.lambda_
        s.weights = np.full(s.mu, 1.0 / s.mu)
        with pytest.raises(np.linalg.LinAlgError), np.errstate(all="ignore"):
            s.tell_array(X, np.zeros(s.lambda_))
        monkeypatch.undo()
        states.append({k: np.array(getattr(s, k), copy=True) for k in STATE + SCALARS})
    for k in states[0]:
        assert np.array_equal(states[0][k], states[1][k], equal_nan=True), k


def test_kernel_does_not_raise_on_a_finite_but_overflowing_C():
    """A finite C whose eigenvalues overflow: the kernel returns (status 1, or 2 for NumPy to
    decide) instead of raising; a LAPACK failure would be status 2 as well."""
    n = 4
    s = _strategy(True, n=n)
    s._buf = np.empty_like(s.C)
    C = np.full((n, n), 1e308)  # finite, but the decomposition overflows
    X = np.tile(s.centroid, (s.lambda_, 1))
    out = kernels.cma_tell(
        X, np.zeros(s.lambda_), s.weights, s.centroid.copy(), s.ps.copy(), s.pc.copy(),
        C, s._buf, s.B.copy(order="F"), s.diagD.copy(), s.BD.copy(order="F"),
        np.empty(n), np.empty((n, n)),
        0.5, 0.1, 1.0, s.chiN, 1.5, 0.5, 0.1, 0.5, 0.25, 0.1, 0.1, 0.1, True,
    )  # fmt: skip
    assert out[2] in (1, 2, 3)


# -- whole runs ---------------------------------------------------------------------------------
def problem(H=2):
    """tests/test_evolve.py's teacher-student problem; two inputs at H = 8 (n = 97)."""
    return evolve_problem(H, n_in=2 if H == 8 else 1)


def fingerprint(tr) -> str:
    """tests/test_evolve.py's fingerprint of a trace, and the run's message."""
    return evolve_fingerprint(tr) + "|" + tr.message


SEP_STATE = ("centroid", "diagC", "diagD", "ps", "pc")


def sep_trajectory(compiled, n, weights, gens, seed=0, bad_at=None, bad=np.nan):
    s = SepStrategy(np.full(n, 0.3), 0.5, weights=weights, random_state=np.random.RandomState(seed))
    s.compiled = compiled
    f = ellipsoid(n, seed)
    out = []
    for g in range(gens):
        X = s.ask_array()
        if g == bad_at:  # a non-finite theta among the parents (mu = lambda)
            s.mu = s.lambda_
            s.weights = np.full(s.mu, 1.0 / s.mu)
            X[1, 0] = bad
        with np.errstate(all="ignore"):
            s.tell_array(X, f(X))
        snap = {k: np.array(getattr(s, k), copy=True) for k in SEP_STATE}
        snap.update(
            sigma=s.sigma,
            cond=s.cond,
            update_count=s.update_count,
            types=(type(s.sigma), type(s.cond)),
            healthy=s.healthy(),
            axis_std_max=s.axis_std_max(),
        )
        out.append((X, snap))
        if not snap["healthy"]:
            break
    return out


@pytest.mark.parametrize("n", [3, 11, 97, 300])
@pytest.mark.parametrize("weights", ["superlinear", "linear", "equal"])
def test_sep_every_generation_is_the_numpy_codes_bits(n, weights):
    ref = sep_trajectory(False, n, weights, 150)
    got = sep_trajectory(True, n, weights, 150)
    assert len(ref) == len(got) == 150
    for g, ((Xa, a), (Xb, b)) in enumerate(zip(ref, got, strict=True)):
        assert np.array_equal(Xa, Xb), ("X", g)
        assert_same(a, b, g)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_sep_non_finite_parent_same_state(bad):
    ref = sep_trajectory(False, 11, "superlinear", 30, bad_at=12, bad=bad)
    got = sep_trajectory(True, 11, "superlinear", 30, bad_at=12, bad=bad)
    assert len(ref) == len(got) == 13 and not ref[-1][1]["healthy"]
    for g, ((Xa, a), (Xb, b)) in enumerate(zip(ref, got, strict=True)):
        assert np.array_equal(Xa, Xb, equal_nan=True), ("X", g)
        assert_same(a, b, g)


RUNS = [
    (2, {}),
    (2, {"eigen_gap": 1}),
    (2, {"eigen_gap": 3, "lambda_": 12, "mu": 4}),
    (2, {"weights": "linear", "sigma": 0.5}),
    (2, {"weights": "equal"}),
    (2, {"restarts": 2, "tolx": 1e9}),  # a restart after every generation
    (2, {"restarts": 1, "incpopsize": 3.0, "tolx": 0.5, "mu": 3}),
    (2, {"restarts": 3, "tolfun": 1e-2}),
    (2, {"init_scale": 0.5}),
    (4, {"sigma": 0.3}),  # n = 29 (one input)
    (8, {"sigma": 0.3}),  # n = 97 (two inputs, as the adding problem's)
    (8, {"sigma": 0.3, "eigen_gap": 4}),
    (2, {"diagonal": True}),
    (2, {"diagonal": True, "lambda_": 16, "weights": "linear"}),
    (2, {"diagonal": True, "restarts": 3, "tolfun": 1e-2}),
    (8, {"diagonal": True, "sigma": 0.3}),
]


def run_both(monkeypatch, H, hyper, evals=1500, seeds=(0, 1)):
    net, data = problem(H=H)
    out = {}
    for compiled in (False, True):
        monkeypatch.setattr(LazyStrategy, "compiled", compiled)
        monkeypatch.setattr(SepStrategy, "compiled", compiled)
        out[compiled] = [
            T.run("cmaes", net, None, data, seed=s, budget={"evals": evals}, **hyper) for s in seeds
        ]
    return out[False], out[True]


@pytest.mark.parametrize("H, hyper", RUNS)
def test_whole_run_same_trace_with_and_without_the_kernels(monkeypatch, H, hyper):
    ref, got = run_both(monkeypatch, H, hyper)
    for a, b in zip(ref, got, strict=True):
        assert a.message == b.message
        assert fingerprint(a) == fingerprint(b)


def _inject(monkeypatch, every: int, value: float):
    """Make every ``every``-th ask put ``value`` in one theta (mu = lambda selects it)."""
    orig = LazyStrategy.ask_array
    count = [0]

    def ask_array(self):
        X = orig(self)
        count[0] += 1
        if count[0] % every == 0:
            X[count[0] % len(X), 0] = value
        return X

    monkeypatch.setattr(LazyStrategy, "ask_array", ask_array)
    return count


@pytest.mark.parametrize("gap", [1, 3])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_whole_run_numerics_restarts_are_the_same(monkeypatch, gap, bad):
    """Non-finite parents break C: both paths restart for "numerics" at the same generations
    and leave the same trace (the eigendecomposition counts in the message included)."""
    net, data = problem()
    hyper = {"lambda_": 8, "mu": 8, "eigen_gap": gap, "restarts": 2, "incpopsize": 1.0}
    fps, msgs = [], []
    for compiled in (False, True):
        monkeypatch.setattr(LazyStrategy, "compiled", compiled)
        count = _inject(monkeypatch, 9, bad)
        tr = T.run("cmaes", net, None, data, seed=3, budget={"evals": 800}, **hyper)
        monkeypatch.undo()
        assert count[0] == 100  # generations of 8
        fps.append(fingerprint(tr))
        msgs.append(tr.message)
    assert "numerics" in msgs[0], msgs[0]
    assert msgs[0] == msgs[1]
    assert fps[0] == fps[1]


def test_whole_run_eigh_failure_restarts_the_same(monkeypatch):
    """NumPy's eigh raising LinAlgError on a non-finite C (LAPACK's failure): "numerics"
    restarts in both paths, same trace."""
    net, data = problem()
    real_eigh = np.linalg.eigh

    def eigh(a, *args, **kw):
        if not np.isfinite(a).all():
            raise np.linalg.LinAlgError("Eigenvalues did not converge")
        return real_eigh(a, *args, **kw)

    hyper = {"lambda_": 8, "mu": 8, "eigen_gap": 1, "restarts": 1}
    fps, msgs = [], []
    for compiled in (False, True):
        monkeypatch.setattr(LazyStrategy, "compiled", compiled)
        monkeypatch.setattr(np.linalg, "eigh", eigh)
        _inject(monkeypatch, 11, np.inf)
        tr = T.run("cmaes", net, None, data, seed=5, budget={"evals": 600}, **hyper)
        monkeypatch.undo()
        fps.append(fingerprint(tr))
        msgs.append(tr.message)
    assert "numerics" in msgs[0], msgs[0]
    assert msgs[0] == msgs[1]
    assert fps[0] == fps[1]


def test_an_array_in_another_layout_runs_the_numpy_code(monkeypatch):
    """A caller that replaces an array by a strided view (and says so, ``_layout_ok = None``)
    gets the NumPy code, with its usual result."""
    states = []
    for compiled in (False, True):
        s = _strategy(compiled)
        s.ps = np.zeros(2 * s.dim)[::2]  # a strided view
        s._layout_ok = None
        calls = [0]
        monkeypatch.setattr(kernels, "cma_tell", lambda *a: calls.__setitem__(0, 1))
        X = s.ask_array()
        s.tell_array(X, np.arange(s.lambda_, dtype=np.float64))
        monkeypatch.undo()
        assert calls == [0]
        states.append(snapshot(s))
    assert_same(*states)


def test_bad_shapes_get_the_numpy_codes_error():
    """X or losses of the wrong shape never reach the kernel (which trusts its inputs)."""
    s = _strategy(True)
    X = s.ask_array()
    with pytest.raises((ValueError, IndexError)):
        s.tell_array(X[:2], np.zeros(2))  # fewer rows than mu
    with pytest.raises((ValueError, IndexError)):
        s.tell_array(X[:, :3], np.zeros(s.lambda_))


def test_sep_takes_the_compiled_path(monkeypatch):
    calls = {"ask": 0, "tell": 0}
    ask, tell = kernels.cma_sep_ask, kernels.cma_sep_tell

    monkeypatch.setattr(kernels, "cma_sep_ask", counted(calls, "ask", ask))
    monkeypatch.setattr(kernels, "cma_sep_tell", counted(calls, "tell", tell))
    sep_trajectory(True, 11, "superlinear", 20)
    assert calls == {"ask": 20, "tell": 20}
