import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import pixbox
from pixbox.cli.main import TASKS, build_parser, main

PNGS = ["anchors_multiscale.png", "anchors_single_pixel.png", "nms_before.png", "nms_after.png"]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"pixbox {pixbox.__version__}\n"


def test_help_lists_the_tasks(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: pixbox" in out and "demo" in out


def test_demo_help_lists_the_actions(capsys):
    assert main(["demo", "--help"]) == 0
    assert "anchors" in capsys.readouterr().out
    assert main(["demo", "anchors", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--out" in out and "--seed" in out and "runs/demo/anchors" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required: <task>"),
        (["nope"], "invalid choice: 'nope'"),
        (["dmo"], "did you mean 'demo'?"),
        (["demo"], "required: <action>"),
        (["demo", "anchorz"], "did you mean 'anchors'?"),
        (["demo", "anchors", "--seed", "-1"], "must be >= 0"),
        (["demo", "anchors", "--seed", "x"], "must be an integer"),
        (["demo", "anchors", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_return_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("task", ["detect", "classify", "segment"])
def test_train_options_are_never_prefix_matched(task, tmp_path, capsys):
    # argparse would take --epoch and --ep as --epochs; every pixbox parser turns that off
    for given in ("--epoch", "--epo", "--ep"):
        argv = [task, "train", "--data", str(tmp_path), "--project", str(tmp_path), given, "3"]
        assert main(argv) == 2, given
        assert f"unrecognized arguments: {given} 3" in capsys.readouterr().err
    assert main([task, "train", "--data", str(tmp_path), "--epoch", "3"]) == 2
    assert "unrecognized arguments: --epoch 3; did you mean '--epochs'?" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no run started


def test_no_parser_of_the_cli_accepts_prefixes():
    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    found = list(parsers(build_parser()))
    assert len(found) > 20 and all(p.allow_abbrev is False for p in found), [p.prog for p in found if p.allow_abbrev]
    assert main(["--vers"]) == 2  # the top-level parser too
    assert main(["demo", "anchors", "--se", "1"]) == 2  # and the task parsers without did-you-mean


def test_each_task_registers_one_subcommand():
    parser = build_parser()
    tasks = next(a for a in parser._actions if a.dest == "task")
    assert len(TASKS) == len(tasks.choices) and "demo" in tasks.choices


def test_demo_anchors_in_process(tmp_path, capsys, monkeypatch):
    # The demo itself is tested in tests/demos; here only the wiring: arguments in, paths out.
    from pixbox.demos import anchors

    calls = []

    def fake_run(out_dir, *, seed=0):
        calls.append((out_dir, seed))
        return {"a": Path(out_dir) / "a.png", "b": Path(out_dir) / "b.png"}

    monkeypatch.setattr(anchors, "run", fake_run)
    assert main(["demo", "anchors", "--out", str(tmp_path / "x"), "--seed", "3"]) == 0
    assert calls == [(tmp_path / "x", 3)]
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "x" / "a.png"), str(tmp_path / "x" / "b.png")]
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "anchors"]) == 0
    assert calls[-1] == (Path("runs/demo/anchors"), 0)


def test_demo_anchors_subprocess_writes_the_files(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "pixbox.cli.main", "demo", "anchors", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(out / name) for name in PNGS]
    for name in PNGS:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and min(im.size) > 100


def test_console_script_version():
    script = Path(sys.executable).parent / "pixbox"
    if not script.exists():
        pytest.skip("the pixbox console script is not installed next to this python")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == f"pixbox {pixbox.__version__}\n"
