import pytest
import torch

from ddpm import UNet
from ddpm.unet import Dropout16, ResBlock
from tests.conftest import randomize, tiny_unet


def test_shapes_mnist_and_celeba():
    assert tiny_unet()(torch.randn(2, 1, 28, 28), torch.tensor([0, 99])).shape == (2, 1, 28, 28)
    m = UNet(in_channels=3, channels=8, channel_mults=(1, 2, 2, 2), num_res_blocks=1, attention_levels=(2,),
             heads=2, groups=4, T=1000, context_dim=16)
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


def test_dropout16_drops_p_and_keeps_the_mean():
    drop = Dropout16(0.1).train()
    x = torch.ones(400_000)
    torch.manual_seed(0)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 4 * (0.1 * 0.9 / len(x)) ** 0.5  # binomial: 4 standard deviations
    assert abs(y.mean().item() - 1) < 0.005 and torch.allclose(y.unique(), torch.tensor([0.0, 65536 / (65536 - drop.threshold)]))
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # seeded by torch's generator
    assert torch.equal(drop.eval()(x), x) and torch.equal(Dropout16(0.0).train()(x), x)
    xg = torch.ones(1000, requires_grad=True)
    out = Dropout16(0.5).train()(xg)
    out.sum().backward()
    assert torch.equal(xg.grad, out.detach())  # ∂/∂x of x·m·scale is m·scale


def test_patch_size_two_keeps_shapes_and_quarters_the_positions():
    net = UNet(in_channels=1, channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), heads=2,
               groups=4, dropout=0.0, T=100, patch_size=2)
    x = torch.randn(3, 1, 28, 28)
    assert net(x, torch.tensor([1, 50, 99])).shape == (3, 1, 28, 28)
    assert net.stem.in_channels == 4 and net.head[-1].out_channels == 4


@pytest.mark.parametrize("conditioning", ["add", "scale_shift"])
def test_scale_shift_conditioning_survives_groupnorm_where_adding_does_not(conditioning):
    # One channel per group: GroupNorm subtracts each channel's mean, so an added per-channel embedding vanishes;
    # AdaGN's scale and shift come after the norm and keep it.
    torch.manual_seed(0)
    block = ResBlock(4, 4, emb_dim=8, dropout=0.0, groups=4, conditioning=conditioning)
    randomize(block)
    x, e1, e2 = torch.randn(2, 4, 6, 6), torch.randn(2, 8), torch.randn(2, 8)
    changed = (block(x, e1) - block(x, e2)).abs().max()
    assert bool(changed > 1e-3) is (conditioning == "scale_shift")


def test_a_scale_shift_unet_with_context_starts_at_zero_output_and_refuses_an_unknown_conditioning():
    net = UNet(in_channels=1, channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), heads=2,
               groups=4, dropout=0.0, T=100, patch_size=2, conditioning="scale_shift", context_dim=10)
    assert net(torch.randn(2, 1, 28, 28), torch.tensor([1, 99]), torch.eye(10)[:2]).abs().max() == 0  # zero head
    with pytest.raises(ValueError, match="conditioning = 'film'"):
        UNet(in_channels=1, channels=8, conditioning="film")
