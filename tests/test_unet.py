import pytest
import torch

from ddpm import UNet
from tests.conftest import randomize, tiny_unet


def test_shapes_mnist_and_celeba():
    assert tiny_unet()(torch.randn(2, 1, 28, 28), torch.tensor([0, 99])).shape == (2, 1, 28, 28)
    m = UNet(in_channels=3, channels=8, channel_mults=(1, 2, 2, 2), num_res_blocks=1, attention_levels=(2,),
             heads=2, groups=4, num_timesteps=1000, context_dim=16)
    assert m(torch.randn(2, 3, 64, 64), torch.tensor([5, 999]), torch.randn(2, 16)).shape == (2, 3, 64, 64)


def test_integer_time_becomes_a_float_in_unit_interval():
    m = tiny_unet(T=1000)
    u = m.time_to_unit(torch.tensor([0, 999, 500]))
    assert u.dtype == torch.float32 and u[0] == 0 and u[1] == 1 and 0 < u[2] < 1
    with pytest.raises(TypeError, match="integer"):
        m(torch.randn(1, 1, 28, 28), torch.tensor([0.5]))


def test_output_depends_on_t_and_x(random_unet):
    x = torch.randn(1, 1, 28, 28)
    a, b = random_unet(x, torch.tensor([3])), random_unet(x, torch.tensor([80]))
    assert (a - b).abs().max() > 1e-4
    assert (random_unet(x + 1, torch.tensor([3])) - a).abs().max() > 1e-4


def test_context_changes_the_prediction():
    torch.manual_seed(0)
    m = randomize(tiny_unet(context_dim=4))
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 10])
    assert (m(x, t, torch.randn(2, 4)) - m(x, t, torch.randn(2, 4))).abs().max() > 1e-5


def test_images_do_not_interact_within_a_batch(random_unet):
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([1, 50, 99])
    batch = random_unet(x, t)
    one = random_unet(x[1:2], t[1:2])
    assert torch.allclose(batch[1:2], one, atol=1e-5)
