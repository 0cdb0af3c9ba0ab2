"""Stage embed_clip: CLIP image embeddings of every training face (batched, resumable by chunks) and CLIP text
embeddings of the monitoring and sampling prompts. Embeddings given in clip-data.csv are used as they are.
"""
from pathlib import Path

import torch

from ddpm import params
from ddpm.celeba import read_clip_data
from ddpm.context import ClipEncoder, embed_images_in_chunks
from ddpm.device import pick_device
from ddpm.io import load_torch, save_torch
from ddpm.stage import run_stage

DATA, OUT = Path("data"), Path("data/clip")
CHUNKS = Path("data/resume/embed_clip")  # where a killed run resumes: not an output (DVC deletes those)


def main() -> None:
    p = params.load_stage("embed_clip")
    ep = p["embed_clip"]
    encoder = ClipEncoder.from_params(p["clip"], pick_device(ep["device"]))
    data = load_torch(DATA / "images.pt", "preprocessed faces")
    names, images = data["names"], data["images"]
    _, given = read_clip_data(DATA / "clip-data.csv", dim=encoder.dim)
    if given is not None:
        embeddings = torch.from_numpy(given[: len(names)])
        embeddings = embeddings / embeddings.norm(dim=1, keepdim=True)
        print(f"using the {embeddings.shape[1]}-d embeddings given in clip-data.csv")
    else:
        embeddings = embed_images_in_chunks(encoder, images, names, CHUNKS, ep["chunk"], ep["batch_size"],
                                            p["clip"]["pretrained"])
    prompts = sorted(set(p["train_celeba"]["monitor_prompts"]) | set(p["sweep_celeba"]["prompts"]))
    texts = dict(zip(prompts, encoder.encode_texts(prompts)))
    save_torch({"images": embeddings, "texts": texts, "dim": encoder.dim, "model": encoder.name}, OUT / "embeddings.pt")
    print(f"{len(embeddings)} image and {len(texts)} text embeddings ({encoder.dim}-d) in {OUT / 'embeddings.pt'}")


if __name__ == "__main__":
    run_stage(main)
