"""Training at kernel speed (issue 18, point 4): where a training run's wall time goes.

The experiments' typical configurations (experiments/speed.toml, local_optima.toml,
truncation.toml; the tasks' default data sizes): temporal XOR (T = 30, only the predictable
bits count, 10 streams) at H = 2 and H = 4, the latch (T = 20, 100 sequences) at H = 4 and the
adding problem (T = 12, tol 0.1, 100 sequences) at H = 8, each trained by

* BPTT-Adam, full batch (speed.toml's default) and minibatch (the middle of the tuning spaces:
  5 of 10 streams on XOR, 25 of 100 sequences on the latch and on adding);
* online BPTT (``bptt_online``, batch 1; k and lr as in speed.toml: k = 3 on XOR, 20 on the
  latch; k = 8 on adding, truncation.toml's online depth -- speed.toml leaves it out there);
* CMA-ES (``cmaes``, sigma 0.3, default lambda = 4 + floor(3 ln n)) and the (mu, lambda)-ES
  (``es_comma``, mu 5, lambda 35, sigma 0.3), as in speed.toml.

Each run goes through ``toolkit.train.run`` as in a sweep, for a fixed number of updates
(``budget = {"evals": U}``; one evaluation = one gradient = one update) or generations
(``evals`` = G x lambda). ``target_loss`` is None and the task's ``solved`` is wrapped: the
real check runs at the trainers' own points (timed), and always answers False, so no run stops
early. Every compiled entry point the trainers reach (``toolkit.kernels.forward``, ``loss``,
``loss_and_grad``, ``population_loss``: ``nets.Elman`` looks them up at call time; and the
compiled training chunks of ``toolkit.train.chunk``, which the BPTT loop looks up the same way
and whose time includes the optimizer's arithmetic; and the (mu, lambda)-ES's compiled parent
draws, ``toolkit.train.es_common.ENTRY_POINTS``) is wrapped with a ``perf_counter``
accumulator; so are the ``Elman`` methods the trainers call (the
Python layer around the kernels: checks, workspace, packing). Columns:

    upd/s     updates (BPTT) or generations (ES) per second of wall time, from runs WITHOUT
              the wrappers (the rate a sweep sees)
    kernel    share of the instrumented run's wall time inside the compiled kernels (and
              chunks) called by the trainer (target, issue 18: >= 85 % for BPTT, >= 75 %
              for evolution)
    net       share in the Elman methods' Python around those kernels
    solved    share in ``task.solved`` (its own forward pass included), with the calls
    eigh      share in ``numpy.linalg.eigh``: CMA-ES's NumPy path, where the compiled ``tell``
              (``kernels.cma_tell``, which decomposes C itself, in the kernel column) hands a
              decomposition back to NumPy (tied eigenvalues, non-finite C)
    rest      1 - kernel - net - solved - eigh: the trainer's loop, optimizer, trace, strategy
    train     the kernel share of the *training* wall time, kernel / (1 - solved): the solved
              checks are evaluation, recorded apart from the run's ``wall_s`` (issue 18,
              point 2); the target is checked on both shares
    us/upd    wall microseconds per update (or generation), kernel microseconds beside it
    instr     what the wrappers add: instrumented / plain wall time - 1 (it sits in "rest")

Medians over R repeats (default 3) after one warm-up run per row (Numba compile excluded);
one thread. The BPTT rates are the baseline of issue 18's ">= 3x updates/s for H <= 8":
``--write-baseline`` (or a first full run, when the file is missing) writes them with the git
commit to benchmarks/bench_train_baseline.json; a run at another commit prints the ratio.

    python benchmarks/bench_train.py [--quick] [--repeats R] [--updates U] [--gens G]
                                     [--only LABEL,...] [--write-baseline]

The baseline file was measured in another machine state, so its ratios carry that offset.
``--against REV`` measures instead, side by side on this machine: worker processes running
this script on REV's files (``git archive`` into the temporary directory) and on this
checkout alternate, R times each, each printing every row's median rate over ``--runs``
runs after a warm-up; the ratio of the medians is printed per row (no shares)::

    python benchmarks/bench_train.py --against dcd4e29 [--repeats R] [--runs K] [--only ...]

On a shared, noisy machine a row's ratio moved by 25 % between two such runs. With
``--interleaved`` both toolkits run in this one process instead (REV's sources copied with
every ``toolkit`` name renamed ``bench_base_toolkit``), their runs interleaved row by row,
R runs each in alternating order, so that both see the same machine states::

    python benchmarks/bench_train.py --against dcd4e29 --interleaved [--repeats R] [--only ...]

For each full-batch BPTT row the table also notes the 3x budget (a third of the base's time
per update) beside the compiled forward pass and gradient on that batch, timed bare.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# --against's worker processes time another checkout's toolkit with this very script
TOOLKIT = Path(os.environ.get("BENCH_TRAIN_TOOLKIT", ROOT))
sys.path.insert(0, str(TOOLKIT))

import toolkit.train as T  # noqa: E402
from toolkit import kernels, tasks  # noqa: E402
from toolkit.nets import Elman  # noqa: E402

try:  # the compiled training loops (absent in checkouts older than issue 18: --against)
    from toolkit.train import chunk, es_common  # noqa: E402
except ImportError:
    chunk = es_common = None

NOW = SimpleNamespace(T=T, tasks=tasks, Elman=Elman, kernels=kernels)  # this checkout's toolkit
BASE_PKG = "bench_base_toolkit"  # --interleaved: the other commit's toolkit, renamed
BASELINE = Path(__file__).resolve().with_name("bench_train_baseline.json")
KERNELS = ("forward", "loss", "loss_and_grad", "population_loss", "cma_ask", "cma_tell")
CHUNKS = chunk.ENTRY_POINTS if chunk else ()  # toolkit.train.chunk's compiled training loops
# the (mu, lambda)-ES's compiled parent draws
ES_DRAWS = getattr(es_common, "ENTRY_POINTS", ())
NET_METHODS = ("forward", "states", "step", "loss", "loss_and_grad", "population_loss")
TARGET_SHARE = {"gradient": 0.85, "evolution": 0.75}
TARGET_SPEEDUP = 3.0  # BPTT updates/s against the baseline, H <= 8


@dataclass(frozen=True)
class Config:
    """One experiment condition: task (name, params), hidden size, minibatch size, online BPTT."""

    label: str
    task: str
    params: dict
    H: int
    batch: int  # bptt_adam minibatch (sequences)
    online: dict  # bptt_online hyperparameters


CONFIGS = (
    Config("xor H=2", "temporal_xor", {"mask": "predictable"}, 2, 5, {"k": 3, "lr": 0.3}),
    Config("xor H=4", "temporal_xor", {"mask": "predictable"}, 4, 5, {"k": 3, "lr": 0.3}),
    Config("latch T=20 H=4", "latch", {"T": 20}, 4, 25, {"k": 20, "lr": 0.1}),
    Config("adding T=12 H=8", "adding", {"T": 12, "tol": 0.1}, 8, 25, {"k": 8, "lr": 0.1}),
)


def methods(cfg: Config):
    """(label, method, hyperparameters) of the rows run on ``cfg``."""
    return (
        ("bptt_adam full", "bptt_adam", {"lr": 0.1}),
        (f"bptt_adam mb{cfg.batch}", "bptt_adam", {"lr": 0.1, "batch_size": cfg.batch}),
        (f"bptt_online k={cfg.online['k']}", "bptt_online", dict(cfg.online)),
        ("cmaes", "cmaes", {"sigma": 0.3}),
        ("es_comma (5,35)", "es_comma", {"mu": 5, "lambda_": 35, "sigma": 0.3}),
    )


# -- the accumulators -----------------------------------------------------------------------
class Clock:
    """Seconds in the kernels, in the Elman methods and in task.solved, and their call counts.
    Kernel and net time inside ``solved`` count as solved time only."""

    def __init__(self):
        self.kernel = self.net = self.solved = self.eigh = 0.0
        self.kernel_in_net = 0.0  # the kernel seconds spent inside the Elman methods' calls
        self.kernel_calls: dict[str, int] = {}
        self.solved_calls = 0
        self._net_depth = 0
        self._in_solved = False


_CLOCK: Clock | None = None  # the active clock; None: the wrappers only pass through


def _wrap_kernel(name, fn):
    def timed(*a):
        c = _CLOCK
        if c is None or c._in_solved:
            return fn(*a)
        t0 = time.perf_counter()
        out = fn(*a)
        dt = time.perf_counter() - t0
        c.kernel += dt
        if c._net_depth:
            c.kernel_in_net += dt
        c.kernel_calls[name] = c.kernel_calls.get(name, 0) + 1
        return out

    timed.__wrapped__ = fn
    return timed


def _wrap_method(fn):
    def timed(self, *a, **k):
        c = _CLOCK
        if c is None or c._in_solved or c._net_depth:  # outermost call only
            return fn(self, *a, **k)
        c._net_depth += 1
        t0 = time.perf_counter()
        try:
            return fn(self, *a, **k)
        finally:
            c.net += time.perf_counter() - t0
            c._net_depth -= 1

    timed.__wrapped__ = fn
    return timed


def _wrap_eigh(fn):
    def timed(*a, **k):
        c = _CLOCK
        if c is None or c._in_solved:
            return fn(*a, **k)
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            c.eigh += time.perf_counter() - t0

    timed.__wrapped__ = fn
    return timed


class instrumented:
    """Context manager: wrap the kernels and Elman methods, with ``clock`` accumulating."""

    def __init__(self, clock: Clock):
        self.clock = clock

    def __enter__(self):
        global _CLOCK
        self.saved_k = {n: getattr(kernels, n) for n in KERNELS}
        self.saved_c = {n: getattr(chunk, n) for n in CHUNKS}
        self.saved_e = {n: getattr(es_common, n) for n in ES_DRAWS}
        self.saved_m = {n: Elman.__dict__[n] for n in NET_METHODS}
        for n, fn in self.saved_k.items():
            setattr(kernels, n, _wrap_kernel(n, fn))
        for n, fn in self.saved_c.items():
            setattr(chunk, n, _wrap_kernel(f"chunk.{n}", fn))
        for n, fn in self.saved_e.items():
            setattr(es_common, n, _wrap_kernel(f"es_common.{n}", fn))
        for n, fn in self.saved_m.items():
            setattr(Elman, n, _wrap_method(fn))
        self.saved_eigh = np.linalg.eigh
        np.linalg.eigh = _wrap_eigh(self.saved_eigh)
        _CLOCK = self.clock
        return self.clock

    def __exit__(self, *exc):
        global _CLOCK
        _CLOCK = None
        for n, fn in self.saved_k.items():
            setattr(kernels, n, fn)
        for n, fn in self.saved_c.items():
            setattr(chunk, n, fn)
        for n, fn in self.saved_e.items():
            setattr(es_common, n, fn)
        for n, fn in self.saved_m.items():
            setattr(Elman, n, fn)
        np.linalg.eigh = self.saved_eigh
        return False


class NeverSolved:
    """The task, whose ``solved`` runs the real check (timed when a clock is active) and answers
    False, so that a run spends its whole budget; everything else is the task's."""

    def __init__(self, task):
        self._task = task

    def __getattr__(self, name):
        return getattr(self._task, name)

    def solved(self, net, theta) -> bool:
        c = _CLOCK
        if c is None:
            self._task.solved(net, theta)
            return False
        c._in_solved = True
        t0 = time.perf_counter()
        try:
            self._task.solved(net, theta)
        finally:
            c.solved += time.perf_counter() - t0
            c.solved_calls += 1
            c._in_solved = False
        return False


