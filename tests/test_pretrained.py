"""Model folders: save_pretrained → load_pretrained gives the same network without params.yaml; every damaged folder
is refused in one line naming the file."""
import json

import pytest
import torch

from ddpm.diffusion import Diffusion
from ddpm.modelfolder import CONFIG, GUIDE, WEIGHTS, ModelFolderError, read_config
from ddpm.pretrained import load_pretrained, save_pretrained
from ddpm.unet import UNet
from tests.conftest import randomize, tiny_unet

DIFFUSION = {"T": 100, "schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "prediction": "eps",
             "weighting": "none", "snr_gamma": 5.0}


def write_folder(folder, **unet):
    torch.manual_seed(0)
    model = randomize(tiny_unet(**unet)).eval()
    save_pretrained(folder, model, DIFFUSION, sample_shape=(1, 28, 28), guide=model.state_dict(),
                    about={"data": "MNIST, 256 training digits", "training": {"epochs": 2, "steps": 8},
                           "guide": {"step": 3}}, metrics={"recognizable": 0.5, "probe": "N = 16"})
    return model


def test_a_folder_describes_and_rebuilds_its_model(tmp_path):
    model = write_folder(tmp_path / "m", patch_size=2, conditioning="scale_shift")
    loaded, diffusion, config = load_pretrained(tmp_path / "m")
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 50, 99])
    with torch.no_grad():
        assert torch.equal(loaded(x, t), model(x, t))
        assert torch.equal(UNet.from_pretrained(tmp_path / "m")(x, t), model(x, t))
    assert torch.equal(Diffusion.from_pretrained(tmp_path / "m").betas, diffusion.betas) and diffusion.T == 100
    assert config["unet"]["patch_size"] == 2 and config["sample_shape"] == [1, 28, 28]
    assert config["guide"] == {"file": GUIDE, "step": 3} and config["ddpm_version"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: ddpm-dvc") and "| recognizable (after the last epoch, N = 16) | 0.5 |" in card


def test_autoguidance_comes_from_the_folder(tmp_path):
    write_folder(tmp_path / "m")
    guided, _, _ = load_pretrained(tmp_path / "m", autoguidance=1.5)
    assert type(guided).__name__ == "AutoGuidance"
    (tmp_path / "m" / GUIDE).unlink()
    with pytest.raises(ModelFolderError, match="guide.safetensors: not found; this model kept no early weights"):
        load_pretrained(tmp_path / "m", autoguidance=1.5)


@pytest.mark.parametrize("damage, says", [
    (lambda f: (f / CONFIG).unlink(), "config.json: not found"),
    (lambda f: (f / CONFIG).write_text("{not json"), "config.json: not valid JSON"),
    (lambda f: (f / CONFIG).write_text('{"format": "diffusers"}'), "not a ddpm-model config"),
    (lambda f: (f / CONFIG).write_text(json.dumps({**read_config(f), "format_version": 9})), "format version 9"),
    (lambda f: (f / CONFIG).write_text(json.dumps({**read_config(f), "unet": None})), "no 'unet' section"),
    (lambda f: (f / CONFIG).write_text(json.dumps({**read_config(f), "unet": {"channels": -3}})),
     "its 'unet' section does not build a UNet"),
    (lambda f: (f / CONFIG).write_text(json.dumps({**read_config(f), "unet": {**read_config(f)["unet"], "channels": 16,
                                                                          "groups": 8}})), "does not fit the network"),
    (lambda f: (f / CONFIG).write_text(json.dumps({**read_config(f), "diffusion": {"T": 100}})),
     "its 'diffusion' section is incomplete"),
    (lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:1000]), "not a readable safetensors file"),
    (lambda f: (f / WEIGHTS).write_bytes(b"PK\x03\x04 a zip, say"), "not a readable safetensors file"),
    (lambda f: (f / WEIGHTS).unlink(), "model.safetensors: not found"),
])
def test_a_damaged_folder_is_refused_in_one_line(tmp_path, damage, says):
    folder = tmp_path / "m"
    write_folder(folder)
    damage(folder)
    with pytest.raises(ModelFolderError, match=says) as e:
        load_pretrained(folder)
    assert "\n" not in str(e.value)


def test_no_folder_at_all(tmp_path):
    with pytest.raises(ModelFolderError, match="no such model folder"):
        read_config(tmp_path / "nothing")
