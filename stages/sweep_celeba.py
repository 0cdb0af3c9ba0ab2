"""Stage sweep_celeba: prompted faces at each guidance scale w, and with the context dropped ('uncond'), scored by
CLIP score (adherence to the prompt) and diversity."""
import time
from pathlib import Path

import torch

from ddpm import distributed, params
from ddpm.context import ClipEncoder, load_embeddings, prompt_embeddings
from ddpm.diffusion import Diffusion
from ddpm.io import save_json, save_torch
from ddpm.metrics import clip_score, embedding_diversity
from ddpm.pretrained import load_unet
from ddpm.stage import run_stage

EMB, MODEL = Path("data/clip/embeddings.pt"), Path("data/model")
OUT, SAMPLES = Path("reports/sweep_celeba"), Path("data/sweep/samples.pt")


def main() -> None:
    p = params.load_stage("sweep_celeba")
    sp, size = p["sweep_celeba"], p["download_celeba"]["image_size"]
    world, device = distributed.init(sp["device"])
    emb = load_embeddings(EMB)
    text = prompt_embeddings(emb, sp["prompts"], EMB).repeat_interleave(sp["n_per_prompt"], 0)
    diffusion = Diffusion.from_params(p["diffusion"])
    model = load_unet(MODEL, p["diffusion"], device, sp["amp"], batch=(2 * sp["batch_size"], "sweep_celeba.batch_size"))
    encoder = ClipEncoder.from_params(p["clip"], device) if world.is_main else None
    rows, samples = [], {}
    for w in [*sp["guidance_scales"], "uncond"]:
        t0 = time.time()
        x = distributed.sample_sharded(diffusion, model, len(text), (3, size, size), sp["batch_size"], sp["seed"], world,
                                       device, context=text * (0.0 if w == "uncond" else 1.0),
                                       guidance=0.0 if w == "uncond" else w, sampler=sp["sampler"], steps=sp["steps"],
                                       eta=sp["eta"])
        seconds = time.time() - t0
        if world.is_main:  # rank 0 scores and writes
            image_emb = encoder.encode_images_batched(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8), sp["batch_size"])
            per_prompt = image_emb.view(len(sp["prompts"]), sp["n_per_prompt"], -1)
            rows.append({"guidance": w, "clip_score": float(clip_score(image_emb, text).mean()),
                         "diversity": sum(embedding_diversity(e) for e in per_prompt) / len(per_prompt),
                         "n": len(x), "seconds": seconds, "device": str(device), "processes": world.size})
            samples[str(w)] = x.view(len(sp["prompts"]), sp["n_per_prompt"], 3, size, size)
            print(rows[-1])
    distributed.shutdown()
    if world.is_main:
        save_json(rows, OUT / "table.json")
        save_json([{k: r[k] for k in ("guidance", "clip_score", "diversity")} for r in rows[:-1]], OUT / "clip_vs_scale.json")
        save_torch({"prompts": sp["prompts"], "samples": samples}, SAMPLES)


if __name__ == "__main__":
    run_stage(main)
