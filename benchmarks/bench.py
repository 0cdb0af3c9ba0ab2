"""Benchmark: training throughput against diffusers' UNet2DModel, FLOP utilization, sampling and completion speed.

    python -m benchmarks.bench [--profile cpu] [--out reports/bench/bench.json]

Everything is measured in one run on the device present. Throughputs of competing variants are
measured in interleaved rounds (A B C D, A B C D, …) and the median is kept, so that a slow
moment of a shared machine hurts all variants alike; ratios are taken within the run.
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import curve
from benchmarks.peer import DiffusersUNet
from ddpm.completion import half_mask
from ddpm.device import native_bf16, pick_device, with_autocast
from ddpm.diffusion import Diffusion
from ddpm.distributed import World, sample_sharded
from ddpm.guidance import complete_image
from ddpm.io import save_json, save_text
from ddpm.judge import judge_images, load_judge
from ddpm.metrics import score
from ddpm.params import ParamError, read_yaml, validate
from ddpm.pretrained import load_unet
from ddpm.report import table_markdown
from ddpm.samplers import sample
from ddpm.stage import run_stage
from ddpm.train import TrainConfig, TrainLoop
from ddpm.unet import Dropout16, UNet

SHAPE = (1, 28, 28)


def with_torch_dropout(model: nn.Module) -> nn.Module:
    """Our UNet with nn.Dropout in place of Dropout16 (to measure what Dropout16 buys)."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, Dropout16):
                setattr(parent, name, nn.Dropout(child.p))
    return model


