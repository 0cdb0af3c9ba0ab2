"""The params.yaml schema: every key's type and range, checked before a stage does any work."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import yaml


class ParamError(ValueError):
    """A params.yaml value that is missing, of the wrong type or out of range (one line)."""


Check = Callable[[str, Any], None]


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(key: str, v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ParamError(f"params.yaml: {key} = {v!r}: must be an integer {_range(lo, hi)}")
    return check


def real(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Check:
    def check(key: str, v: Any) -> None:
        ok = _finite_number(v)
        ok = ok and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi))
        if not ok:
            lo_s = "" if lo is None else f"{lo} {'<' if lo_open else '≤'} "
            hi_s = "" if hi is None else f" {'<' if hi_open else '≤'} {hi}"
            raise ParamError(f"params.yaml: {key} = {v!r}: must be a number with {lo_s}{key.split('.')[-1]}{hi_s}")
    return check


def choice(*options: Any) -> Check:
    def check(key: str, v: Any) -> None:
        if v not in options:
            raise ParamError(f"params.yaml: {key} = {v!r}: must be one of {', '.join(map(repr, options))}")
    return check


def int_list(lo: int = 0, hi: int | None = None, nonempty: bool = True) -> Check:
    def check(key: str, v: Any) -> None:
        if not isinstance(v, list) or (nonempty and not v) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= lo and (hi is None or x <= hi) for x in v
        ):
            raise ParamError(f"params.yaml: {key} = {v!r}: must be a {'non-empty ' if nonempty else ''}list of integers {_range(lo, hi)}")
    return check


def str_list(nonempty: bool = True) -> Check:
    def check(key: str, v: Any) -> None:
        if not isinstance(v, list) or (nonempty and not v) or not all(isinstance(x, str) and x for x in v):
            raise ParamError(f"params.yaml: {key} = {v!r}: must be a {'non-empty ' if nonempty else ''}list of strings")
    return check


def real_list(lo: float = 0.0) -> Check:
    def check(key: str, v: Any) -> None:
        if not isinstance(v, list) or not v or not all(
            _finite_number(x) and x > lo for x in v
        ):
            raise ParamError(f"params.yaml: {key} = {v!r}: must be a non-empty list of numbers > {lo}")
    return check


def _finite_number(v: Any) -> bool:
    """An int or float (not a bool) that is finite as a float (10**400 is not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def auto_or(check_number: Check) -> Check:
    def check(key: str, v: Any) -> None:
        if v != "auto":
            try:
                check_number(key, v)
            except ParamError as e:
                raise ParamError(f"{e} (or 'auto')") from None
    return check


def _range(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    return f"≥ {lo}" if lo is not None else (f"≤ {hi}" if hi is not None else "")


AMP = choice("auto", "bf16", "off")  # bf16 autocast: auto = where the device has native bf16

SCHEMA: dict[str, dict[str, Check]] = {
    "data": {
        "sources": str_list(),
    },
    "diffusion": {
        "T": integer(2, 100_000),
        "schedule": choice("linear", "cosine"),
        "beta_start": real(0, 1, lo_open=True, hi_open=True),
        "beta_end": real(0, 1, lo_open=True, hi_open=True),
    },
    "model": {
        "channels": integer(4, 1024),
        "channel_mults": int_list(1, 16),
        "num_res_blocks": integer(1, 8),
        "attention_levels": int_list(0, 16, nonempty=False),
        "heads": integer(1, 64),
        "dropout": real(0, 1, hi_open=True),
        "groups": integer(1, 128),
    },
    "train": {
        "epochs": integer(1, 100_000),
        "batch_size": integer(1, 1_000_000),
        "lr": real(0, 1, lo_open=True),
        "warmup_steps": integer(0),
        "ema_decay": real(0, 1, hi_open=True),
        "grad_clip": real(0, lo_open=True),
        "amp": AMP,
        "nproc": integer(1, 4096),
        "max_images": integer(0),
        "seed": integer(0),
        "log_every": integer(1),
        "monitor_n": integer(1, 256),
        "monitor_steps": integer(1),
        "device": choice("auto", "cuda", "mps", "cpu"),
    },
    "sample": {
        "n_grid": integer(1, 1024),
        "n_eval": integer(2, 5000),
        "steps": integer(1),
        "eta": real(0),
        "batch_size": integer(1),
        "seed": integer(0),
        "nproc": integer(1, 4096),
        "amp": AMP,
        "device": choice("auto", "cuda", "mps", "cpu"),
    },
    "judge": {
        "epochs": integer(1, 1000),
        "batch_size": integer(1),
        "lr": real(0, 1, lo_open=True),
        "seed": integer(0),
        "min_accuracy": real(0, 1),
        "max_images": integer(0),
        "device": choice("auto", "cuda", "mps", "cpu"),
    },
    "evaluate": {
        "blur_sigma": real(0, lo_open=True),
        "seed": integer(0),
        "device": choice("auto", "cuda", "mps", "cpu"),
    },
    "compare": {
        "n": integer(2, 5000),
        "ancestral": choice(True, False),
        "ddim_steps": int_list(1, nonempty=False),
        "raw_ddim_steps": int_list(1, nonempty=False),
        "batch_size": integer(1),
        "seed": integer(0),
        "nproc": integer(1, 4096),
        "amp": AMP,
        "device": choice("auto", "cuda", "mps", "cpu"),
    },
    "completion": {
        "figure_seed": integer(0),
        "n_per_image": integer(1, 100),
        "scale": auto_or(real(0)),
        "wrt": choice("xt", "mean"),
        "steps": integer(1),
        "eta": real(0),
        "sweep_images": integer(1, 10_000),
        "sweep_completions": integer(2, 100),
        "scales": real_list(0.0),
        "batch_size": integer(1),
        "seed": integer(0),
        "nproc": integer(1, 4096),
        "amp": AMP,
        "device": choice("auto", "cuda", "mps", "cpu"),
    },
    "cond": {
        "p_uncond": real(0, 1),
        "epochs": integer(1, 100_000),
        "guidance_scales": real_list(-1e-9),
        "prompts": str_list(),
        "n_per_prompt": integer(1),
        "steps": integer(1),
        "eta": real(0),
        "batch_size": integer(1),
        "seed": integer(0),
        "nproc": integer(1, 4096),
        "amp": AMP,
        "device": choice("auto", "cuda", "mps", "cpu"),
    },
    "report": {
        "posterior_check_t": int_list(0),
    },
}


SCHEMA["celeba"] = {
    "root": lambda key, v: _nonempty_str(key, v),
    "download": choice(True, False),
    "clip_data": lambda key, v: _nonempty_str(key, v),
    "image_size": integer(8, 1024),
    "max_images": integer(0),
}
SCHEMA["clip"] = {
    "model": lambda key, v: _nonempty_str(key, v),
    "pretrained": lambda key, v: _nonempty_str(key, v),
    "config": lambda key, v: None if v == "" else _nonempty_str(key, v),
    "batch_size": integer(1),
    "chunk": integer(1),
    "device": choice("auto", "cuda", "mps", "cpu"),
}
SCHEMA["celeba_model"] = SCHEMA["model"]
SCHEMA["celeba_train"] = {**{k: v for k, v in SCHEMA["train"].items() if k != "monitor_n"},
                          "p_uncond": real(0, 1), "monitor_guidance": real(0), "monitor_prompts": str_list()}
SCHEMA["celeba_sweep"] = {
    "guidance_scales": real_list(-1e-9),
    "prompts": str_list(),
    "n_per_prompt": integer(2),
    "steps": integer(1),
    "batch_size": integer(1),
    "seed": integer(0),
    "nproc": integer(1, 4096),
    "amp": AMP,
    "device": choice("auto", "cuda", "mps", "cpu"),
}


def _nonempty_str(key: str, v: Any) -> None:
    if not isinstance(v, str) or not v.strip():
        raise ParamError(f"params.yaml: {key} = {v!r}: must be a non-empty string")


def validate(params: dict[str, Any], sections: list[str]) -> dict[str, dict[str, Any]]:
    """Check `sections` of params against SCHEMA; return them, or raise ParamError naming the key."""
    out: dict[str, dict[str, Any]] = {}
    for name in sections:
        section = params.get(name)
        if not isinstance(section, dict):
            raise ParamError(f"params.yaml: section '{name}' is missing or not a mapping")
        schema = SCHEMA[name]
        unknown = sorted(str(k) for k in set(section) - set(schema))
        if unknown:
            raise ParamError(f"params.yaml: {name}.{unknown[0]} is not a known key; known keys: {', '.join(schema)}")
        for key, check in schema.items():
            if key not in section:
                raise ParamError(f"params.yaml: {name}.{key} is missing")
            check(f"{name}.{key}", section[key])
        out[name] = section
    _cross_checks(out)
    return out


def _cross_checks(p: dict[str, dict[str, Any]]) -> None:
    d = p.get("diffusion")
    if d and d["schedule"] == "linear" and d["beta_end"] <= d["beta_start"]:
        raise ParamError(f"params.yaml: diffusion.beta_end = {d['beta_end']} must be > diffusion.beta_start = {d['beta_start']}")
    for name in ("model", "celeba_model"):
        m = p.get(name)
        if m and any(level >= len(m["channel_mults"]) for level in m["attention_levels"]):
            raise ParamError(f"params.yaml: {name}.attention_levels = {m['attention_levels']}: levels must be < "
                             f"len({name}.channel_mults) = {len(m['channel_mults'])}")
        if m and m["channels"] % m["heads"]:
            raise ParamError(f"params.yaml: {name}.heads = {m['heads']} must divide {name}.channels = {m['channels']}")
    cs = p.get("celeba_sweep")
    if cs and d and cs["steps"] > d["T"]:
        raise ParamError(f"params.yaml: celeba_sweep.steps = {cs['steps']}: must be ≤ diffusion.T = {d['T']}")
    for name in ("train", "celeba_train"):
        tr = p.get(name)
        if tr and d and tr["monitor_steps"] > d["T"]:
            raise ParamError(f"params.yaml: {name}.monitor_steps = {tr['monitor_steps']}: must be ≤ diffusion.T = {d['T']}")
    s = p.get("sample")
    if s and d and s["steps"] > d["T"]:
        raise ParamError(f"params.yaml: sample.steps = {s['steps']}: must be ≤ diffusion.T = {d['T']}")
    cc = p.get("completion")
    if cc and d and cc["steps"] > d["T"]:
        raise ParamError(f"params.yaml: completion.steps = {cc['steps']}: must be ≤ diffusion.T = {d['T']}")
    co = p.get("cond")
    if co and d and co["steps"] > d["T"]:
        raise ParamError(f"params.yaml: cond.steps = {co['steps']}: must be ≤ diffusion.T = {d['T']}")
    if co:
        from .conditional import parse_digit_prompt

        for prompt in co["prompts"]:
            try:
                parse_digit_prompt(prompt)
            except ValueError as e:
                raise ParamError(f"params.yaml: cond.prompts: {e}") from None
    c = p.get("compare")
    for key in ("ddim_steps", "raw_ddim_steps"):
        if c and d and any(k > d["T"] for k in c[key]):
            raise ParamError(f"params.yaml: compare.{key} = {c[key]}: every step count must be ≤ diffusion.T = {d['T']}")


def load(sections: list[str], path: str | Path = "params.yaml") -> dict[str, dict[str, Any]]:
    """Read params.yaml and validate the named sections."""
    return validate(_read(Path(path)), sections)


def _read(path: Path) -> Any:
    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamError(f"{path}: not found; run the stage from the project root") from None
    except yaml.YAMLError as e:
        raise ParamError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(params, dict):
        raise ParamError(f"{path}: must be a mapping of sections")
    return params


def validate_all(params: Any) -> dict[str, dict[str, Any]]:
    """Check every section of a whole params.yaml (unknown sections too); what `python -m ddpm.params` runs."""
    if not isinstance(params, dict):
        raise ParamError("params.yaml: must be a mapping of sections")
    unknown = sorted(str(s) for s in set(params) - set(SCHEMA))
    if unknown:
        raise ParamError(f"params.yaml: section '{unknown[0]}' is not known; known sections: {', '.join(SCHEMA)}")
    return validate(params, list(SCHEMA))


def main(argv: list[str] | None = None) -> int:
    """python -m ddpm.params [params.yaml]: check every key; one line either way, exit status 1 if bad."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "params.yaml")
    try:
        sections = validate_all(_read(path))
    except ParamError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{path}: all {sum(len(s) for s in sections.values())} keys of {len(sections)} sections are valid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
