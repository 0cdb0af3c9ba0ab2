"""The CelebA / CLIP path on fixtures: the official layout with generated faces, and a tiny random CLIP."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ddpm.celeba import caption, preprocess, read_clip_data, verify_layout, write_clip_data
from ddpm.data import DataError
from ddpm.params import read_yaml
from benchmarks.synthetic import ATTRS, make_celeba
from tests.conftest import stage_env

ROOT = Path(__file__).resolve().parents[1]
TINY_CLIP = ROOT / "tests" / "fixtures" / "tiny-clip.json"
def test_layout_captions_and_preprocessing(tmp_path):
    folder = make_celeba(tmp_path / "celeba")
    attrs = verify_layout(folder)
    assert len(attrs) == 24 and list(attrs.columns) == ATTRS
    row = pd.Series({a: -1 for a in ATTRS} | {"Smiling": 1, "Blond_Hair": 1, "Eyeglasses": 1})
    assert caption(row) == "a photo of a smiling woman with blond hair and glasses"
    assert caption(pd.Series({a: -1 for a in ATTRS} | {"Male": 1})) == "a photo of a man"
    x = preprocess(folder, list(attrs.index[:3]), 16)
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.uint8
    (folder / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(DataError, match="1 listed images are missing .first: 000005.jpg"):
        verify_layout(folder)


def test_clip_data_csv_errors_name_the_rows(tmp_path):
    attrs = verify_layout(make_celeba(tmp_path / "celeba", 6))
    df = write_clip_data(attrs, tmp_path / "clip-data.csv")
    rows, emb = read_clip_data(tmp_path / "clip-data.csv", known_images=set(attrs.index))
    assert emb is None and list(rows.columns) == ["image", "caption"] and rows["caption"].str.startswith("a photo").all()

    bad = df.copy()
    bad.loc[3, "image"] = "999999.jpg"
    bad.to_csv(tmp_path / "unknown.csv", index=False)
    with pytest.raises(DataError, match="unknown image names on lines 5 "):
        read_clip_data(tmp_path / "unknown.csv", known_images=set(attrs.index))

    with_emb = pd.concat([df, pd.DataFrame(np.ones((6, 4)), columns=[f"emb_{i}" for i in range(4)])], axis=1)
    with_emb.loc[[1, 4], "emb_2"] = np.nan
    with_emb.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(DataError, match="NaN or non-numeric embeddings on lines 3, 6"):
        read_clip_data(tmp_path / "nan.csv")
    with_emb.fillna(0.5).to_csv(tmp_path / "dim.csv", index=False)
    with pytest.raises(DataError, match="embeddings have 4 columns but the CLIP model gives 32"):
        read_clip_data(tmp_path / "dim.csv", dim=32)
    assert read_clip_data(tmp_path / "dim.csv", dim=4)[1].shape == (6, 4)
    df.drop(columns="image").to_csv(tmp_path / "noimage.csv", index=False)
    with pytest.raises(DataError, match="no 'image' column"):
        read_clip_data(tmp_path / "noimage.csv")


def test_celeba_pipeline_runs_end_to_end_on_fixtures(tmp_path):
    dst = tmp_path / "project"
    dst.mkdir()
    for item in ("ddpm", "stages", "celeba", "dvc.yaml", "params.yaml", ".dvc", ".dvcignore", ".gitignore"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / item)
    shutil.rmtree(dst / ".dvc" / "cache", ignore_errors=True)
    shutil.rmtree(dst / ".dvc" / "tmp", ignore_errors=True)
    for scratch in ("celeba/.dvc/cache", "celeba/.dvc/tmp", "celeba/data", "celeba/reports"):
        shutil.rmtree(dst / scratch, ignore_errors=True)
    make_celeba(dst / "celeba" / "data" / "raw" / "celeba", 24)
    p = read_yaml(dst / "celeba" / "params.yaml")
    p["diffusion"]["T"] = 20
    p["download_celeba"].update(download=False, image_size=16)
    p["clip"].update(model="tiny-clip", pretrained="none", config=str(TINY_CLIP))
    p["embed_clip"].update(batch_size=8, chunk=10)
    p["celeba_model"].update(channels=8, channel_mults=[1, 2], num_res_blocks=1, attention_levels=[1], heads=2, groups=4)
    p["train_celeba"].update(epochs=2, batch_size=8, log_every=1, warmup_steps=1, monitor_steps=3,
                             monitor_prompts=["a photo of a man", "a photo of a woman"])
    p["sweep_celeba"].update(guidance_scales=[0.0, 2.0], prompts=["a photo of a man", "a photo of a smiling woman"],
                             n_per_prompt=2, steps=4, batch_size=4)
    (dst / "celeba" / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], git + ["add", "-A"], git + ["commit", "-qm", "fixture"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
    r = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=dst / "celeba", capture_output=True, text=True,
                       env=stage_env(dst))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    emb = torch.load(dst / "celeba/data/clip/embeddings.pt", weights_only=True)
    assert emb["images"].shape == (24, 32) and len(list((dst / "celeba/data/resume/embed_clip").glob("chunk_*.pt"))) == 3
    assert set(emb["texts"]) == {"a photo of a man", "a photo of a woman", "a photo of a smiling woman"}
    assert (dst / "celeba/data/clip-data.csv").read_text().startswith("image,caption")
    samples = torch.load(dst / "celeba/data/sweep/samples.pt", weights_only=True)["samples"]
    assert samples["2.0"].shape == (2, 2, 3, 16, 16) and set(samples) == {"0.0", "2.0", "uncond"}
    md = (dst / "celeba/reports/celeba.md").read_text()
    assert "| uncond |" in md and "| 2.0 |" in md and (dst / "celeba/reports/figures/grid.png").stat().st_size > 1000
    assert len(list((dst / "celeba/reports/train_celeba/plots/images/monitor").glob("*.png"))) == 2


def test_missing_and_damaged_faces_are_named(tmp_path):
    folder = make_celeba(tmp_path / "celeba", 6)
    (folder / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(DataError, match=r"img_align_celeba: 1 listed images are missing \(first: 000004.jpg\)"):
        verify_layout(folder)
    (folder / "img_align_celeba" / "000004.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DataError, match=r"000004.jpg: unreadable image .*drop its row from clip-data.csv"):
        preprocess(folder, [f"{i:06d}.jpg" for i in range(1, 7)], 16)