# -- measuring -----------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict[str, float]) -> Any:
    """Peak memory of the block in MiB: CUDA's allocator peak, or the process's peak RSS on Linux (VmHWM)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    yield
    if device.type == "cuda":
        out["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        with contextlib.suppress(OSError, StopIteration):
            line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
            out["peak_mib"] = int(line.split()[1]) / 1024


def timed(fn: Callable[[], Any], device: torch.device, seconds: float, min_calls: int = 2) -> float:
    """Seconds per call of fn, averaged over ≥ min_calls calls and ≥ `seconds` of running."""
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    sync(device)
    return (time.perf_counter() - start) / calls


def train_variants(model_params: dict[str, Any], diffusion: Diffusion, device: torch.device, batch: int,
                   seconds: float, rounds: int, compile_: bool) -> dict[str, dict[str, float]]:
    """images/s of one training step (forward, backward, clip, Adam, EMA) per variant, median of `rounds`.

    bf16 variants run only where the device has native bf16 (emulated bf16 would take minutes per step)."""
    bf16 = torch.bfloat16
    fast, tag = (bf16, "bf16") if native_bf16(device) else (None, "fp32")
    variants: dict[str, tuple[Callable[[], nn.Module], torch.dtype | None, bool]] = {
        "ours fp32": (lambda: UNet.from_params(model_params, 1, diffusion.T), None, False),
        f"ours {tag}, torch dropout": (lambda: with_torch_dropout(UNet.from_params(model_params, 1, diffusion.T)), fast, False),
        "diffusers fp32": (lambda: DiffusersUNet(model_params), None, False),
    }
    if fast is not None:
        variants["ours bf16"] = (lambda: UNet.from_params(model_params, 1, diffusion.T), bf16, False)
        variants["diffusers bf16"] = (lambda: DiffusersUNet(model_params), bf16, False)
    if compile_:
        variants[f"ours {tag}, compiled"] = (lambda: UNet.from_params(model_params, 1, diffusion.T), fast, True)
        variants[f"diffusers {tag}, compiled"] = (lambda: DiffusersUNet(model_params), fast, True)
    data = torch.rand(2 * batch, *SHAPE, device=device) * 2 - 1
    steps: dict[str, Callable[[], float]] = {}
    results: dict[str, dict[str, float]] = {}
    for name, (build, amp, compiled) in variants.items():
        torch.manual_seed(0)
        model = build().to(device)
        loop = TrainLoop(model, diffusion, data, TrainConfig(batch_size=batch, autocast=amp))
        if compiled:
            loop.net = torch.compile(loop.net, dynamic=False)  # static: dynamic shapes broke inductor
        x = data[:batch]
        results[name] = {"parameters_m": sum(p.numel() for p in model.parameters()) / 1e6}
        with peak_memory(device, results[name]):
            t0 = time.perf_counter()
            for _ in range(2):  # warm-up (and compilation)
                loop.train_step(x)
            sync(device)
        results[name]["warmup_s"] = time.perf_counter() - t0
        steps[name] = lambda tr=loop, x=x: tr.train_step(x)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in steps.items():
            rates[name].append(batch / timed(step, device, seconds))
    for name in variants:
        results[name]["images_per_s"] = statistics.median(rates[name])
        results[name]["images_per_s_rounds"] = rates[name]
    return results


def training_flops(model_params: dict[str, Any], diffusion: Diffusion, device: torch.device, batch: int) -> float:
    """FLOPs of one training step's forward and backward at `batch` (torch.utils.flop_counter)."""
    model = UNet.from_params(model_params, 1, diffusion.T).to(device)
    x = torch.rand(batch, *SHAPE, device=device) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        diffusion.loss(model, x).backward()
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, seconds: float) -> float:
    """FLOP/s of an n×n by n×n matrix product in `dtype`: the machine's practical peak."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    a @ b
    return 2 * n**3 / timed(lambda: a @ b, device, seconds, min_calls=3)


def sampling(model_params: dict[str, Any], diffusion: Diffusion, device: torch.device, ddim_steps: int,
             seconds: float) -> dict[str, Any]:
    """ms per denoising step (batch 16 and 256, fp32 and native bf16); seconds for 16 samples; complete_image s/image."""
    torch.manual_seed(0)
    model = UNet.from_params(model_params, 1, diffusion.T).to(device).eval()
    tag = "bf16" if native_bf16(device) else "fp32"
    fast = with_autocast(model, torch.bfloat16 if tag == "bf16" else None)
    precisions = (("fp32", model), ("bf16", fast)) if tag == "bf16" else (("fp32", model),)
    out: dict[str, Any] = {"ms_per_step": {}, "seconds_16": {}, "complete_s_per_image": {}}
    probe = 4  # DDIM steps per timed call
    for batch in (16, 256):
        for name, m in precisions:
            dt = timed(lambda: sample(diffusion, m, batch, SHAPE, sampler="ddim", steps=probe, eta=1.0, device=device), device, seconds)
            out["ms_per_step"][f"batch {batch}, {name}"] = 1000 * dt / probe
    for label, sampler, steps in ((f"ancestral {diffusion.T} steps", "ancestral", diffusion.T),
                                  (f"DDIM {ddim_steps} steps", "ddim", ddim_steps)):
        mem: dict[str, float] = {}
        with peak_memory(device, mem):
            out["seconds_16"][f"{label}, {tag}"] = timed(
                lambda: sample(diffusion, fast, 16, SHAPE, sampler=sampler, steps=steps, eta=1.0, device=device), device, 0, min_calls=1)
        out["seconds_16"][f"{label}, {tag} peak_mib"] = mem.get("peak_mib", float("nan"))
    y = torch.rand(16, *SHAPE, device=device) * 2 - 1
    mask = half_mask(SHAPE, "bottom").to(device)
    for wrt in ("xt", "mean"):
        dt = timed(lambda: complete_image(diffusion, fast, y, mask, 0.1, wrt, sampler="ddim", steps=ddim_steps, eta=1.0),
                   device, 0, min_calls=1)
        out["complete_s_per_image"][f"{wrt}, DDIM {ddim_steps} steps, {tag}"] = dt / 16
    return out


def sampling_quality(model_params: dict[str, Any], diffusion_params: dict[str, Any], steps: int, n: int, seed: int,
                     root: Path = Path(".")) -> dict[str, dict[str, float]]:
    """The judge's figures for n samples of the pipeline's trained model: fp32, bf16 with the same noise, and fp32
    with other noise (how much the figures move between seeds). Needs the outputs of `dvc repro evaluate`."""
    device = torch.device("cpu")
    diffusion = Diffusion.from_params(diffusion_params)
    judge, reference = load_judge(root / "data/mnist/judge/judge.pt", device)
    out: dict[str, dict[str, float]] = {}
    runs = [("fp32", "off", seed), ("bf16, same noise", "bf16", seed), ("fp32, other noise", "off", seed + 1)]
    for name, amp, s in runs if native_bf16(device) else runs[::2]:
        model = load_unet(root / "data/mnist/model", diffusion_params, device, amp)
        t0 = time.perf_counter()
        x = sample_sharded(diffusion, model, n, SHAPE, 100, s, World(), device, sampler="ddim", steps=steps, eta=1.0)
        seconds = time.perf_counter() - t0
        judged = judge_images(judge, x)
        row = score(judged.probs, judged.features, reference)
        out[name] = {"fid_clf": row["fid_clf"], "recognizable": row["recognizable"], "coverage": row["coverage"],
                     "seconds": seconds}
    return out


# -- the run -------------------------------------------------------------------------------
def load_config(profile: str | None, params_path: Path = Path("params.yaml"),
                sections: tuple[str, ...] | list[str] = ("diffusion", "model", "sample"),
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """params.yaml (validated) for `profile` (None: the file's own), with `overrides` ({"section.key": value}, as
    `--set` gives them) applied over it."""
    params = read_yaml(params_path)
    if profile is not None:
        params["profile"] = profile
    for key, value in (overrides or {}).items():
        section, name = key.split(".", 1)
        if not isinstance(params.get(section), dict) or name not in params[section]:
            raise ParamError(f"--set {key}: no such key in {params_path}")
        params[section][name] = value
    return validate(params, list(sections))


def parse_sets(pairs: list[str], option: str = "--set", form: str = "section.key=value",
               example: str = "train_mnist.batch_size=64") -> dict[str, Any]:
    """["train_mnist.batch_size=64", …] → {"train_mnist.batch_size": 64, …}; values are YAML, as in params.yaml."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise ParamError(f"{option} {pair}: expected {form}, e.g. {example}")
        out[key] = yaml.safe_load(value)
    return out


