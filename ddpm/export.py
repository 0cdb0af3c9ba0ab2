"""A model folder as a diffusers pipeline folder: `ddpm export MODEL --to diffusers OUT`.

OUT holds model_index.json, unet/ (our network as `ddpm.DDPMUNet`, its EMA weights as safetensors) and scheduler/ (a
`DDPMScheduler` with the model's β schedule, prediction and x̂_0 clipping: the ancestral sampler of Ho et al.), so
`import ddpm.diffusers_unet; diffusers.DDPMPipeline.from_pretrained(OUT)` samples it (diffusers loads a component
class only from a module already imported); any other diffusers scheduler can be built from its config.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .modelfolder import read_config
from .unet import UNet

SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}  # ours → diffusers' name of the same β_t
PREDICTIONS = {"eps": "epsilon", "v": "v_prediction"}


def diffusers_scheduler_config(diffusion: dict[str, Any]) -> dict[str, Any]:
    """DDPMScheduler's settings for our `diffusion` section: same T, β_t, prediction; x̂_0 clipped to [−1, 1] and the
    posterior variance β̃_t, as our ancestral sampler."""
    return {"num_train_timesteps": diffusion["T"], "beta_schedule": SCHEDULES[diffusion["schedule"]],
            "beta_start": diffusion["beta_start"], "beta_end": diffusion["beta_end"],
            "prediction_type": PREDICTIONS[diffusion["prediction"]], "variance_type": "fixed_small",
            "clip_sample": True, "clip_sample_range": 1.0}


def export_diffusers(folder: str | Path, out: str | Path) -> list[str]:
    """Write the diffusers pipeline folder; returns notes on what does not carry over (one line each)."""
    try:
        diffusers = importlib.import_module("diffusers")
        bridge = importlib.import_module("ddpm.diffusers_unet")  # needs diffusers: loaded only here
    except ImportError:
        raise RuntimeError("exporting to diffusers needs diffusers: pip install 'ddpm-dvc[bench]'") from None
    config = read_config(folder)
    unet = bridge.DDPMUNet(**config["unet"], sample_size=config["sample_shape"][-1])
    unet.unet.load_state_dict(UNet.from_pretrained(folder).state_dict())
    scheduler = diffusers.DDPMScheduler(**diffusers_scheduler_config(config["diffusion"]))
    diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(str(out), safe_serialization=True)
    notes = []
    if config.get("guide"):
        notes.append("autoguidance (guide.safetensors) has no diffusers pipeline: the export samples the plain model")
    if config["unet"].get("context_dim"):
        notes.append("DDPMPipeline is unconditional: it samples this model with the zero (dropped) context; pass "
                     "context=… to the unet for a label or an embedding")
    return notes
