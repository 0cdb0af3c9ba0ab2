"""Stage embed_clip: CLIP image embeddings of every training face (batched, resumable by chunks) and CLIP text
embeddings of the monitoring and sampling prompts. Embeddings given in clip-data.csv are used as they are.
"""
from pathlib import Path

import hashlib

import torch
from tqdm.auto import tqdm

from ddpm import params
from ddpm.celeba import read_clip_data
from ddpm.cli import run_stage
from ddpm.clip import ClipEncoder
from ddpm.factory import pick_device
from ddpm.io import load_torch, save_torch

DATA, OUT = Path("data/celeba"), Path("data/celeba/clip")


def main() -> None:
    p = params.load(["clip", "celeba_train", "celeba_sweep"])
    cp = p["clip"]
    encoder = ClipEncoder.from_params(cp, pick_device(cp["device"]))
    name = encoder.name
    data = load_torch(DATA / "images.pt", "preprocessed faces")
    names, images = data["names"], data["images"]
    _, given = read_clip_data(DATA / "clip-data.csv", dim=encoder.dim)
    # a chunk is reused only if made by the same CLIP from the same faces at the same offsets
    key = {"model": name, "pretrained": cp["pretrained"], "chunk": cp["chunk"], "shape": list(images.shape),
           "names": hashlib.sha256("\n".join(names).encode()).hexdigest()}
    if given is not None:
        embeddings = torch.from_numpy(given[: len(names)])
        embeddings = embeddings / embeddings.norm(dim=1, keepdim=True)
        print(f"using the {embeddings.shape[1]}-d embeddings given in clip-data.csv")
    else:
        chunks = []
        for c, start in enumerate(tqdm(range(0, len(names), cp["chunk"]), desc="CLIP image embeddings")):
            path = OUT / f"chunk_{c:05d}.pt"
            saved = torch.load(path, weights_only=True) if path.exists() else None
            if saved is None or saved["key"] != key:  # not done yet, or made from other faces or another model
                part = images[start:start + cp["chunk"]]
                emb = torch.cat([encoder.encode_images(part[i:i + cp["batch_size"]])
                                 for i in range(0, len(part), cp["batch_size"])])
                save_torch({"key": key, "emb": emb}, path)
                saved = {"emb": emb}
            chunks.append(saved["emb"])
        embeddings = torch.cat(chunks)
    prompts = sorted(set(p["celeba_train"]["monitor_prompts"]) | set(p["celeba_sweep"]["prompts"]))
    texts = dict(zip(prompts, encoder.encode_texts(prompts)))
    save_torch({"images": embeddings, "texts": texts, "dim": encoder.dim, "model": name}, OUT / "embeddings.pt")
    print(f"{len(embeddings)} image and {len(texts)} text embeddings ({encoder.dim}-d) in {OUT / 'embeddings.pt'}")


if __name__ == "__main__":
    run_stage(main)
