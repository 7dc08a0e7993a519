"""Declared parameters and the one checker every layer uses.

A module declares each of its settings once, as a :class:`Param` (default, kind, range, doc),
in a dict ``{name: Param}``: a task's ``PARAMS``, a net cell's ``CONFIG``, a method's
hyperparameters, the sweep's ``[budget]`` and ``[post]`` tables. :func:`check_params` resolves
a given dict against such a declaration and returns the problems as ``(key path, message)``
pairs, so that a config error names where the setting was written without parsing messages;
:func:`resolve` raises them as one :class:`ParamError` (a ``ValueError``) for direct API calls.

    PARAMS = {"T": Param(100, "int", lo=2, doc="sequence length")}
    resolved, problems = check_params(PARAMS, {"T": 1}, "task.params")
    # problems == [("task.params.T", "expected an integer >= 2, got 1")]

numpy only (no toolkit imports): importable by tasks, nets, train and sweep alike.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["KINDS", "REQUIRED", "Param", "ParamError", "check_params", "close", "resolve"]

KINDS = ("int", "float", "bool", "choice", "str", "list", "any")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: the default of a parameter that must be given
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    default: its value when not given (:data:`REQUIRED`: it must be given).
    kind: "int" | "float" | "bool" | "choice" | "str" (non-empty) | "list" | "any".
    lo, hi: inclusive bounds of an int/float (``lo_open`` / ``hi_open``: exclusive).
    choices: the allowed values of a "choice"; for an int/float, extra literal values that are
    accepted as they are (e.g. ``"auto"``).
    allow_none: None is accepted (its meaning is in ``doc``).
    item, min_len, max_len, unique: a "list"'s element declaration and length.
    check: for "any": ``check(value) -> (ok, resolved value or message)``.
    """

    default: Any
    kind: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    doc: str = ""
    allow_none: bool = False
    lo_open: bool = False
    hi_open: bool = False
    item: Param | None = None
    min_len: int = 1
    max_len: int | None = None
    unique: bool = True
    check: Callable[[Any], tuple[bool, Any]] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Param kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """What a valid value is, e.g. "an integer >= 1 or None" (the error messages' words)."""
        k = self.kind
        if k == "choice":
            text = "one of " + ", ".join(str(c) for c in self.choices)
        elif k == "bool":
            text = "true or false"
        elif k == "str":
            text = "a non-empty string"
        elif k == "list":
            n = self.min_len
            text = (
                f"a list of exactly {n} values"
                if self.max_len == n
                else f"a list of at least {n} value(s)"
            )
            text += f", each {self.item.describe()}" if self.item else ""
            text += f" ({self.doc})" if self.doc else ""
        elif k == "any":
            text = self.doc or "a value"
        else:
            bounds = []
            if self.lo is not None:
                bounds.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
            if self.hi is not None:
                bounds.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
            noun = "an integer" if k == "int" else "a finite number"
            text = noun + (" " + " and ".join(bounds) if bounds else "")
            if self.choices:
                text += "".join(f" or {c!r}" for c in self.choices)
        return text + (" or None" if self.allow_none else "")

    def coerce(self, v: Any) -> tuple[bool, Any]:
        """(True, the resolved plain-Python value) or (False, the problem's message)."""
        if v is None and self.allow_none:
            return True, None
        typ = "" if _is_num(v) or self.kind == "any" else f" ({type(v).__name__})"
        bad = (False, f"expected {self.describe()}, got {_fmt(v)}{typ}")
        k = self.kind
        if k == "bool":
            return (True, bool(v)) if isinstance(v, bool | np.bool_) else bad
        if k == "choice":
            return (True, v) if isinstance(v, str) and v in self.choices else bad
        if k == "str":
            return (True, v) if isinstance(v, str) and v else bad
        if k == "any":
            return self.check(v) if self.check else (True, v)
        if k == "list":
            return self._coerce_list(v, bad)
        if self.choices and isinstance(v, str) and v in self.choices:
            return True, v
        if isinstance(v, bool | np.bool_):
            return bad
        if k == "int":
            if isinstance(v, float | np.floating) and float(v).is_integer():
                v = int(v)
            if not isinstance(v, int | np.integer):
                return bad
            v = int(v)
        else:
            if not isinstance(v, int | float | np.integer | np.floating):
                return bad
            v = float(v)
            if not math.isfinite(v):
                return bad
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return bad
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return bad
        return True, v

    def _coerce_list(self, v, bad):
        n_ok = isinstance(v, list) and len(v) >= self.min_len
        if not n_ok or (self.max_len is not None and len(v) > self.max_len):
            return bad
        out = []
        for x in v:
            ok, r = self.item.coerce(x) if self.item else (True, x)
            if not ok:
                return False, f"element {_fmt(x)}: {r}"
            out.append(r)
        if self.unique and len(set(map(repr, out))) != len(out):
            return False, f"expected distinct values, got {_fmt(v)}"
        return True, out


class ParamError(ValueError):
    """Bad parameters: ``problems`` is a list of (key, message), keys relative to the owner's
    table (e.g. "sigma"); ``str()`` reads "cmaes: sigma: expected ..., got ...; ..."."""

    def __init__(self, problems: list[tuple[str, str]], owner: str = ""):
        self.problems = list(problems)
        self.owner = owner
        text = "; ".join(f"{k}: {m}" if k else m for k, m in self.problems)
        super().__init__(f"{owner}: {text}" if owner else text)


def _is_num(v) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else repr(v)


def close(word: str, allowed: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the nearest allowed word, or ""."""
    m = difflib.get_close_matches(str(word), [str(a) for a in allowed], n=1)
    return f" (did you mean '{m[0]}'?)" if m else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_params(
    decl: dict[str, Param], given: dict, path: str = "", *, what: str = "parameter"
) -> tuple[dict, list[tuple[str, str]]]:
    """Resolve ``given`` against ``decl``: (every declared key -> its checked value or its
    default, in declaration order; problems as (``path.key``, message)). A missing required
    key or a bad value resolves to None; unknown keys are problems."""
    problems = []
    for k in given:
        if k not in decl:
            problems.append(
                (
                    _join(path, str(k)),
                    f"unknown {what}{close(k, decl)}; allowed: {', '.join(decl)}",
                )
            )
    out = {}
    for k, p in decl.items():
        if k not in given:
            if p.required:
                problems.append((_join(path, k), f"missing: {p.doc or p.describe()}"))
                out[k] = None
            else:
                out[k] = copy.deepcopy(p.default)
            continue
        ok, v = p.coerce(given[k])
        out[k] = v if ok else None
        if not ok:
            problems.append((_join(path, k), v))
    return out, problems


def resolve(
    decl: dict[str, Param],
    given: dict,
    owner: str = "",
    checks: Callable[[dict], list[tuple[str, str]]] | None = None,
    *,
    what: str = "parameter",
) -> dict:
    """:func:`check_params`, then ``checks(resolved)`` (cross-parameter constraints, run only
    when every value passed); raises :class:`ParamError` (keys relative) on any problem."""
    out, problems = check_params(decl, given, what=what)
    if not problems and checks is not None:
        problems = list(checks(out))
    if problems:
        raise ParamError(problems, owner)
    return out


def defaults_text(decl: dict[str, Param]) -> str:
    """``name=default, ...`` of a declaration, in declaration order (a required parameter
    shows its name alone): the parameter cell of README.md's method and task tables."""

    def show(v) -> str:
        return f'"{v}"' if isinstance(v, str) else repr(v)

    items = [k if p.required else f"{k}={show(p.default)}" for k, p in decl.items()]
    return ", ".join(items).replace("|", "\\|")
