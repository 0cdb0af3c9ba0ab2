"""The language params.yaml's schema is written in: a check is (key, value) → value, or a one-line ParamError naming
the key. Where the library defines the choices (samplers, schedules, predictions…), `registry` reads them from it, so
a choice added to the library is accepted here with no other edit."""
from __future__ import annotations

import importlib
import math
from typing import Any, Callable


class ParamError(ValueError):
    """A params.yaml value that is missing, of the wrong type or out of range (one line)."""


Check = Callable[[str, Any], Any]  # (key, value) → the value (ints written as 1e3 become int), or ParamError


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(key: str, v: Any) -> int:
        if isinstance(v, float) and _finite_number(v) and v.is_integer():
            v = int(v)  # YAML 1.2 reads 1e3 as a float
        if (isinstance(v, bool) or not isinstance(v, int) or not _finite_number(v) or (lo is not None and v < lo)
                or (hi is not None and v > hi)):  # 10**400 is an int no tensor or loop can use
            raise ParamError(f"params.yaml: {key} = {v!r:.40}: must be an integer {_range(lo, hi)}")
        return v
    return check


def real(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Check:
    def check(key: str, v: Any) -> float:
        ok = _finite_number(v)
        ok = ok and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi))
        if not ok:
            lo_s = "" if lo is None else f"{lo} {'<' if lo_open else '≤'} "
            hi_s = "" if hi is None else f" {'<' if hi_open else '≤'} {hi}"
            raise ParamError(f"params.yaml: {key} = {v!r}: must be a number with {lo_s}{key.split('.')[-1]}{hi_s}")
        return v
    return check


def choice(*options: Any) -> Check:
    def check(key: str, v: Any) -> Any:
        if not any(type(v) is type(o) and v == o for o in options):  # 1 is not True
            raise ParamError(f"params.yaml: {key} = {v!r}: must be one of {', '.join(map(repr, options))}")
        return v
    return check


def int_list(lo: int = 0, hi: int | None = None, nonempty: bool = True) -> Check:
    def check(key: str, v: Any) -> list[int]:
        if not isinstance(v, list) or (nonempty and not v) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= lo and (hi is None or x <= hi) for x in v
        ):
            raise ParamError(f"params.yaml: {key} = {v!r}: must be a {'non-empty ' if nonempty else ''}list of integers {_range(lo, hi)}")
        return v
    return check


def str_list(nonempty: bool = True) -> Check:
    def check(key: str, v: Any) -> list[str]:
        if not isinstance(v, list) or (nonempty and not v) or not all(isinstance(x, str) and x for x in v):
            raise ParamError(f"params.yaml: {key} = {v!r}: must be a {'non-empty ' if nonempty else ''}list of strings")
        return v
    return check


def real_list(lo: float = 0.0, hi: float | None = None) -> Check:
    def check(key: str, v: Any) -> list[float]:
        if not isinstance(v, list) or not v or not all(
            _finite_number(x) and x > lo and (hi is None or x <= hi) for x in v
        ):
            bound = f"> {lo}" + ("" if hi is None else f" and ≤ {hi}")
            raise ParamError(f"params.yaml: {key} = {v!r}: must be a non-empty list of numbers {bound}")
        return v
    return check


def text(key: str, v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ParamError(f"params.yaml: {key} = {v!r}: must be a non-empty string")
    return v


def optional_text(key: str, v: Any) -> str:
    return v if v == "" else text(key, v)


def _finite_number(v: Any) -> bool:
    """An int or float (not a bool) that is finite as a float (10**400 is not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def auto_or(check_number: Check) -> Check:
    def check(key: str, v: Any) -> Any:
        if v == "auto":
            return v
        try:
            return check_number(key, v)
        except ParamError as e:
            raise ParamError(f"{e} (or 'auto')") from None
    return check


def _range(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    return f"≥ {lo}" if lo is not None else (f"≤ {hi}" if hi is not None else "")


class Registry:
    """A choice among the names a library module defines, e.g. Registry("ddpm.samplers", "SAMPLERS"): the module is
    imported when a key is checked (so only a stage that reads such a key depends on it: ddpm.pipeline adds
    `modules` to its deps)."""

    def __init__(self, module: str, attr: str) -> None:
        self.module, self.attr, self.modules = module, attr, (module,)

    def options(self) -> tuple[str, ...]:
        return tuple(getattr(importlib.import_module(self.module), self.attr))

    def __call__(self, key: str, v: Any) -> str:
        return choice(*self.options())(key, v)


def library_check(module: str, function: str, check: Check) -> Check:
    """`check`, then the library's own rule `module.function(value)` (its ValueError becomes a ParamError naming key)."""
    def run(key: str, v: Any) -> Any:
        v = check(key, v)
        try:
            getattr(importlib.import_module(module), function)(v)
        except ValueError as e:
            raise ParamError(f"params.yaml: {key}: {e}") from None
        return v
    run.modules = (module,)  # type: ignore[attr-defined]
    return run


def modules_of(check: Check) -> tuple[str, ...]:
    """The library modules a check reads (Registry, library_check, or a check built from them)."""
    return tuple(getattr(check, "modules", ()))
