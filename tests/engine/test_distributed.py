"""Tests for training on several processes (``torchrun``, DistributedDataParallel, gloo on the CPU).

The main test runs ``pixbox detect train`` under ``torchrun --nproc_per_node=2`` for 4 steps of
TinySSD on a tiny generated bananas set and compares its final weights with a single-process
run of the same global batch and seed.

Why not a plain single-process run: with 2 processes each rank runs the model on its half of
every global batch, so (1) TinySSD's BatchNorm layers normalise with the statistics of 2
images instead of 4, and (2) the SSD loss divides by the positives of the rank's images, not
of the whole batch. ``--sync-bn`` would fix (1) on GPUs, but torch's SyncBatchNorm does not run
on the CPU, and nothing can fix (2) without changing the loss. So the reference is the closest
exact single-process computation: one process with the global batch that, at each step, runs
the model on the two ranks' halves separately (BatchNorm statistics and loss per half, the
running statistics of rank 0's half, as DDP broadcasts rank 0's buffers), averages the
gradients and takes one optimizer step. It checks the data sharding (the halves are exactly the
ranks' shards of the single-process batch), the gradient averaging, the LR schedule, the
reduced losses, rank-0 evaluation and the rank-0 checkpoint holding the unwrapped model.

On CUDA (issue 17; marked ``cuda``, skipped without a GPU): with 2+ GPUs the same comparison runs on NCCL, and
``--sync-bn`` is checked to convert the BatchNorms and change the run; with one GPU a single-process NCCL group
trains through pixbox's DDP wrapper (:func:`~pixbox.engine.distributed.wrap_ddp`, with ``sync_bn``).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import pixbox
from pixbox.data import make_dataset
from pixbox.data.loaders import make_loader
from pixbox.tasks.detect import DetectConfig
from pixbox.engine import load_checkpoint
from pixbox.data.sharding import ShardSampler, rank_batch
from pixbox.engine.distributed import (
    all_reduce_sum,
    broadcast_object,
    get_rank,
    get_world_size,
    init_distributed,
    wrap_ddp,
)
from pixbox.engine.trainer import Trainer
from pixbox.models import build_model

_CONFIG = dict(model="tiny_ssd", epochs=2, batch=4, imgsz=64, workers=0, device="cpu", augment="none", seed=3,
               amp=False, lr=0.02, warmup_epochs=0.5)
_FLAGS = ("model", "epochs", "batch", "imgsz", "workers", "device", "augment", "seed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bananas")
    make_dataset("bananas", root, num_train=8, num_val=4, image_size=64, progress=False)
    return root


def _env() -> dict:
    """The environment of a child process: pixbox importable, no torchrun variables of an outer run."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(pixbox.__file__).resolve().parents[1]))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _torchrun(args, cwd, *, script: str | None = None) -> subprocess.CompletedProcess:
    """Runs ``pixbox detect train ARGS`` (or the Python file ``script``) on 2 processes."""
    what = [script] if script is not None else ["-m", "pixbox", "detect", "train"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *what, *args]
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"
    return done


def _train_args(data, project, name, **overrides):
    values = {**_CONFIG, **overrides}
    args = ["--data", str(data), "--project", str(project), "--name", name]
    for key in _FLAGS:
        args += [f"--{key}", str(values[key])]
    return args


@pytest.fixture(scope="module")
def ddp_run(data, tmp_path_factory):
    """The 2-process run: 2 epochs of 2 steps (8 images, global batch 4, 2 images per rank)."""
    work = tmp_path_factory.mktemp("ddp")
    (work / "cfg.yaml").write_text("amp: false\nlr: 0.02\nwarmup_epochs: 0.5\n")
    done = _torchrun(["--config", "cfg.yaml", *_train_args(data, work / "runs", "ddp")], work)
    return work, work / "runs" / "ddp", done


