"""Tests for the generic engine: Trainer loop, LR schedule, seeds, devices, checkpoints, callbacks, config."""

from __future__ import annotations

import csv
import io
import math
import random
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pixbox.engine import callbacks as C
from pixbox.engine.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from pixbox.tasks.detect import DetectConfig
from pixbox.engine.trainer import Trainer
from pixbox.engine.device import epoch_seed, select_device
from pixbox.engine.optim import lr_schedule


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: exact float reproducibility and no oversubscription on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Regression(Trainer):
    """The smallest task: least squares on ``(x, y)`` batches."""

    def compute_loss(self, batch):
        x, y = self.to_device(batch)
        loss = nn.functional.mse_loss(self.model(x), y)
        return {"loss": loss, "double": 2 * loss.detach()}


def _data(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([[2.0], [-1.0]])
    xs = [torch.randn(8, 2, generator=g) for _ in range(n)]
    return [(x, x @ w + 0.5) for x in xs]


def _trainer(epochs=3, lr=0.1, **kwargs):
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    return Regression(model, torch.optim.SGD(model.parameters(), lr=lr), kwargs.pop("data", _data()),
                      epochs=epochs, verbose=False, **kwargs)


class Recorder(C.Callback):
    def __init__(self):
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda trainer: object.__getattribute__(self, "calls").append((name, trainer.epoch))
        return object.__getattribute__(self, name)


# ----------------------------------------------------------------------------------------------
# LR schedule, seeds, devices


def test_lr_schedule_cosine_golden_values():
    f = lr_schedule(total_steps=10, warmup_steps=2, kind="cosine", final_ratio=0.01)
    # warm-up (i + 1) / 2, then cosine from 1 at i = 2 to 0.01 at i = 10, 0.505 half way (i = 6)
    assert [f(i) for i in (0, 1, 2, 6, 10, 50)] == pytest.approx([0.5, 1.0, 1.0, 0.505, 0.01, 0.01])
    assert f(4) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.25)))


def test_lr_schedule_step_golden_values():
    f = lr_schedule(total_steps=10, kind="step", step_size=3, gamma=0.1)
    assert [f(i) for i in range(8)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("change", [{"warmup_steps": 4}, {"final_ratio": 0.5}, {"kind": "step", "step_size": 2}])
def test_lr_schedule_each_parameter_changes_it(change):
    base = dict(total_steps=10, warmup_steps=0, kind="cosine", final_ratio=0.01, step_size=None)
    f, g = lr_schedule(**base), lr_schedule(**{**base, **change})
    assert [f(i) for i in range(10)] != pytest.approx([g(i) for i in range(10)])


def test_lr_schedule_errors():
    with pytest.raises(ValueError, match="did you mean 'cosine'"):
        lr_schedule(total_steps=10, kind="cosin")
    with pytest.raises(ValueError, match="step_size must be an int >= 1"):
        lr_schedule(total_steps=10, kind="step")


def test_epoch_seed_is_a_function_of_seed_and_epoch():
    assert epoch_seed(0, 3) == epoch_seed(0, 3)
    seeds = {epoch_seed(s, e) for s in range(4) for e in range(4)}
    assert len(seeds) == 16 and all(0 <= s < 2**63 for s in seeds)
    assert epoch_seed(1, 0) != epoch_seed(0, 1)
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -1"):
        epoch_seed(0, -1)


def test_select_device():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert select_device("auto").type == expected
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="did you mean 'cuda'"):
        select_device("cdua")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:1' was requested but CUDA is not available"):
            select_device("cuda:1")
    else:
        with pytest.raises(ValueError, match="CUDA device"):
            select_device(f"cuda:{torch.cuda.device_count()}")


# ----------------------------------------------------------------------------------------------
# The loop


def test_fit_reduces_the_loss_and_logs_one_row_per_epoch():
    history = _trainer(epochs=4).fit()
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    losses = [row["train_loss"] for row in history]
    assert losses[-1] < 0.2 * losses[0]
    assert history[0]["train_double"] == pytest.approx(2 * history[0]["train_loss"])
    assert all(row["img_s"] > 0 and row["epoch_time"] > 0 for row in history)


