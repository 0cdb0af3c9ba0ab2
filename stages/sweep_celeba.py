"""Stage sweep_celeba@<w>: prompted faces at one guidance scale w (and 'uncond'), with CLIP score and diversity.

Usage: python stages/sweep_celeba.py W|uncond.
"""
import sys
import time
from pathlib import Path

import torch

from ddpm import distributed, params
from ddpm.cli import run_stage
from ddpm.clip import ClipEncoder, clip_score, embedding_diversity
from ddpm.factory import load_for_sampling, make_diffusion, make_unet
from ddpm.io import load_torch, save_json, save_torch

EMB, CHECKPOINT = Path("data/celeba/clip/embeddings.pt"), Path("data/celeba/model/checkpoint.pt")


def main() -> None:
    if len(sys.argv) != 2:
        raise ValueError("usage: sweep_celeba.py GUIDANCE_SCALE|uncond")
    unconditional = sys.argv[1] == "uncond"
    w = 0.0 if unconditional else float(sys.argv[1])
    p = params.load(["diffusion", "celeba_model", "celeba_sweep", "clip", "celeba"])
    sp = p["celeba_sweep"]
    world, device = distributed.init(sp["device"])
    emb = load_torch(EMB, "CLIP embeddings")
    text = torch.stack([emb["texts"][q] for q in sp["prompts"]]).repeat_interleave(sp["n_per_prompt"], 0)
    diffusion = make_diffusion(p["diffusion"])
    model = load_for_sampling(CHECKPOINT, make_unet(p["celeba_model"], 3, diffusion.T, context_dim=emb["dim"]), device, sp["amp"])
    size = p["celeba"]["image_size"]
    t0 = time.time()
    x = distributed.sample_sharded(diffusion, model, len(text), (3, size, size), sp["batch_size"], sp["seed"], world,
                                   device, context=text * (0.0 if unconditional else 1.0), guidance=w,
                                   steps=None if sp["steps"] == diffusion.T else sp["steps"])
    distributed.shutdown()
    if not world.is_main:  # rank 0 scores and writes
        return
    seconds = time.time() - t0
    cp = p["clip"]
    encoder = ClipEncoder.from_params(cp, device)
    image_emb = encoder.encode_images(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
    per_prompt = image_emb.view(len(sp["prompts"]), sp["n_per_prompt"], -1)
    result = {"guidance": "uncond" if unconditional else w, "clip_score": float(clip_score(image_emb, text).mean()),
              "diversity": sum(embedding_diversity(e) for e in per_prompt) / len(per_prompt),
              "n": len(x), "seconds": seconds, "device": str(device), "processes": world.size}
    save_json(result, Path("reports/celeba/sweep") / f"{sys.argv[1]}.json")
    save_torch({"prompts": sp["prompts"], "samples": x.view(len(sp["prompts"]), sp["n_per_prompt"], 3, size, size)},
               Path("data/celeba/sweep") / f"{sys.argv[1]}.pt")
    print(result)


if __name__ == "__main__":
    run_stage(main)