def _sharded_reference(data, project, world: int = 2, device: str = "cpu"):
    """The single-process run of the module docstring: per-rank halves, averaged gradients."""
    from pixbox.engine.runs import build_trainer
    from pixbox.tasks.detect import DetectTask

    cfg = DetectConfig(data=str(data), project=str(project), name="ref", **{**_CONFIG, "device": device})
    run_dir = Path(project) / "ref"
    run_dir.mkdir(parents=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = DetectTask()
        trainer, _ = build_trainer(task, cfg, task.build_data(cfg), run_dir, progress=False, verbose=False)

        def sharded_step(batch):
            images, labels = batch
            model = trainer.model
            trainer.optimizer.zero_grad(set_to_none=True)
            start = [b.detach().clone() for b in model.buffers()]
            values: dict[str, float] = {}
            for rank in reversed(range(world)):  # rank 0 last: DDP keeps its BatchNorm running statistics
                with torch.no_grad():
                    for b, s in zip(model.buffers(), start):
                        b.copy_(s)
                parts = trainer.compute_loss((images[rank::world], labels[rank::world]))  # the rank's shard
                (parts["loss"] / world).backward()
                for k, v in parts.items():
                    values[k] = values.get(k, 0.0) + float(v.detach()) / world
            nn.utils.clip_grad_norm_(model.parameters(), trainer.grad_clip)
            trainer.lr = float(trainer.optimizer.param_groups[0]["lr"])
            trainer.optimizer.step()
            trainer.scheduler.step()
            trainer.global_step += 1
            return values

        trainer.train_step = sharded_step
        history = trainer.fit()
    finally:
        torch.set_num_threads(threads)
    return trainer, history


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_process_run_matches_the_single_process_reference(data, ddp_run, tmp_path):
    work, run, done = ddp_run
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.yaml", "last.pt", "loss.png", "map.png",
                                                     "metrics.csv", "train.log"]
    logged = (run / "train.log").read_text()
    assert logged.count("  epoch 1/") == 1 and logged.count("precision: ") == 1  # rank 0 alone writes it
    assert sum(line.startswith("done:") for line in done.stdout.splitlines()) == 1  # rank 0 alone reports
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 2 and state["global_step"] == 4
    assert not any(k.startswith(("module.", "_orig")) for k in state["model"])  # the unwrapped model

    reference, history = _sharded_reference(data, tmp_path)
    expected = reference.model.state_dict()
    assert state["model"].keys() == expected.keys()
    for key, value in expected.items():
        got = state["model"][key]
        if value.is_floating_point():
            torch.testing.assert_close(got, value, rtol=1e-4, atol=2e-5, msg=lambda m: f"{key}: {m}")
        else:
            assert torch.equal(got, value), key
    # the weights moved, so the comparison is not trivially true
    torch.manual_seed(_CONFIG["seed"])
    fresh = build_model("tiny_ssd", 1, image_size=64).state_dict()
    assert max(float((fresh[k] - expected[k]).abs().max()) for k in expected if expected[k].is_floating_point()) > 1e-2

    rows = _csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row, ref in zip(rows, history):  # losses averaged over the ranks; lr; rank 0's evaluation
        for key in ("train_loss", "train_cls", "train_box", "lr"):
            assert float(row[key]) == pytest.approx(ref[key], rel=1e-5), key
        assert float(row["map_50"]) == pytest.approx(ref["map_50"], abs=1e-3)


_KILLED_RUN = """
import sys
import torch
from pixbox.engine import Callback
from pixbox.tasks.detect import DetectConfig, train_detector

class KillAt(Callback):  # a run killed at the start of its second epoch, on every rank
    def on_epoch_start(self, trainer):
        if trainer.epoch == 1:
            raise KeyboardInterrupt

torch.set_num_threads(1)
cfg = DetectConfig(data=sys.argv[1], project=sys.argv[2], name="killed", **{config!r})
try:
    train_detector(cfg, progress=False, verbose=False, callbacks=[KillAt()])
except KeyboardInterrupt:
    pass
"""