def run(profile: str | None, device_name: str, batch: int, seconds: float, rounds: int, compile_: bool,
        quality_n: int = 0) -> dict[str, Any]:
    p = load_config(profile)
    device = pick_device(device_name)
    diffusion = Diffusion.from_params(p["diffusion"])
    model_params = p["model"]
    train = train_variants(model_params, diffusion, device, batch, seconds, rounds, compile_)
    flops = training_flops(model_params, diffusion, device, batch)
    tag = "bf16" if native_bf16(device) else "fp32"
    dtypes = (torch.float32, torch.bfloat16) if tag == "bf16" else (torch.float32,)
    peaks = {str(dt).removeprefix("torch."): matmul_peak(device, dt, 2048, seconds) for dt in dtypes}
    for name, r in train.items():
        if name.startswith("ours"):
            achieved = flops / batch * r["images_per_s"]
            dtype = "bfloat16" if "bf16" in name else "float32"
            r.update(tflops=achieved / 1e12, mfu=achieved / peaks[dtype], mfu_dtype=dtype)
    ddim = p["sample"]["steps"] if p["sample"]["steps"] < diffusion.T else 50
    quality = sampling_quality(model_params, p["diffusion"], ddim, quality_n, p["sample"]["seed"]) if quality_n else {}
    rate = {name: r["images_per_s"] for name, r in train.items()}
    ratios = {f"ours {tag} / diffusers fp32 (diffusers' documented way)": rate[f"ours {tag}"] / rate["diffusers fp32"]}
    if tag == "bf16":  # in fp32 the row above is already the same-precision ratio
        ratios["ours bf16 / diffusers bf16 (same precision, eager)"] = rate["ours bf16"] / rate["diffusers bf16"]
        ratios["bf16 / fp32 (ours)"] = rate["ours bf16"] / rate["ours fp32"]
    ratios[f"Dropout16 / torch dropout ({tag})"] = rate[f"ours {tag}"] / rate[f"ours {tag}, torch dropout"]
    return {
        "date": time.strftime("%Y-%m-%d"), "device": describe(device), "torch": torch.__version__,
        "native_bf16": tag == "bf16", "profile": profile or "params.yaml's", "model": model_params, "batch": batch,
        "train": train, "ratios": ratios,
        "flops_per_image": flops / batch, "matmul_peak_tflops": {k: v / 1e12 for k, v in peaks.items()},
        "sampling": sampling(model_params, diffusion, device, ddim, seconds), "quality": quality,
    }


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    native = "native bf16" if native_bf16(device) else "no native bf16"
    return f"CPU: {cpu} ({torch.backends.cpu.get_cpu_capability()}, {native}), {torch.get_num_threads()} threads"


