"""CelebA: the official aligned images and attribute files, checked, preprocessed once to a uint8 tensor,
and `clip-data.csv`, the list of training images (with optional captions and precomputed CLIP embeddings).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from .io import DataError, atomic_path

FULL_COUNT = 202_599  # images in img_align_celeba
REQUIRED = ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt")
EMBEDDING_COLUMN = re.compile(r"^(?:emb|embedding|clip|e)?_?(\d+)$")


def download_celeba(root: Path) -> None:
    """torchvision's official download (Google Drive); quota failures become one clear message."""
    from torchvision.datasets import CelebA

    try:
        CelebA(str(root), split="all", target_type="attr", download=True)
    except Exception as e:  # Drive quotas, HTML instead of a zip, no network…
        raise DataError(
            f"CelebA download failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); Google Drive "
            f"often refuses it (daily quota). Download img_align_celeba.zip, list_attr_celeba.txt and "
            f"list_eval_partition.txt by hand from the CelebA site, unzip them into {root / 'celeba'} and re-run") from e


def read_attributes(path: Path) -> pd.DataFrame:
    """list_attr_celeba.txt → a DataFrame indexed by file name, 40 columns of ±1."""
    try:
        lines = path.read_text().splitlines()
        names = lines[1].split()
        rows = [line.split() for line in lines[2:] if line.strip()]
    except (OSError, IndexError) as e:
        raise DataError(f"{path}: unreadable attribute file ({e})") from None
    bad = next((i + 3 for i, r in enumerate(rows) if len(r) != len(names) + 1), None)
    if bad is not None:
        raise DataError(f"{path}: line {bad} has the wrong number of columns (expected {len(names) + 1})")
    return pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=names).astype(int)


def verify_layout(folder: Path) -> pd.DataFrame:
    """Check the official layout and that images, attributes and partitions agree; return the attributes."""
    for name in REQUIRED:
        if not (folder / name).exists():
            raise DataError(f"{folder / name}: missing; place the official CelebA files under {folder} "
                            f"({', '.join(REQUIRED)})")
    attrs = read_attributes(folder / "list_attr_celeba.txt")
    partition = [line.split()[0] for line in (folder / "list_eval_partition.txt").read_text().splitlines() if line.strip()]
    images = {p.name for p in (folder / "img_align_celeba").iterdir() if p.suffix.lower() in (".jpg", ".png")}
    if set(partition) != set(attrs.index):
        raise DataError(f"{folder}: list_eval_partition.txt and list_attr_celeba.txt list different images")
    missing = sorted(set(attrs.index) - images)
    if missing:
        raise DataError(f"{folder / 'img_align_celeba'}: {len(missing)} listed images are missing (first: {missing[0]})")
    if len(attrs) != FULL_COUNT:
        print(f"warning: {len(attrs)} images listed, the full CelebA has {FULL_COUNT}")
    return attrs


def caption(attrs: pd.Series) -> str:
    """A caption from CelebA's 40 attributes, e.g. 'a photo of a smiling woman with blond hair'."""
    on = {k for k, v in attrs.items() if v == 1}
    person = ("young " if "Young" in on else "old " if "Gray_Hair" in on else "") + ("man" if "Male" in on else "woman")
    lead = "smiling " if "Smiling" in on else ""
    hair = next((f"{c.split('_')[0].lower()} hair" for c in ("Blond_Hair", "Black_Hair", "Brown_Hair", "Gray_Hair") if c in on),
                "no hair" if "Bald" in on else None)
    extras = [w for k, w in (("Eyeglasses", "glasses"), ("Wearing_Hat", "a hat"), ("Mustache", "a mustache"),
                             ("Goatee", "a goatee"), ("Wavy_Hair", "wavy hair"), ("Bangs", "bangs")) if k in on]
    parts = [p for p in [hair] + extras if p]
    text = f"a photo of a {lead}{person}"
    return text + (" with " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else "")


def write_clip_data(attrs: pd.DataFrame, path: Path) -> pd.DataFrame:
    """clip-data.csv from the attribute list: one row per image, with a caption."""
    df = pd.DataFrame({"image": attrs.index, "caption": [caption(row) for _, row in attrs.iterrows()]})
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return df


def read_clip_data(path: Path, known_images: set[str] | None = None, dim: int | None = None) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Parse clip-data.csv: an `image` column, optional `caption`, optional embedding columns (emb_0 … emb_{D-1}).

    Returns (rows, embeddings or None). Missing columns, unknown images, NaN or wrong-dimension embeddings stop
    with one line naming the first offending rows (file line numbers: the header is line 1).
    """
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    if "image" not in df.columns:
        raise DataError(f"{path}: no 'image' column (columns: {', '.join(map(str, df.columns[:8]))}); "
                        "the first column must name CelebA files such as 000001.jpg")
    if known_images is not None:
        unknown = [i for i, name in enumerate(df["image"]) if name not in known_images]
        if unknown:
            raise DataError(f"{path}: unknown image names on lines {_lines(unknown)} (e.g. {df['image'].iloc[unknown[0]]!r})")
    emb_cols = sorted((c for c in df.columns if EMBEDDING_COLUMN.match(str(c))), key=lambda c: int(EMBEDDING_COLUMN.match(str(c))[1]))
    if not emb_cols:
        return df, None
    emb = df[emb_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
    if len(bad):
        raise DataError(f"{path}: NaN or non-numeric embeddings on lines {_lines(bad.tolist())}")
    if dim is not None and emb.shape[1] != dim:
        raise DataError(f"{path}: embeddings have {emb.shape[1]} columns but the CLIP model gives {dim}; "
                        "recompute them (delete the embedding columns) or set clip.model to the model that made them")
    return df, emb


def _lines(rows: list[int], show: int = 5) -> str:
    lines = [str(r + 2) for r in rows[:show]]  # +1 for the header, +1 for 1-based lines
    return ", ".join(lines) + (f" … ({len(rows)} rows)" if len(rows) > show else "")


def load_face(path: Path, size: int) -> np.ndarray:
    """An aligned CelebA image, center-cropped to a square and resized to size × size, as uint8 (3, H, W)."""
    try:
        return _load_face(path, size)
    except (OSError, SyntaxError, ValueError) as e:  # PIL: truncated, not an image, unreadable
        raise DataError(f"{path}: unreadable image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                        "restore it from the official CelebA files, or drop its row from clip-data.csv") from None


def _load_face(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
        return np.asarray(img).transpose(2, 0, 1).copy()


def preprocess(folder: Path, names: list[str], size: int) -> torch.Tensor:
    """All listed images as one uint8 tensor (N, 3, size, size), so training reads no JPEG."""
    out = torch.empty(len(names), 3, size, size, dtype=torch.uint8)
    for i, name in enumerate(tqdm(names, desc=f"CelebA → {size}×{size}", mininterval=2)):
        out[i] = torch.from_numpy(load_face(folder / "img_align_celeba" / name, size))
    return out


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float [−1, 1]."""
    return images.float().div(127.5).sub(1.0)


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    """Flip half the faces left–right (faces, unlike digits, are symmetric)."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)