def test_two_process_resume_continues_exactly(data, ddp_run):
    work, run, _ = ddp_run
    project = work / "runs"
    (work / "killed.py").write_text(_KILLED_RUN.format(config=_CONFIG))
    _torchrun([str(data), str(project)], work, script="killed.py")
    assert load_checkpoint(project / "killed" / "last.pt")["epoch"] == 1
    _torchrun(["--resume", str(project / "killed")], work)
    resumed, full = load_checkpoint(project / "killed" / "last.pt"), load_checkpoint(run / "last.pt")
    assert resumed["epoch"] == 2 and resumed["global_step"] == full["global_step"] == 4
    for key, value in full["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=1e-6, atol=1e-7, msg=lambda m: f"{key}: {m}")
    columns = ("epoch", "lr", "train_loss", "map_50")
    assert [[r[c] for c in columns] for r in _csv(project / "killed" / "metrics.csv")] == \
        [[r[c] for c in columns] for r in _csv(run / "metrics.csv")]


# ----------------------------------------------------------------------------------------------
# Single-process pieces


class _Indices(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


@pytest.mark.parametrize("n, world, batch", [(8, 2, 4), (12, 4, 4), (10, 2, 2)])
def test_shard_sampler_splits_each_single_process_batch(n, world, batch):
    seed = 123456789012
    single = [b.tolist() for b in make_loader(_Indices(n), batch, shuffle=True, seed=seed)]
    shards = [list(torch.utils.data.DataLoader(_Indices(n), batch // world,
                                               sampler=ShardSampler(_Indices(n), seed, world, r)))
              for r in range(world)]
    for k, global_batch in enumerate(single):  # step k of the ranks together = batch k of one process
        assert sorted(sum((s[k].tolist() for s in shards), [])) == sorted(global_batch)
        assert [s[k].tolist() for s in shards] == [global_batch[r::world] for r in range(world)]


def test_shard_sampler_pads_to_a_multiple_of_the_world_size():
    shards = [list(ShardSampler(_Indices(5), 7, 2, r)) for r in range(2)]
    assert [len(s) for s in shards] == [3, 3]
    everything = shards[0] + shards[1]
    assert sorted(set(everything)) == [0, 1, 2, 3, 4] and len(everything) == 6


def test_rank_batch_divides_the_global_batch():
    assert rank_batch(8, 2) == 4 and rank_batch(3, 1) == 3
    with pytest.raises(ValueError, match="batch .* multiple of the number of processes \\(4\\), got 6"):
        rank_batch(6, 4)


def test_single_process_is_unchanged(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed("cpu") == 1
    assert not torch.distributed.is_initialized()
    assert (get_rank(), get_world_size()) == (0, 1)
    assert all_reduce_sum([1.5, 2]) == [1.5, 2.0] and broadcast_object({"a": 1}) == {"a": 1}
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), [], epochs=1, sync_bn=True)
    assert trainer.ddp is None and trainer.model is model and isinstance(model[1], nn.BatchNorm2d)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(trainer.forward(x), model(x))


def test_bad_world_size_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"):
        init_distributed("cpu")


def test_sync_bn_needs_cuda():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="sync_bn needs CUDA"):
        wrap_ddp(model, torch.device("cpu"), sync_bn=True)


def test_sync_bn_config_key_and_flag():
    assert DetectConfig().sync_bn is False and DetectConfig(sync_bn=True).sync_bn is True
    with pytest.raises((TypeError, ValueError), match="sync_bn"):
        DetectConfig(sync_bn="yes")
    from pixbox.cli.main import build_parser

    for task in ("detect", "classify", "segment"):
        assert build_parser().parse_args([task, "train", "--sync-bn"]).sync_bn is True
        assert build_parser().parse_args([task, "train"]).sync_bn is None


# ----------------------------------------------------------------------------------------------
# NCCL on CUDA (issue 17)

_needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
_needs_2_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")

