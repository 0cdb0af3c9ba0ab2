"""Print a params profile as `-S key=value` arguments: `dvc exp run $(python -m ddpm.profile cpu)`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .params import read_yaml


def profile_overrides(name: str, folder: Path = Path("profiles")) -> dict[str, object]:
    """profiles/<name>.yaml: {"section.key": value, …} and "targets" (the stages to reproduce)."""
    path = folder / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
        raise SystemExit(f"error: {path} not found; known profiles: {known}")
    return read_yaml(path) or {}


def hydra_value(value: object) -> str:
    """`value` in the override grammar of `dvc exp run -S` (Hydra's): JSON, except that dict keys are bare."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    return json.dumps(value)


def profile_args(name: str, folder: Path = Path("profiles")) -> list[str]:
    overrides = profile_overrides(name, folder)
    targets = overrides.pop("targets", [])  # stages to reproduce (default: all)
    return [f"-S={key}={hydra_value(value)}" for key, value in overrides.items()] + targets


if __name__ == "__main__":
    print(" ".join(profile_args(sys.argv[1] if len(sys.argv) > 1 else "cpu")))
