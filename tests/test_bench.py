"""The benchmark's peer is configured like our UNet, and its FLOP count is the one torch counts."""
import pytest
import torch

from benchmarks.bench import DiffusersUNet, markdown, training_flops, with_torch_dropout
from ddpm import Diffusion, UNet
from ddpm.unet import Dropout16

pytest.importorskip("diffusers")
CFG = dict(channels=32, channel_mults=[1, 2, 2], num_res_blocks=1, attention_levels=[2], heads=4, dropout=0.1, groups=32,
           patch_size=1)
DIFFUSION = dict(T=1000, schedule="linear", beta_start=1e-4, beta_end=0.02, prediction="eps", weighting="none",
                 snr_gamma=5.0)


@pytest.mark.parametrize("cfg", [CFG, dict(CFG, channels=64, num_res_blocks=2, attention_levels=[1, 2])])
def test_diffusers_peer_matches_our_unet(cfg):
    """Same channels, levels, blocks and attention: the same parameter count, to the parameter."""
    ours, peer = UNet.from_params(cfg, 1, 1000), DiffusersUNet(cfg)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in peer.parameters())
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 900])
    assert peer(x, t).shape == ours(x, t).shape == x.shape


def test_training_flops_scale_with_batch_and_torch_dropout_swap():
    d = Diffusion.from_params(DIFFUSION)
    f2, f4 = training_flops(CFG, d, torch.device("cpu"), 2), training_flops(CFG, d, torch.device("cpu"), 4)
    assert f2 > 0 and f4 == pytest.approx(2 * f2, rel=0.01)
    swapped = with_torch_dropout(UNet.from_params(CFG, 1, 1000))
    assert not any(isinstance(m, Dropout16) for m in swapped.modules())
    assert sum(isinstance(m, torch.nn.Dropout) for m in swapped.modules()) == 11


def test_markdown_lists_every_variant():
    train = {"ours bf16": {"images_per_s": 2.0, "tflops": 0.1, "mfu": 0.5, "mfu_dtype": "bfloat16", "peak_mib": 9}}
    r = {"date": "d", "device": "cpu", "torch": "t", "profile": "cpu", "batch": 4, "train": train,
         "ratios": {"a / b": 1.5}, "flops_per_image": 1e9, "matmul_peak_tflops": {"float32": 1.0},
         "sampling": {"ms_per_step": {"batch 16, fp32": 3.0}, "seconds_16": {}, "complete_s_per_image": {}}}
    md = markdown(r)
    assert "| ours bf16 | 2.0 | 0.100 | 50.0 % (bfloat16) | 9 | nan |" in md and "| a / b | 1.50 |" in md


@pytest.mark.parametrize("native", [False, True])
def test_bf16_variants_run_only_where_bf16_is_native(monkeypatch, native):
    """On a CPU without AVX512-BF16/AMX the bench times fp32 only (emulated bf16 takes minutes per step)."""
    import benchmarks.bench as bench

    monkeypatch.setattr(bench, "native_bf16", lambda device: native)
    d = Diffusion.from_params(DIFFUSION)
    tiny = dict(CFG, channels=8, groups=4, heads=2)
    got = bench.train_variants(tiny, d, torch.device("cpu"), batch=4, seconds=0, rounds=1, compile_=False)
    tag = "bf16" if native else "fp32"
    expected = {"ours fp32", f"ours {tag}, torch dropout", "diffusers fp32"} | ({"ours bf16", "diffusers bf16"} if native else set())
    assert set(got) == expected and all(r["images_per_s"] > 0 for r in got.values())
