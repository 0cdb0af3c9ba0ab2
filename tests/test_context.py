"""ddpm/context.py: the CLIP encoder (a tiny random one offline) and its embeddings."""
import pytest
import torch

from ddpm.context import ClipEncoder, register_config
from ddpm.io import DataError
from ddpm.metrics import clip_score, embedding_diversity
from tests.test_celeba import TINY_CLIP


def test_tiny_clip_encoder():
    name = register_config(TINY_CLIP)
    with pytest.warns(UserWarning, match="random weights"):
        enc = ClipEncoder(name, "none")
    img = enc.encode_images(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
    txt = enc.encode_texts(["a photo of a man", "a photo of a woman", "x", "y"])
    assert img.shape == txt.shape == (4, 32)
    assert torch.allclose(img.norm(dim=1), torch.ones(4)) and clip_score(img, img).allclose(torch.ones(4))
    assert embedding_diversity(torch.nn.functional.normalize(torch.ones(3, 32), dim=1)) == pytest.approx(0.0, abs=1e-6)
    with pytest.warns(UserWarning, match="truncated to CLIP's 77"):
        enc.encode_texts(["a very long prompt " * 30])
    with pytest.raises(ValueError, match="prompts: the list is empty"):
        enc.encode_texts([])
    with pytest.raises(DataError, match="clip.pretrained = '/nonexistent/w.bin': no such file"):
        ClipEncoder(name, "/nonexistent/w.bin")