def test_hooks_run_in_order():
    rec = Recorder()
    _trainer(epochs=2, data=_data(n=2), callbacks=[rec]).fit()
    names = [name for name, _ in rec.calls]
    epoch = ["on_epoch_start"] + ["on_batch_start", "on_batch_end"] * 2 + ["on_epoch_end"]
    assert names == ["on_train_start"] + epoch * 2 + ["on_train_end"]
    assert [e for name, e in rec.calls if name == "on_epoch_end"] == [0, 1]


def test_stop_flag_ends_training_after_the_epoch():
    class StopAfterTwo(C.Callback):
        def on_epoch_end(self, trainer):
            trainer.stop = trainer.epoch == 1

    assert len(_trainer(epochs=5, callbacks=[StopAfterTwo()]).fit()) == 2


def test_nan_loss_raises_a_clear_error():
    data = [(torch.full((4, 2), float("nan")), torch.zeros(4, 1))]
    with pytest.raises(FloatingPointError, match="training diverged in epoch 1: the training loss is nan at step 1"):
        _trainer(data=data).fit()


def test_grad_clip_changes_the_updates():
    a = _trainer(epochs=1, lr=0.5).fit()[-1]["train_loss"]
    b = _trainer(epochs=1, lr=0.5, grad_clip=0.01).fit()[-1]["train_loss"]
    assert a != pytest.approx(b)


def test_scheduler_steps_every_iteration():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(total_steps=8, kind="step", step_size=4, gamma=0.5))
    trainer = Regression(model, opt, _data(n=4), epochs=2, scheduler=sched, verbose=False)
    history = trainer.fit()
    assert trainer.global_step == 8
    assert [row["lr"] for row in history] == [1.0, 0.5]  # the lr of each epoch's last step


def test_callable_train_data_gets_the_epoch_and_a_dataloader_is_reseeded_per_epoch():
    seen = []

    def batches(epoch):
        seen.append(epoch)
        return _data(n=1, seed=epoch)

    _trainer(epochs=3, data=batches).fit()
    assert seen == [0, 1, 2]

    def orders(start_epoch):
        data = torch.arange(8.0)[:, None].repeat(1, 2)
        ds = torch.utils.data.TensorDataset(data, data[:, :1])
        loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, generator=torch.Generator())
        firsts = []

        class Spy(C.Callback):
            def on_batch_start(self, trainer):
                firsts.append(next(iter(trainer.batches))[0][:, 0].tolist())

        t = _trainer(epochs=3, data=loader, callbacks=[Spy()])
        t.start_epoch = start_epoch
        t.fit()
        return firsts

    full, resumed = orders(0), orders(2)
    assert full[0] != full[1]  # a new order every epoch
    assert resumed == full[2:]  # ... which depends only on (seed, epoch)


def test_state_dict_round_trip_resumes_exactly(tmp_path):
    full = _trainer(epochs=3)
    full.fit()

    class Kill(C.Callback):
        def on_epoch_start(self, trainer):
            if trainer.epoch == 1:
                raise KeyboardInterrupt

    class Save(C.Callback):
        def on_epoch_end(self, trainer):
            save_checkpoint(trainer.state_dict(), tmp_path / "last.pt")

    with pytest.raises(KeyboardInterrupt):
        _trainer(epochs=3, callbacks=[Save(), Kill()]).fit()
    resumed = _trainer(epochs=3)
    resumed.load_state_dict(load_checkpoint(tmp_path / "last.pt"))
    assert resumed.start_epoch == 1 and resumed.global_step == 4
    resumed.fit()
    torch.testing.assert_close(resumed.model.state_dict(), full.model.state_dict(), rtol=0, atol=0)
    strip = [{k: v for k, v in row.items() if k not in ("img_s", "epoch_time")} for row in full.history]
    assert [{k: v for k, v in row.items() if k not in ("img_s", "epoch_time")} for row in resumed.history] == strip


def test_trainer_argument_errors():
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        Regression(model, opt, _data(), epochs=0)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got str"):
        Regression(model, "sgd", _data(), epochs=1)
    with pytest.raises(ValueError, match="grad_clip must be a number > 0"):
        Regression(model, opt, _data(), epochs=1, grad_clip=-1)
    with pytest.raises(ValueError, match="got no training batches"):
        Regression(model, opt, [], epochs=1, verbose=False).fit()