# -- one row --------------------------------------------------------------------------------
def problem(cfg: Config, tk=None):
    """(task, net, data) of ``cfg`` (``tk``: the toolkit to build them with, this one's by
    default; --interleaved passes the other commit's)."""
    tk = tk or NOW
    task = tk.tasks.get(cfg.task, **cfg.params)
    net = tk.Elman(task.n_in, cfg.H, task.n_out, output=task.output)
    data = task.generate(np.random.default_rng(0))
    task.test_set()  # built once, as in a sweep's first solved check
    return task, net, data


def lambda_of(method: str, hyper: dict, n: int) -> int:
    if "lambda_" in hyper:
        return int(hyper["lambda_"])
    return 4 + int(3 * np.log(n))  # CMA-ES's default


def one_run(cfg, method, hyper, steps, seed, clock=None, tk=None) -> dict:
    """One run of ``steps`` updates (gradient) or generations (evolution); wall seconds, the
    steps actually taken, and the clock's shares when ``clock`` is given (``tk``: as in
    :func:`problem`)."""
    tk = tk or NOW
    task, net, data = problem(cfg, tk)
    family = tk.T.METHODS[method].family
    if family == "gradient":
        budget = {"evals": steps}
    else:  # the (mu, lambda)-ES evaluates its mu first parents before generation 1
        budget = {"evals": steps * lambda_of(method, hyper, net.n_params) + hyper.get("mu", 0)}
    ctx = instrumented(clock) if clock is not None else None
    if ctx:
        ctx.__enter__()
    try:
        t0 = time.perf_counter()
        tr = tk.T.run(method, net, NeverSolved(task), data, seed=seed, budget=budget, **hyper)
        wall = time.perf_counter() - t0
    finally:
        if ctx:
            ctx.__exit__(None, None, None)
    if tr.outcome != "budget":
        raise RuntimeError(f"{cfg.label} {method}: ended {tr.outcome!r} ({tr.message})")
    out = {"wall": wall, "evals": tr.evals}
    if family == "gradient":
        out["steps"] = tr.evals
    else:
        P = lambda_of(method, hyper, net.n_params)
        out["steps"] = (tr.evals - hyper.get("mu", 0)) / P
    if clock is not None:
        out.update(
            kernel=clock.kernel / wall,
            net=max(0.0, clock.net - clock.kernel_in_net) / wall,
            solved=clock.solved / wall,
            eigh=clock.eigh / wall,
            solved_calls=clock.solved_calls,
            kernel_us=1e6 * clock.kernel / out["steps"],
        )
        out["rest"] = 1.0 - out["kernel"] - out["net"] - out["solved"] - out["eigh"]
        out["train"] = out["kernel"] / max(1e-12, 1.0 - out["solved"])
    return out


