"""ddpm/callbacks.py and the loop's callback protocol: what is logged, when, by whom; the monitoring grid."""
import torch

from ddpm.callbacks import LiveLogger, MonitorGrid
from ddpm.diffusion import Diffusion
from ddpm.distributed import World
from ddpm.schedule import linear_betas
from ddpm.train import Callback, TrainConfig, TrainLoop
from tests.conftest import randomize, tiny_unet


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_log(self, loop, metrics):
        self.events.append(("log", loop.step, tuple(metrics)))

    def on_image(self, loop, name, image, nrow):
        self.events.append(("image", name, tuple(image.shape), nrow))

    def on_epoch_end(self, loop):
        self.events.append(("epoch", loop.epoch, len(loop.history)))


def loop(world=World(), **config):
    torch.manual_seed(0)
    data = torch.rand(48, 1, 28, 28) * 2 - 1
    return TrainLoop(tiny_unet(), Diffusion(linear_betas(100)), data,
                     TrainConfig(**{"epochs": 2, "batch_size": 16, "log_every": 2, "warmup_steps": 1, **config}),
                     world=world)


def test_the_loop_logs_windows_and_epochs_then_ends_each_epoch_once():
    recorder, run = Recorder(), loop()
    run.callbacks = [recorder]
    run.fit()
    assert recorder.events == [  # 3 steps an epoch, windows of 2 (the last window of an epoch is shorter)
        ("log", 2, ("train/loss",)), ("log", 3, ("train/loss",)), ("log", 3, ("epoch/loss", "epoch/images_per_s")),
        ("epoch", 1, 1),
        ("log", 5, ("train/loss",)), ("log", 6, ("train/loss",)), ("log", 6, ("epoch/loss", "epoch/images_per_s")),
        ("epoch", 2, 2)]


def test_only_the_main_process_calls_callbacks():
    class Rank1(World):
        rank, size = 1, 1  # a second process's view, without a process group

        @property
        def is_main(self):
            return False

    recorder, run = Recorder(), loop(world=Rank1())
    run.callbacks = [recorder]
    run.fit()
    assert recorder.events == [] and run.epoch == 2


def test_steps_yield_every_step_and_end_the_epoch_inside_its_last_step():
    recorder, run = Recorder(), loop()
    run.callbacks = [recorder]
    steps = run.steps()
    for _ in range(2):
        next(steps)
    assert run.epoch == 0 and not any(e[0] == "epoch" for e in recorder.events)
    next(steps)  # the epoch's third and last step, then its end
    assert run.epoch == 1 and recorder.events[-1] == ("epoch", 1, 1)
    assert len(list(steps)) == 3 and run.step == 6


def test_the_monitor_grid_logs_the_same_noise_every_epoch():
    run = loop()
    recorder = Recorder()
    grid = MonitorGrid(run.diffusion, (1, 28, 28), steps=3, seed=5, n=4, nrow=2)
    run.callbacks = [grid, recorder]
    run.ema.module = randomize(run.ema.module)
    first, second = grid(run.ema.module), grid(run.ema.module)
    assert torch.equal(first, second) and first.shape == (4, 1, 28, 28)
    run.epoch = 3
    grid.on_epoch_end(run)
    assert recorder.events == [("image", "monitor/epoch_003.png", (4, 1, 28, 28), 2)]


def test_dvclive_gets_each_metric_at_the_loop_step_and_the_headline_as_summary(tmp_path):
    import json
    run = loop(epochs=1)
    live = LiveLogger(tmp_path / "live", resume=False)
    run.callbacks = [live]
    run.fit()
    live.close(run)
    rows = (tmp_path / "live/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:2] == ["step", "loss"] and [r.split("\t")[0] for r in rows[1:]] == ["2", "3"]
    summary = json.loads((tmp_path / "live/metrics.json").read_text())
    assert set(summary) >= {"loss", "minutes"} and summary["loss"] == run.history[-1]["loss"]