def markdown(r: dict[str, Any]) -> str:
    """The benchmark as Markdown tables (docs/benchmark.md)."""
    nan = float("nan")
    train = [{"training step": name, "images/s": t["images_per_s"], "TFLOP/s": t.get("tflops"),
              "MFU (vs matmul peak of)": f"{100 * t['mfu']:.1f} % ({t['mfu_dtype']})" if "mfu" in t else None,
              "peak MiB": t.get("peak_mib", nan), "first 2 steps, s": t.get("warmup_s", nan)}
             for name, t in r["train"].items()]
    s = r["sampling"]
    sampling = ([{"sampling": f"ms per denoising step, {k}", "value": f"{v:.1f}"} for k, v in s["ms_per_step"].items()]
                + [{"sampling": f"16 samples, {k}", "value": f"{v:.1f} {'MiB' if 'mib' in k else 's'}"}
                   for k, v in s["seconds_16"].items()]
                + [{"sampling": f"complete_image s/image, wrt {k}", "value": f"{v:.3f}"}
                   for k, v in s["complete_s_per_image"].items()])
    peaks = ", ".join(f"{k} {v:.2f}" for k, v in r["matmul_peak_tflops"].items())
    parts = [f"{r['date']}, {r['device']}, torch {r['torch']}, profile {r['profile']}, batch {r['batch']}",
             table_markdown(train, {"images/s": ".1f", "TFLOP/s": ".3f", "peak MiB": ".0f", "first 2 steps, s": ".1f"},
                            left=1),
             table_markdown([{"ratio": k, "value": v} for k, v in r["ratios"].items()], {"value": ".2f"}, left=1),
             f"Training FLOPs per image (forward + backward): {r['flops_per_image'] / 1e9:.2f} GFLOP; "
             f"matmul peak (TFLOP/s): {peaks}.", table_markdown(sampling, left=1)]
    if r.get("quality"):
        parts.append(table_markdown([{"the trained model's samples": k, **{c: q[c] for c in
                                                                             ("fid_clf", "recognizable", "coverage",
                                                                              "seconds")}}
                                     for k, q in r["quality"].items()],
                                    {"fid_clf": ".1f", "recognizable": ".3f", "coverage": ".3f", "seconds": ".1f"},
                                    left=1))
    return "\n\n".join(parts)


