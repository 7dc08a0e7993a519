"""No run touches global random state (issue "Any machine, any fault", part 2).

DEAP's operators draw from Python's ``random`` and ``deap.cma`` from the legacy ``numpy.random``;
the toolkit runs DEAP's code on private streams instead (``es_common.run_streams``). Threads of
one dask worker share the globals, so a run that used them would change another's results.
"""

from __future__ import annotations

import hashlib
import random
import sys
import threading

import numpy as np
import pytest
from test_evolve import problem  # the same teacher-student problem

import toolkit.train as T
from toolkit.train import es_common

EVOLUTION = sorted(name for name, m in T.METHODS.items() if m.family == "evolution")
# every evolutionary method with its defaults, plus the variants that take other code paths
VARIANTS = [(name, {}) for name in EVOLUTION] + [
    ("cmaes", {"diagonal": True}),
    ("cmaes", {"restarts": 1, "tolx": 1e9}),  # tolx = 1e9: a restart after every generation
    ("es_comma", {"cxpb": 0.4, "mutpb": 0.4}),  # varOr: crossover, mutation and reproduction
    ("es_plus", {"cxpb": 0.4, "mutpb": 0.4, "indpb": 0.5}),
    ("ga", {"crossover": "two_point"}),
]
# small populations so that a tiny budget still runs several generations
SMALL = {"es_comma": {"lambda_": 20}, "es_plus": {"lambda_": 20}, "ga": {"pop_size": 20}}
IDS = [f"{m}-{'-'.join(f'{k}={v}' for k, v in h.items()) or 'default'}" for m, h in VARIANTS]


def fingerprint(trace) -> str:
    """sha256 of every deterministic part of a trace (all but wall_s) and its Logbook."""
    h = hashlib.sha256()
    for c in ("evals", "fwd_steps", "fwd_equiv", "loss", "best_loss"):
        h.update(np.asarray(trace.points[c], dtype=np.float64).tobytes())
    h.update(trace.best_theta.tobytes())
    h.update(trace.final_theta.tobytes())
    h.update(repr([sorted(r.items()) for r in trace.logbook]).encode())
    h.update(f"{trace.outcome}|{trace.evals}|{trace.best_loss!r}|{trace.message}".encode())
    return h.hexdigest()


def one_run(method, hyper, seed, net, data, evals=400):
    hyper = {**SMALL.get(method, {}), **hyper}
    tr = T.run(method, net, None, data, seed=seed, budget={"evals": evals}, **hyper)
    return fingerprint(tr)


def test_variants_cover_every_registered_evolutionary_method():
    assert EVOLUTION and {m for m, _ in VARIANTS} == set(EVOLUTION)


def test_run_streams_are_private_and_seeded_like_the_old_globals():
    ss = np.random.SeedSequence(123, spawn_key=(4,))
    before = random.getstate(), np.random.get_state()  # noqa: NPY002
    rnd, rs = es_common.run_streams(ss)
    rnd2, rs2 = es_common.run_streams(ss)
    assert random.getstate() == before[0]
    assert _same_np_state(np.random.get_state(), before[1])  # noqa: NPY002
    assert rnd.random() == rnd2.random() and rs.standard_normal() == rs2.standard_normal()
    # the state the toolkit used to put into the globals (seed_globals), so results are unchanged
    child = np.random.SeedSequence(123, spawn_key=(4, 0xDEA9)).generate_state(8)
    rnd, rs = es_common.run_streams(ss)
    assert rnd.getstate() == random.Random(int.from_bytes(child.tobytes(), "little")).getstate()
    assert _same_np_state(rs.get_state(), np.random.RandomState(child).get_state())
    with pytest.raises(TypeError, match="seed_seq"):
        es_common.run_streams(5)


def _same_np_state(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


@pytest.mark.parametrize("method, hyper", VARIANTS, ids=IDS)
def test_run_leaves_global_random_state_alone(method, hyper):
    net, data = problem()
    random.seed(99)
    np.random.seed(99)  # noqa: NPY002  (the state the run must not touch)
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    one_run(method, hyper, 3, net, data)
    assert random.getstate() == py_state, "the run used Python's global random"
    assert _same_np_state(np.random.get_state(), np_state), "the run used numpy.random"  # noqa: NPY002


@pytest.fixture
def fast_thread_switching():
    """Threads switch every 10 us (default 5 ms) so that two short runs really interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


@pytest.mark.parametrize("method, hyper", VARIANTS, ids=IDS)
def test_concurrent_runs_in_threads_equal_serial_runs(method, hyper, fast_thread_switching):
    """What a dask worker with 2 threads does: two runs of one method at once in one process."""
    net, data = problem()
    seeds = (1, 2)
    one_run(method, hyper, 0, net, data, evals=50)  # compile before the threads start
    serial = [one_run(method, hyper, s, net, data) for s in seeds]
    out: dict[int, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(seeds))

    def work(seed):
        try:
            barrier.wait()
            out[seed] = one_run(method, hyper, seed, net, data)
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert [out[s] for s in seeds] == serial
    assert serial[0] != serial[1]
