import pytest
import torch

from ddpm import Diffusion, linear_betas
from ddpm.conditional import (ClassifierFreeGuidance, context_dropout, digit_context, get_context_mask,
                              parse_digit_prompt, sample_with_context)
from tests.conftest import randomize, tiny_unet


@pytest.fixture
def cond_unet():
    torch.manual_seed(0)
    return randomize(tiny_unet(context_dim=10)).eval()


def test_context_mask_drops_the_expected_share():
    mask = get_context_mask(100_000, 0.15, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (100_000, 1) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert (mask == 0).float().mean().item() == pytest.approx(0.15, abs=0.005)
    assert get_context_mask(10, 0.0).all() and not get_context_mask(10, 1.0).any()
    with pytest.raises(ValueError, match="p_uncond = 1.5"):
        get_context_mask(3, 1.5)
    c = torch.ones(1000, 10)
    dropped = context_dropout(0.5)(c)
    rows = dropped.sum(1)
    assert set(rows.unique().tolist()) <= {0.0, 10.0} and 350 < (rows == 0).sum() < 650


def test_w0_is_the_conditional_prediction(cond_unet):
    x, t, c = torch.randn(4, 1, 28, 28), torch.tensor([5, 50, 70, 99]), digit_context([1, 2, 3, 4])
    assert torch.allclose(ClassifierFreeGuidance(cond_unet, c, 0.0)(x, t), cond_unet(x, t, context=c), atol=1e-6)


def test_guidance_combines_the_two_predictions_in_one_batch(cond_unet):
    x, t, c = torch.randn(3, 1, 28, 28), torch.tensor([5, 50, 99]), digit_context([7, 0, 3])
    cond, uncond = cond_unet(x, t, context=c), cond_unet(x, t, context=torch.zeros_like(c))
    got = ClassifierFreeGuidance(cond_unet, c, 2.5)(x, t)
    assert torch.allclose(got, 3.5 * cond - 2.5 * uncond, atol=1e-5)
    # with the context masked out, every w gives the unconditional prediction
    masked = c * get_context_mask(3, 1.0)
    assert torch.allclose(ClassifierFreeGuidance(cond_unet, masked, 4.0)(x, t), uncond, atol=1e-5)
    with pytest.raises(ValueError, match="guidance = -1"):
        ClassifierFreeGuidance(cond_unet, c, -1)


def test_one_image_per_prompt(cond_unet):
    d = Diffusion(linear_betas(100))
    prompts = ["a handwritten 7", "3", "nine"]
    digits = [parse_digit_prompt(p) for p in prompts]
    assert digits == [7, 3, 9]
    x = sample_with_context(d, cond_unet, digit_context(digits), (1, 28, 28), 2.0, batch_size=2,
                            generator=torch.Generator().manual_seed(0), steps=5)
    assert x.shape == (3, 1, 28, 28)


@pytest.mark.parametrize("bad", ["", "a handwritten 12", "3 or 4", "a cat"])
def test_bad_prompts_are_named(bad):
    with pytest.raises(ValueError, match="prompt"):
        parse_digit_prompt(bad)
