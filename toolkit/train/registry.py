"""One registry for every training method, gradient-based or evolutionary.

Each method module registers a :class:`Method`; :func:`run` is the single entry point the sweep
uses: validate hyperparameters (before any work), derive the run's Generator from its seed,
compile the kernels (time kept apart), train, return the :class:`~toolkit.train.trace.Trace`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from toolkit.params import Param, resolve
from toolkit.train.trace import Budget, Trace


@dataclass(frozen=True)
class Method:
    """A training method.

    name: registry key; family: "gradient" or "evolution"; params: its hyperparameters, declared
    once as {name: toolkit.params.Param} (``defaults`` and ``validate`` derive from them);
    check(resolved) -> [(key, message)]: cross-parameter constraints (may drop keys the chosen
    options do not use); train(net, data, *, rng, seed_seq, budget, target_loss, solved, trace,
    **hyper) -> Trace, trusting its (resolved) hyper.
    label, color, marker: how figures and the report show it (colour-blind-safe palette:
    Okabe-Ito, then Paul Tol's muted); order: its place in legends and tables.
    """

    name: str
    family: str
    params: dict[str, Param]
    train: Callable[..., Trace]
    check: Callable[[dict], list[tuple[str, str]]] | None = None
    doc: str = ""
    tags: tuple = field(default_factory=tuple)
    label: str = ""
    color: str = ""
    marker: str = ""
    order: int = 100
    #: check_net(resolved, n_params) -> [(key, message)]: limits that depend on the network's
    #: size, checked by :func:`run` before any work (e.g. xNES's largest n)
    check_net: Callable[[dict, int], list[tuple[str, str]]] | None = None

    @property
    def defaults(self) -> dict:
        """{name: default} of the declared hyperparameters."""
        return {k: p.default for k, p in self.params.items()}

    def validate(self, hyper: dict) -> dict:
        """The resolved hyperparameters (defaults filled in, values coerced, cross-parameter
        ``check`` applied); :class:`toolkit.params.ParamError` (a ValueError) whose
        ``problems`` name each parameter."""
        return resolve(self.params, dict(hyper), self.name, self.check, what="hyperparameter")


METHODS: dict[str, Method] = {}
#: modules outside the toolkit that registered methods, in order: sweep workers import them
#: (``toolkit.config.ToolkitRegistry`` carries the list), so a user's method runs there too
PLUGINS: list[str] = []


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS`; ValueError for a duplicate name or a bad family.

    A method defined outside the toolkit is remembered by its module (:data:`PLUGINS`), which
    the sweep's worker processes import before they train: define user methods in an
    importable module, not in ``__main__``."""
    if not isinstance(method, Method):
        raise TypeError(f"register: expected a toolkit.train.Method, got {method!r}")
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    if method.family not in ("gradient", "evolution"):
        raise ValueError(f"method {method.name!r}: family must be 'gradient' or 'evolution'")
    METHODS[method.name] = method
    module = getattr(getattr(method.train, "strategy", method.train), "__module__", None)
    if module and module.split(".")[0] != "toolkit" and module not in PLUGINS:
        PLUGINS.append(module)
    return method


def unregister(name: str) -> Method:
    """Remove the method ``name`` from :data:`METHODS` (tests, notebooks); returns it."""
    m = get_method(name)
    del METHODS[name]
    module = getattr(getattr(m.train, "strategy", m.train), "__module__", None)
    if module in PLUGINS and not any(
        getattr(getattr(o.train, "strategy", o.train), "__module__", None) == module
        for o in METHODS.values()
    ):
        PLUGINS.remove(module)
    return m


def load_plugins(modules) -> None:
    """Import ``modules`` (names, or one comma-separated string), which register methods.

    ValueError naming the module when one cannot be imported (a method in ``__main__`` cannot
    be imported by a worker process: put it in a module on ``sys.path``)."""
    import importlib

    if isinstance(modules, str):
        modules = [m.strip() for m in modules.split(",")]
    for mod in modules:
        if not mod or mod == "__main__":
            continue
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise ValueError(
                f"plugin module {mod!r} (methods registered outside the toolkit) cannot be "
                f"imported: {e}"
            ) from e


def by_family(family: str) -> list[str]:
    """Names of the registered methods of ``family`` ("gradient" | "evolution"), in order."""
    return [m.name for m in sorted(METHODS.values(), key=lambda m: m.order) if m.family == family]


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(
            f"method: unknown name {name!r}; known methods: {', '.join(sorted(METHODS))} "
            "(a method of your own must be registered in an importable module, imported "
            "before the sweep or named in $BPTT_PLUGINS)"
        ) from None


def check_fits(net, task, data) -> None:
    """ValueError, naming the net and the task (or the data), when ``net`` cannot read the
    task's inputs or produce its outputs: input and output sizes, and the output nonlinearity
    the task's loss and criterion assume."""
    problems = []
    if task is not None:
        for attr in ("n_in", "n_out", "output"):
            want, got = getattr(task, attr, None), getattr(net, attr, None)
            if want is not None and got != want:
                problems.append(f"{attr} is {got!r}, the task needs {want!r}")
    x = getattr(data, "x", None) if not isinstance(data, tuple | list) else data[0]
    x_in = getattr(x, "shape", (None,))[-1] if getattr(x, "ndim", 0) == 3 else None
    if not problems and x_in is not None and x_in != net.n_in:
        problems.append(f"n_in is {net.n_in}, the data's inputs x have {x_in} (x: (B, T, I))")
    if problems:
        what = f"task {task!r}" if task is not None else "the data"
        raise ValueError(f"net {net!r} does not fit {what}: " + "; ".join(problems))


def _timed_solved(task, net, trace):
    """``task.solved(net, theta)`` as the trainers call it, accounted as evaluation: each call's
    seconds and forward sequence-steps (the test set's B x T; 0 for a task object without a
    ``test_set``) go to ``trace.add_eval``, not to the training cost or ``wall_s`` (issue 18)."""
    clock = time.perf_counter
    steps = None  # the test set's size, read at the first check (inside its timing)

    def solved(theta) -> bool:
        nonlocal steps
        t0 = clock()
        try:
            return bool(task.solved(net, theta))
        finally:
            if steps is None:
                test_set = getattr(task, "test_set", None)
                steps = int(np.prod(test_set().x.shape[:2])) if test_set is not None else 0
            trace.add_eval(clock() - t0, steps)

    return solved


def run(
    method: str,
    net,
    task,
    data,
    *,
    seed,
    budget: Budget | dict,
    target_loss=None,
    check_solved: bool = True,
    validated: bool = False,
    **hyper,
) -> Trace:
    """Train ``net`` on ``data`` with ``method``; returns the run's Trace.

    seed: int or numpy.random.SeedSequence (the run's own); task: used for ``task.solved``
    (may be None: then only target/budget stop the run). Bad hyperparameters raise before work
    (:class:`toolkit.params.ParamError`); ``validated=True``: ``hyper`` is already the method's
    resolved hyperparameters (the sweep checked them when it read the config), used as is.
    """
    m = get_method(method)
    if m.family == "gradient" and not getattr(net, "has_gradient", True):
        raise ValueError(
            f"method {method!r} needs gradients, and net {net!r} has none; train it with an "
            f"evolutionary method ({', '.join(by_family('evolution'))})"
        )
    check_fits(net, task, data)
    resolved = dict(hyper) if validated else m.validate(hyper)
    if m.check_net is not None:
        problems = m.check_net(resolved, int(net.n_params))
        if problems:
            from toolkit.params import ParamError

            raise ParamError(problems, method)
    if isinstance(budget, dict):
        budget = Budget.from_dict(budget)
    if target_loss is not None and not (float(target_loss) >= 0):
        raise ValueError(f"target_loss: expected a number >= 0 or None, got {target_loss!r}")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss)
    from toolkit.nets import grad_cost_ratio

    compile_s = net.warmup()
    trace = Trace(
        method=method,
        seed=int(ss.entropy) if isinstance(ss.entropy, int) else None,
        grad_ratio=grad_cost_ratio(net),
    )
    solved = None
    if task is not None and check_solved:
        solved = _timed_solved(task, net, trace)
    trace.start(compile_s)
    return m.train(
        net,
        data,
        rng=rng,
        seed_seq=ss,
        budget=budget,
        target_loss=target_loss,
        solved=solved,
        trace=trace,
        **resolved,
    )
