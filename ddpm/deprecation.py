"""0.7's names, kept for one release: each use warns with the name that replaced it (DeprecationWarning)."""
from __future__ import annotations

import warnings
from typing import Any, Callable


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(f"{old} is deprecated (0.8) and goes in 0.9; use {new}", DeprecationWarning, stacklevel=stacklevel)


def renamed_attributes(namespace: dict[str, Any], renamed: dict[str, str]) -> Callable[[str], Any]:
    """A module's __getattr__ (PEP 562) that serves each old name of `renamed` as its new one, with a warning."""
    module = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new = renamed[name]  # a name of this module, or "module.name" of one it imported
        parts = new.split(".")
        found = namespace[parts[0]]
        for part in parts[1:]:
            found = getattr(found, part)
        warn_renamed(f"{module}.{name}", f"{module}.{new}" if len(parts) == 1 else f"ddpm.{new}")
        return found
    return __getattr__
