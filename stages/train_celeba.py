"""Stage train_celeba: a CLIP-conditioned UNet on CelebA faces with classifier-free guidance.

Context in training: the CLIP image embedding of each face, multiplied by get_context_mask (dropped with
probability train_celeba.p_uncond). Monitoring after every epoch: the monitoring prompts' CLIP text embeddings.
"""
from pathlib import Path

from ddpm import distributed, params
from ddpm.celeba import random_hflip, to_model_range
from ddpm.context import load_embeddings, prompt_embeddings
from ddpm.dvccache import cached_output_file
from ddpm.guidance import context_dropout
from ddpm.io import load_torch
from ddpm.stage import run_stage
from ddpm.recipe import TrainingData, build_run

DATA, EMB = Path("data/images.pt"), Path("data/clip/embeddings.pt")
MODEL, LIVE = Path("data/model/checkpoint.pt"), Path("reports/train_celeba")
RESUME = Path("data/resume/train_celeba/checkpoint.pt")  # where a killed run resumes: not an output


def main() -> None:
    p = params.load_stage("train_celeba")
    tp = p["train_celeba"]
    world, device = distributed.init(tp["device"])
    images = load_torch(DATA, "preprocessed faces")["images"][: tp["max_images"] or None]
    emb = load_embeddings(EMB)
    context = emb["images"].float()
    if len(context) < len(images):
        raise ValueError(f"{EMB}: {len(context)} image embeddings for {len(images)} faces; re-run dvc repro embed_clip")
    context = context[: len(images)]
    monitor_context = prompt_embeddings(emb, tp["monitor_prompts"], EMB)
    last = (MODEL, cached_output_file("train_celeba", "data/model", "checkpoint.pt"))  # its last finished run
    data = TrainingData(images, context, context_dropout(tp["p_uncond"]), lambda x: random_hflip(to_model_range(x)))
    run = build_run("train_celeba", tp, p["diffusion"], p["celeba_model"], data, device, world, running=RESUME,
                    resume_from=last, monitor_context=monitor_context, nrow=len(monitor_context),
                    about={"title": "CLIP-conditioned DDPM on CelebA", "data": f"CelebA, {len(images)} faces",
                           "context": f"CLIP image embeddings ({emb['model']})"},
                    model_section="celeba_model", image_size=images.shape[-1], clip=emb["model"])
    run.run(LIVE, MODEL)
    distributed.shutdown()


if __name__ == "__main__":
    run_stage(main)
