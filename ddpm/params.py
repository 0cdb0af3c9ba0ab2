"""params.yaml: its schema (every key's type and range), which sections each stage reads, and loading.

One params section per stage, named like the stage, plus shared sections (`runtime`, `diffusion`, `model`,
`clip`, `celeba_model`). STAGE_SECTIONS is the single record of what a stage reads: `load_stage(name)` returns
exactly those sections and nothing else, and a test checks that dvc.yaml declares the same (ddpm.pipeline).
The file is read as YAML 1.2, as DVC reads and writes it (`1e-5` is a number, as `dvc exp run -S` writes it).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .context import parse_digit_prompt


class ParamError(ValueError):
    """A params.yaml value that is missing, of the wrong type or out of range (one line)."""


Check = Callable[[str, Any], Any]  # (key, value) → the value (ints written as 1e3 become int), or ParamError


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(key: str, v: Any) -> int:
        if isinstance(v, float) and _finite_number(v) and v.is_integer():
            v = int(v)  # YAML 1.2 reads 1e3 as a float
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ParamError(f"params.yaml: {key} = {v!r}: must be an integer {_range(lo, hi)}")
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


ROW_KEYS = {"sampler", "steps", "eta", "weights"}  # and optionally autoguidance (default 0)


def sampler_rows(key: str, v: Any) -> list[dict[str, Any]]:
    """A non-empty list of {sampler, steps, eta, weights: ema | raw[, autoguidance: w]}, each checked like a sampling
    section; autoguidance defaults to 0 (none)."""
    if not isinstance(v, list) or not v:
        raise ParamError(f"params.yaml: {key} = {v!r}: must be a non-empty list of rows "
                         "{sampler: ddim, steps: 20, eta: 0.0, weights: ema}")
    rows = []
    for i, row in enumerate(v):
        if not isinstance(row, dict) or not ROW_KEYS <= set(row) <= ROW_KEYS | {"autoguidance"}:
            raise ParamError(f"params.yaml: {key}[{i}] = {row!r}: must have the keys sampler, steps, eta, weights "
                             "(and optionally autoguidance)")
        rows.append({"sampler": SAMPLER(f"{key}[{i}].sampler", row["sampler"]),
                     "steps": integer(1)(f"{key}[{i}].steps", row["steps"]),
                     "eta": real(0, 1)(f"{key}[{i}].eta", row["eta"]),
                     "weights": choice("ema", "raw")(f"{key}[{i}].weights", row["weights"]),
                     "autoguidance": AUTOGUIDANCE(f"{key}[{i}].autoguidance", row.get("autoguidance", 0.0))})
    return rows


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


DEVICE = choice("auto", "cuda", "mps", "cpu")
AMP = choice("auto", "bf16", "off")  # bf16 autocast: auto = where the device has native bf16
SAMPLER = choice("ancestral", "ddim", "dpm++2m")
RUNTIME = {"device": DEVICE, "amp": AMP, "nproc": integer(1, 4096)}
SAMPLING = {"sampler": SAMPLER, "steps": integer(1), "eta": real(0, 1)}  # η > 1 adds more noise than DDPM's
SEED = integer(0, 2**31 - 1)  # derived seeds multiply it: larger ones overflow the generators' 64 bits
MAX_SCALE = 100.0  # guidance and completion scales: beyond, every sample is noise or NaN (1e300 made NaN)
AUTOGUIDANCE = real(0, MAX_SCALE)  # w of autoguidance by train_mnist's early weights (train_mnist.guide_step); 0: none
MODEL = {
    "channels": integer(4, 1024),
    "channel_mults": int_list(1, 16),
    "num_res_blocks": integer(1, 8),
    "attention_levels": int_list(0, 16, nonempty=False),
    "heads": integer(1, 64),
    "dropout": real(0, 1, hi_open=True),
    "groups": integer(1, 128),
    "patch_size": integer(1, 4),  # > 1: p×p pixel blocks as channels (fewer, cheaper full-resolution layers)
    "conditioning": choice("add", "scale_shift"),  # how t (and the context) enter each residual block
}
TRAINING = {
    "epochs": integer(1, 100_000),
    "batch_size": integer(1, 1_000_000),
    "lr": real(0, 1, lo_open=True),
    "warmup_steps": integer(0),
    "ema_decay": real(0, 1, hi_open=True),
    "grad_clip": real(0, lo_open=True),
    "max_images": integer(0),
    "seed": SEED,
    "log_every": integer(1),
    "monitor_steps": integer(1),
    "lr_schedule": choice("constant", "cosine"),
    "ema_power": real(0, 10),
}

SCHEMA: dict[str, dict[str, Check]] = {
    "runtime": RUNTIME,
    "download_mnist": {"sources": str_list()},
    "diffusion": {
        "T": integer(2, 100_000),
        "schedule": choice("linear", "cosine"),
        "beta_start": real(0, 1, lo_open=True, hi_open=True),
        "beta_end": real(0, 1, lo_open=True, hi_open=True),
        "prediction": choice("eps", "v"),
        "weighting": choice("none", "min_snr"),
        "snr_gamma": real(0, 1000, lo_open=True),
    },
    "model": MODEL,
    "train_mnist": {**TRAINING, "monitor_n": integer(1, 256), "monitor_judge_n": integer(0, 5000),  # 0 or ≥ 2
                    "guide_step": integer(0)},  # > 0: keep the EMA weights of this step (autoguidance's bad model)
    "train_mnist_cfg": {"epochs": integer(1, 100_000), "batch_size": integer(1, 1_000_000),
                        "lr": real(0, 1, lo_open=True), "p_uncond": real(0, 1),
                        "monitor_guidance": real(0, MAX_SCALE), "init": choice("scratch", "train_mnist")},
    "judge": {
        "epochs": integer(1, 1000),
        "batch_size": integer(1),
        "lr": real(0, 1, lo_open=True),
        "seed": SEED,
        "min_accuracy": real(0, 1),
        "max_images": integer(0),
        "holdout": integer(10),           # held-out training digits that fit the calibration temperature
        "reject_share": real(0, 1, hi_open=True),  # non-digits (noise, blobs, blur) per digit in a batch
    },
    "sample": {"n_grid": integer(1, 1024), "n_eval": integer(2, 5000), **SAMPLING, "autoguidance": AUTOGUIDANCE,
               "batch_size": integer(1),
               "seed": SEED},
    "evaluate": {"blur_sigma": real(0, lo_open=True), "seed": SEED},
    "compare_samplers": {
        "n": integer(2, 5000),
        "rows": sampler_rows,
        "batch_size": integer(1),
        "seed": SEED,
    },
    "completion_sweep": {
        "images": integer(1, 10_000),
        "completions": integer(2, 100),
        "scales": real_list(0.0, MAX_SCALE),
        **SAMPLING,
        "batch_size": integer(1),
        "seed": SEED,
    },
    "complete": {
        "figure_seed": SEED,
        "n_per_image": integer(1, 100),
        "scale": auto_or(real(0, MAX_SCALE)),
        "route": choice("xt", "mean", "mcg"),  # completion.GRADIENT_ROUTES (not imported: every stage imports params)
        **SAMPLING,
        "seed": SEED,
    },
    "sweep_mnist_cfg": {
        "guidance_scales": real_list(-1e-9, MAX_SCALE),
        "prompts": str_list(),
        "n_per_prompt": integer(1),
        **SAMPLING,
        "batch_size": integer(1),
        "seed": SEED,
    },
    "report": {"posterior_check_t": int_list(0)},
    # -- CLIP-conditioned faces (CelebA) --
    "download_celeba": {
        "root": text,
        "download": choice(True, False),
        "clip_data": text,
        "image_size": integer(8, 1024),
        "max_images": integer(0),
    },
    "clip": {"model": text, "pretrained": text, "config": optional_text},
    "embed_clip": {"batch_size": integer(1), "chunk": integer(1)},
    "celeba_model": MODEL,
    "train_celeba": {**TRAINING, "p_uncond": real(0, 1), "monitor_guidance": real(0, MAX_SCALE), "monitor_prompts": str_list()},
    "sweep_celeba": {
        "guidance_scales": real_list(-1e-9, MAX_SCALE),
        "prompts": str_list(),
        "n_per_prompt": integer(2),
        **SAMPLING,
        "batch_size": integer(1),
        "seed": SEED,
    },
}

# What each stage reads besides its own section (which it always reads, named like the stage).
SHARED = ("runtime", "diffusion", "model")
SAMPLING_SHARED = ("runtime", "diffusion")  # a sampling stage builds its network from the model folder's config.json
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "download_mnist": (),
    "train_mnist": SHARED,
    "train_mnist_cfg": (*SHARED, "train_mnist"),
    "judge": ("runtime",),
    "sample": SAMPLING_SHARED,
    "evaluate": ("runtime",),
    "compare_samplers": SAMPLING_SHARED,
    "completion_sweep": SAMPLING_SHARED,
    "complete": SAMPLING_SHARED,
    "sweep_mnist_cfg": SAMPLING_SHARED,
    "report": ("diffusion", "model", "train_mnist", "train_mnist_cfg", "judge", "sample", "evaluate",
               "compare_samplers", "completion_sweep", "complete", "sweep_mnist_cfg"),
    "download_celeba": (),
    "embed_clip": ("runtime", "clip", "train_celeba", "sweep_celeba"),
    "train_celeba": ("runtime", "diffusion", "celeba_model"),
    "sweep_celeba": ("runtime", "diffusion", "clip", "download_celeba"),
    "report_celeba": ("clip", "train_celeba", "sweep_celeba"),
}
STAGE_OWN = {name: name in SCHEMA for name in STAGE_SECTIONS}  # report_celeba has no section of its own
# A stage's own section may override any key of `runtime` (e.g. sample.nproc: 2 where runtime.nproc is 1).
OPTIONAL: dict[str, set[str]] = {name: set(RUNTIME) for name in STAGE_SECTIONS
                                 if STAGE_OWN[name] and "runtime" in STAGE_SECTIONS[name]}


def _check_autoguidance(p: dict[str, dict[str, Any]]) -> None:
    """Autoguidance samples with the early weights train_mnist keeps only when train_mnist.guide_step > 0."""
    if "train_mnist" not in p or p["train_mnist"]["guide_step"]:
        return
    asked = ([("sample.autoguidance", p["sample"]["autoguidance"])] if "sample" in p else []) + [
        (f"compare_samplers.rows[{i}].autoguidance", row["autoguidance"])
        for i, row in enumerate(p.get("compare_samplers", {}).get("rows", []))]
    for key, w in asked:
        if w:
            raise ParamError(f"params.yaml: {key} = {w} needs train_mnist.guide_step > 0 (the early weights it guides "
                             "with, e.g. 200); set it, or the autoguidance to 0")


def stage_sections(stage: str) -> list[str]:
    """The params sections `stage` reads (its own first), as dvc.yaml must declare them."""
    if stage not in STAGE_SECTIONS:
        raise ParamError(f"unknown stage {stage!r}; known stages: {', '.join(STAGE_SECTIONS)}")
    return ([stage] if STAGE_OWN[stage] else []) + list(STAGE_SECTIONS[stage])


def validate(params: Any, sections: list[str]) -> dict[str, dict[str, Any]]:
    """Check `sections` of params (per-profile values taken for its `profile`) against SCHEMA; return them (numbers
    normalized), or raise ParamError naming the key."""
    params = for_profile(params)
    out: dict[str, dict[str, Any]] = {}
    for name in sections:
        section = params.get(name)
        if not isinstance(section, dict):
            raise ParamError(f"params.yaml: section '{name}' is missing or not a mapping")
        schema = {**SCHEMA[name], **{k: RUNTIME[k] for k in OPTIONAL.get(name, ())}}
        unknown = sorted(str(k) for k in set(section) - set(schema))
        if unknown:
            raise ParamError(f"params.yaml: {name}.{unknown[0]} is not a known key; known keys: {', '.join(schema)}")
        out[name] = {}
        for key, check in schema.items():
            if key in section:
                out[name][key] = check(f"{name}.{key}", section[key])
            elif key not in OPTIONAL.get(name, ()):
                raise ParamError(f"params.yaml: {name}.{key} is missing")
    _cross_checks(out)
    return out


def _cross_checks(p: dict[str, dict[str, Any]]) -> None:
    d = p.get("diffusion")
    if d and d["schedule"] == "linear" and d["beta_end"] <= d["beta_start"]:
        raise ParamError(f"params.yaml: diffusion.beta_end = {d['beta_end']} must be > diffusion.beta_start = {d['beta_start']}")
    tm = p.get("train_mnist")
    if tm and tm["monitor_judge_n"] == 1:
        raise ParamError("params.yaml: train_mnist.monitor_judge_n = 1: fid_clf needs at least 2 samples; set it to 0 "
                         "(off) or ≥ 2")
    sizes = {"model": 28, "celeba_model": p.get("download_celeba", {}).get("image_size")}
    for name in ("model", "celeba_model"):
        m = p.get(name)
        if m and sizes[name] and sizes[name] % m["patch_size"]:
            raise ParamError(f"params.yaml: {name}.patch_size = {m['patch_size']} must divide the image size "
                             f"{sizes[name]}")
        if m and any(level >= len(m["channel_mults"]) for level in m["attention_levels"]):
            raise ParamError(f"params.yaml: {name}.attention_levels = {m['attention_levels']}: levels must be < "
                             f"len({name}.channel_mults) = {len(m['channel_mults'])}")
        if m and m["channels"] % m["heads"]:
            raise ParamError(f"params.yaml: {name}.heads = {m['heads']} must divide {name}.channels = {m['channels']}")
    if d and "compare_samplers" in p:
        for i, row in enumerate(p["compare_samplers"]["rows"]):
            _check_steps(f"compare_samplers.rows[{i}]", row, d)
    if d:
        for name, section in p.items():
            _check_steps(name, section, d)
    _check_autoguidance(p)
    co = p.get("sweep_mnist_cfg")
    if co and co["n_per_prompt"] * len(co["prompts"]) < 2:
        raise ParamError(f"params.yaml: sweep_mnist_cfg.n_per_prompt = {co['n_per_prompt']} with "
                         f"{len(co['prompts'])} prompt: fid_clf needs at least 2 samples per scale; raise n_per_prompt")
    if co:
        for prompt in co["prompts"]:
            try:
                parse_digit_prompt(prompt)
            except ValueError as e:
                raise ParamError(f"params.yaml: sweep_mnist_cfg.prompts: {e}") from None


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


def profiled_sections(params: Any) -> set[str]:
    """The sections of params.yaml that hold a per-profile value: a stage reading one depends on `profile`."""
    return {name for name, section in params.items() if isinstance(section, dict)
            and any(per_profile(v) for v in section.values())} if isinstance(params, dict) else set()


def read_yaml(path: str | Path) -> Any:
    """A YAML file read as YAML 1.2, with ruamel's safe loader: exactly as DVC reads params.yaml."""
    path = Path(path)
    try:
        return YAML(typ="safe").load(path.read_text())
    except FileNotFoundError:
        raise ParamError(f"{path}: not found; run the stage from the project root") from None
    except YAMLError as e:
        raise ParamError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def _check_steps(name: str, section: dict[str, Any], d: dict[str, Any]) -> None:
    """Step counts within diffusion.T, and the ancestral sampler over all of them."""
    for key in ("steps", "monitor_steps"):
        if key in section and section[key] > d["T"]:
            raise ParamError(f"params.yaml: {name}.{key} = {section[key]}: must be ≤ diffusion.T = {d['T']}")
    if section.get("sampler") == "ancestral" and section["steps"] != d["T"]:
        raise ParamError(f"params.yaml: {name}.steps = {section['steps']}: the ancestral sampler visits all "
                         f"diffusion.T = {d['T']} steps; set {name}.sampler: ddim or dpm++2m for fewer")


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
