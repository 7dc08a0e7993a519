"""Training: gradient trainers (bptt), evolutionary baselines (evolve), one registry, one Trace."""

from toolkit.train import bptt as _bptt  # noqa: E402,F401  (registers the gradient methods)
from toolkit.train import evolve as _evolve  # noqa: E402,F401  (registers the evolutionary ones)
from toolkit.train.registry import METHODS, Method, get_method, register, run
from toolkit.train.trace import OUTCOMES, Budget, Trace

__all__ = ["METHODS", "Method", "get_method", "register", "run", "OUTCOMES", "Budget", "Trace"]
