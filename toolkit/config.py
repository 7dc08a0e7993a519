"""The experiment schema: one TOML file -> validated, typed :class:`Experiment` (a plain
sweep's runs) or :class:`SuiteExperiment` (its parts and ``[post]`` steps), before anything runs.

A file is read once (:func:`read_toml`); the scale and each part are overlays of plain dicts
(:func:`overlay`, remembering where each key was written); :func:`build` validates the result
as a whole (every problem reported with the file and its key path, :class:`ConfigError`) into
typed specs (:class:`TaskSpec`, :class:`NetSpec`, :class:`BudgetSpec`, :class:`MethodSpec`,
:class:`Grid`) declared once with :class:`toolkit.params.Param`, and :func:`expand` yields the
run specs (grid points x tasks x methods x replicates). :func:`load` does the same for a file
with ``[post]`` (one :class:`Experiment` per part). Executing them is :mod:`toolkit.sweep`'s
and :mod:`toolkit.suite`'s job.

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
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit import anatomy
from toolkit.params import REQUIRED, Param, ParamError, check_params, close

__all__ = [
    "ConfigError",
    "SweepError",
    "Experiment",
    "SuiteExperiment",
    "Part",
    "ToolkitRegistry",
    "TOOLKIT",
    "read_toml",
    "load_config",
    "load",
    "build",
    "expand",
    "overlay",
    "derive_seed",
    "run_seed_sequences",
    "make_run_id",
    "resolve_registry",
    "toolkit_version",
]

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
    "tuning",  # the tuning stage (toolkit/tuning.py): search spaces, configurations, seeds
    "report",  # free-form text for the report (toolkit/report.py): never part of a run's key
)
#: keys of the optional [post] table: what :mod:`toolkit.suite` does beyond the plain sweep
#: (several sweeps merged, landscape tables, gradient fidelity, parallel timing). Their
#: contents are validated by :func:`load` (POST_SPECS); a plain sweep ignores them.
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
#: the old rough cost of one sequence-step of a forward pass: SECONDS_PER_STEP +
#: SECONDS_PER_WEIGHT_STEP x n_params (seconds; measured on small nets on a 2-core machine
#: before the compiled BPTT chunks). --dry-run now uses the per-method calibration of
#: toolkit/run_cost.json (benchmarks/calibrate_cost.py); these constants are its fallback for
#: a method or cell the file has no entry for
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

    # -- methods registered outside the toolkit (toolkit.train.register_strategy, register) ----
    def __getstate__(self) -> dict:
        """Pickled for the workers with the modules that registered methods of their own
        (``toolkit.train.registry.PLUGINS``), which the workers import before they train."""
        reg = sys.modules.get("toolkit.train.registry")
        return {**self.__dict__, "plugins": tuple(getattr(reg, "PLUGINS", ()))}

    def _methods(self) -> dict:
        """:data:`toolkit.train.METHODS`, after importing the plugin modules: those the parent
        had (pickled with this registry) and those named in ``$BPTT_PLUGINS`` (comma-separated)."""
        from toolkit.train import METHODS
        from toolkit.train.registry import load_plugins

        mods = [*self.__dict__.get("plugins", ()), *os.environ.get("BPTT_PLUGINS", "").split(",")]
        if any(m.strip() for m in mods):
            load_plugins(mods)
        return METHODS

    def task_names(self) -> list[str]:
        import toolkit.tasks

        return list(toolkit.tasks.names())

    def make_task(self, name: str, params: dict):
        import toolkit.tasks

        return toolkit.tasks.get(name, **params)

    def method_names(self) -> list[str]:
        return sorted(self._methods())

    def validate_method(self, name: str, hyper: dict) -> dict:
        """Resolved hyperparameters (defaults filled in); ValueError naming the parameter."""
        method = self._methods()[name]
        checked = method.validate(dict(hyper))
        return {**dict(method.defaults), **(hyper if checked is None else dict(checked))}

    def method_params(self, name: str) -> dict:
        """The method's hyperparameter declarations {name: Param} (the knobs it can tune)."""
        return dict(self._methods()[name].params)

    def method_family(self, name: str) -> str:
        return self._methods()[name].family

    def make_net(self, task, net: dict):
        """The net of a resolved ``[net]`` table; ``cell`` (default elman) picks the class
        from :data:`toolkit.nets.CELLS`."""
        from toolkit.nets import make_net

        return make_net(task.n_in, task.n_out, task.output, net)

    def train(self, method, net, task, data, *, seed, budget: dict, target_loss, hyper: dict):
        from toolkit.train import run
        from toolkit.train.trace import Budget

        self._methods()  # a worker imports the plugin modules first
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
    tuning: TuningSpec | None = None  # [tuning]: run by toolkit.tuning before these runs

    @property
    def n_configs(self) -> int:
        return len({r["config_id"] for r in self.runs})