def quality_vs_time(a: argparse.Namespace) -> None:
    """`--quality-vs-time`: ours against its peers at equal minutes of training (benchmarks.curve)."""
    if a.nfe is not None and a.nfe < 1:
        raise ParamError(f"--nfe {a.nfe}: the peers' network evaluations per sample must be ≥ 1")
    if a.no_ours and a.no_peer:
        raise ParamError("--no-ours with --no-peer: nothing to train; drop one of them")
    sets = parse_sets(a.set)
    peers = [] if a.no_peer else a.peers
    peer_sets: dict[str, dict[str, Any]] = {}
    for key, value in parse_sets(a.peer_set, "--peer-set", "peer.key=value", "flow-matching.lr=0.004").items():
        peer, name = key.split(".", 1)
        if peer not in peers:
            raise ParamError(f"--peer-set {key}: {peer} is not among the peers trained (--peers {' '.join(peers)})")
        peer_sets.setdefault(peer, {})[name] = value
    p = load_config(a.profile if a.profile is not None else "cpu", sections=["runtime", "diffusion", "model", "train_mnist",
                                                                               "sample"], overrides=sets)
    with tempfile.TemporaryDirectory() as work:
        result = curve.run(p, a.budgets, a.n, Path(work), peers=peers, label=", ".join(["CPU profile", *a.set]),
                           screen_n=a.screen_n, nfe=a.nfe, peer_sets=peer_sets, ours=not a.no_ours)
    command = "python -m benchmarks.bench --quality-vs-time " + " ".join(
        ["--budgets", *(f"{b:g}" for b in a.budgets), "--n", str(a.n),
         *(["--no-peer"] if a.no_peer else ["--peers", *peers, "--screen-n", str(a.screen_n)]),
         *(["--nfe", str(a.nfe)] if a.nfe else []), *(f"--set {kv}" for kv in a.set),
         *(["--no-ours"] if a.no_ours else []), *(f"--peer-set {kv}" for kv in a.peer_set)])
    header = f"{time.strftime('%Y-%m-%d')}, {describe(torch.device('cpu'))}, torch {torch.__version__}: `{command}`"
    # a trial of other settings gets its own folder: the curve of the recipe as it stands is not overwritten
    extra = (*(["peers=" + "+".join(peers)] if peers and peers != list(curve.PEERS) else []),
             *([f"nfe={a.nfe}"] if a.nfe else []), *(["no-ours"] if a.no_ours else []), *a.peer_set)
    trial = a.set or a.no_peer or extra
    out = a.out.parent / "trials" / curve.trial_name(a.set, a.budgets, a.no_peer, extra) if trial else a.out.parent
    curve.write({**result, "command": command, "device": describe(torch.device("cpu"))}, header, out)
    print(curve.markdown(result, header))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None, help="params.yaml's profile to measure (default: cpu without CUDA, gpu with)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=8.0, help="minimum timing per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the training variants")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd variants")
    ap.add_argument("--quality", type=int, default=0, metavar="N",
                    help="also judge N samples of the pipeline's trained model in fp32 and bf16 (needs dvc repro evaluate)")
    ap.add_argument("--quality-vs-time", action="store_true",
                    help="instead: train ours and its peers for --budgets minutes and judge N samples of each")
    ap.add_argument("--budgets", type=float, nargs="+", default=[5, 10, 20], help="minutes of training (with --quality-vs-time)")
    ap.add_argument("--n", type=int, default=1000, help="samples judged per snapshot (with --quality-vs-time)")
    ap.add_argument("--peers", nargs="+", default=list(curve.PEERS), choices=list(curve.PEERS),
                    help="the peers trained beside ours (with --quality-vs-time; default: all)")
    ap.add_argument("--nfe", type=int, default=None,
                    help="network evaluations per sample of every peer's samplers (default: as many as ours' sampler)")
    ap.add_argument("--screen-n", type=int, default=200,
                    help="samples (of another seed) on which each peer's best sampler is chosen (with --quality-vs-time)")
    ap.add_argument("--no-peer", action="store_true", help="ours only (with --quality-vs-time): a trial of a recipe change")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="change ours' settings on top of the profile (with --quality-vs-time; repeatable), "
                         "e.g. --set train_mnist.batch_size=64")
    ap.add_argument("--no-ours", action="store_true",
                    help="the peers only (with --quality-vs-time): a peer's tuning trial, with --peer-set")
    ap.add_argument("--peer-set", action="append", default=[], metavar="PEER.KEY=VALUE",
                    help="change a peer's recipe (with --quality-vs-time; repeatable), e.g. --peer-set "
                         "flow-matching.lr=0.004; its rows say 'trial: …'")
    ap.add_argument("--out", type=Path, default=Path("reports/bench/bench.json"))
    a = ap.parse_args(argv)
    if a.quality_vs_time:
        return quality_vs_time(a)
    profile = a.profile if a.profile is not None else ("gpu" if torch.cuda.is_available() else "cpu")
    result = run(profile, a.device, a.batch, a.seconds, a.rounds, a.compile, a.quality)
    save_json(result, a.out)
    save_text(markdown(result) + "\n", a.out.with_suffix(".md"))
    print(markdown(result))
    print(f"\nwritten: {a.out} and {a.out.with_suffix('.md')}")


if __name__ == "__main__":
    run_stage(main)
