"""params.yaml: loading it for a stage (validated against ddpm/schema.py, as ddpm/topology.py says the stage reads it)
and its profiles (`profile: gpu|cpu`, values given per profile). `python -m ddpm.params` checks a whole file.

The file is read as YAML 1.2, as DVC reads and writes it (`1e-5` is a number, as `dvc exp run -S` writes it).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .schema import SCHEMA, cross_checks
from .topology import OPTIONAL, STAGE_OWN, STAGE_SECTIONS, split_entry, stage_sections
from .validators import ParamError

__all__ = ["ParamError", "load", "load_stage", "read_yaml", "validate", "validate_all", "STAGE_SECTIONS",
           "stage_sections"]


def validate(params: Any, sections: list[str]) -> dict[str, dict[str, Any]]:
    """Check `sections` of params (whole sections, or single keys "section.key"; per-profile values taken for its
    `profile`) against SCHEMA; return them (numbers normalized), or raise ParamError naming the key."""
    params = for_profile(params)
    out: dict[str, dict[str, Any]] = {}
    for entry in sections:
        name, only = split_entry(entry)
        section = params.get(name)
        if not isinstance(section, dict):
            raise ParamError(f"params.yaml: section '{name}' is missing or not a mapping")
        schema = {**SCHEMA[name], **{k: SCHEMA["runtime"][k] for k in OPTIONAL.get(name, ())}}
        if only is not None:  # one key of another stage's section: that stage checks the rest
            schema = {only: schema[only]}
        else:
            unknown = sorted(str(k) for k in set(section) - set(schema))
            if unknown:
                raise ParamError(f"params.yaml: {name}.{unknown[0]} is not a known key; known keys: {', '.join(schema)}")
        checked = out.setdefault(name, {})
        for key, check in schema.items():
            if key in section:
                checked[key] = check(f"{name}.{key}", section[key])
            elif key not in OPTIONAL.get(name, ()):
                raise ParamError(f"params.yaml: {name}.{key} is missing")
    cross_checks(out)
    return out


PROFILES = ("gpu", "cpu")  # params.yaml's `profile`: gpu, the full specification; cpu, the recipe sized for 2 cores


def per_profile(value: Any) -> bool:
    """A value given per profile, e.g. `channels: {gpu: 64, cpu: 32}`: a mapping whose keys are profile names."""
    return isinstance(value, dict) and bool(value) and set(map(str, value)) <= set(PROFILES)


def for_profile_name(params: dict[str, Any]) -> str:
    """params.yaml's `profile` (gpu when absent), checked."""
    chosen = params.get("profile", PROFILES[0])
    if chosen not in PROFILES:
        raise ParamError(f"params.yaml: profile = {chosen!r}: must be one of {', '.join(PROFILES)} "
                         "(e.g. dvc exp run -S profile=cpu)")
    return chosen


def for_profile(params: Any) -> Any:
    """params.yaml with every per-profile value replaced by that of its `profile` (a plain value, e.g. one that
    `dvc exp run -S model.channels=48` wrote, applies to every profile)."""
    if not isinstance(params, dict):
        raise ParamError("params.yaml: must be a mapping of sections")
    chosen = for_profile_name(params)
    resolved: dict[str, Any] = {}
    for name, section in params.items():
        if name == "profile":
            continue
        if not isinstance(section, dict):
            resolved[name] = section  # validate names it
            continue
        resolved[name] = {}
        for key, value in section.items():
            if per_profile(value):
                if chosen not in value:
                    raise ParamError(f"params.yaml: {name}.{key} = {value!r} has no value for profile {chosen!r}; "
                                     f"add one ({name}.{key}.{chosen}), or give one value for every profile")
                value = value[chosen]
            resolved[name][key] = value
    return resolved


def read_yaml(path: str | Path) -> Any:
    """A YAML file read as YAML 1.2, with ruamel's safe loader: exactly as DVC reads params.yaml."""
    path = Path(path)
    try:
        return YAML(typ="safe").load(path.read_text())
    except FileNotFoundError:
        raise ParamError(f"{path}: not found; run the stage from the project root") from None
    except YAMLError as e:
        raise ParamError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def load(sections: list[str], path: str | Path = "params.yaml") -> dict[str, dict[str, Any]]:
    """Read params.yaml and validate the named sections (for its `profile`)."""
    return validate(read_yaml(path), sections)


def load_stage(stage: str, path: str | Path = "params.yaml") -> dict[str, dict[str, Any]]:
    """The sections `stage` reads (STAGE_SECTIONS), validated; its own section with `runtime`'s keys merged in
    (its own values win). Nothing else of params.yaml reaches the stage."""
    p = load(stage_sections(stage), path)
    if STAGE_OWN[stage] and "runtime" in p:
        p[stage] = {**p["runtime"], **p[stage]}
    return p


def validate_all(params: Any) -> dict[str, dict[str, Any]]:
    """Check every section of a whole params file (the MNIST project's or the CelebA one's; unknown sections too)
    under every profile; return those of its own profile. What `python -m ddpm.params` runs."""
    if not isinstance(params, dict):
        raise ParamError("params.yaml: must be a mapping of sections")
    own = for_profile_name(params)
    checked = {}
    for name in (own, *(n for n in PROFILES if n != own)):  # its own profile first: its errors read as they are
        resolved = for_profile({**params, "profile": name})
        unknown = sorted(str(s) for s in set(resolved) - set(SCHEMA))
        if unknown:
            raise ParamError(f"params.yaml: section '{unknown[0]}' is not known; known sections: {', '.join(SCHEMA)}")
        try:
            checked[name] = validate(resolved, [s for s in SCHEMA if s in resolved])
        except ParamError as e:
            raise ParamError(f"{e} (with profile {name})" if name != own else str(e)) from None
    return checked[own]


def main(argv: list[str] | None = None) -> int:
    """python -m ddpm.params [params.yaml | celeba/params.yaml]: check every key; one line either way, exit status 1
    if bad."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "params.yaml")
    try:
        raw = read_yaml(path)
        sections = validate_all(raw)
    except ParamError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    profile = f" (profile {for_profile_name(raw)}; every profile checked)" if "profile" in raw else ""
    print(f"{path}: all {sum(len(s) for s in sections.values())} keys of {len(sections)} sections are valid{profile}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