def derived(exp: Experiment, name: str, runs: list[dict], extra: dict) -> Experiment:
    """An experiment made of ``runs`` (specs derived from ``exp``'s: a tuning stage's, the
    continued runs', ...) named ``name``; ``extra`` (e.g. {"stage": "tuning"}) enters its
    resolved config and fingerprint. Runs are re-indexed in the given order."""
    for i, r in enumerate(runs):
        r["index"] = i
    run_keys = {r["config_id"]: run_key(r) for r in runs}
    resolved = {**exp.resolved, **extra, "run_configs": dict(sorted(run_keys.items()))}
    payload = {"name": name, "seed": exp.root_seed, "run_configs": sorted(run_keys), **extra}
    return dataclasses.replace(
        exp,
        name=name,
        runs=runs,
        resolved=_jsonable(resolved),
        fingerprint=_sha(payload).hex()[:16],
    )


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
        [post]                  # optional: parts, slices, fidelity, cliff, anatomy, parallel --
                                #   what toolkit.suite does beyond this sweep (validated by
                                #   load(); `bptt run` and `bptt experiments` hand it there)

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


TUNING_PARAMS = {
    "configs": Param(REQUIRED, "int", lo=1, doc="configurations per condition and method"),
    "seeds": Param(REQUIRED, "int", lo=1, doc="tuning seeds per configuration"),
}
TUNING_KEYS = (*TUNING_PARAMS, "space")
_RANGES = ("log", "uniform")


@dataclass(frozen=True)
class Knob:
    """One tuned hyperparameter: ``kind`` "choice" (``values``: the list given), "log"
    (log-uniform on ``values`` = (lo, hi)) or "uniform"; ``integer``: draws are rounded."""

    kind: str
    values: tuple
    integer: bool = False

    def sample(self, rng: np.random.Generator):
        if self.kind == "choice":
            return self.values[int(rng.integers(len(self.values)))]
        lo, hi = self.values
        x = (
            math.exp(rng.uniform(math.log(lo), math.log(hi)))
            if self.kind == "log"
            else rng.uniform(lo, hi)
        )
        return int(round(x)) if self.integer else float(f"{x:.3g}")  # 3 digits: readable

    def describe(self):
        return list(self.values) if self.kind == "choice" else {self.kind: list(self.values)}


@dataclass(frozen=True)
class TuningSpec:
    """``[tuning]``: ``configs`` configurations per (condition, method), each run on ``seeds``
    tuning seeds; ``space[m]`` the knobs of method m (empty: not tuned); ``samples[m]`` the
    configurations drawn (knob values) and ``resolved[m]`` their validated hyperparameters."""

    configs: int
    seeds: int
    space: dict[str, dict[str, Knob]]
    samples: dict[str, list[dict]]
    resolved: dict[str, list[dict]]

    def describe(self) -> dict:
        space = {m: {k: kn.describe() for k, kn in ks.items()} for m, ks in self.space.items()}
        return {
            "configs": self.configs,
            "seeds": self.seeds,
            "space": space,
            "samples": self.samples,
        }


def _knob(path: str, v, decl: Param | None, P: _Problems) -> Knob | None:
    """A search range: a list (choices) or ``{ log = [lo, hi] }`` / ``{ uniform = [lo, hi] }``;
    every value must be valid for the hyperparameter's declaration ``decl``."""
    integer = decl is not None and decl.kind == "int"
    if isinstance(v, list):
        vals = _grid_values(path, v, decl, P)
        return None if vals is None else Knob("choice", tuple(vals), integer)
    if not (isinstance(v, dict) and len(v) == 1 and next(iter(v)) in _RANGES):
        P.add(
            path,
            "expected a list of values, { log = [lo, hi] } or { uniform = [lo, hi] }, "
            f"got {_fmt(v)}",
        )
        return None
    kind, ends = next(iter(v.items()))
    if not (
        isinstance(ends, list)
        and len(ends) == 2
        and all(isinstance(e, int | float) and not isinstance(e, bool) for e in ends)
    ):
        P.add(f"{path}.{kind}", f"expected [lo, hi], two numbers, got {_fmt(ends)}")
        return None
    lo, hi = (float(e) for e in ends)
    if not lo < hi:
        P.add(f"{path}.{kind}", f"empty range: lo must be below hi, got [{lo:g}, {hi:g}]")
        return None
    if kind == "log" and lo <= 0:
        P.add(f"{path}.{kind}", f"a log range needs lo > 0, got {lo:g}")
        return None
    for e in (lo, hi):
        ok, msg = decl.coerce(int(e) if integer else e) if decl is not None else (True, e)
        if not ok:
            P.add(f"{path}.{kind}", msg)
            return None
    return Knob(kind, (lo, hi), integer)


