"""Declarative validation of configuration dataclasses.

Every field of a vasa config states what it accepts in its annotation, and one function,
:func:`check_fields`, checks a whole config against those annotations before anything is
compiled. The annotation is the description: its type (``int``, ``float``, ``bool``,
``str``, ``Literal[...]``, ``X | None``, ``tuple[X, ...]``, a nested config) and, through
``typing.Annotated``, bounds and extra predicates::

    @dataclass(frozen=True)
    class MyConfig:
        num_envs: PosInt = 128                     # an int >= 1
        gamma: Annotated[float, Range(gt=0, le=1)] = 0.99
        layers: tuple[PosInt, ...] = (64, 64)      # each width >= 1
        mode: Literal["fast", "exact"] = "fast"
        episode_length: PosInt | None = None

        def validate(self):
            check_fields(self)                     # type, finiteness, range, choice
            ...                                    # then checks that relate fields

tyro ignores the ``Annotated`` metadata, so command lines and ``--help`` are unchanged.

The rules, applied to each value (no coercion, so a mistake is never silently "fixed"):

* ``bool``: exactly ``True`` or ``False`` (the string ``"False"`` or ``1`` is refused);
* ``int``: a Python or NumPy integer, not a bool, not a float (``2.0`` and ``2.5`` refused);
* ``float``: a real number (int or float, not bool) that is finite (NaN and +-inf refused);
* ``str``: a string; ``Literal[...]``: one of the listed values;
* ``tuple[X, ...]`` / ``tuple[X, Y]``: a tuple (not a list: configs are hashed as static
  arguments of jitted functions) whose items follow ``X`` (and the fixed length);
* ``X | None``: ``None`` or a valid ``X``;
* a dataclass: an instance of it, its fields checked recursively;
* :class:`Range`, :class:`Length` and :class:`Check` in ``Annotated[...]`` add bounds,
  lengths and predicates.

Errors are ``ValueError("<Config>.<field>=<value> is not allowed: it must be <what>.")``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal

import numpy as np


class MissingPathError(FileNotFoundError, ValueError):
    """A config field names a file or folder that does not exist (both a ``ValueError``, as
    every config error is, and a ``FileNotFoundError``)."""


@dataclass(frozen=True)
class Range:
    """Numeric bounds: ``ge <= x``, ``gt < x``, ``x <= le``, ``x < lt`` (each optional)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def ok(self, x) -> bool:
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))

    def describe(self) -> str:
        low = (f"[{_num(self.ge)}" if self.ge is not None else f"({_num(self.gt)}" if self.gt is not None else None)
        high = (f"{_num(self.le)}]" if self.le is not None else f"{_num(self.lt)})" if self.lt is not None else None)
        if low and high:
            return f"in {low}, {high}"
        if low:
            return (">= " if low[0] == "[" else "> ") + low[1:]
        if high:
            return ("<= " if high[-1] == "]" else "< ") + high[:-1]
        return "any value"


@dataclass(frozen=True)
class Length:
    """Bounds on the length of a tuple or string."""

    min: int = 0
    max: int | None = None

    def ok(self, x) -> bool:
        return len(x) >= self.min and (self.max is None or len(x) <= self.max)

    def describe(self) -> str:
        if self.max is None:
            return f"of length >= {self.min}"
        return f"of length {self.min}" if self.min == self.max else f"of length {self.min} to {self.max}"


@dataclass(frozen=True)
class Check:
    """An extra predicate ``fn(value) -> bool`` described by ``allowed`` (e.g. "a registered
    environment id"). ``fn`` may instead raise ``ValueError`` with its own message."""

    fn: Callable[[Any], bool]
    allowed: str


def ordered_pair(item) -> Any:
    """``Annotated[tuple[item, item], ...]``: a ``(low, high)`` range with ``low <= high``."""
    return Annotated[tuple[item, item], Check(lambda r: r[0] <= r[1], "a (low, high) pair with low <= high")]


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


# Common field types.
PosInt = Annotated[int, Range(ge=1)]
"""An integer >= 1."""
NonNegInt = Annotated[int, Range(ge=0)]
"""An integer >= 0."""
PosFloat = Annotated[float, Range(gt=0)]
"""A finite number > 0."""
NonNegFloat = Annotated[float, Range(ge=0)]
"""A finite number >= 0."""
UnitFloat = Annotated[float, Range(ge=0, le=1)]
"""A finite number in [0, 1]."""
Seed = Annotated[int, Range(ge=0, lt=2**30)]
"""A random seed: an integer in [0, 2**30) (room for the offsets runs add to it, within int32)."""


