"""Experiment config -> runs x seeds -> joblib (loky | dask) -> store.

An experiment is one TOML file (see :func:`load_config` for every key), read once; scales and
parts are overlays of plain dicts (:func:`overlay`), then :func:`build` validates it as a
whole before anything runs (every problem is reported, with the file and the key path), expanded
into runs (grid points x tasks x methods x replicates), and the runs are executed with joblib:
the ``loky`` backend on one machine, joblib's ``dask`` backend on a ``dask.distributed`` cluster.
Results stream back as they finish and each one is written to the results directory at once
(:mod:`toolkit.store`), so an interrupted sweep resumes where it stopped.

Seeds. Each run's seed comes from the experiment's root seed and the run's identity (its resolved
config and its replicate index) through :class:`numpy.random.SeedSequence`
(:func:`derive_seed`), never from the order of execution, the worker or ``--jobs``. Inside a run,
``SeedSequence(seed).spawn(2)`` gives the data stream (``task.generate``) and the training stream
(``toolkit.train.run(seed=...)``), see :func:`run_seed_sequences`.

Plugins. Tasks, networks and methods are looked up through a *registry*: by default
:data:`TOOLKIT` (``toolkit.tasks``, ``toolkit.nets.CELLS``, ``toolkit.train.METHODS``). Another
registry (an object with the methods of :class:`ToolkitRegistry`, importable by worker
processes) can be passed as ``registry=`` or named in the environment variable
``BPTT_REGISTRY=module:attribute``; the tests use this to run sweeps of a trivial fake method.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib
import itertools
import json
import math
import os
import re
import sys
import time
import tomllib
import traceback
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit import records, store
from toolkit.params import REQUIRED, Param, ParamError, check_params, close

__all__ = [
    "ConfigError",
    "SweepError",
    "SweepStopped",
    "Experiment",
    "SweepResult",
    "ToolkitRegistry",
    "TOOLKIT",
    "load_config",
    "derive_seed",
    "run_seed_sequences",
    "make_run_id",
    "execute_run",
    "run_sweep",
    "ExecOptions",
    "estimate_cost",
    "format_run_table",
    "resolve_registry",
    "limit_threads",
    "toolkit_version",
]

THREAD_VARS = store.THREAD_VARS  # the thread variables set to 1 in every worker
BUDGET_LIMITS = ("evals", "fwd_equiv", "wall_s")
TOP_KEYS = (
    "name",
    "description",
    "seed",
    "replicates",
    "task",
    "tasks",
    "net",
    "budget",
    "methods",
    "grid",
    "scales",
    "post",
    "report",  # free-form text for the report (toolkit/report.py): never part of a run's key
)
#: keys of the optional [post] table: what :mod:`toolkit.suite` does beyond the plain sweep
#: (several sweeps merged, landscape tables, gradient fidelity, parallel timing). Their
#: contents are validated by :func:`toolkit.suite.load`; a plain sweep ignores them.
POST_KEYS = ("parts", "slices", "fidelity", "cliff", "anatomy", "parallel")
TASK_KEYS = ("name", "params")
#: [net] keys: ``cell`` picks the class (toolkit.nets.CELLS); it enters the run key only when
#: it is not the default "elman" (so the run keys of every existing file stay what they are)
BUDGET_PARAMS = {
    "evals": Param(None, "int", lo=1, doc="loss evaluations"),
    "fwd_equiv": Param(None, "float", lo=0.0, lo_open=True, doc="forward-pass equivalents"),
    "wall_s": Param(None, "float", lo=0.0, lo_open=True, doc="wall seconds (not deterministic)"),
    "target_loss": Param(None, "float", lo=0.0, doc='stop with outcome "target" below it'),
}
BUDGET_KEYS = tuple(BUDGET_PARAMS)
TASK_NAME = Param(REQUIRED, "str", doc="the task's registry name")
SEED = Param(REQUIRED, "int", lo=0, doc="the experiment's root seed, an integer >= 0")
REPLICATES = Param(1, "int", lo=1, doc="seeds per configuration")
#: rough cost of one sequence-step of a forward pass: SECONDS_PER_STEP + SECONDS_PER_WEIGHT_STEP
#: x n_params (seconds; measured on small nets on a 2-core machine), for --dry-run
SECONDS_PER_STEP = 150e-9
SECONDS_PER_WEIGHT_STEP = 1.5e-9
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MISSING = object()


class ConfigError(ValueError):
    """Every problem found in an experiment file; ``problems`` is a list of (key path, text)."""

    def __init__(self, path, problems: list[tuple[str, str]]):
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{self.path}: {n} problem{'s' if n != 1 else ''} in the experiment file:"
        lines = [f"  {self.path}: {k + ': ' if k else ''}{msg}" for k, msg in self.problems]
        return "\n".join([head, *lines])


class SweepError(RuntimeError):
    """A sweep cannot start or could not finish (scheduler unreachable, worker died, ...)."""


class SweepStopped(SweepError):
    """A sweep started but stopped before its results were complete (a worker died, the disk
    became unwritable, a run file was damaged, ...): what is stored stays, and running the
    same command again resumes. (``bptt run`` exits with 3.)"""


# ------------------------------------------------------------------------------------------
# registries: where tasks, networks and methods come from
# ------------------------------------------------------------------------------------------
class ToolkitRegistry:
    """The toolkit's own tasks (:mod:`toolkit.tasks`), network (:class:`toolkit.nets.Elman`)
    and methods (:data:`toolkit.train.METHODS`). Imports happen on first use, so this module
    does not depend on the lower layers at import time.

    A replacement registry implements the same methods; it must be picklable by reference
    (an instance of a class defined at module level in a module the workers can import).
    """

    label = "toolkit"

    def task_names(self) -> list[str]:
        import toolkit.tasks

        return list(toolkit.tasks.names())

    def make_task(self, name: str, params: dict):
        import toolkit.tasks

        return toolkit.tasks.get(name, **params)

    def method_names(self) -> list[str]:
        from toolkit.train import METHODS

        return sorted(METHODS)

    def validate_method(self, name: str, hyper: dict) -> dict:
        """Resolved hyperparameters (defaults filled in); ValueError naming the parameter."""
        from toolkit.train import METHODS

        method = METHODS[name]
        checked = method.validate(dict(hyper))
        return {**dict(method.defaults), **(hyper if checked is None else dict(checked))}

    def method_family(self, name: str) -> str:
        from toolkit.train import METHODS

        return METHODS[name].family

    def make_net(self, task, net: dict):
        """The net of a resolved ``[net]`` table; ``cell`` (default elman) picks the class
        from :data:`toolkit.nets.CELLS`."""
        from toolkit.nets import make_net

        return make_net(task.n_in, task.n_out, task.output, net)

    def train(self, method, net, task, data, *, seed, budget: dict, target_loss, hyper: dict):
        from toolkit.train import run
        from toolkit.train.trace import Budget

        return run(
            method,
            net,
            task,
            data,
            seed=seed,
            budget=Budget.from_dict(budget),
            target_loss=target_loss,
            validated=True,  # checked when the config was read
            **hyper,
        )

    def warmup(self, runs: list[dict]) -> float:
        """Compile every kernel once in the parent (fills Numba's on-disk cache) so that the
        workers load the compiled code instead of racing to compile it. Returns seconds."""
        from toolkit.nets import Elman

        t0 = time.perf_counter()
        if runs:  # kernels are compiled per type signature: one warm-up covers every net
            Elman(1, 1, 1).warmup()
        return time.perf_counter() - t0


TOOLKIT = ToolkitRegistry()


def resolve_registry(registry=None):
    """``registry`` object, ``"module:attr"`` string, or None (then ``$BPTT_REGISTRY`` or the
    toolkit's own registry)."""
    if registry is None:
        registry = os.environ.get("BPTT_REGISTRY") or TOOLKIT
    if isinstance(registry, str):
        mod, _, attr = registry.partition(":")
        if not mod or not attr:
            raise SweepError(f"registry {registry!r}: expected 'module:attribute'")
        try:
            registry = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise SweepError(f"registry {registry!r} cannot be loaded: {e}") from e
    return registry


def _registry_label(registry) -> str:
    label = getattr(registry, "label", None)
    if label:
        return str(label)
    return f"{type(registry).__module__}:{type(registry).__qualname__}"


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------
def _jsonable(x):
    """Plain JSON types (numpy scalars -> Python, tuples -> lists, keys -> str)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def canonical(obj) -> str:
    """Canonical JSON text of ``obj`` (sorted keys, no spaces): the input of every hash."""
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), default=str)


def _sha(obj) -> bytes:
    return hashlib.sha256(canonical(obj).encode("utf-8")).digest()


def toolkit_version() -> str:
    """The version in the source checkout's pyproject.toml, else the installed metadata."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        with open(pyproject, "rb") as f:
            v = tomllib.load(f).get("project", {}).get("version")
        if v:
            return str(v)
    except (OSError, tomllib.TOMLDecodeError):
        pass
    try:
        from importlib.metadata import version

        return version("bptt-toolkit")
    except Exception:
        return "0+unknown"


def derive_seed(root_seed: int, run_key: dict, replicate: int) -> int:
    """The run's seed (a 63-bit int): ``SeedSequence(root_seed, spawn_key=(h0..h3, replicate))``
    where h0..h3 are the first 128 bits of the SHA-256 of the run's canonical resolved config.
    It depends on nothing else (not the order of runs, the worker, ``--jobs`` or the backend).
    """
    words = np.frombuffer(_sha(run_key)[:16], dtype="<u4").tolist()
    ss = np.random.SeedSequence(int(root_seed), spawn_key=(*words, int(replicate)))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def run_seed_sequences(seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """(data, train): independent streams of one run, ``SeedSequence(seed).spawn(2)``."""
    data, train = np.random.SeedSequence(int(seed)).spawn(2)
    return data, train


def make_run_id(run_key: dict, replicate: int, root_seed: int, version: str) -> str:
    """Short hash (12 hex digits) of resolved run config + replicate + root seed + version."""
    payload = {
        "run": run_key,
        "replicate": int(replicate),
        "root_seed": int(root_seed),
        "toolkit": version,
    }
    return _sha(payload).hex()[:12]


_close = close


def _fmt(v) -> str:
    return repr(v) if not isinstance(v, float) else f"{v:g}"


def _field(key: str, cell: str | None = "elman") -> Param | None:
    """The declaration of a dotted config key ("net.window", "budget.evals", "task.name"),
    None for keys the registry checks (task params, method hyperparameters)."""
    table, _, name = key.partition(".")
    if table == "net":
        return net_params(cell).get(name)
    if table == "budget":
        return BUDGET_PARAMS.get(name)
    return TASK_NAME if key == "task.name" else None


def net_params(cell: str | None = "elman") -> dict[str, Param]:
    """The ``[net]`` declaration: ``cell`` plus the chosen cell class's CONFIG."""
    from toolkit.nets import CELLS

    cls = CELLS.get(cell or "elman", CELLS["elman"])
    # (an unknown cell is reported when the net is built, under "net")
    cell_param = Param("elman", "str", doc=f"network cell: {', '.join(CELLS)}")
    return {"cell": cell_param, **cls.CONFIG}


def _checked(decl: dict[str, Param], table: dict, path: str, P) -> dict:
    """The keys given in ``table``, checked against ``decl`` (problems to ``P``, bad -> None)."""
    out = {}
    for k, v in table.items():
        if k not in decl:
            P.unknown(path, k, decl)
            continue
        ok, out[k] = decl[k].coerce(v)
        if not ok:
            P.add(f"{path}.{k}", out[k])
            out[k] = None
    return out


def _report(P, prefix: str, e: Exception, from_grid, doing: str) -> None:
    """A registry's error under ``prefix``: a :class:`ParamError` names its keys; another
    ValueError/TypeError stays under ``prefix``; anything else is a failure of ``doing``."""
    if isinstance(e, ParamError):
        items = [(f"{prefix}.{k}" if k else prefix, m) for k, m in e.problems]
    elif isinstance(e, ValueError | TypeError):
        items = [(prefix, str(e))]
    else:
        items = [(prefix, f"{doing} failed: {type(e).__name__}: {e}")]
    where = f" (grid point: {', '.join(f'{k}={_fmt(v)}' for k, v in from_grid)})"
    for key, msg in items:
        P.add(key, msg + (where if from_grid else ""))


class _Problems:
    def __init__(self):
        self.items: list[tuple[str, str]] = []
        self.origin: dict[str, str] = {}

    def add(self, key: str, msg: str) -> None:
        src = self.origin.get(key)
        if src and src.startswith("--"):
            msg = f"{msg} (set by {src})"
        elif src:  # set by an overlay: the key path where it was written
            key = f"{src}.{key}"
        if (key, msg) not in self.items:
            self.items.append((key, msg))

    def unknown(self, prefix: str, key: str, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        path = f"{prefix}.{key}" if prefix else key
        self.add(path, f"unknown key{_close(key, allowed)}; allowed: {', '.join(allowed)}")


def _check_report(v, P: _Problems, key: str = "report") -> None:
    """``[report]``: free-form text for the report (title, summary, captions, ...): a table
    whose leaves are strings, numbers, booleans, lists or tables. It never enters a run key."""
    if key == "report" and not isinstance(v, dict):
        P.add(key, f"expected a table [report] (title, summary, captions, ...), got {_fmt(v)}")
    elif isinstance(v, dict | list):
        for k, x in v.items() if isinstance(v, dict) else enumerate(v):
            _check_report(x, P, f"{key}.{k}" if isinstance(v, dict) else f"{key}[{k}]")
    elif not isinstance(v, str | int | float | bool):
        P.add(key, f"expected a string, number, boolean, list or table, got {type(v).__name__}")


# ------------------------------------------------------------------------------------------
# the experiment
# ------------------------------------------------------------------------------------------
@dataclass
class Experiment:
    """A validated experiment: its runs in plan order and what meta.json records."""

    path: Path
    name: str
    description: str
    root_seed: int
    replicates: int
    scale: str
    given: dict
    resolved: dict
    runs: list[dict]
    grid_keys: list[str]
    fingerprint: str
    registry: object = None

    @property
    def n_configs(self) -> int:
        return len({r["config_id"] for r in self.runs})


def _grid_at(parts: list[str]) -> int | None:
    """Index of a ``grid`` segment whose next segments form one grid key (``grid.net.n_hidden``
    names the key "net.n_hidden"): at the top, or under ``post.parts.<part>``."""
    if parts and parts[0] == "grid":
        return 0
    if len(parts) > 3 and parts[:2] == ["post", "parts"] and parts[3] == "grid":
        return 3
    return None


def leaves(table: dict, prefix: tuple = ()):
    """(path segments, value) of every leaf of an overlay table: dotted keys are split, nested
    tables merged leaf by leaf; a dotted path under ``grid`` names one grid key."""
    for k, v in table.items():
        parts = [*prefix, *str(k).split(".")]
        g = _grid_at(parts)
        if g is not None and len(parts) > g + 1:
            yield [*parts[: g + 1], ".".join(parts[g + 1 :])], v
        elif g is not None and isinstance(v, dict):
            for gk, gv in v.items():
                yield [*parts, gk], gv
        elif isinstance(v, dict) and v:
            yield from leaves(v, tuple(parts))
        else:
            yield parts, v


def overlay(cfg: dict, items, label: str, problems: _Problems) -> None:
    """THE overlay: set each (path, value) of ``items`` (from :func:`leaves`) in ``cfg`` (in
    place), remembering ``label`` (e.g. "scales.smoke", "post.parts.a") as the origin of the
    key, so that a problem with it is reported under ``<label>.<key>``."""
    for parts, value in items:
        node = cfg
        for i, p in enumerate(parts[:-1]):
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                problems.add(
                    f"{label}.{'.'.join(parts)}",
                    f"cannot set: '{'.'.join(parts[: i + 1])}' is not a table",
                )
                break
            node = nxt
        else:
            node[parts[-1]] = copy.deepcopy(value)
            problems.origin[".".join(parts)] = label


def scale_items(given: dict, scale: str, problems: _Problems) -> list:
    """The leaves of ``[scales.<scale>]`` (none for "default" unless the file defines it)."""
    scales = given.get("scales", {})
    if not isinstance(scales, dict) or any(not isinstance(v, dict) for v in scales.values()):
        problems.add("scales", "expected tables [scales.<name>] of overrides")
        return []
    if scale not in scales:
        if scale != "default":
            known = ", ".join(["default", *[s for s in scales if s != "default"]])
            problems.add(
                "scales",
                f"no scale '{scale}' in this file{_close(scale, scales)}; defined: {known}",
            )
        return []
    return list(leaves(scales[scale]))


def _grid_key_kind(key: str, methods: dict, single_task: bool) -> tuple[str | None, str]:
    """('net'|'task'|'budget'|'method', '') or (None, reason)."""
    parts = key.split(".")
    if key in ("net.n_hidden", "net.hidden", "net.recurrent", "net.window"):
        return "net", ""
    if key == "task.name":
        if not single_task:
            return None, "'task.name' is a grid key only with a single [task]; list [[tasks]]"
        return "task", ""
    if len(parts) == 3 and parts[0] == "task" and parts[1] == "params" and parts[2]:
        return "task", ""
    if len(parts) == 2 and parts[0] == "budget" and parts[1] in BUDGET_KEYS:
        return "budget", ""
    if len(parts) == 3 and parts[0] == "methods" and parts[2]:
        if parts[1] not in methods:
            return None, (
                f"method '{parts[1]}' is not in [methods]{_close(parts[1], methods)}; "
                f"methods: {', '.join(methods) or '(none)'}"
            )
        return "method", ""
    return None, (
        "unknown grid key; allowed: net.n_hidden, net.hidden, net.recurrent, net.window, "
        "task.name, "
        "task.params.<p>, budget.<evals|fwd_equiv|wall_s|target_loss>, "
        "methods.<method>.<p>"
    )


#: runs an experiment may expand to unless the caller allows more (``--force-large``)
MAX_RUNS = 100_000


def read_toml(path) -> dict:
    """The experiment file at ``path`` as a dict; :class:`ConfigError` (never a traceback) when
    it cannot be read, is not UTF-8 text (TOML files are UTF-8) or is not valid TOML."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            path, [("", f"cannot read the experiment file ({e.strerror or e})")]
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            path,
            [
                (
                    "",
                    f"not UTF-8 text: byte 0x{data[e.start]:02x} on line {line} "
                    "(TOML files are UTF-8; re-save the file as UTF-8)",
                )
            ],
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, [("", f"not valid TOML: {e}")]) from None


def load_config(
    path,
    *,
    scale: str = "default",
    seeds: int | None = None,
    registry=None,
    max_runs: int | None = MAX_RUNS,
) -> Experiment:
    """Read, validate and expand an experiment file. Raises :class:`ConfigError` listing every
    problem (file, key path, what was expected) before anything runs.

    Schema (TOML)::

        name = "speed"          # optional, default: file stem; [A-Za-z0-9_.-], names results/<name>
        description = "..."     # optional
        seed = 1                # required: root seed, integer >= 0
        replicates = 10         # optional, default 1: seeds per configuration (--seeds overrides)
        [task]                  # one task ...
        name = "adding"         #   registry name (toolkit.tasks.names())
        params = { T = 50 }     #   keyword arguments of toolkit.tasks.get (validated by it)
        # [[tasks]] ...         # ... or several (same two keys each)
        [net]
        cell = "elman"          # optional: network class, toolkit.nets.CELLS (default elman)
        n_hidden = 8            # required, integer >= 1
        hidden = "tanh"         # tanh | sigmoid | relu (default tanh); output comes from the task
        [budget]                # at least one of evals / fwd_equiv / wall_s; first reached stops
        evals = 100000          # integer >= 1: loss evaluations
        fwd_equiv = 2e6         # > 0: forward-pass equivalents (sequence-steps)
        wall_s = 60             # > 0: wall seconds (compile time excluded; not deterministic)
        target_loss = 0.01      # optional, >= 0: stop with outcome "target" below it
        [methods.bptt_adam]     # one table per method (toolkit.train.METHODS), >= 1 method;
        lr = 0.01               #   its hyperparameters, checked by METHODS[name].validate
        [grid]                  # optional: each key a dotted path, each value a non-empty list;
        "net.n_hidden" = [4, 8] #   runs = cartesian product. Keys: net.n_hidden, net.hidden,
                                #   task.name, task.params.<p>, budget.<limit|target_loss>,
                                #   methods.<m>.<p> (varies only method m's runs)
        [scales.smoke]          # optional overrides, chosen with --scale smoke ("default" is
        replicates = 2          #   the file as written unless [scales.default] exists);
        "budget.fwd_equiv" = 1e5  # dotted paths or nested tables; "grid.<key>" sets a grid key
        [report]                # optional free text for the report (title, summary, captions,
                                #   ...); never part of a run key
        [post]                  # optional: parts, slices, fidelity, cliff, parallel -- what
                                #   toolkit.suite does beyond this sweep (validated there;
                                #   `bptt run` and `bptt experiments` hand such files to it)

    Expansion order: grid points (keys in file order) x tasks x methods (file order) x the
    method's own grid keys x replicates. ``seeds`` overrides ``replicates``. The number of runs
    is computed before expanding; above ``max_runs`` (None: no limit; the CLI's
    ``--force-large``) the file is refused with a ConfigError that gives the count.
    """
    path = Path(path)
    given = read_toml(path)
    P = _Problems()
    cfg = {k: copy.deepcopy(v) for k, v in given.items() if k != "scales"}
    overlay(cfg, scale_items(given, scale, P), f"scales.{scale}", P)
    return build(
        path, cfg, P, given=given, scale=scale, seeds=seeds, registry=registry, max_runs=max_runs
    )


@dataclass(frozen=True)
class TaskSpec:
    """One ``[task]`` / ``[[tasks]]`` entry: its key path, registry name (None when missing or
    bad) and parameters as given."""

    path: str
    name: str | None
    params: dict


@dataclass(frozen=True)
class NetSpec:
    """``[net]``: the cell named (None: the default) and the settings that enter the run key
    (every setting given plus the defaults that are not None; ``cell`` only when it is not
    "elman", so existing run ids are unchanged)."""

    cell: str | None
    values: dict


@dataclass(frozen=True)
class BudgetSpec:
    """``[budget]``: the limits given (evals / fwd_equiv / wall_s) and the target loss."""

    limits: dict
    target_loss: float | None


@dataclass(frozen=True)
class MethodSpec:
    """One ``[methods.<name>]`` table: the method's registry name and hyperparameters."""

    name: str
    hyper: dict


@dataclass(frozen=True)
class Grid:
    """``[grid]``: each valid key's checked values (file order) and its kind (net, task,
    budget or method)."""

    values: dict[str, list]
    kinds: dict[str, str]

    @property
    def general_keys(self) -> list[str]:
        return [k for k in self.values if self.kinds[k] != "method"]

    def method_keys(self, m: str) -> list[str]:
        return [k for k in self.values if k.startswith(f"methods.{m}.")]

    def n_runs(self, methods: Iterable[str], n_tasks: int, replicates: int) -> int:
        """The number of runs the expansion would produce (before removing duplicates), from
        the list lengths alone: an oversized grid is refused in microseconds, not expanded."""
        general = math.prod(len(self.values[k]) for k in self.general_keys)
        per_method = sum(
            math.prod(len(self.values[k]) for k in self.method_keys(m)) for m in methods
        )
        return general * n_tasks * max(1, per_method) * int(replicates)


def _table(cfg: dict, key: str, keys: tuple, P: _Problems, required: bool = True) -> dict:
    """``cfg[key]`` when it is a table (its unknown keys reported), else {} (and a problem)."""
    t = cfg.get(key, _MISSING)
    if t is _MISSING:
        if required:
            P.add(key, f"missing: a [{key}] table with keys {', '.join(keys)}")
        return {}
    if not isinstance(t, dict):
        P.add(key, f"expected a table [{key}] with keys {', '.join(keys)}")
        return {}
    for k in t:
        if k not in keys:
            P.unknown(key, k, keys)
    return t


def _parse_top(path: Path, cfg: dict, P: _Problems) -> tuple[str, str, int | None, int]:
    """(name, description, root seed, replicates); checks the top keys, [report] and [post]."""
    for k in cfg:
        if k not in TOP_KEYS:
            P.unknown("", k, TOP_KEYS)
    name = cfg.get("name", path.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        P.add("name", f"expected a name of letters, digits, '_', '.', '-', got {_fmt(name)}")
    description = cfg.get("description", "")
    if not isinstance(description, str):
        P.add("description", f"expected a string, got {_fmt(description)}")
        description = ""
    top_decl = {"seed": SEED, "replicates": REPLICATES}
    top, problems = check_params(top_decl, {k: cfg[k] for k in top_decl if k in cfg})
    for k, msg in problems:
        P.add(k, msg)
    _check_report(cfg.get("report", {}), P)
    post = cfg.get("post", {})
    if not isinstance(post, dict):
        P.add("post", f"expected a table [post] with keys {', '.join(POST_KEYS)}, got {_fmt(post)}")
    else:
        for k, v in post.items():
            if k not in POST_KEYS:
                P.unknown("post", k, POST_KEYS)
            elif not isinstance(v, dict):
                P.add(f"post.{k}", f"expected a table, got {_fmt(v)}")
    return name, description, top["seed"], top["replicates"] or 1


def _parse_tasks(cfg: dict, P: _Problems) -> list[TaskSpec]:
    """The ``[task]`` or ``[[tasks]]`` entries (bad names -> None, bad params -> {})."""
    raw = None
    if "task" in cfg and "tasks" in cfg:
        P.add("tasks", "give either one [task] table or several [[tasks]], not both")
    if "task" in cfg:
        if not isinstance(cfg["task"], dict):
            P.add("task", "expected a table [task] with keys name, params")
        else:
            raw = [("task", cfg["task"])]
    elif "tasks" in cfg:
        ts = cfg["tasks"]
        if not isinstance(ts, list) or not ts or not all(isinstance(t, dict) for t in ts):
            P.add("tasks", "expected a non-empty array of tables [[tasks]] (name, params)")
        else:
            raw = [(f"tasks[{i}]", t) for i, t in enumerate(ts)]
    else:
        P.add(
            "task",
            "missing: give the task as a [task] table (name, params) or several as [[tasks]]",
        )
    specs = []
    for tpath, t in raw or []:
        for k in t:
            if k not in TASK_KEYS:
                P.unknown(tpath, k, TASK_KEYS)
        tname = t.get("name", _MISSING)
        if tname is _MISSING:
            P.add(f"{tpath}.name", "missing: the task's registry name")
            tname = None
        elif not TASK_NAME.coerce(tname)[0]:
            P.add(f"{tpath}.name", TASK_NAME.coerce(tname)[1])
            tname = None
        params = t.get("params", {})
        if not isinstance(params, dict):
            P.add(f"{tpath}.params", f"expected a table of task parameters, got {_fmt(params)}")
            params = {}
        specs.append(TaskSpec(tpath, tname, params))
    return specs


def _parse_net_budget(cfg: dict, P: _Problems) -> tuple[NetSpec, BudgetSpec]:
    """``[net]`` (checked against the cell's declaration) and ``[budget]``."""
    cell = cfg["net"].get("cell") if isinstance(cfg.get("net"), dict) else None
    cell = cell if isinstance(cell, str) else None
    net_decl = net_params(cell)
    net_raw = _table(cfg, "net", tuple(net_decl), P)
    budget_raw = _table(cfg, "budget", BUDGET_KEYS, P)
    net = {k: p.default for k, p in net_decl.items() if k != "cell" and p.default is not None}
    grid_given = cfg.get("grid") if isinstance(cfg.get("grid"), dict) else {}
    if isinstance(cfg.get("net"), dict) and "n_hidden" not in net_raw:
        if "net.n_hidden" not in grid_given:
            P.add("net.n_hidden", "missing: the number of hidden units, an integer >= 1")
    for k, v in _checked(net_decl, net_raw, "net", P).items():
        if not (k == "cell" and v == "elman"):  # the default is not in the key
            net[k] = v
    budget = _checked(BUDGET_PARAMS, budget_raw, "budget", P)
    target_loss = budget.pop("target_loss", None)
    limits = {k: v for k, v in budget.items() if v is not None}
    return NetSpec(cell, net), BudgetSpec(limits, target_loss)


def _parse_methods(cfg: dict, P: _Problems) -> dict[str, MethodSpec]:
    """The ``[methods.<name>]`` tables, in file order."""
    raw = cfg.get("methods", _MISSING)
    if raw is _MISSING:
        P.add("methods", "missing: at least one [methods.<name>] table of hyperparameters")
        return {}
    if not isinstance(raw, dict) or not raw:
        P.add("methods", "expected at least one [methods.<name>] table of hyperparameters")
        return {}
    methods = {}
    for m, hyper in raw.items():
        if not isinstance(hyper, dict):
            P.add(f"methods.{m}", f"expected a table of hyperparameters, got {_fmt(hyper)}")
        else:
            methods[m] = MethodSpec(m, hyper)
    return methods


def _grid_values(gpath: str, values, decl: Param | None, P: _Problems) -> list | None:
    """The values of one grid key, checked (a list of distinct scalars of one kind, each valid
    for the key's declaration), or None after reporting why not."""
    if not isinstance(values, list):
        P.add(gpath, f"expected a list of values, got {_fmt(values)}")
        return None
    if not values:
        P.add(
            gpath,
            "empty list: a grid key needs at least one value (an empty grid expands to no runs)",
        )
        return None
    bad = [v for v in values if isinstance(v, dict | list)]
    if bad:
        P.add(gpath, f"expected scalar values (numbers, strings, booleans), got {_fmt(bad[0])}")
        return None
    kinds_of = {
        "str" if isinstance(v, str) else "bool" if isinstance(v, bool) else "num" for v in values
    }
    if len(kinds_of) > 1:
        P.add(gpath, f"expected values of one kind, got a mix of {sorted(kinds_of)}")
        return None
    dup = [v for i, v in enumerate(values) if v in values[:i]]
    if dup:
        P.add(gpath, f"duplicate value {_fmt(dup[0])}")
        return None
    if decl is None:
        return list(values)
    checked = [decl.coerce(v) for v in values]
    for ok, cv in checked:
        if not ok:
            P.add(gpath, cv)
    return None if not all(ok for ok, _ in checked) else [cv for _, cv in checked]


def _parse_grid(cfg: dict, P: _Problems, *, single_task: bool, cell: str | None) -> Grid:
    """``[grid]``: every key's kind and values checked; also that some budget limit is set."""
    grid_raw = cfg.get("grid", {})
    if not isinstance(grid_raw, dict):
        P.add("grid", "expected a table of dotted keys -> lists of values")
        grid_raw = {}
    methods_raw = cfg.get("methods") if isinstance(cfg.get("methods"), dict) else {}
    values: dict[str, list] = {}
    kinds: dict[str, str] = {}
    for k, given in grid_raw.items():
        kind, why = _grid_key_kind(k, methods_raw, single_task=single_task)
        if kind is None:
            P.add(f"grid.{k}", why)
            continue
        checked = _grid_values(f"grid.{k}", given, _field(k, cell), P)
        if checked is not None:
            values[k], kinds[k] = checked, kind
    if isinstance(cfg.get("budget"), dict):
        budget_given = set(cfg["budget"]) | {k[7:] for k in grid_raw if k.startswith("budget.")}
        if not budget_given & set(BUDGET_LIMITS):
            P.add("budget", "set at least one limit: evals, fwd_equiv or wall_s")
    return Grid(values, kinds)


def _unknown_name(what: str, name: str, known: list[str], sort: bool = True) -> str:
    listed = ", ".join(sorted(known) if sort else known)
    return f"unknown {what} '{name}'{_close(name, known)}; known: {listed}"


def _check_names(reg, P: _Problems, tasks, methods, grid: Grid) -> tuple[set, set]:
    """The task and method names the registry knows; unknown names given are reported."""
    task_names = method_names = None
    try:
        task_names = list(reg.task_names())
    except Exception as e:  # the tasks module is missing or broken
        P.add(
            "task.name",
            f"cannot check task names: the task registry failed to load ({type(e).__name__}: {e})",
        )
    try:
        method_names = list(reg.method_names())
    except Exception as e:
        P.add(
            "methods",
            f"cannot check method names: the method registry failed to load "
            f"({type(e).__name__}: {e})",
        )
    if task_names is not None:
        for t in tasks:
            if t.name is not None and t.name not in task_names:
                P.add(f"{t.path}.name", _unknown_name("task", t.name, task_names))
        for tname in grid.values.get("task.name", []):
            if tname not in task_names:
                P.add("grid.task.name", _unknown_name("task", tname, task_names))
    if method_names is not None:
        for m in methods:
            if m not in method_names:
                P.add(f"methods.{m}", _unknown_name("method", m, method_names, sort=False))
    return set(task_names or ()), set(method_names or ())


def _where(grid_point) -> str:
    return f" (grid point: {', '.join(f'{k}={_fmt(v)}' for k, v in grid_point)})"


class _Resolver:
    """Tasks built, hyperparameters validated and nets checked through the registry, once per
    distinct setting; problems go to ``P`` under the key path of the setting."""

    def __init__(self, reg, P: _Problems):
        self.reg, self.P = reg, P
        self.tasks: dict[str, dict | None] = {}
        self.methods: dict[str, dict | None] = {}
        self.family: dict[str, str | None] = {}
        self.nets: dict[str, bool] = {}

    def task(self, tpath: str, tname: str, params: dict, from_grid) -> dict | None:
        ck = canonical([tname, params])
        if ck not in self.tasks:
            try:
                task = self.reg.make_task(tname, dict(params))
                self.tasks[ck] = {
                    "name": task.name if getattr(task, "name", None) else tname,
                    "params": _jsonable(dict(task.params)),
                    "n_in": int(task.n_in),
                    "n_out": int(task.n_out),
                    "output": str(task.output),
                }
            except Exception as e:
                _report(self.P, f"{tpath}.params", e, from_grid, "building the task")
                self.tasks[ck] = None
        return self.tasks[ck]

    def method(self, m: str, hyper: dict, from_grid) -> dict | None:
        ck = canonical([m, hyper])
        if ck not in self.methods:
            try:
                self.methods[ck] = _jsonable(self.reg.validate_method(m, dict(hyper)))
            except Exception as e:
                _report(self.P, f"methods.{m}", e, from_grid, "validating the hyperparameters")
                self.methods[ck] = None
            if m not in self.family:
                try:
                    self.family[m] = str(self.reg.method_family(m))
                except Exception:
                    self.family[m] = None
        return self.methods[ck]

    def net_fits(self, tinfo: dict, net: dict, g: dict) -> bool:
        """Build the net once per (task, net) to check that it fits the task (sizes, fixed
        weights); a problem names both, at key ``net`` (and the grid point)."""
        ck = canonical([tinfo, net])
        if ck not in self.nets:
            shape = types.SimpleNamespace(**{k: tinfo[k] for k in ("n_in", "n_out", "output")})
            try:
                self.reg.make_net(shape, dict(net))
                self.nets[ck] = True
            except Exception as e:
                where = [(k, v) for k, v in g.items() if k.startswith(("net.", "task."))]
                msg = (
                    f"this net does not fit task '{tinfo['name']}' (inputs {tinfo['n_in']}, "
                    f"outputs {tinfo['n_out']}, output {tinfo['output']}): {e}"
                )
                self.P.add("net", msg + (_where(where) if where else ""))
                self.nets[ck] = False
        return self.nets[ck]


@dataclass(frozen=True)
class _Point:
    """One general grid point: its values and the net, budget and target loss they give."""

    values: dict
    net: dict
    budget: dict
    target_loss: float | None

    @classmethod
    def of(cls, g: dict, net: NetSpec, budget: BudgetSpec) -> _Point:
        net_g = {**net.values, **{k[4:]: v for k, v in g.items() if k.startswith("net.")}}
        limits = dict(budget.limits)
        tl = budget.target_loss
        for k, v in g.items():
            if k == "budget.target_loss":
                tl = v
            elif k.startswith("budget."):
                limits[k[7:]] = v
        return cls(g, net_g, {k: limits[k] for k in BUDGET_LIMITS if k in limits}, tl)


def expand(
    name: str,
    root_seed: int,
    replicates: int,
    tasks: list[TaskSpec],
    net: NetSpec,
    budget: BudgetSpec,
    methods: dict[str, MethodSpec],
    grid: Grid,
    known: tuple[set, set],
    rv: _Resolver,
    check_nets: bool = True,
):
    """The run specs, in plan order: grid points (keys in file order) x tasks x methods (file
    order) x the method's own grid keys x replicates. Every setting is resolved through ``rv``
    (also when it cannot make a run, so that every problem is reported); entries with unknown
    names are skipped. ``index`` is set by the caller."""
    version = toolkit_version()
    known_tasks, known_methods = known
    gen_keys = grid.general_keys
    for gvals in itertools.product(*[grid.values[k] for k in gen_keys]):
        pt = _Point.of(dict(zip(gen_keys, gvals, strict=True)), net, budget)
        # (without a valid task the methods are still checked, so that all problems show)
        for t in tasks or [TaskSpec("task", None, {})]:
            tgrid = [(k[12:], v) for k, v in pt.values.items() if k.startswith("task.params.")]
            tname = pt.values.get("task.name", t.name)
            tinfo = None
            if tname in known_tasks:
                tinfo = rv.task(t.path, tname, {**t.params, **dict(tgrid)}, tgrid)
            if tinfo is not None and check_nets and not rv.net_fits(tinfo, pt.net, pt.values):
                tinfo = None
            for m, spec in methods.items():
                if m in known_methods:
                    yield from _method_runs(
                        name, root_seed, replicates, version, pt, tinfo, spec, grid, rv
                    )


def _method_runs(name, root_seed, replicates, version, pt: _Point, tinfo, spec, grid, rv):
    """The runs of one method at one grid point and task, over the method's own grid keys."""
    m = spec.name
    meth_keys = grid.method_keys(m)
    for mvals in itertools.product(*[grid.values[k] for k in meth_keys]):
        mgrid = [(k.split(".", 2)[2], v) for k, v in zip(meth_keys, mvals, strict=True)]
        rh = rv.method(m, {**spec.hyper, **dict(mgrid)}, mgrid)
        if tinfo is None or rh is None:
            continue
        key = {
            "task": tinfo["name"],
            "task_params": tinfo["params"],
            "net": pt.net,
            "method": m,
            "method_params": rh,
            "budget": pt.budget,
            "target_loss": pt.target_loss,
        }
        gcols = {f"grid.{k}": v for k, v in pt.values.items()}
        gcols.update({f"grid.{k}": None for k, kind in grid.kinds.items() if kind == "method"})
        gcols.update({f"grid.{k}": v for k, v in zip(meth_keys, mvals, strict=True)})
        for r in range(replicates):
            yield {
                "experiment": name,
                "index": None,
                "run_id": make_run_id(key, r, root_seed, version),
                "config_id": _sha(key).hex()[:12],
                "replicate": r,
                "seed": derive_seed(root_seed, key, r),
                "task": tinfo["name"],
                "task_params": tinfo["params"],
                "n_in": tinfo["n_in"],
                "n_out": tinfo["n_out"],
                "output": tinfo["output"],
                "net": dict(pt.net),
                "method": m,
                "family": rv.family.get(m),
                "method_params": rh,
                "budget": dict(pt.budget),
                "target_loss": pt.target_loss,
                "grid": gcols,
            }


def run_key(run: dict) -> dict:
    """The run's key (what its seed, id and config id are derived from) out of its spec."""
    keys = ("task", "task_params", "net", "method", "method_params", "budget", "target_loss")
    return {k: run[k] for k in keys}


def build(
    path: Path,
    cfg: dict,
    P: _Problems,
    *,
    given: dict,
    scale: str = "default",
    seeds: int | None = None,
    registry=None,
    max_runs: int | None = MAX_RUNS,
) -> Experiment:
    """Validate and expand ``cfg`` (a file's dict with its overlays applied; ``given`` is kept
    as written) into an :class:`Experiment`; problems so far are in ``P``."""
    reg = resolve_registry(registry)
    if seeds is not None:
        cfg["replicates"] = seeds
        P.origin["replicates"] = "--seeds"
    name, description, root_seed, replicates = _parse_top(path, cfg, P)
    tasks = _parse_tasks(cfg, P)
    net, budget = _parse_net_budget(cfg, P)
    methods = _parse_methods(cfg, P)
    single_task = len(tasks) <= 1 and "task" in cfg
    grid = _parse_grid(cfg, P, single_task=single_task, cell=net.cell)
    known = _check_names(reg, P, tasks, methods, grid)
    n_planned = grid.n_runs(methods, max(1, len(tasks)), replicates)
    if max_runs is not None and n_planned > max_runs:
        P.add(
            "grid",
            f"the experiment expands to {n_planned:,} runs, more than the limit of "
            f"{max_runs:,}; reduce the grid or the replicates, or pass --force-large "
            "(max_runs=None) to run it anyway",
        )
        raise ConfigError(path, P.items)
    # expansion also when problems were found above (to report the task and method ones too),
    # a missing root seed replaced by 0; the nets are built only when their settings passed
    # the checks above (one message each)
    root_seed = 0 if root_seed is None else root_seed
    check_nets = not any(k == "net" or k.startswith(("net.", "grid.net.")) for k, _ in P.items)
    rv = _Resolver(reg, P)
    args = (tasks, net, budget, methods, grid, known, rv, check_nets)
    runs = list(expand(name, root_seed, replicates, *args))
    if P.items:
        raise ConfigError(path, P.items)
    seen: set[str] = set()  # the same run reached twice (e.g. a grid value = the base)
    runs = [r for r in runs if not (r["run_id"] in seen or seen.add(r["run_id"]))]
    for i, r in enumerate(runs):
        r["index"] = i
    if not runs:
        raise ConfigError(path, [("grid", "the experiment expands to no runs")])
    run_keys = {r["config_id"]: run_key(r) for r in runs}
    version = toolkit_version()
    resolved = {
        "name": name,
        "description": description,
        "seed": root_seed,
        "replicates": replicates,
        "scale": scale,
        "tasks": [{"name": t.name, "params": t.params} for t in tasks],
        "net": net.values,
        "budget": budget.limits,
        "target_loss": budget.target_loss,
        "methods": {
            m: rv.methods.get(canonical([m, s.hyper])) or s.hyper for m, s in methods.items()
        },
        "grid": grid.values,
        "run_configs": {cid: run_keys[cid] for cid in sorted(run_keys)},
        "toolkit_version": version,
    }
    fp = _sha({"name": name, "seed": root_seed, "run_configs": sorted(run_keys)}).hex()[:16]
    return Experiment(
        path=path,
        name=name,
        description=description,
        root_seed=root_seed,
        replicates=replicates,
        scale=scale,
        given=_jsonable(given),
        resolved=_jsonable(resolved),
        runs=runs,
        grid_keys=list(grid.values),
        fingerprint=fp,
        registry=reg,
    )


# ------------------------------------------------------------------------------------------
# one run (executed in the workers)
# ------------------------------------------------------------------------------------------
_LIMITED = False


def limit_threads(n: int = 1) -> None:
    """Numba, OpenMP and BLAS use ``n`` threads in this process (set once per process).

    Sets the usual environment variables (effective for libraries not loaded yet) and, when
    threadpoolctl is installed, limits the thread pools already loaded."""
    global _LIMITED
    if _LIMITED:
        return
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except Exception:
        pass
    _LIMITED = True


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _base_row(spec: dict) -> dict:
    """The run's row (toolkit/records.py) before it runs: its spec, defaults elsewhere."""
    net, budget = spec["net"], spec["budget"]
    return records.new_row(
        spec.get("grid", {}),
        experiment=spec["experiment"],
        run_id=spec["run_id"],
        replicate=spec["replicate"],
        seed=spec["seed"],
        task=spec["task"],
        task_params=canonical(spec["task_params"]),
        method=spec["method"],
        method_params=canonical(spec["method_params"]),
        family=spec.get("family"),
        n_hidden=net["n_hidden"],
        hidden=net["hidden"],
        recurrent=net.get("recurrent", True),
        window=net.get("window", 1),
        output=spec.get("output"),
        target_loss=math.nan if spec.get("target_loss") is None else spec["target_loss"],
        budget_evals=budget.get("evals"),
        budget_fwd_equiv=_f(budget.get("fwd_equiv")),
        budget_wall_s=_f(budget.get("wall_s")),
    )


def execute_run(run_spec: dict, registry=None) -> dict:
    """Run one spec (a dict from :func:`load_config`); never raises.

    Builds the task (``registry.make_task``), the network, the training data from the run's
    data stream, and calls the method (``toolkit.train.run``). Returns a JSON-able record
    ``{"run_id", "row", "trace", "final_theta", "best_theta"}``; any exception gives outcome
    ``error`` with the traceback in ``row["error"]``.
    """
    t0, cpu0 = time.perf_counter(), time.thread_time()
    row = _base_row(run_spec)
    record = {
        "run_id": run_spec["run_id"],
        "index": run_spec.get("index", 0),
        "row": row,
        "trace": None,
        "final_theta": None,
        "best_theta": None,
    }
    try:
        reg = resolve_registry(registry)
        task = reg.make_task(run_spec["task"], dict(run_spec["task_params"]))
        net = reg.make_net(task, run_spec["net"])
        row["n_params"] = int(net.n_params)
        data_seq, train_seq = run_seed_sequences(run_spec["seed"])
        data = task.generate(np.random.default_rng(data_seq))
        trace = reg.train(
            run_spec["method"],
            net,
            task,
            data,
            seed=train_seq,
            budget=dict(run_spec["budget"]),
            target_loss=run_spec["target_loss"],
            hyper=dict(run_spec["method_params"]),
        )
        s = trace.summary()
        row.update(records.from_summary(s))
        outcome = row["outcome"]
        if outcome == "error":
            row["error"] = row["message"] or "the method reported outcome 'error'"
        if outcome in ("solved", "target"):
            row["solved_at_evals"] = float(s["evals"])
            row["solved_at_fwd_equiv"] = float(s["fwd_equiv"])
        record["trace"] = {c: [_jsonable(v) for v in vals] for c, vals in trace.points.items()}
        for k in ("final_theta", "best_theta"):
            th = getattr(trace, k, None)
            record[k] = None if th is None else np.asarray(th, dtype=np.float64).tolist()
    except Exception as e:  # a run never takes the sweep down
        row["outcome"] = "error"
        row["error"] = traceback.format_exc()
        row["message"] = f"{type(e).__name__}: {e}"
        row["wall_s"] = time.perf_counter() - t0
    row["cpu_s"] = time.thread_time() - cpu0  # this thread only: right for dask's threads too
    return record


def _worker_run(run_spec: dict, registry) -> dict:
    """Entry point in loky / dask workers: one thread for Numba/OpenMP/BLAS, then the run."""
    limit_threads(1)
    return execute_run(run_spec, registry)


# ------------------------------------------------------------------------------------------
# the sweep
# ------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    experiment: str
    out_dir: Path
    n_runs: int
    n_stored_before: int
    n_executed: int = 0
    n_failed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # CPU seconds of the runs executed (sum of their cpu_s)

    @property
    def ok(self) -> bool:
        return self.n_failed == 0


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def estimate_cost(runs: list[dict], jobs: int = 1) -> dict:
    """Upper-bound cost of ``runs`` from their budgets: total forward-pass equivalents and a
    rough wall time (``SECONDS_PER_STEP + SECONDS_PER_WEIGHT_STEP * n_params`` (from the net
    class) per
    sequence-step, or the wall budget); runs that reach their target stop earlier."""
    total_fe = 0.0
    total_s = 0.0
    n_unknown = 0
    sizes: dict[str, int] = {}
    for r in runs:
        ck = canonical([r["n_in"], r["n_out"], r["output"], r["net"]])
        if ck not in sizes:  # the net class counts its parameters (window, fixed weights)
            from toolkit.nets import make_net

            sizes[ck] = make_net(r["n_in"], r["n_out"], r["output"], r["net"]).n_params
        n_params = sizes[ck]
        fe = r["budget"].get("fwd_equiv")
        ws = r["budget"].get("wall_s")
        secs = None
        if fe is not None:
            total_fe += fe
            secs = fe * (SECONDS_PER_STEP + n_params * SECONDS_PER_WEIGHT_STEP)
        if ws is not None:
            secs = ws if secs is None else min(secs, ws)
        if secs is None:
            n_unknown += 1
        else:
            total_s += secs
    workers = max(1, min(jobs, len(runs)))
    return {
        "runs": len(runs),
        "fwd_equiv": total_fe,
        "cpu_s": total_s,
        "wall_s": total_s / workers,
        "jobs": workers,
        "unestimated_runs": n_unknown,
    }


def _human_s(s: float) -> str:
    if s < 1:
        return "<1 s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _compact(d: dict, limit: int = 48) -> str:
    s = ",".join(f"{k}={_fmt(v) if not isinstance(v, str) else v}" for k, v in d.items())
    return s if len(s) <= limit else s[: limit - 1] + "~"


def format_run_table(runs: list[dict], stored: Iterable[str] = ()) -> str:
    """One line per run: index, id, task, method, network, grid values, replicate, seed."""
    import pandas as pd

    stored = set(stored)
    grid_cols = sorted({k for r in runs for k in r["grid"]})
    rows = []
    for r in runs:
        row = {
            "#": r["index"],
            "run_id": r["run_id"],
            "task": r["task"],
            "task_params": _compact(r["task_params"]),
            "method": r["method"],
            "method_params": _compact(r["method_params"]),
            "n_hidden": r["net"]["n_hidden"],
            "hidden": r["net"]["hidden"],
        }
        for k in grid_cols:
            v = r["grid"].get(k)
            row[k[5:]] = "-" if v is None else v
        row.update(
            {
                "rep": r["replicate"],
                "seed": r["seed"],
                "status": "stored" if r["run_id"] in stored else "to run",
            }
        )
        rows.append(row)
    with pd.option_context(
        "display.max_rows",
        None,
        "display.max_columns",
        None,
        "display.width",
        250,
        "display.max_colwidth",
        50,
    ):
        return pd.DataFrame(rows).to_string(index=False)


def _connect_dask(scheduler: str | None, jobs: int, timeout: float):
    """(client, cluster-or-None). A scheduler address is reached within ``timeout`` seconds or
    a SweepError says so; without one, a LocalCluster of ``jobs`` single-thread processes on
    the loopback interface is started."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise SweepError(f"--backend dask needs dask[distributed]: {e}") from e
    env = {v: "1" for v in THREAD_VARS}
    if scheduler:
        try:
            client = Client(scheduler, timeout=timeout)
        except Exception as e:
            raise SweepError(
                f"cannot reach the dask scheduler at {scheduler} within {timeout:g} s "
                f"({type(e).__name__}: {e}). Is `dask scheduler` running there, and is the "
                "address right (e.g. tcp://host:8786)?"
            ) from None
        cluster = None
        try:
            client.wait_for_workers(1, timeout=timeout)
        except Exception:
            client.close()
            raise SweepError(
                f"the dask scheduler at {scheduler} has no workers (waited {timeout:g} s); "
                f"start some with `dask worker {scheduler} --nworkers N --nthreads 1`"
            ) from None
    else:
        cluster = LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            env=env,
        )
        client = Client(cluster)
    try:
        client.run(limit_threads, 1)
    except Exception:
        pass
    return client, cluster


@dataclass(frozen=True)
class ExecOptions:
    """How to execute (never what): built once by the CLI, passed to the suite and the sweep.

    jobs: parallel runs (None or 0: all cores); backend: loky | dask; scheduler: a dask
    scheduler address; timeout: seconds to wait for it; progress: a progress bar; force:
    discard stored results first; dry_run: print the plan, run nothing; max_runs: refuse larger
    expansions (None: no limit, ``--force-large``); results_root / out: where results go; echo:
    where messages go."""

    jobs: int | None = None
    backend: str = "loky"
    scheduler: str | None = None
    timeout: float = 10.0
    progress: bool = True
    force: bool = False
    dry_run: bool = False
    max_runs: int | None = MAX_RUNS
    results_root: Path | str = "results"
    out: Path | str | None = None
    echo: Callable = print

    @classmethod
    def of(cls, opts: ExecOptions | None = None, **kw) -> ExecOptions:
        """``opts`` with the keywords replaced (``connect_timeout`` is ``timeout``)."""
        if "connect_timeout" in kw:
            kw["timeout"] = kw.pop("connect_timeout")
        return dataclasses.replace(opts or cls(), **kw)


def run_sweep(
    config,
    opts: ExecOptions | None = None,
    *,
    seeds: int | None = None,
    scale: str = "default",
    registry=None,
    **kw,
) -> SweepResult:
    """Run an experiment (a path to its TOML file, or an :class:`Experiment`).

    ``opts`` (:class:`ExecOptions`, or its fields as keywords): out: the experiment's results
    directory (default ``results_root/<name>``). jobs: parallel runs (None or 0: all cores;
    with dask and a scheduler: ignored, the cluster decides).
    Runs already stored in ``out`` are skipped (runs stored with outcome ``error`` are
    retried); every stored file is checked first (:func:`toolkit.store.check_runs`): a damaged
    one is named, moved to ``runs/damaged/`` and its run executed again. ``force`` discards the
    stored results first. ``dry_run`` prints the run table and the estimated cost and runs
    nothing (and writes nothing). ``max_runs``: see :func:`load_config`. A sweep holds the
    writer's lock of ``out`` (:func:`toolkit.store.acquire_lock`) from before its first write
    until it ends.

    Raises :class:`ConfigError`, :class:`toolkit.store.IncompatibleResults` or
    :class:`SweepError` (also when another process holds the lock) before anything runs;
    :class:`SweepStopped` when the sweep started but its results are not complete (an I/O error,
    a worker died, a run file damaged during the sweep): the message says how many runs are
    stored and that the same command resumes; problems met while writing the tables and
    meta.json after such an error are one warning line each through ``echo`` and never replace
    it. Failed runs do not raise, they are counted in the result (``n_failed``) after every
    other run finished.
    """
    t_start = time.perf_counter()
    o = ExecOptions.of(opts, **kw)
    n_jobs = _check_options(o)
    reg = resolve_registry(registry)
    exp = (
        config
        if isinstance(config, Experiment)
        else load_config(config, scale=scale, seeds=seeds, registry=reg, max_runs=o.max_runs)
    )
    out_dir = Path(o.out) if o.out else Path(o.results_root) / exp.name
    if not o.force:
        store.check_compatible(out_dir, exp.name, exp.fingerprint, exp.resolved)
    if o.dry_run:
        return _dry_run(exp, out_dir, o, n_jobs)
    plan_ids = [r["run_id"] for r in exp.runs]
    client = cluster = None
    if o.backend == "dask":  # before writing anything: an unreachable scheduler
        named = {} if o.force else store.stored_ids(out_dir)  # by name; checked under the lock
        if _pending(exp, named):
            client, cluster = _connect_dask(o.scheduler, n_jobs, o.timeout)
    lock = _lock(out_dir, o.echo, client, cluster)
    result = SweepResult(exp.name, out_dir, len(exp.runs), 0)
    status = "interrupted"
    error: BaseException | None = None
    late: list[str] = []  # problems after the runs, when nothing failed before them
    meta = None
    try:
        # the resume check reads and checks every stored file of the plan; damaged ones are
        # moved to runs/damaged/ and their runs executed again
        stored = {} if o.force else store.check_runs(out_dir, plan_ids, echo=o.echo)
        pending = _pending(exp, stored)
        result.n_stored_before = len(exp.runs) - len(pending)
        store.prepare(out_dir, force=o.force)
        if pending and o.backend == "dask" and client is None:  # damaged files to rerun
            client, cluster = _connect_dask(o.scheduler, n_jobs, o.timeout)
        # a session with nothing to run, after a complete one, changes nothing: meta.json is
        # left as it is (so a rerun of `make experiments` leaves every tracked file unchanged)
        if not pending and _completed_before(out_dir, exp.given):
            o.echo(_headline(exp, result.n_stored_before, 0) + f" in {out_dir}; nothing to do")
            status = "complete"
            return result
        meta = _start_session(exp, pending, reg, out_dir, o, n_jobs, client)
        if pending:
            _execute(exp, pending, reg, out_dir, o, n_jobs, result)
        status = "complete"
    except (KeyboardInterrupt, SweepError) as e:
        error = e
        raise
    except Exception as e:  # a worker died, the cluster went away, the disk is full, ...
        error = e
        raise SweepStopped(
            f"the sweep stopped: {_first_line(e)}. {_stored_count(out_dir, plan_ids)} of "
            f"{len(plan_ids)} runs are stored in {out_dir}; run the same command again to resume"
        ) from e
    finally:
        # nothing here raises: after an earlier error each later failure is one line and the
        # first error stays the one reported; without one, they are raised below
        _close_quietly(client, cluster)
        if meta is not None:
            late = _finish_session(out_dir, plan_ids, meta, status, error, result, t_start, o.echo)
        try:
            lock.release()
        except OSError as e:
            o.echo(f"warning: could not remove the lock {lock.path}: {_first_line(e)}")
        result.elapsed_s = time.perf_counter() - t_start
    if late:
        raise SweepStopped(
            "the sweep ran, but its results could not be completed: "
            + "; ".join(late)
            + f"\n{_stored_count(out_dir, plan_ids)} of {len(plan_ids)} runs are stored in "
            f"{out_dir}; run the same command again to resume"
        )
    _say_done(exp, result, o.echo)
    return result


def _check_options(o: ExecOptions) -> int:
    """The number of jobs, after checking the execution options (SweepError if they are bad)."""
    if o.backend not in ("loky", "dask"):
        raise SweepError(f"backend: expected loky or dask, got {o.backend!r}")
    if o.scheduler and o.backend != "dask":
        raise SweepError("--scheduler needs --backend dask")
    jobs = o.jobs
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0):
        raise SweepError(f"jobs: expected an integer >= 1 (0 = all cores), got {jobs!r}")
    return default_jobs() if not jobs else int(jobs)


def _pending(exp: Experiment, stored: dict) -> list[dict]:
    """The runs of the plan not stored with status "ok" (errors are retried)."""
    done = {i for i, status in stored.items() if status == "ok"}
    return [r for r in exp.runs if r["run_id"] not in done]


def _headline(exp: Experiment, n_stored: int, n_pending: int) -> str:
    return (
        f"{exp.name}: {len(exp.runs)} runs ({exp.n_configs} configurations x "
        f"{exp.replicates} replicate{'s' if exp.replicates != 1 else ''}, scale "
        f"{exp.scale}); {n_stored} stored, {n_pending} to run"
    )


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _stored_count(out_dir: Path, plan_ids: list[str]) -> str:
    try:
        return str(len(set(store.stored_ids(out_dir)) & set(plan_ids)))
    except OSError:
        return "an unknown number"


def _dry_run(exp: Experiment, out_dir: Path, o: ExecOptions, n_jobs: int) -> SweepResult:
    """Print the run table and the estimated cost; read only (damaged files are reported, not
    moved)."""
    plan_ids = [r["run_id"] for r in exp.runs]
    stored = {} if o.force else store.check_runs(out_dir, plan_ids, move=False, echo=o.echo)
    pending = _pending(exp, stored)
    n_stored = len(exp.runs) - len(pending)
    est = estimate_cost(pending, n_jobs)
    o.echo(format_run_table(exp.runs, {i for i, s in stored.items() if s == "ok"}))
    o.echo("")
    o.echo(_headline(exp, n_stored, len(pending)) + f"; results in {out_dir}")
    line = (
        f"estimated cost of the runs to do: {est['fwd_equiv']:.3g} forward-pass "
        f"equivalents; at most ~{_human_s(est['cpu_s'])} of CPU, ~{_human_s(est['wall_s'])}"
        f" on {est['jobs']} job{'s' if est['jobs'] != 1 else ''} "
        f"(assuming {SECONDS_PER_STEP * 1e9:g} ns + {SECONDS_PER_WEIGHT_STEP * 1e9:g} ns per "
        "weight per sequence-step; runs that reach the target stop earlier)"
    )
    if est["unestimated_runs"]:
        line += f"; {est['unestimated_runs']} runs have only an evals budget (not estimated)"
    o.echo(line)
    o.echo("dry run: nothing was run or written")
    return SweepResult(exp.name, out_dir, len(exp.runs), n_stored, dry_run=True)


def _close_quietly(*things) -> None:
    for c in things:
        if c is not None:
            with contextlib.suppress(Exception):
                c.close()


def _lock(out_dir: Path, echo, *clients):
    """The writer's lock of ``out_dir``; when it cannot be had, the dask client and cluster
    are closed and a SweepError says why."""
    try:
        return store.acquire_lock(out_dir, echo=echo)
    except (store.ResultsLocked, OSError) as e:
        _close_quietly(*clients)
        if isinstance(e, store.ResultsLocked):
            raise SweepError(str(e)) from None
        raise SweepError(f"cannot lock {out_dir}: {type(e).__name__}: {e}") from None


def _start_session(exp, pending, reg, out_dir, o: ExecOptions, n_jobs: int, client) -> dict:
    """meta.json of a new session written, the plan announced and the kernels warmed up."""
    meta = store.new_meta(
        exp,
        backend=o.backend,
        jobs=n_jobs,
        scheduler=o.scheduler,
        registry=_registry_label(reg),
        out_dir=out_dir,
    )
    if client is not None:
        meta["threads"]["dask_workers"] = len(client.scheduler_info().get("workers", {}))
    store.write_meta(out_dir, meta)
    n_stored = len(exp.runs) - len(pending)
    where = f" at {o.scheduler}" if o.scheduler else f", {n_jobs} job{'s' if n_jobs != 1 else ''}"
    o.echo(_headline(exp, n_stored, len(pending)) + f" -> {out_dir} ({o.backend}{where})")
    if pending:
        try:
            meta["warmup_s"] = reg.warmup(pending) if hasattr(reg, "warmup") else 0.0
        except Exception as e:  # the runs will report the problem themselves
            o.echo(f"warning: warming up the kernels failed ({type(e).__name__}: {e})")
    return meta


def _finish_session(out_dir, plan_ids, meta, status, error, result, t_start, echo) -> list[str]:
    """The tables rebuilt and meta.json finished; never raises: after ``error`` a failure is
    one warning line, without one the failures are returned (to be raised by the caller)."""
    late = []
    try:
        store.consolidate(out_dir, plan_ids)
    except Exception as e:
        if error is None:
            late.append(str(e) if isinstance(e, store.DamagedResults) else _first_line(e))
        else:
            echo(f"warning: rebuilding the tables failed too: {_first_line(e)}")
    if error is not None:
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    elif late:
        status = "failed"
    try:
        store.finish_meta(
            out_dir,
            meta,
            status=status,
            executed=result.n_executed,
            failed=result.n_failed,
            stored_before=result.n_stored_before,
            cpu_s=result.cpu_s,
            wall_s=time.perf_counter() - t_start,
        )
    except Exception as e:
        if error is None:
            late.append(f"writing {store.META_FILE} failed: {_first_line(e)}")
        else:
            echo(f"warning: writing {store.META_FILE} failed too: {_first_line(e)}")
    return late


def _say_done(exp: Experiment, result: SweepResult, echo) -> None:
    if not result.n_failed:
        echo(
            f"{exp.name}: done, {result.n_executed} runs executed, {result.n_stored_before} were "
            f"already stored ({result.elapsed_s:.1f} s)"
        )
        return
    echo(
        f"{exp.name}: {result.n_failed} of {result.n_executed} runs failed "
        f"(outcome 'error'; tracebacks in the 'error' column of "
        f"{result.out_dir / 'runs.parquet'}; they are retried on the next run):"
    )
    for rid, msg in result.failed[:10]:
        echo(f"  {rid}: {msg}")
    if len(result.failed) > 10:
        echo(f"  ... and {len(result.failed) - 10} more")


def _completed_before(out_dir: Path, given: dict) -> bool:
    """True when ``out_dir`` has a meta.json of a session that completed (status complete),
    written from the same file as given (its ``[report]`` text, say, changes no run but is
    kept in meta.json), and every table: a session with nothing to run then adds nothing."""
    try:
        meta = store.load_meta(out_dir)
    except (OSError, ValueError):
        return False
    tables = (store.RUNS_TABLE, store.TRACES_TABLE, store.THETAS_TABLE)
    return (
        bool(meta)
        and meta.get("status") == "complete"
        and meta.get("config_given") == given
        and all((Path(out_dir) / t).is_file() for t in tables)
    )


def _one_thread_here():
    """threadpoolctl's limit of the BLAS/OpenMP pools of this process to one thread (restored
    afterwards) when threadpoolctl is installed, else nothing (the kernels are single-threaded
    Numba; BLAS only serves the evolution strategies' linear algebra)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _execute(exp, pending, reg, out_dir, o: ExecOptions, n_jobs: int, result) -> None:
    """Run ``pending`` through joblib and store each record as it arrives."""
    backend, timeout, progress = o.backend, o.timeout, o.progress
    import joblib
    from tqdm import tqdm

    if backend == "dask":  # the client connected by run_sweep is the default client
        ctx = joblib.parallel_config(backend="dask", wait_for_workers_timeout=timeout)
        n, fn = -1, _worker_run
    else:
        n = max(1, min(n_jobs, len(pending)))
        ctx = joblib.parallel_config(backend="loky", inner_max_num_threads=1)
        fn = execute_run if n == 1 else _worker_run
    bar = tqdm(
        total=len(pending),
        unit="run",
        desc=exp.name,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )
    bar.set_postfix(failed=0, refresh=False)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(ctx)
            if fn is execute_run:  # runs in this process: one BLAS thread too, if possible
                stack.enter_context(_one_thread_here())
            parallel = joblib.Parallel(
                n_jobs=n, return_as="generator_unordered", batch_size=1, pre_dispatch="2*n_jobs"
            )
            records = parallel(joblib.delayed(fn)(spec, reg) for spec in pending)
            try:
                for rec in records:
                    store.write_run(out_dir, rec)
                    result.n_executed += 1
                    result.cpu_s += float(rec["row"].get("cpu_s") or 0.0)
                    if rec["row"]["outcome"] == "error":
                        result.n_failed += 1
                        msg = rec["row"]["message"] or rec["row"]["error"].strip().splitlines()[-1]
                        result.failed.append((rec["run_id"], msg))
                    bar.set_postfix(failed=result.n_failed, refresh=False)
                    bar.update(1)
            finally:  # stopped early (e.g. a run could not be stored): cancel the rest quietly,
                # the sweep's own message says what happened and how to resume
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*tasks which were still being")
                    records.close()
    finally:
        bar.close()