def _draw(m: str, knobs: dict[str, Knob], n: int, root_seed: int, P: _Problems) -> list[dict]:
    """``n`` configurations of method ``m`` from its own stream (root seed, "tuning", m): the
    same for every condition. A space of lists only is drawn without repetition."""
    words = np.frombuffer(_sha(["tuning", m])[:16], dtype="<u4").tolist()
    rng = np.random.default_rng(np.random.SeedSequence(int(root_seed), spawn_key=words))
    if not all(kn.kind == "choice" for kn in knobs.values()):
        return [{k: kn.sample(rng) for k, kn in knobs.items()} for _ in range(n)]
    combos = list(itertools.product(*[kn.values for kn in knobs.values()]))
    if len(combos) < n:
        P.add(
            f"tuning.space.{m}",
            f"{len(combos)} distinct configurations, fewer than "
            f"tuning.configs = {n} (every method gets the same number): widen the space",
        )
        return []
    pick = rng.choice(len(combos), size=n, replace=False)
    return [dict(zip(knobs, combos[int(i)], strict=True)) for i in pick]


def _parse_tuning(cfg, methods, grid: Grid, reg, root_seed, rv, P) -> TuningSpec | None:
    """``[tuning]``: configs, seeds and a search space for every method of [methods] (an
    empty table: that method is not tuned); the configurations are drawn and validated here."""
    raw = cfg.get("tuning")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        P.add("tuning", f"expected a table [tuning] with keys {', '.join(TUNING_KEYS)}")
        return None
    for k in raw:
        if k not in TUNING_KEYS:
            P.unknown("tuning", k, TUNING_KEYS)
    top, problems = check_params(
        TUNING_PARAMS, {k: raw[k] for k in TUNING_PARAMS if k in raw}, "tuning"
    )
    for k, msg in problems:
        P.add(k, msg)
    space_raw = raw.get("space", {})
    if not isinstance(space_raw, dict):
        P.add("tuning.space", "expected tables [tuning.space.<method>] of search ranges")
        space_raw = {}
    for m in methods:
        if m not in space_raw:
            P.add(
                f"tuning.space.{m}",
                "missing: every method is tuned alike; give its search "
                "ranges (an empty table: not tuned)",
            )
    space: dict[str, dict[str, Knob]] = {}
    for m, knobs in space_raw.items():
        path = f"tuning.space.{m}"
        if m not in methods:
            P.add(path, f"'{m}' is not a method of this experiment{_close(m, methods)}")
            continue
        if not isinstance(knobs, dict):
            P.add(path, f"expected a table of search ranges, got {_fmt(knobs)}")
            continue
        try:
            decl = reg.method_params(m) if hasattr(reg, "method_params") else None
        except Exception:
            decl = None  # (an unknown method is reported under methods.<m>)
        space[m] = {}
        for k, v in knobs.items():
            if decl is not None and k not in decl:
                P.unknown(path, k, decl)
            elif f"methods.{m}.{k}" in grid.values:
                P.add(f"{path}.{k}", f"also a grid key (grid.methods.{m}.{k}): tune or grid it")
            elif kn := _knob(f"{path}.{k}", v, None if decl is None else decl[k], P):
                space[m][k] = kn
    if P.items or top["configs"] is None or top["seeds"] is None:
        return None
    samples, resolved = {}, {}
    for m, knobs in space.items():
        samples[m] = _draw(m, knobs, top["configs"], root_seed, P) if knobs else []
        resolved[m] = [rv.method(m, {**methods[m].hyper, **c}, list(c.items())) for c in samples[m]]
    return TuningSpec(top["configs"], top["seeds"], space, samples, resolved)


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
    tuning = _parse_tuning(cfg, methods, grid, reg, root_seed, rv, P)
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
    if tuning is not None:  # (only then: the resolved config of other files is unchanged)
        resolved["tuning"] = tuning.describe()
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
        tuning=tuning,
    )


# ------------------------------------------------------------------------------------------
# validation of [post]
# ------------------------------------------------------------------------------------------
def _int(lo, default=REQUIRED, doc=""):
    return Param(default, "int", lo=lo, doc=doc)


def _pos(default, doc=""):
    return Param(default, "float", lo=0.0, lo_open=True, doc=doc)


