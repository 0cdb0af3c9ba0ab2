"""Stage download_celeba: official CelebA files (downloaded, or placed by hand), checked, preprocessed once to a
uint8 tensor at download_celeba.image_size, and clip-data.csv (the course's file if given, else written from the attributes).
"""
from pathlib import Path

from ddpm import params
from ddpm.celeba import download_celeba, preprocess, read_clip_data, verify_layout, write_clip_data
from ddpm.io import atomic_path, save_torch
from ddpm.stage import run_stage

OUT = Path("data")


def main() -> None:
    cp = params.load_stage("download_celeba")["download_celeba"]
    root = Path(cp["root"])
    folder = root / "celeba"
    if not (folder / "list_attr_celeba.txt").exists():
        if not cp["download"]:
            raise FileNotFoundError(f"{folder}: no CelebA files; place img_align_celeba/, list_attr_celeba.txt and "
                                    "list_eval_partition.txt there, or set download_celeba.download: true")
        download_celeba(root)
    attrs = verify_layout(folder)
    given = Path(cp["clip_data"])
    if given.exists():  # the course's clip-data.csv: its rows decide which images train
        rows, emb = read_clip_data(given, known_images=set(attrs.index))
        with atomic_path(OUT / "clip-data.csv") as tmp:
            rows.to_csv(tmp, index=False)
        print(f"{given}: {len(rows)} images{', with CLIP embeddings' if emb is not None else ''}")
    else:
        rows = write_clip_data(attrs, OUT / "clip-data.csv")
        print(f"{given} not found: wrote {OUT / 'clip-data.csv'} with captions from the 40 attributes")
    names = list(rows["image"])[: cp["max_images"] or None]
    images = preprocess(folder, names, cp["image_size"])
    save_torch({"names": names, "images": images}, OUT / "images.pt")
    print(f"{len(names)} faces at {cp['image_size']}×{cp['image_size']} in {OUT / 'images.pt'}")


if __name__ == "__main__":
    run_stage(main)
