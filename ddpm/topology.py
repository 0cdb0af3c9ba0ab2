"""The pipeline's topology: which params each stage reads. One section per stage, named like the stage, plus shared
sections (`runtime`, `diffusion`, `model`, `clip`, `celeba_model`), or single keys of another stage's section
("sweep_celeba.prompts"). STAGE_SECTIONS is the single record: `params.load_stage(name)` returns exactly those and
nothing else, and ddpm.pipeline declares the same in dvc.yaml."""
from __future__ import annotations

from .schema import RUNTIME, SCHEMA
from .validators import ParamError

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
    "embed_clip": ("runtime", "clip", "train_celeba.monitor_prompts", "sweep_celeba.prompts"),  # the prompts only
    "train_celeba": ("runtime", "diffusion", "celeba_model"),
    "sweep_celeba": ("runtime", "diffusion", "clip", "download_celeba"),
    "report_celeba": ("clip", "train_celeba", "sweep_celeba"),
}
STAGE_OWN = {name: name in SCHEMA for name in STAGE_SECTIONS}  # report_celeba has no section of its own
# A stage's own section may override any key of `runtime` (e.g. sample.nproc: 2 where runtime.nproc is 1).
OPTIONAL: dict[str, set[str]] = {name: set(RUNTIME) for name in STAGE_SECTIONS
                                 if STAGE_OWN[name] and "runtime" in STAGE_SECTIONS[name]}


def split_entry(entry: str) -> tuple[str, str | None]:
    """"sweep_celeba.prompts" → ("sweep_celeba", "prompts"); "diffusion" → ("diffusion", None)."""
    section, _, key = entry.partition(".")
    return section, key or None


def stage_sections(stage: str) -> list[str]:
    """The params sections `stage` reads (its own first), as dvc.yaml must declare them."""
    if stage not in STAGE_SECTIONS:
        raise ParamError(f"unknown stage {stage!r}; known stages: {', '.join(STAGE_SECTIONS)}")
    return ([stage] if STAGE_OWN[stage] else []) + list(STAGE_SECTIONS[stage])