_STR = Param(REQUIRED, "str")


def _names(doc):
    return Param(None, "list", item=_STR, allow_none=True, doc=doc)


POST_SPECS: dict[str, dict[str, Param]] = {
    "slices": {
        "method": Param(REQUIRED, "str", doc="the method whose trained thetas are sliced"),
        "parts": _names("parts to slice (default: all)"),
        "task": Param(None, "str", allow_none=True, doc="the task to slice (default: all)"),
        "pairs": _int(1, 2),
        "n_directions": _int(1, 3),
        "n_1d": _int(3, 41),
        "n_2d": _int(3, 21),
        "n_interp": _int(3, 61),
        "seed": _int(0, 0),
    },
    "fidelity": {
        "ks": Param(REQUIRED, "list", item=_int(1), doc="unfold depths k to compare"),
        "n_init": _int(0, 4),
        "n_trained": _int(0, 4),
        "method": Param(None, "str", allow_none=True),
        "tasks": _names("tasks (default: all)"),
        "seed": _int(0, 0),
    },
    "cliff": {
        "n_w": _int(2, 201),
        "n_b": _int(2, 201),
        "start": Param(
            (5.0, -2.8),
            "list",
            item=Param(0.0, "float"),
            min_len=2,
            max_len=2,
            unique=False,
            doc="[w, b]",
        ),
        "lr": _pos(0.5),
        "steps": _int(1, 80),
        "clip": _pos(1.0),
        "sigma0": _pos(0.5),
        "generations": _int(1, 40),
        "seed": _int(0, 0),
    },
    "anatomy": {
        "outcomes": Param(
            ["budget", "diverged"],
            "list",
            item=Param(REQUIRED, "choice", choices=("budget", "diverged")),
            doc="outcomes that count as failed",
        ),
        "max_params": _int(1, 40, doc="larger nets are skipped (a Hessian column per weight)"),
        "loss_tol": _pos(anatomy.LOSS_TOL, doc="loss at or below: the optimum (0) is reached"),
        "grad_tol": _pos(anatomy.GRAD_TOL, doc="gradient norm above: 'slow'"),
        "flat_tol": _pos(anatomy.FLAT_TOL, doc="largest |eigenvalue| below: 'plateau'"),
        "neg_tol": _pos(anatomy.NEG_TOL, doc="eigenvalues below -neg_tol * max|eig| count"),
        "sat_frac": _pos(anatomy.SAT_FRAC, doc="saturated fraction at or above: 'plateau'"),
        "continue_factor": Param(
            anatomy.CONTINUE_FACTOR,
            "float",
            lo=1.0,
            doc="failed runs are continued to this x their budget (1: not continued)",
        ),
        "continue_max": _int(
            0, 0, doc="at most this many failed runs continued per part and method (0: all)"
        ),
    },
    "parallel": {
        "jobs": Param([1, 0], "list", item=_int(0), doc="--jobs values (0: all cores)"),
        "repeats": _int(1, 1),
    },
}


def _check_table(key: str, table: dict, spec: dict, P) -> dict:
    out, problems = check_params(spec, table, f"post.{key}", what="key")
    for k, msg in problems:
        P.add(k, msg)
    return out


# ------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------
@dataclass
class Part:
    """One sweep of a suite experiment: ``name`` is "" for a file without parts."""

    name: str
    exp: Experiment


@dataclass
class SuiteExperiment:
    path: Path
    name: str
    scale: str
    given: dict
    post: dict
    parts: list[Part]
    description: str = ""

    @property
    def has_parts(self) -> bool:
        return bool(self.parts) and self.parts[0].name != ""

    @property
    def n_runs(self) -> int:
        return sum(len(p.exp.runs) for p in self.parts)


