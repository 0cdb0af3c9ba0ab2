"""Generated data for checks that run without downloads: CelebA's official layout with generated faces."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ATTRS = ["Bald", "Bangs", "Black_Hair", "Blond_Hair", "Eyeglasses", "Male", "Smiling", "Wearing_Hat", "Young"]


def make_celeba(folder: Path, n: int = 24) -> Path:
    """The official layout: img_align_celeba/*.jpg (178×218), list_attr_celeba.txt, list_eval_partition.txt."""
    rng = np.random.default_rng(0)
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    yy, xx = np.mgrid[0:218, 0:178]
    for i, name in enumerate(names):  # a bright ellipse ("face") on a coloured background
        img = np.empty((218, 178, 3), np.uint8)
        img[:] = rng.integers(0, 255, 3)
        face = ((xx - 89) / 50) ** 2 + ((yy - 115) / 65) ** 2 < 1
        img[face] = rng.integers(120, 255, 3)
        Image.fromarray(img).save(folder / "img_align_celeba" / name, quality=90)
    attrs = rng.choice([-1, 1], size=(n, len(ATTRS)))
    lines = [str(n), " ".join(ATTRS)] + [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, attrs)]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (folder / "list_eval_partition.txt").write_text("".join(f"{name} {i % 3}\n" for i, name in enumerate(names)))
    return folder
