"""A kill during a checkpoint write never leaves ``best.pt`` behind ``last.pt`` (issue 19, bad case 3).

Before: ``last.pt`` was written first and recorded the new best; a kill before ``best.pt`` was
written made a resumed run report "best map_50 ... at epoch 2" while ``best.pt`` held epoch 1,
and a kill in the final epoch left no ``best.pt`` at all (and ``--resume`` refused: finished).
The kill is simulated exactly between the two writes by a ``save_checkpoint`` that dies there.
"""

import pytest
import torch

import pixbox
import pixbox.engine.callbacks as C
from pixbox.data import make_dataset
from pixbox.engine.checkpoint import load_checkpoint, remove_partial_checkpoints, repair_best, save_checkpoint

_CONFIG = dict(model="tiny_ssd", epochs=3, batch=4, imgsz=64, workers=0, device="cpu", augment="none", seed=3,
               amp=False, lr=0.05, warmup_epochs=0, monitor="map_50", score_threshold=0.0)


class _Killed(BaseException):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bananas")
    make_dataset("bananas", root, num_train=8, num_val=4, image_size=64, progress=False)
    return root


@pytest.fixture
def improving(monkeypatch):
    """Every epoch's map_50 is a new best (the epoch number), so every epoch writes best.pt."""
    original = C.CheckpointCallback.on_epoch_end

    def on_epoch_end(self, trainer):
        trainer.epoch_log["map_50"] = float(trainer.epoch + 1)
        original(self, trainer)

    monkeypatch.setattr(C.CheckpointCallback, "on_epoch_end", on_epoch_end)


def _kill_before(monkeypatch, name: str, epoch: int):
    """Dies when ``name`` (last.pt or best.pt) is about to be written for ``epoch``."""
    def save(state, path):
        if path.name == name and state["epoch"] == epoch:
            raise _Killed
        return save_checkpoint(state, path)

    monkeypatch.setattr(C, "save_checkpoint", save)


def test_best_is_written_before_last(monkeypatch, tmp_path):
    order = []
    monkeypatch.setattr(C, "save_checkpoint", lambda state, path: order.append(path.name))
    cb = C.CheckpointCallback(tmp_path, monitor="map")
    from types import SimpleNamespace

    t = SimpleNamespace(epoch=0, epoch_log={"map": 0.5}, best_score=None, best_epoch=None,
                        state_dict=lambda: {"epoch": 1})
    cb.on_epoch_end(t)
    assert order == ["best.pt", "last.pt"]


@pytest.mark.parametrize("epoch", [1, 3], ids=["first epoch", "final epoch"])
def test_a_kill_between_the_writes_leaves_best_consistent(monkeypatch, improving, data, tmp_path, epoch):
    cfg = dict(_CONFIG, data=str(data), project=str(tmp_path), name="run")
    _kill_before(monkeypatch, "last.pt", epoch)
    with pytest.raises(_Killed):
        pixbox.train_detector(cfg, progress=False, verbose=False)
    run = tmp_path / "run"
    best = load_checkpoint(run / "best.pt")
    assert best["epoch"] == best["best_epoch"] == epoch  # written before the kill
    if epoch > 1:  # last.pt is one epoch behind: best.pt is ahead of it, never behind
        assert load_checkpoint(run / "last.pt")["best_epoch"] == epoch - 1
    monkeypatch.setattr(C, "save_checkpoint", save_checkpoint)
    if epoch == 1:  # no last.pt yet: the run starts again
        pixbox.train_detector(dict(cfg, name="run"), progress=False, verbose=False)
        run = tmp_path / "run2"
    else:
        pixbox.train_detector(resume=run / "last.pt", progress=False, verbose=False)
    last, best = load_checkpoint(run / "last.pt"), load_checkpoint(run / "best.pt")
    assert last["epoch"] == best["epoch"] == last["best_epoch"] == 3 and best["best_score"] == last["best_score"] == 3.0
    assert not list(run.glob(".*.tmp"))


def test_a_run_killed_by_the_old_order_is_repaired_on_resume(data, tmp_path, caplog):
    """What the old write order left: the final epoch's last.pt claims it is the best, no best.pt."""
    cfg = dict(_CONFIG, data=str(data), project=str(tmp_path), name="run")
    pixbox.train_detector(cfg, progress=False, verbose=False)
    run = tmp_path / "run"
    last = load_checkpoint(run / "last.pt")
    last["best_epoch"], last["best_score"] = 3, 1.0
    save_checkpoint(last, run / "last.pt")
    (run / "best.pt").unlink()
    (run / ".last.pt.abc123.tmp").write_bytes(b"half")
    with pytest.raises(ValueError, match="already finished its 3 epochs"):
        pixbox.train_detector(resume=run / "last.pt", progress=False, verbose=False)
    assert "best.pt was missing or behind last.pt; rewritten from it (epoch 3)" in caplog.text
    best = load_checkpoint(run / "best.pt")
    assert best["slim"] and best["epoch"] == 3
    torch.testing.assert_close(best["model"], last["model"])
    assert remove_partial_checkpoints(run) == [run / ".last.pt.abc123.tmp"] and not list(run.glob(".*.tmp"))


def test_repair_best_says_when_it_cannot(tmp_path):
    save_checkpoint({"epoch": 5, "best_epoch": 3, "model": {}}, tmp_path / "last.pt")
    save_checkpoint({"epoch": 2, "best_epoch": 2, "model": {}}, tmp_path / "best.pt")
    assert "cannot be rebuilt" in repair_best(tmp_path / "last.pt")
    save_checkpoint({"epoch": 3, "best_epoch": 3, "model": {}}, tmp_path / "best.pt")
    assert repair_best(tmp_path / "last.pt") is None