def _problem(value, hint) -> str | None:
    """``None`` when ``value`` satisfies ``hint``, else what would be allowed."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *meta = typing.get_args(hint)
        problem = _problem(value, base)
        if problem:
            return problem
        for m in meta:
            if isinstance(m, Range) and not m.ok(value):
                return f"{_kind(base)} {m.describe()}"
            if isinstance(m, Length) and not m.ok(value):
                return f"{_kind(base)} {m.describe()}"
            if isinstance(m, Check):
                try:
                    good = m.fn(value)
                except ValueError as e:
                    return f"{m.allowed}: {str(e).rstrip('.')}"
                if not good:
                    return m.allowed
        return None
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            return None if type(None) in args else f"{_kind(hint)}, not None"
        options = [a for a in args if a is not type(None)]
        problems = [_problem(value, a) for a in options]
        if any(p is None for p in problems):
            return None
        tail = " (or None)" if type(None) in args else ""
        return (problems[0] if len(problems) == 1 else " or ".join(problems)) + tail
    if origin is Literal:
        choices = typing.get_args(hint)
        if any(type(value) is type(c) and value == c for c in choices):
            return None
        return "one of " + ", ".join(repr(c) if not isinstance(c, str) else c for c in choices)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return _kind(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            items = [(v, args[0]) for v in value]
        elif args == ((),):  # tuple[()]
            items = [] if not value else None
        else:
            items = list(zip(value, args)) if len(value) == len(args) else None
        if items is None:
            return _kind(hint)
        uniform = (len(args) == 2 and args[1] is Ellipsis) or all(a == args[0] for a in args)
        for i, (v, a) in enumerate(items):
            p = _problem(v, a)
            if p:
                if uniform:
                    return f"a tuple whose items are each {p} (item {i} is {v!r})"
                return f"{_kind(hint)}; item {i} must be {p} (it is {v!r})"
        return None
    if hint is bool:
        return None if isinstance(value, (bool, np.bool_)) else "True or False"
    if hint is int:
        ok = isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))
        return None if ok else "an integer"
    if hint is float:
        ok = isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        return None if ok and math.isfinite(float(value)) else "a finite number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if hint is Any:
        return None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            return f"a {hint.__name__}"
        return None  # its fields are checked by check_fields (recursively, with their own names)
    raise TypeError(f"vasa.run.fields cannot check values against the annotation {hint!r}; "
                    "use bool, int, float, str, Literal, tuple, X | None, a dataclass or Annotated of these.")


def _kind(hint) -> str:
    """A short name of what ``hint`` accepts, for messages."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _kind(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(a) if a is not type(None) else "None" for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple whose items are each {_kind(args[0])}"
        kinds = [_kind(a) for a in args]
        if len(set(kinds)) == 1:
            return f"a tuple of {len(args)} items, each {kinds[0]}"
        return "a tuple (" + ", ".join(kinds) + ")"
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    return {bool: "bool", int: "an integer", float: "a number", str: "a string"}.get(hint, getattr(hint, "__name__", str(hint)))


_HINTS: dict[type, dict[str, Any]] = {}


def field_hints(cls) -> dict[str, Any]:
    """``{field: annotation}`` of a config dataclass, ``Annotated`` metadata kept."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def check_fields(config, name: str | None = None) -> None:
    """Check every field of the dataclass ``config`` against its annotation.

    Nested config dataclasses are checked recursively and named by their path
    (``VideoTrainConfig.model.blocks``).

    Raises:
      ValueError: ``"<Config>.<field>=<value> is not allowed: it must be <what>."`` for the
        first field that breaks its description.
    """
    cls = type(config)
    name = name or cls.__name__
    hints = field_hints(cls)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        problem = _problem(value, hints[f.name])
        if problem:
            raise ValueError(f"{name}.{f.name}={value!r} is not allowed: it must be {problem}.")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_fields(value, f"{name}.{f.name}")


__all__ = ["Check", "Length", "MissingPathError", "NonNegFloat", "NonNegInt", "PosFloat", "PosInt", "Range", "Seed", "UnitFloat",
           "check_fields", "field_hints", "ordered_pair"]