def load(
    path,
    *,
    scale: str = "default",
    seeds: int | None = None,
    registry=None,
    max_runs: int | None = MAX_RUNS,
):
    """Read an experiment file once and validate it whole (sweep, [post], every part) at
    ``scale``; returns a :class:`SuiteExperiment`. Raises :class:`toolkit.ConfigError`
    listing every problem under its key path (where it was written: the file, the part, the
    scale).

    Precedence of settings in a part: the file < ``[post.parts.<part>]`` < the scale's general
    overrides < the scale's overrides of that part (``"post.parts.<part>.<key>"``); each is one
    :func:`toolkit.overlay` of plain dicts."""
    path = Path(path)
    given = read_toml(path)
    P = _Problems()
    label = f"scales.{scale}"
    general, part_over = [], {}
    for k, v in scale_items(given, scale, P):
        if k[:2] != ["post", "parts"]:
            general.append((k, v))
        elif len(k) < 4:
            P.add(f"{label}.{'.'.join(k)}", "expected post.parts.<part>.<key> = value")
        else:
            part_over.setdefault(k[2], []).append((k[3:], v))
    cfg = {k: copy.deepcopy(v) for k, v in given.items() if k != "scales"}
    overlay(cfg, general, label, P)
    kw = dict(scale=scale, seeds=seeds, registry=registry, max_runs=max_runs)
    raw_post = cfg.get("post")
    if raw_post is None:
        base = build(path, cfg, P, given=given, **kw)
        return SuiteExperiment(
            path, base.name, scale, given, {}, [Part("", base)], base.description
        )
    if not isinstance(raw_post, dict):
        raise ConfigError(path, [("post", "expected a table [post]")])
    for k in raw_post:
        if k not in POST_KEYS:
            P.unknown("post", k, POST_KEYS)
    post: dict = {}
    for key, spec in POST_SPECS.items():
        if key in raw_post:
            if not isinstance(raw_post[key], dict):
                P.add(f"post.{key}", f"expected a table, got {raw_post[key]!r}")
            else:
                post[key] = _check_table(key, raw_post[key], spec, P)

    def built(cfg, Q, given):
        try:
            return build(path, cfg, Q, given=given, **kw)
        except ConfigError as e:
            P.items += [x for x in e.problems if x not in P.items]
            return None

    raw_parts = raw_post.get("parts")
    parts: list[Part] = []
    name = cfg.get("name", path.stem)
    description = cfg.get("description", "")
    if raw_parts is None:
        for p in part_over:
            P.add(f"{label}.post.parts.{p}", "this file has no [post.parts]")
        base = built(cfg, P, given)
        if base is not None:
            parts.append(Part("", base))
            name, description = base.name, base.description
    elif not isinstance(raw_parts, dict) or not raw_parts:
        P.add("post.parts", "expected at least one [post.parts.<name>] table")
    elif not isinstance(name, str) or not _NAME_RE.match(name):
        P.add("name", f"expected a name of letters, digits, '_', '.', '-', got {name!r}")
    else:
        for p in part_over:
            if p not in raw_parts:
                P.add(f"{label}.post.parts.{p}", f"unknown part; parts: {', '.join(raw_parts)}")
        base_cfg = {k: v for k, v in given.items() if k not in ("post", "scales", "report")}
        not_post = [x for x in general if x[0][0] != "post"]
        for pname, over in raw_parts.items():
            key = f"post.parts.{pname}"
            if not _NAME_RE.match(pname):
                P.add(key, "expected a part name of letters, digits, '_', '.', '-'")
            elif not isinstance(over, dict):
                P.add(key, f"expected a table of overrides, got {over!r}")
            else:
                Q = _Problems()
                merged = copy.deepcopy(base_cfg)
                overlay(merged, leaves(over), key, Q)
                overlay(merged, not_post, label, Q)
                overlay(merged, part_over.get(pname, []), f"{label}.{key}", Q)
                merged["name"] = f"{name}.{pname}"
                exp = built(merged, Q, merged)
                if exp is not None:
                    parts.append(Part(pname, exp))
    _check_post(post, parts, raw_parts, P)
    if P.items:
        raise ConfigError(path, P.items)
    return SuiteExperiment(path, name, scale, given, post, parts, description)


def _check_post(post: dict, parts: list, raw_parts, P) -> None:
    """The [post] settings that name methods and parts of the experiment."""
    methods = set().union(*[set(p.exp.resolved["methods"]) for p in parts]) if parts else set()
    sl = post.get("slices")
    if sl is not None:
        if sl["method"] is not None and parts and sl["method"] not in methods:
            P.add("post.slices.method", f"'{sl['method']}' is not a method of this experiment")
        if sl["parts"] is None:
            sl["parts"] = [p.name for p in parts]
        elif raw_parts is None:
            P.add("post.slices.parts", "this experiment has no [post.parts]")
        else:
            for p in sl["parts"]:
                if p not in raw_parts:
                    P.add("post.slices.parts", f"unknown part '{p}'; parts: {', '.join(raw_parts)}")
    fid = post.get("fidelity")
    if fid is not None and fid["method"] is not None and parts and fid["method"] not in methods:
        P.add("post.fidelity.method", f"'{fid['method']}' is not a method of this experiment")
    if "parallel" in post and raw_parts is not None:
        P.add("post.parallel", "cannot be combined with [post.parts]")
    if "parallel" in post and any(p.exp.tuning is not None for p in parts):
        P.add("post.parallel", "cannot be combined with [tuning]")
