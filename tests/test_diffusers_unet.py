"""ddpm/diffusers_unet.py: our UNet as a diffusers model: its config round trip, its call convention, our ε̂."""
import pytest
import torch

from tests.conftest import randomize

diffusers = pytest.importorskip("diffusers")
from ddpm.diffusers_unet import DDPMUNet  # noqa: E402  (needs diffusers)

TINY = dict(channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), heads=2, groups=4, dropout=0.0,
            T=100)


def test_save_and_load_keep_the_config_and_the_weights(tmp_path):
    torch.manual_seed(0)
    model = DDPMUNet(**TINY, patch_size=2, sample_size=28)
    randomize(model.unet)
    model.save_pretrained(str(tmp_path / "unet"))
    loaded = DDPMUNet.from_pretrained(str(tmp_path / "unet")).eval()
    assert loaded.config.patch_size == 2 and loaded.config.sample_size == 28 and loaded.config.T == 100
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 70])
    with torch.no_grad():
        assert torch.equal(loaded(x, t).sample, model.eval()(x, t).sample)
        assert torch.equal(loaded(x, t).sample, loaded.unet(x, t))  # the network is ours, called as ours


def test_a_scalar_timestep_is_every_images_and_return_dict_false_is_a_tuple():
    torch.manual_seed(0)
    model = randomize(DDPMUNet(**TINY)).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        a = model(x, torch.tensor(42)).sample
        b = model(x, torch.full((3,), 42)).sample
        (c,) = model(x, 42, return_dict=False)
    assert torch.equal(a, b) and torch.equal(a, c)
