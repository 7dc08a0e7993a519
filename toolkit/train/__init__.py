"""Training: gradient trainers (bptt), population methods on one ask/tell loop (strategy, evolve),
one registry, one Trace."""

from toolkit.train import bptt as _bptt  # noqa: E402,F401  (registers the gradient methods)
from toolkit.train import evolve as _evolve  # noqa: E402,F401  (registers the evolutionary ones)
from toolkit.train.registry import (
    METHODS,
    Method,
    get_method,
    load_plugins,
    register,
    run,
    unregister,
)
from toolkit.train.strategy import Context, Strategy, register_strategy
from toolkit.train.trace import OUTCOMES, Budget, Trace

__all__ = [
    "METHODS",
    "Method",
    "get_method",
    "load_plugins",
    "register",
    "run",
    "unregister",
    "Context",
    "Strategy",
    "register_strategy",
    "OUTCOMES",
    "Budget",
    "Trace",
]