# One process on one GPU: pixbox makes no process group when WORLD_SIZE is 1, and its Trainer wraps DDP only with
# several processes, so the script makes a world-size-1 NCCL group itself and wraps the trainer's model with
# pixbox's wrap_ddp (sync_bn on) before fitting. The same run without the group is the reference: with one rank,
# DDP's averaged gradients are the rank's own and SyncBatchNorm normalises like BatchNorm.
_NCCL_ONE_PROCESS = """
import json
import sys
from pathlib import Path

import torch
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from pixbox.engine.distributed import get_world_size, wrap_ddp
from pixbox.engine.runs import build_trainer
from pixbox.tasks.detect import DetectConfig, DetectTask

data, project, init, out = sys.argv[1:5]
torch.set_num_threads(1)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.deterministic = True


def run(name, ddp):
    cfg = DetectConfig(data=data, project=project, name=name, **CONFIG)
    run_dir = Path(project) / name
    run_dir.mkdir(parents=True)
    task = DetectTask()
    trainer, _ = build_trainer(task, cfg, task.build_data(cfg), run_dir, progress=False, verbose=False)
    info = {"device": str(trainer.device), "wrapped_by_pixbox": trainer.ddp is not None}
    if ddp:
        info["bn"] = sum(isinstance(m, nn.BatchNorm2d) for m in trainer.model.modules())
        trainer.model, trainer.ddp = wrap_ddp(trainer.model, trainer.device, sync_bn=cfg.sync_bn)
        info["sync_bn"] = sum(isinstance(m, nn.SyncBatchNorm) for m in trainer.model.modules())
        info["plain_bn"] = sum(type(m) is nn.BatchNorm2d for m in trainer.model.modules())
        info["device_ids"] = list(trainer.ddp.device_ids or [])
        calls = []

        def counting_allreduce(state, bucket):
            calls.append(bucket.buffer().numel())
            return default_hooks.allreduce_hook(state, bucket)

        trainer.ddp.register_comm_hook(None, counting_allreduce)
    start = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    history = trainer.fit()
    if ddp:
        info["allreduce_calls"] = len(calls)
    info["losses"] = [row["train_loss"] for row in history]
    return trainer.model.state_dict(), start, info


ref, start, ref_info = run("plain", False)
torch.distributed.init_process_group("nccl", init_method=init, rank=0, world_size=1)
try:
    backend, world = torch.distributed.get_backend(), get_world_size()
    got, _, info = run("ddp", True)
finally:
    torch.distributed.destroy_process_group()
floats = [k for k in ref if ref[k].is_floating_point()]
diff = max(float(((got[k] - ref[k]).abs() / (ref[k].abs() + 1e-3)).max()) for k in floats)
moved = max(float((ref[k] - start[k]).abs().max()) for k in floats)
Path(out).write_text(json.dumps({"backend": backend, "world": world, "ddp": info, "ref": ref_info,
                                 "same_keys": sorted(got) == sorted(ref), "rel_diff": diff, "moved": moved}))
"""


@pytest.mark.cuda
@_needs_cuda
def test_single_process_nccl_group_trains_through_pixbox_ddp(data, tmp_path):
    script, out = tmp_path / "one.py", tmp_path / "out.json"
    script.write_text(_NCCL_ONE_PROCESS.replace("CONFIG", repr({**_CONFIG, "device": "cuda", "sync_bn": True})))
    args = [str(data), str(tmp_path / "runs"), f"file://{tmp_path / 'pg'}", str(out)]
    done = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, f"the NCCL run failed:\n{done.stdout}\n{done.stderr}"
    result = json.loads(out.read_text())
    assert (result["backend"], result["world"]) == ("nccl", 1)
    ddp, ref = result["ddp"], result["ref"]
    assert ddp["device"].startswith("cuda") and ref["device"].startswith("cuda")
    assert not ddp["wrapped_by_pixbox"] and not ref["wrapped_by_pixbox"]  # one process: the Trainer wraps nothing
    assert ddp["bn"] > 0 and ddp["sync_bn"] == ddp["bn"] and ddp["plain_bn"] == 0  # --sync-bn converted every one
    assert len(ddp["device_ids"]) == 1
    assert ddp["allreduce_calls"] > 0  # the gradients went through NCCL
    assert result["same_keys"] and result["moved"] > 1e-2
    assert result["rel_diff"] < 1e-3, result  # DDP with one rank trains like no DDP
    assert ddp["losses"] == pytest.approx(ref["losses"], rel=1e-4)


