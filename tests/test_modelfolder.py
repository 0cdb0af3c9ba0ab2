"""ddpm/modelfolder.py: read_config, read_weights and load_into on a saved folder; their one-line ModelFolderErrors."""
import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from ddpm.modelfolder import CONFIG, FORMAT, FORMAT_VERSION, GUIDE, WEIGHTS, ModelFolderError, load_into, \
    read_config, read_weights
from tests.conftest import tiny_unet
from tests.test_pretrained import DIFFUSION, write_folder


@pytest.fixture
def folder(tmp_path):
    model = write_folder(tmp_path / "m")
    return tmp_path / "m", model


def refused(call, *args, words):
    with pytest.raises(ModelFolderError) as e:
        call(*args)
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
    return str(e.value)


def test_read_config(folder):
    path, model = folder
    config = read_config(str(path))  # a str works as well as a Path
    assert (config["format"], config["format_version"]) == (FORMAT, FORMAT_VERSION) == ("ddpm-model", 1)
    assert config["diffusion"] == DIFFUSION and config["unet"] == json.loads(json.dumps(model.config))
    assert config["sample_shape"] == [1, 28, 28] and config["training"] == {"epochs": 2, "steps": 8}


def test_read_weights_and_load_into(folder):
    path, model = folder
    state = read_weights(path)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) and state[k].device.type == "cpu" for k, v in model.state_dict().items())
    assert read_weights(path, GUIDE).keys() == state.keys()
    torch.manual_seed(1)
    fresh = tiny_unet().train()
    assert any(not torch.equal(fresh.state_dict()[k], v) for k, v in state.items())  # other weights before
    loaded = load_into(fresh, path)
    assert loaded is fresh and not loaded.training
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_a_missing_folder_or_config(tmp_path, folder):
    assert refused(read_config, tmp_path / "nothing", words="nothing: no such model folder").startswith(str(tmp_path))
    (tmp_path / "a-file").write_text("x")
    refused(read_config, tmp_path / "a-file", words="a-file: no such model folder")
    path, _ = folder
    (path / CONFIG).unlink()
    assert refused(read_config, path, words="config.json: not found") == \
        f"{path / CONFIG}: not found; {path} is not a model folder"


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe not utf-8", "config.json: not valid JSON (UnicodeDecodeError)"),
    (b"", "config.json: not valid JSON (JSONDecodeError)"),
    (b"[1, 2]", "config.json: not a ddpm-model config (format None)"),
    (b'"ddpm-model"', "not a ddpm-model config (format None)"),
    (b'{"format": "ddpm-model"}', "config.json: format version None; this release reads 1"),
    (b'{"format": "ddpm-model", "format_version": 2, "ddpm_version": "9.0"}', "use the ddpm release named in it (9.0)"),
    (b'{"format": "ddpm-model", "format_version": 1, "unet": {}}', "config.json: no 'diffusion' section"),
    (b'{"format": "ddpm-model", "format_version": 1, "unet": [], "diffusion": {}}', "no 'unet' section"),
])
def test_a_garbled_config(folder, content, words):
    path, _ = folder
    (path / CONFIG).write_bytes(content)
    refused(read_config, path, words=words)


def test_a_config_that_is_a_folder(folder):
    path, _ = folder
    (path / CONFIG).unlink()
    (path / CONFIG).mkdir()
    refused(read_config, path, words="config.json: not valid JSON (IsADirectoryError)")


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2], lambda data: b"", lambda data: struct.pack("<Q", 2**40) + b"{}",
    lambda data: struct.pack("<Q", 9) + b"not json!", lambda data: b"\x80\x04\x95 a torch pickle",
])
def test_a_truncated_or_foreign_weights_file(folder, damage):
    path, _ = folder
    (path / WEIGHTS).write_bytes(damage((path / WEIGHTS).read_bytes()))
    message = refused(read_weights, path, words="model.safetensors: not a readable safetensors file (")
    assert message.endswith("restore it (dvc checkout) or re-run the training stage")
    refused(load_into, tiny_unet(), path, words="not a readable safetensors file")


def test_missing_weights(folder):
    path, _ = folder
    (path / WEIGHTS).unlink()
    assert refused(read_weights, path, words="model.safetensors: not found") == f"{path / WEIGHTS}: not found"
    (path / GUIDE).unlink()
    refused(read_weights, path, GUIDE, words="guide.safetensors: not found; this model kept no early weights")
    (path / WEIGHTS).mkdir()  # a folder of that name is not the file
    refused(read_weights, path, words="model.safetensors: not found")


def test_weights_that_do_not_fit(folder):
    path, model = folder
    state = model.state_dict()
    first, last = sorted(state)[0], sorted(state)[-1]
    save_file({k: v for k, v in state.items() if k != first}, str(path / WEIGHTS))
    refused(load_into, tiny_unet(), path, words=f"does not fit the network of config.json (missing ['{first}'])")
    save_file({**state, "extra.weight": torch.zeros(2)}, str(path / WEIGHTS))
    refused(load_into, tiny_unet(), path, words="(unexpected ['extra.weight'])")
    wrong = {**state, last: torch.zeros(*state[last].shape, 2)}
    save_file(wrong, str(path / WEIGHTS))
    refused(load_into, tiny_unet(), path,
            words=f"({last} is {tuple(wrong[last].shape)}, the config builds {tuple(state[last].shape)})")
    write_folder(path.parent / "other", channels=16, groups=8)  # another model's weights
    (path / WEIGHTS).write_bytes((path.parent / "other" / WEIGHTS).read_bytes())
    message = refused(load_into, tiny_unet(), path, words="mixes files of different models: re-run the training stage")
    assert message.startswith(f"{path / WEIGHTS}: does not fit the network of config.json (")


def test_a_folder_of_0_7_names_the_unets_T_num_timesteps_and_still_loads(folder):
    from ddpm.unet import UNet
    folder, model = folder
    config = json.loads((folder / CONFIG).read_text())
    config["unet"]["num_timesteps"] = config["unet"].pop("T")
    (folder / CONFIG).write_text(json.dumps(config))
    assert read_config(folder)["unet"]["T"] == config["unet"]["num_timesteps"]
    loaded = UNet.from_pretrained(folder)
    assert loaded.T == model.T and all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