@dataclass
class Row:
    config: str
    label: str
    method: str
    family: str
    H: int
    n_params: int
    steps: float
    rate: float  # updates or generations per second (uninstrumented)
    kernel: float
    net: float
    solved: float
    eigh: float
    rest: float
    train: float
    solved_calls: float
    wall_us: float
    kernel_us: float
    instr: float
    target: float = field(default=0.0)

    @property
    def key(self) -> str:
        return f"{self.config} | {self.label}"


def measure(cfg: Config, label: str, method: str, hyper: dict, steps: int, repeats: int) -> Row:
    """Medians over ``repeats`` of a plain run (the rate) and an instrumented run (the shares),
    after one short warm-up run (compiles any kernel signature the row needs)."""
    one_run(cfg, method, hyper, max(3, steps // 20), seed=10_000)
    plain, inst = [], []
    for r in range(repeats):
        plain.append(one_run(cfg, method, hyper, steps, seed=r))
        inst.append(one_run(cfg, method, hyper, steps, seed=r, clock=Clock()))

    def med(rs, k):
        return statistics.median(x[k] for x in rs)

    family = T.METHODS[method].family
    rate = statistics.median(x["steps"] / x["wall"] for x in plain)
    return Row(
        config=cfg.label,
        label=label,
        method=method,
        family=family,
        H=cfg.H,
        n_params=problem(cfg)[1].n_params,
        steps=med(plain, "steps"),
        rate=rate,
        kernel=med(inst, "kernel"),
        net=med(inst, "net"),
        solved=med(inst, "solved"),
        eigh=med(inst, "eigh"),
        rest=med(inst, "rest"),
        train=med(inst, "train"),
        solved_calls=med(inst, "solved_calls"),
        wall_us=1e6 / rate,
        kernel_us=med(inst, "kernel_us"),
        instr=med(inst, "wall") / med(plain, "wall") - 1.0,
        target=TARGET_SHARE[family],
    )


def selected(only, updates: int, gens: int, configs=CONFIGS):
    """(cfg, label, method, hyper, key, steps) of every row whose key "condition | label"
    holds one of the ``only`` substrings (all rows without ``only``)."""
    for cfg in configs:
        for label, method, hyper in methods(cfg):
            key = f"{cfg.label} | {label}"
            if only and not any(o in key for o in only):
                continue
            steps = updates if T.METHODS[method].family == "gradient" else gens
            yield cfg, label, method, hyper, key, steps


def run_all(configs=CONFIGS, updates=2000, gens=300, repeats=3, only=None) -> list[Row]:
    return [
        measure(cfg, label, method, hyper, steps, repeats)
        for cfg, label, method, hyper, _, steps in selected(only, updates, gens, configs)
    ]


# -- the baseline ---------------------------------------------------------------------------
def git_commit(ignore: tuple[str, ...] = ()) -> str:
    """HEAD, with "-dirty" when toolkit/ has uncommitted changes (``ignore``: paths that do
    not count, e.g. the file a benchmark is about to write)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        paths = ["toolkit", *(f":!{p}" for p in ignore)]
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", *paths],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


def read_baseline(path: Path = BASELINE) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_baseline(rows: list[Row], commit: str, path: Path = BASELINE) -> None:
    data = {
        "commit": commit,
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": "updates/s (BPTT) and generations/s (ES), one thread, medians; the issue 18 "
        "target is >= 3x these BPTT rates for H <= 8 on the same machine",
        "rates": {r.key: round(r.rate, 2) for r in rows},
    }
    path.write_text(json.dumps(data, indent=1) + "\n")


# -- side by side against another commit (--against) -----------------------------------------
def checkout(rev: str) -> Path:
    """A copy of ``rev``'s files (``git archive``), kept in the temporary directory between
    runs (its Numba cache with it)."""
    res = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True, text=True,
    )  # fmt: skip
    if res.returncode != 0:
        raise ValueError(f"--against: {rev!r} is not a commit of {ROOT}")
    sha = res.stdout.strip()
    dest = Path(tempfile.gettempdir()) / f"bptt-bench-train-{sha[:12]}"
    if not (dest / "toolkit").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    return dest


def base_toolkit(rev: str) -> SimpleNamespace:
    """``rev``'s toolkit imported beside this one, as the package ``bench_base_toolkit`` (a
    copy of its sources with every ``toolkit`` name renamed, kept next to :func:`checkout`'s
    copy, its Numba cache with it): its train, tasks, Elman and kernels."""
    src = checkout(rev) / "toolkit"
    dest = src.parent / "interleaved"
    pkg = dest / BASE_PKG
    if not pkg.is_dir():
        tmp = dest / (BASE_PKG + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("__pycache__"))
        for f in tmp.rglob("*.py"):
            f.write_text(re.sub(r"\btoolkit\b", BASE_PKG, f.read_text()))
        tmp.rename(pkg)
    if str(dest) not in sys.path:
        sys.path.insert(0, str(dest))
    mod = lambda name: importlib.import_module(f"{BASE_PKG}.{name}")  # noqa: E731
    return SimpleNamespace(
        T=mod("train"), tasks=mod("tasks"), Elman=mod("nets").Elman, kernels=mod("kernels")
    )


def interleaved(rev: str, only, updates: int, gens: int, repeats: int) -> dict:
    """Rates of ``rev`` and of this checkout in this one process, their runs interleaved
    (row by row, ``repeats`` runs each, the order alternating), so that both see the same
    machine states run for run: on a noisy machine the alternating worker processes of
    :func:`side_by_side` moved a row's ratio by 25 % between runs. Returns {row key: (base
    rates, current rates)}, with each full batch's kernel times (:func:`kernel_floor`)."""
    base = base_toolkit(rev)
    got: dict[str, tuple[list, list]] = {}
    for cfg, _, method, hyper, key, steps in selected(only, updates, gens):
        for tk in (base, NOW):  # warm-up: compile, caches
            one_run(cfg, method, hyper, max(3, steps // 20), seed=10_000, tk=tk)
        rates: tuple[list, list] = ([], [])
        for r in range(repeats):
            for side in (0, 1) if r % 2 == 0 else (1, 0):
                x = one_run(cfg, method, hyper, steps, seed=r, tk=(base, NOW)[side])
                rates[side].append(x["steps"] / x["wall"])
        got[key] = rates
        if method == "bptt_adam" and "batch_size" not in hyper:
            got[key + FLOOR] = ([kernel_floor(cfg, base)], [kernel_floor(cfg, NOW)])
        print(f"# interleaved: {key} done", flush=True)
    return got


def worker_rates(only, updates: int, gens: int, runs: int) -> dict[str, float]:
    """Rows' plain rates (median of ``runs`` runs after a warm-up run), uninstrumented: what a
    ``--rates-worker`` process prints for the toolkit on its path."""
    out = {}
    for cfg, _, method, hyper, key, steps in selected(only, updates, gens):
        one_run(cfg, method, hyper, max(3, steps // 20), seed=10_000)
        rates = []
        for r in range(runs):
            x = one_run(cfg, method, hyper, steps, seed=r)
            rates.append(x["steps"] / x["wall"])
        out[key] = statistics.median(rates)
        if method == "bptt_adam" and "batch_size" not in hyper:
            out[key + FLOOR] = kernel_floor(cfg)
    return out


FLOOR = " #kernel"  # a worker's key suffix: the bare kernels' microseconds for a full batch


def kernel_floor(cfg: Config, tk=None) -> list[float]:
    """[forward, gradient]: median microseconds of the compiled loss and loss-and-gradient
    kernels (``kernels.loss``, ``kernels.loss_and_grad``: the same signatures on both sides,
    called directly, without the Elman layer's checks) on the row's whole training set at
    its initial parameters: what a full-batch update cannot go below in this checkout."""
    tk = tk or NOW
    kernels = tk.kernels
    task, net, data = problem(cfg, tk)
    theta = net.init(np.random.default_rng(0))
    x, y, mask = (np.ascontiguousarray(a, dtype=np.float64) for a in (data.x, data.y, data.mask))
    B, T = x.shape[:2]
    I, H, O, act, out_code = net._sizes()
    h0 = np.zeros((B, H))
    try:
        work = np.empty(kernels.grad_work_size(T, B, I, H, O))
    except TypeError:  # before loss_and_grad took all its scratch from work
        work = np.empty(kernels.grad_work_size(T, B, H))
    sizes = (I, H, O, act, out_code)
    out = []
    for fn in (
        lambda: kernels.loss(theta, x, y, mask, h0, *sizes),
        lambda: kernels.loss_and_grad(theta, x, y, mask, h0, *sizes, 0, work),
    ):
        fn()
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            for _ in range(50):
                fn()
            times.append((time.perf_counter() - t0) / 50)
        out.append(1e6 * statistics.median(times))
    return out


def side_by_side(rev: str, only, updates: int, gens: int, repeats: int, runs: int) -> dict:
    """Rates of ``rev`` and of this checkout, measured in alternating worker processes
    (``repeats`` each, every one a median of ``runs`` runs per row), so that both see the same
    machine states. Returns {row key: (base rates, current rates)}."""
    base = checkout(rev)
    args = [sys.executable, str(Path(__file__).resolve()), "--rates-worker",
            "--updates", str(updates), "--gens", str(gens), "--runs", str(runs)]  # fmt: skip
    if only:
        args += ["--only", ",".join(only)]
    got: dict[str, tuple[list, list]] = {}
    for rep in range(repeats):
        for side, root in ((0, base), (1, ROOT)):
            env = {**os.environ, "BENCH_TRAIN_TOOLKIT": str(root)}
            res = subprocess.run(args, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"worker for {root} failed:\n{res.stderr[-3000:]}")
            rates = json.loads(res.stdout.strip().splitlines()[-1])
            for key, rate in rates.items():
                got.setdefault(key, ([], []))[side].append(rate)
        print(f"# side by side: repeat {rep + 1} of {repeats} done", flush=True)
    return got


def side_by_side_table(
    got: dict, rev: str, how: str = "alternating worker processes (each a median of its runs)"
) -> str:
    lines = [
        f"{'condition | method':<40} {'base upd/s':>11} {'now upd/s':>10} {'ratio':>6}  "
        "(3x target: BPTT, H <= 8)"
    ]
    floors = []
    for key, (b, c) in got.items():
        if key.endswith(FLOOR):
            row = key[: -len(FLOOR)]
            rb = statistics.median(got[row][0])
            fwd = statistics.median(v[0] for v in c)
            grad = statistics.median(v[1] for v in c)
            grad_b = statistics.median(v[1] for v in b)
            floors.append(
                f"# {row}: 3x the base rate leaves {1e6 / (3 * rb):.1f} us per update; here the "
                f"bare forward pass on the batch takes {fwd:.1f} us and the gradient "
                f"{grad:.1f} us (base: {grad_b:.1f} us)"
            )
            continue
        rb, rc = statistics.median(b), statistics.median(c)
        ratio = rc / rb
        cfg = next(x for x in CONFIGS if key.startswith(x.label + " |"))
        method = next(m for lab, m, _ in methods(cfg) if key.endswith("| " + lab))
        note = ""
        if T.METHODS[method].family == "gradient" and cfg.H <= 8:
            note = "meets" if ratio >= TARGET_SPEEDUP else "MISSES"
        lines.append(f"{key:<40} {rb:>11.0f} {rc:>10.0f} {ratio:>5.2f}x  {note}")
    lines.append(f"# base = {rev}; medians of {how}")
    lines += floors
    return "\n".join(lines)


# -- the table ------------------------------------------------------------------------------
def table(rows: list[Row], baseline: dict | None = None) -> str:
    """The printed table; ``baseline`` (read_baseline()) adds the ratio column."""
    rates = (baseline or {}).get("rates", {})
    head = (
        f"{'condition':<16} {'method':<17} {'n':>4} {'steps':>6} {'upd/s':>8} {'us/upd':>8} "
        f"{'krn us':>7} {'kernel':>7} {'net':>6} {'solved':>7} {'eigh':>6} {'rest':>6} "
        f"{'train':>6} {'instr':>6}  target (kernel, train)"
    )
    if rates:
        head += f"   {'x base':>6}"
    lines = [head]
    for r in rows:
        ok = "meets" if r.kernel >= r.target else "MISSES"
        ok_train = "meets" if r.train >= r.target else "MISSES"
        line = (
            f"{r.config:<16} {r.label:<17} {r.n_params:>4} {r.steps:>6.0f} {r.rate:>8.0f} "
            f"{r.wall_us:>8.1f} {r.kernel_us:>7.1f} {100 * r.kernel:>6.1f}% {100 * r.net:>5.1f}% "
            f"{100 * r.solved:>6.2f}% {100 * r.eigh:>5.1f}% {100 * r.rest:>5.1f}% "
            f"{100 * r.train:>5.1f}% {100 * r.instr:>+5.0f}%  "
            f">= {100 * r.target:.0f}%: {ok}, {ok_train}"
        )
        if rates:
            base = rates.get(r.key)
            if base:
                ratio = r.rate / base
                line += f"   {ratio:>5.2f}x"
                if r.family == "gradient" and r.H <= 8:
                    line += " (>= 3x: " + ("meets" if ratio >= TARGET_SPEEDUP else "MISSES") + ")"
            else:
                line += "   (no baseline)"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> list[Row]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer updates and generations")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--updates", type=int, default=None, help="BPTT updates per run")
    ap.add_argument("--gens", type=int, default=None, help="ES generations per run")
    ap.add_argument("--only", default=None, help="comma-separated substrings of the row keys")
    ap.add_argument("--write-baseline", action="store_true", help="rewrite the baseline file")
    ap.add_argument(
        "--against",
        metavar="REV",
        help="rates side by side with commit REV (e.g. dcd4e29, the code before issue 18), in "
        "alternating worker processes; prints their ratio instead of the shares",
    )
    ap.add_argument("--runs", type=int, default=3, help="--against: runs per row and worker")
    ap.add_argument(
        "--interleaved",
        action="store_true",
        help="--against: both toolkits in this one process (REV's renamed), their runs "
        "interleaved row by row, --repeats runs each (steadier on a noisy machine)",
    )
    ap.add_argument("--rates-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    updates = args.updates or (400 if args.quick else 2000)
    gens = args.gens or (60 if args.quick else 300)
    only = args.only.split(",") if args.only else None
    for name in ("repeats", "runs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name}: expected an int >= 1, got {getattr(args, name)}")

    if args.rates_worker:
        Elman(1, 2, 1).warmup()
        print(json.dumps(worker_rates(only, updates, gens, args.runs)))
        return []
    if args.interleaved and not args.against:
        ap.error("--interleaved: goes with --against REV")
    if args.against:
        try:
            if args.interleaved:
                Elman(1, 2, 1).warmup()
                got = interleaved(args.against, only, updates, gens, args.repeats)
            else:
                got = side_by_side(args.against, only, updates, gens, args.repeats, args.runs)
        except ValueError as exc:
            ap.error(str(exc))
        how = "runs interleaved in one process" if args.interleaved else None
        print(side_by_side_table(got, args.against, *([how] if how else [])))
        return []

    Elman(1, 2, 1).warmup()
    print(
        f"# training runs through toolkit.train.run, one thread: {updates} BPTT updates or "
        f"{gens} ES generations per run, medians of {args.repeats} repeats after a warm-up "
        "(Numba compile excluded); shares of the wall time of the instrumented runs, upd/s "
        "from runs without the wrappers; steps = updates or generations taken"
    )
    rows = run_all(updates=updates, gens=gens, repeats=args.repeats, only=only)
    commit = git_commit()
    base = read_baseline()
    other = base is not None and base.get("commit") != commit
    print(table(rows, base if other else None))
    if other:
        print(f"# x base: upd/s against benchmarks/bench_train_baseline.json ({base['commit']})")
    full = not args.quick and only is None and args.updates is None and args.gens is None
    if args.write_baseline or (base is None and full):
        write_baseline(rows, commit)
        print(f"# baseline written: {BASELINE.name} (commit {commit})")
    elif base is not None and not other:
        print(f"# {BASELINE.name} is from this commit ({commit}): no ratio to print")
    return rows


if __name__ == "__main__":
    main()