# 2 GPUs: `pixbox detect train` under torchrun, with a callback that records what each run trained with.
_NCCL_RUN = """
import json
import sys

import torch
from torch import nn

from pixbox.engine import Callback
from pixbox.tasks.detect import DetectConfig, train_detector

torch.set_num_threads(1)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.deterministic = True


class Record(Callback):
    def on_train_start(self, trainer):
        if trainer.rank == 0:
            with open(sys.argv[4], "w") as f:
                json.dump({"backend": torch.distributed.get_backend(), "world": trainer.world_size,
                           "device": str(trainer.device), "ddp": trainer.ddp is not None,
                           "sync_bn": sum(isinstance(m, nn.SyncBatchNorm) for m in trainer.model.modules()),
                           "plain_bn": sum(type(m) is nn.BatchNorm2d for m in trainer.model.modules())}, f)


cfg = DetectConfig(data=sys.argv[1], project=sys.argv[2], name=sys.argv[3], **CONFIG)
train_detector(cfg, progress=False, verbose=False, callbacks=[Record()])
"""


@pytest.fixture(scope="module")
def nccl_runs(data, tmp_path_factory):
    """2-process NCCL runs (2 epochs of 2 steps, as the gloo run), without and with --sync-bn: run folders and
    what rank 0 recorded."""
    work = tmp_path_factory.mktemp("nccl")
    runs = {}
    for sync_bn in (False, True):
        name = f"sync{int(sync_bn)}"
        script = work / f"{name}.py"
        script.write_text(_NCCL_RUN.replace("CONFIG", repr({**_CONFIG, "device": "cuda", "sync_bn": sync_bn})))
        _torchrun([str(data), str(work / "runs"), name, str(work / f"{name}.json")], work, script=str(script))
        runs[sync_bn] = work / "runs" / name, json.loads((work / f"{name}.json").read_text())
    return runs


@pytest.mark.cuda
@_needs_2_gpus
def test_two_gpu_nccl_run_matches_the_single_process_reference(nccl_runs, data, tmp_path, monkeypatch):
    run, info = nccl_runs[False]
    assert (info["backend"], info["world"], info["ddp"]) == ("nccl", 2, True)
    assert info["device"] == "cuda:0" and info["sync_bn"] == 0
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 2 and state["global_step"] == 4
    assert not any(k.startswith(("module.", "_orig")) for k in state["model"])
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    reference, history = _sharded_reference(data, tmp_path, device="cuda")
    expected = reference.model.state_dict()
    assert state["model"].keys() == expected.keys()
    for key, value in expected.items():
        got = state["model"][key].to(value.device)
        if value.is_floating_point():
            torch.testing.assert_close(got, value, rtol=1e-3, atol=1e-4, msg=lambda m: f"{key}: {m}")
        else:
            assert torch.equal(got, value), key
    rows = _csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row, ref in zip(rows, history):
        for key in ("train_loss", "train_cls", "train_box"):
            assert float(row[key]) == pytest.approx(ref[key], rel=1e-3), key
        assert float(row["lr"]) == pytest.approx(ref["lr"], rel=1e-9)


@pytest.mark.cuda
@_needs_2_gpus
def test_sync_bn_on_two_gpus_converts_the_batchnorms_and_changes_the_run(nccl_runs):
    (plain_run, plain), (sync_run, synced) = nccl_runs[False], nccl_runs[True]
    assert (synced["backend"], synced["world"], synced["ddp"]) == ("nccl", 2, True)
    assert synced["sync_bn"] > 0 and synced["plain_bn"] == 0 and plain["sync_bn"] == 0 and plain["plain_bn"] > 0
    a, b = load_checkpoint(sync_run / "last.pt")["model"], load_checkpoint(plain_run / "last.pt")["model"]
    assert a.keys() == b.keys()  # a SyncBatchNorm checkpoint loads into the plain model
    # BatchNorm statistics over the 4 images of a step instead of each rank's 2: other running means, other weights
    assert max(float((a[k] - b[k]).abs().max()) for k in a if k.endswith("running_mean")) > 1e-4
    build_model("tiny_ssd", 1, image_size=64).load_state_dict(a)