# ----------------------------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_round_trip(tmp_path):
    state = {"model": nn.Linear(2, 3).state_dict(), "epoch": 4, "history": [{"epoch": 1, "map": 0.5}], "x": None}
    path = save_checkpoint(state, tmp_path / "sub" / "last.pt")
    back = load_checkpoint(path)
    torch.testing.assert_close(back["model"], state["model"])
    assert back["epoch"] == 4 and back["history"] == state["history"] and back["x"] is None


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a pixbox checkpoint: it is not a PyTorch file"):
        load_checkpoint(bad)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="must hold a dict, got list"):
        load_checkpoint(tmp_path / "list.pt")


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    save_checkpoint({"rng": get_rng_state()}, tmp_path / "rng.pt")
    first = (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    again = (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])
    assert again == first


# ----------------------------------------------------------------------------------------------
# Callbacks


def _fake_trainer(history, epoch, epochs=10):
    t = SimpleNamespace(history=history, epoch=epoch, epochs=epochs, stop=False, epoch_log=history[-1],
                        best_score=None, best_epoch=None, messages=[])
    t.log = t.messages.append
    t.state_dict = lambda: {"epoch": t.epoch + 1, "best_score": t.best_score}
    return t


def test_csv_logger_rewrites_the_history_exactly(tmp_path):
    rows = [{"epoch": 1, "lr": 0.1, "train_loss": 1 / 3}, {"epoch": 2, "lr": 0.05, "train_loss": 0.25, "map": 0.5}]
    logger = C.CSVLogger(tmp_path / "metrics.csv", columns=["epoch", "map"])
    logger.on_epoch_end(_fake_trainer(rows[:1], 0))
    logger.on_epoch_end(_fake_trainer(rows, 1))
    with open(tmp_path / "metrics.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["epoch", "map", "lr", "train_loss"]
    assert table[1] == ["1", "", "0.1", repr(1 / 3)] and float(table[1][3]) == 1 / 3
    assert table[2] == ["2", "0.5", "0.05", "0.25"] and len(table) == 3


def test_early_stopping_counts_epochs_since_the_best():
    rows = [{"epoch": 1, "map_50": 0.2}, {"epoch": 2, "map_50": 0.5}, {"epoch": 3, "map_50": 0.4},
            {"epoch": 4}, {"epoch": 5, "map_50": 0.5}]
    stopper = C.EarlyStopping(patience=3, monitor="map_50")
    for k in range(1, 6):
        t = _fake_trainer(rows[:k], k - 1)
        stopper.on_epoch_end(t)
        assert t.stop == (k == 5), k  # best at epoch 2 (ties keep the first), 3 epochs later: stop
    assert "has not improved for 3 epochs (best 0.5000 at epoch 2)" in t.messages[0]
    t = _fake_trainer(rows, 4)
    C.EarlyStopping(patience=4, monitor="map_50").on_epoch_end(t)
    assert not t.stop


def test_checkpoint_callback_saves_best_only_on_improvement(tmp_path):
    cb = C.CheckpointCallback(tmp_path, monitor="map_50")
    history = []
    for epoch, value in enumerate([0.3, 0.2, 0.6, float("nan")]):
        history.append({"epoch": epoch + 1, "map_50": value})
        t = _fake_trainer(history, epoch)
        t.best_score = None if epoch == 0 else best
        cb.on_epoch_end(t)
        best = t.best_score
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 4
    assert load_checkpoint(tmp_path / "best.pt") == {"epoch": 3, "best_score": 0.6}


def test_checkpoint_callback_keeps_best_as_the_last_epoch_without_a_metric(tmp_path):
    cb = C.CheckpointCallback(tmp_path, "map_50")
    for epoch in range(2):
        t = _fake_trainer([{"epoch": e + 1} for e in range(epoch + 1)], epoch)
        cb.on_epoch_end(t)  # written every epoch (before last.pt), so a kill never leaves none
        assert load_checkpoint(tmp_path / "best.pt")["epoch"] == load_checkpoint(tmp_path / "last.pt")["epoch"] == epoch + 1


def test_eval_callback_schedule_and_columns():
    calls = []
    cb = C.EvalCallback(every=2, log=False)
    for epoch in range(5):
        t = _fake_trainer([{"epoch": epoch + 1, "epoch_time": 1.0}], epoch, epochs=5)
        t.evaluate = lambda: calls.append(1) or {"map": 0.5, "per_class": [], "flag": True}
        cb.on_epoch_end(t)
        if epoch == 1:
            assert t.epoch_log["map"] == 0.5 and "per_class" not in t.epoch_log and "flag" not in t.epoch_log
            assert t.epoch_log["epoch_time"] >= 1.0
    assert len(calls) == 3  # epochs 2, 4 and the last one, 5


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("enabled", [True, False])
def test_progress_bar_shows_loss_and_speed_on_a_terminal(enabled):
    stream = _Terminal()
    _trainer(epochs=2, callbacks=[C.ProgressBar(enabled, file=stream)]).fit()
    text = stream.getvalue()
    if enabled:
        assert "epoch 1/2" in text and "epoch 2/2" in text and "4/4" in text
        assert "loss=" in text and "img_s=" in text
    else:
        assert text == ""
    log = io.StringIO()  # not a terminal (a log file): no bar
    _trainer(epochs=1, callbacks=[C.ProgressBar(True, file=log)]).fit()
    assert log.getvalue() == ""


# ----------------------------------------------------------------------------------------------
# Config


def test_config_defaults_and_round_trip_through_yaml(tmp_path):
    cfg = DetectConfig(data="d", epochs=3, lr=0.05, negative_mining_ratio=None, augment=False)
    assert cfg.augment_preset == "none" and DetectConfig().augment_preset == "light"
    back = DetectConfig.from_yaml(cfg.to_yaml(tmp_path / "config.yaml"))
    assert back == cfg


def test_config_unknown_key_suggests_the_nearest(tmp_path):
    with pytest.raises(ValueError, match="unknown config key 'epoch'; did you mean 'epochs'"):
        DetectConfig.from_dict({"epoch": 3})
    (tmp_path / "cfg.yaml").write_text("batch: 8\nimg_size: 64\n")
    with pytest.raises(ValueError, match=r"cfg.yaml: unknown config key 'img_size'; did you mean 'imgsz'"):
        DetectConfig.from_yaml(tmp_path / "cfg.yaml")


@pytest.mark.parametrize("key, value, error, match", [
    ("epochs", 0, ValueError, "epochs must be >= 1, got 0"),
    ("epochs", "3", TypeError, "epochs must be an int >= 1, got '3'"),
    ("lr", 0, ValueError, r"lr must be a number in \(0, inf\), got 0.0"),
    ("lr", True, TypeError, "lr must be a number"),
    ("model", "tiny_sd", ValueError, "did you mean 'tiny_ssd'"),
    ("format", "COCO", ValueError, "format must be one of"),
    ("augment", "heavy", ValueError, r"augment must be one of \['none', 'light', 'ssd'\]"),
    ("device", "gpu0", ValueError, "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    ("name", "a/b", ValueError, "name must be a plain folder name"),
    ("amp", "yes", TypeError, "amp must be .auto., true or false"),
    ("momentum", 1.0, ValueError, r"momentum must be a number in \[0, 1\)"),
    ("negative_mining_ratio", 0, ValueError, "negative_mining_ratio must be a number in"),
    ("limit_train", 0, ValueError, "limit_train must be >= 1"),
])
def test_config_bad_values_name_the_key(key, value, error, match):
    with pytest.raises(error, match=match):
        DetectConfig.from_dict({key: value})


def test_config_accepts_yaml_spellings(tmp_path):
    (tmp_path / "cfg.yaml").write_text("lr: 1e-3\neval-every: 2\nepochs: 4.0\nval_split: null\n")
    cfg = DetectConfig.from_yaml(tmp_path / "cfg.yaml")
    assert (cfg.lr, cfg.eval_every, cfg.epochs, cfg.val_split) == (0.001, 2, 4, None)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml: a config file must hold a mapping"):
        DetectConfig.from_yaml(tmp_path / "list.yaml")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DetectConfig.from_yaml(tmp_path / "nope.yaml")


def test_importing_pixbox_does_not_import_the_engine():
    code = "import sys, pixbox; print(callable(pixbox.load), 'pixbox.engine' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]


def test_an_exploding_but_finite_loss_stops_the_run():
    """A loss that grows past EXPLODED times the first step's stops training (a finite 1e25 loss
    used to train on and end "successfully")."""
    from pixbox.engine.trainer import EXPLODED

    data = [(torch.ones(4, 2), torch.zeros(4, 1)), (torch.full((4, 2), 1e6), torch.zeros(4, 1))]
    with pytest.raises(FloatingPointError, match=rf"epoch 1: the training loss exploded to .* at step 2, over "
                                                 rf"{EXPLODED:g} times its first value"):
        _trainer(data=data, lr=1e-9).fit()
