"""params.yaml's schema: every key's type and range, and the checks across keys. The library's own choices and rules
(samplers, schedules, predictions, weightings, conditionings, completion routes) are read from the library itself
(validators.Registry, library_check), never re-listed here."""
from __future__ import annotations

import importlib
from typing import Any

from .validators import (Check, ParamError, Registry, auto_or, choice, int_list, integer, library_check, optional_text,
                         real, real_list, str_list, text)

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


sampler_rows.modules = ("ddpm.samplers",)  # type: ignore[attr-defined]  # its rows' sampler: SAMPLER's module


DEVICE = choice("auto", "cuda", "mps", "cpu")
AMP = choice("auto", "bf16", "off")  # bf16 autocast: auto = where the device has native bf16
SAMPLER = Registry("ddpm.samplers", "SAMPLERS")  # a sampler added there is accepted here
RUNTIME = {"device": DEVICE, "amp": AMP, "nproc": integer(1, 4096)}
SAMPLING = {"sampler": SAMPLER, "steps": integer(1), "eta": real(0, 1)}  # η > 1 adds more noise than DDPM's
SEED = integer(0, 2**31 - 1)  # derived seeds multiply it: larger ones overflow the generators' 64 bits
MAX_SCALE = 100.0  # guidance and completion scales: beyond, every sample is noise or NaN (1e300 made NaN)
AUTOGUIDANCE = real(0, MAX_SCALE)  # w of autoguidance by train_mnist's early weights (train_mnist.guide_step); 0: none
PATCH_SIZE = integer(1, 4)
MNIST_PATCH_SIZE = integer(1, 4)
MNIST_PATCH_SIZE.modules = ("ddpm.data",)  # type: ignore[attr-defined]  # it must divide ddpm.data.MNIST_SHAPE
MODEL = {
    "channels": integer(4, 1024),
    "channel_mults": int_list(1, 16),
    "num_res_blocks": integer(1, 8),
    "attention_levels": int_list(0, 16, nonempty=False),
    "heads": integer(1, 64),
    "dropout": real(0, 1, hi_open=True),
    "groups": integer(1, 128),
    "patch_size": PATCH_SIZE,  # > 1: p×p pixel blocks as channels (fewer, cheaper full-resolution layers)
    "conditioning": Registry("ddpm.unet", "CONDITIONINGS"),  # how t (and the context) enter each residual block
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
        "schedule": Registry("ddpm.schedule", "SCHEDULES"),
        "beta_start": real(0, 1, lo_open=True, hi_open=True),
        "beta_end": real(0, 1, lo_open=True, hi_open=True),
        "prediction": Registry("ddpm.diffusion", "PREDICTIONS"),
        "weighting": Registry("ddpm.diffusion", "WEIGHTINGS"),
        "snr_gamma": real(0, 1000, lo_open=True),
    },
    "model": {**MODEL, "patch_size": MNIST_PATCH_SIZE},
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
        "route": Registry("ddpm.completion", "GRADIENT_ROUTES"),
        **SAMPLING,
        "seed": SEED,
    },
    "sweep_mnist_cfg": {
        "guidance_scales": real_list(-1e-9, MAX_SCALE),
        "prompts": library_check("ddpm.labels", "parse_digit_prompts", str_list()),  # each names one digit
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


def cross_checks(p: dict[str, dict[str, Any]]) -> None:
    """Checks across keys. The library modules they import (ddpm.schedule, ddpm.data, ddpm.samplers) are imported
    only where a section holds the key whose check declares that module (diffusion.schedule, model.patch_size, a
    sampler key), so a stage's declared deps (ddpm.pipeline) cover them."""
    d = p.get("diffusion")
    if d:  # the schedule's own rules (ddpm.schedule, which the diffusion section's schedule key reads)
        try:
            importlib.import_module("ddpm.schedule").named_betas(d["schedule"], d["T"], beta_start=d["beta_start"],
                                                                 beta_end=d["beta_end"])
        except ValueError as e:
            raise ParamError(f"params.yaml: diffusion.{e}") from None
    tm = p.get("train_mnist")
    if tm and tm["monitor_judge_n"] == 1:
        raise ParamError("params.yaml: train_mnist.monitor_judge_n = 1: fid_clf needs at least 2 samples; set it to 0 "
                         "(off) or ≥ 2")
    sizes = {"model": importlib.import_module("ddpm.data").MNIST_SHAPE[-1] if "model" in p else None,
             "celeba_model": p.get("download_celeba", {}).get("image_size")}
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


def _check_steps(name: str, section: dict[str, Any], d: dict[str, Any]) -> None:
    """Step counts within diffusion.T, and the ancestral sampler over all of them."""
    for key in ("steps", "monitor_steps"):
        if key in section and section[key] > d["T"]:
            raise ParamError(f"params.yaml: {name}.{key} = {section[key]}: must be ≤ diffusion.T = {d['T']}")
    if "sampler" in section:  # the samplers' own rule (ddpm.samplers, which a sampler key reads)
        try:
            importlib.import_module("ddpm.samplers").check_sampler(section["sampler"], section["steps"], d["T"])
        except ValueError as e:
            raise ParamError(f"params.yaml: {name}.{str(e).replace(' T = ', ' diffusion.T = ')}") from None
