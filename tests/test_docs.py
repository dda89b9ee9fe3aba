"""The commands documented in README.md and docs/*.md parse, hang together, and run in smoke mode.

A test runs the documented commands in smoke mode (tiny sizes) so they cannot go stale.

What is checked, for every ```console block of README.md and docs/*.md (its lines starting with
``$ ``; a line ending in ``\\`` continues on the next one; ``# ...`` comments are dropped as
the shell drops them):

1. **Every pixbox command parses** (:func:`test_documented_command_parses`): ``pixbox ...``
   lines, and the pixbox part of ``torchrun ... -m pixbox ...`` and ``torchrun
   --no-python pixbox ...`` lines, go through the real parser of the CLI
   (:func:`pixbox.cli.main.build_parser`), so a misspelt flag, a removed subcommand or a wrong
   option name fails with the file, line and command.
2. **Other commands** are checked textually or skipped (:func:`test_other_documented_command`):
   ``make T`` needs a target ``T`` in the Makefile; ``pip install -e '.[E]'`` needs extra ``E``
   in pyproject.toml; a ``python`` line (with or without ``VAR=value`` prefixes) that names a
   ``benchmarks/*.py`` script needs that file; ``python -c ...`` (an inline program) and
   ``curl`` (it needs a running ``pixbox serve``; tests/serve covers the API) are skipped; any
   other program fails the test, so that a new kind of command gets a rule here.
3. **The docs hang together** (:func:`test_every_data_make_writes_its_own_folder`,
   :func:`test_every_train_names_a_distinct_run`, :func:`test_weights_come_from_documented_runs`):
   the docs can be followed in order on a fresh clone, so every ``data make`` writes a folder of
   its own, every ``train`` has an explicit ``--name`` that no other train uses, and every
   ``--weights runs/...`` names a run that a documented ``train`` (or ``make demo``) writes.
4. **Whole recipes run end to end** (:func:`test_recipe_runs_in_smoke_mode`): for each entry of
   :data:`RECIPES` (a doc file and a regular expression), every pixbox command of that file
   whose text matches runs, in order, in a temporary folder (with ``configs/`` linked in), via
   ``pixbox.cli.main.main`` in this process. Each must exit 0; the run folder a train writes
   (``runs/<task>/<--name>/best.pt``), every ``--weights`` file, and every ``--out`` or
   dataset folder the commands name must exist afterwards. Smoke mode is the explicit
   override table :data:`SMOKE`: for a ``(task, action)``, each flag is set to the smoke value
   (replacing the documented value, or added when absent; ``None`` marks a switch to add):
   a handful of 64 px images, one epoch, small batches, no loader processes, and the default
   precision (bfloat16 autocast on CPUs that have it natively). The documented models and configs are kept (they are small enough at 64 px and one epoch);
   together the recipes take about 10 to 40 seconds on 2 cores, depending on the load.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shlex
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Smoke mode: ``(task, action) -> {flag: value}``; the value replaces the documented one, or
#: the flag is added; ``None``: a switch, added when absent.
SMOKE: dict[tuple[str, str], dict[str, str | None]] = {
    ("data", "make"): {"--num-train": "8", "--num-val": "6", "--image-size": "64", "--no-progress": None},
    ("data", "check"): {"--no-progress": None},
    ("data", "preview"): {"--num": "2"},
    ("detect", "train"): {"--epochs": "1", "--batch": "4", "--imgsz": "64", "--workers": "0"},
    ("detect", "predict"): {"--batch": "2"},
    ("classify", "train"): {"--epochs": "1", "--batch": "4", "--imgsz": "32", "--workers": "0"},
    ("segment", "train"): {"--epochs": "1", "--batch": "2", "--crop": "64x64", "--workers": "0"},
}

#: The recipes run end to end: (doc file relative to the repository, a regular expression that
#: picks the recipe's commands in that file). Its ``data make`` must be among them.
RECIPES = {
    "readme-tour": ("README.md", r"data/bananas_tour|runs/detect/tour/"),
    "data": ("docs/data.md", r"data/shapes_small"),
    "detect-bananas": ("docs/detection.md", r"data make bananas data/bananas$|--name bananas$|runs/detect/bananas/"),
    "detect-shapes": ("docs/detection.md", r"data make shapes data/shapes$|shapes_ssd|shapes_frcnn"),
    "classify": ("docs/classification.md", r"data/objects|runs/classify/objects/"),
    "segment": ("docs/segmentation.md", r"data/seg\b|runs/segment/seg/"),
}

#: Commands that are not pixbox's, and what is done with them (see the module docstring).
OTHER_PROGRAMS = {"make", "pip", "python", "python3", "curl"}


@dataclass(frozen=True)
class Command:
    """One documented command: where it is, its text (continuations joined) and its tokens."""

    where: str  # "docs/detection.md:42"
    text: str
    tokens: tuple[str, ...]

    @property
    def pixbox_argv(self) -> list[str] | None:
        """The arguments after ``pixbox`` (or torchrun's ``-m pixbox``); None otherwise."""
        t = list(self.tokens)
        if t and t[0] == "pixbox":
            return t[1:]
        if t and t[0] == "torchrun":
            if "-m" in t and t.index("-m") + 1 < len(t) and t[t.index("-m") + 1] == "pixbox":
                return t[t.index("-m") + 2:]
            if "--no-python" in t and "pixbox" in t:
                return t[t.index("pixbox") + 1:]
            raise AssertionError(f"{self.where}: a torchrun line that does not run pixbox: {self.text}")
        return None


def _commands(path: pathlib.Path) -> list[Command]:
    """Every ``$ `` command of the ```console blocks of ``path``, in order."""
    text = path.read_text()
    out = []
    for block in re.finditer(r"^```console\n(.*?)^```", text, re.S | re.M):
        first_line = text.count("\n", 0, block.start()) + 2
        lines = block.group(1).split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                where = f"{path.relative_to(ROOT)}:{first_line + i}"
                cmd = line[2:]
                while cmd.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd = cmd.rstrip()[:-1] + " " + lines[i].strip()
                out.append(Command(where, cmd.strip(), tuple(shlex.split(cmd, comments=True))))
            i += 1
    return out


def _all_commands() -> list[Command]:
    return [c for path in DOCS for c in _commands(path)]


def _parse(argv: list[str]):
    from pixbox.cli.main import build_parser

    return build_parser().parse_args(argv)


def _flag(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in ``argv`` (``--flag V`` or ``--flag=V``), or None."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


_PIXBOX = [c for c in _all_commands() if c.pixbox_argv is not None]
_OTHERS = [c for c in _all_commands() if c.pixbox_argv is None]


def test_docs_have_commands():
    assert len(_PIXBOX) > 20, "README.md and docs/*.md should document pixbox commands in ```console blocks"


@pytest.mark.parametrize("cmd", _PIXBOX, ids=[c.where for c in _PIXBOX])
def test_documented_command_parses(cmd, capsys):
    try:
        _parse(cmd.pixbox_argv)
    except SystemExit as e:
        err = capsys.readouterr().err.strip().splitlines()
        pytest.fail(f"{cmd.where}: `{cmd.text}` does not parse (exit {e.code}): {err[-1] if err else ''}")


@pytest.mark.parametrize("cmd", _OTHERS, ids=[c.where for c in _OTHERS])
def test_other_documented_command(cmd):
    tokens = list(cmd.tokens)
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):  # VAR=value prefixes
        tokens.pop(0)
    assert tokens, f"{cmd.where}: empty command"
    program = pathlib.Path(tokens[0]).name
    if re.fullmatch(r"python3?(\.\d+)?", program):
        program = "python"
    assert program in OTHER_PROGRAMS, (f"{cmd.where}: no rule for `{tokens[0]}` in `{cmd.text}`; "
                                       f"add one to tests/test_docs.py")
    if program == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in tokens[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{cmd.where}: no make target {target!r}"
    elif program == "pip":
        assert tokens[1:3] == ["install", "-e"], f"{cmd.where}: install the clone in editable mode (pip install -e)"
        pyproject = (ROOT / "pyproject.toml").read_text()
        for token in tokens[3:]:
            m = re.fullmatch(r"\.\[([\w,-]+)\]", token)
            assert m or token == ".", f"{cmd.where}: `{token}`: install the clone, `pip install -e '.[EXTRA]'`"
            for extra in m.group(1).split(",") if m else []:
                assert re.search(rf"^{re.escape(extra)} = \[", pyproject, re.M), f"{cmd.where}: no extra {extra!r}"
    elif program == "python":
        if "-c" in tokens:
            return  # skipped: an inline program
        scripts = [t for t in tokens[1:] if t.endswith(".py")]
        assert scripts, f"{cmd.where}: a python line without a script: {cmd.text}"
        for script in scripts:
            assert (ROOT / script).is_file(), f"{cmd.where}: {script} does not exist"
    # curl: skipped (it needs a running `pixbox serve`; tests/serve covers the API)


# ---------------------------------------------------------------------------------------------
# The docs hang together


def _trains() -> list[tuple[Command, list[str]]]:
    return [(c, c.pixbox_argv) for c in _PIXBOX if c.pixbox_argv[1:2] == ["train"]]


def _run_dir(argv: list[str]) -> pathlib.PurePosixPath:
    task = argv[0]
    project = _flag(argv, "--project") or f"runs/{task}"
    return pathlib.PurePosixPath(project) / (_flag(argv, "--name") or "train")


def test_every_data_make_writes_its_own_folder():
    seen: dict[str, str] = {}
    for cmd in _PIXBOX:
        argv = cmd.pixbox_argv
        if argv[:2] == ["data", "make"]:
            folder = str(pathlib.PurePosixPath(_parse(argv).dir))
            assert folder not in seen, (f"{cmd.where}: `data make` into {folder}, which {seen[folder]} makes "
                                        f"already; the second is refused: give it its own folder")
            seen[folder] = cmd.where


def test_every_train_names_a_distinct_run():
    seen: dict[str, str] = {}
    for cmd, argv in _trains():
        if "--resume" in argv:
            continue
        assert _flag(argv, "--name"), (f"{cmd.where}: `{cmd.text}` has no --name: its run would go to "
                                       f"runs/{argv[0]}/train, train2, ...; name it")
        run = str(_run_dir(argv))
        assert run not in seen, f"{cmd.where}: the run {run} is trained by {seen[run]} already"
        seen[run] = cmd.where


def test_weights_come_from_documented_runs():
    runs = {str(_run_dir(argv)) for _, argv in _trains()} | {"runs/demo/detect/train"}
    for cmd in _PIXBOX:
        argv = cmd.pixbox_argv
        for i, a in enumerate(argv):
            if a == "--weights" and argv[i + 1].startswith("runs/"):
                parent = str(pathlib.PurePosixPath(argv[i + 1]).parent)
                assert parent in runs, f"{cmd.where}: --weights {argv[i + 1]}: no documented train writes {parent}"


# ---------------------------------------------------------------------------------------------
# Recipes, end to end in smoke mode


def smoke(argv: list[str]) -> list[str]:
    """``argv`` with the :data:`SMOKE` overrides of its ``(task, action)`` applied."""
    argv = list(argv)
    for flag, value in SMOKE.get(tuple(argv[:2]), {}).items():
        if value is None:
            if flag not in argv:
                argv.append(flag)
        elif flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


def test_smoke_overrides_replace_or_add():
    expected = ["detect", "train", "--data", "d", "--epochs", "1", "--batch", "4", "--imgsz", "64", "--workers", "0"]
    assert smoke(["detect", "train", "--data", "d", "--epochs", "20"]) == expected
    assert smoke(["data", "make", "shapes", "d"])[-1] == "--no-progress"


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_runs_in_smoke_mode(recipe, tmp_path, monkeypatch, capsys):
    import torch

    from pixbox.cli.main import main

    doc, pattern = RECIPES[recipe]
    commands = [c for c in _commands(ROOT / doc) if c.pixbox_argv is not None and re.search(pattern, c.text)]
    assert commands, f"recipe {recipe!r}: no command of {doc} matches {pattern!r}"
    assert commands[0].pixbox_argv[:2] == ["data", "make"], f"recipe {recipe!r} must start with its `data make`"
    (tmp_path / "configs").symlink_to(ROOT / "configs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    try:
        for cmd in commands:
            argv = smoke(cmd.pixbox_argv)
            task, action = argv[0], argv[1]
            weights = _flag(argv, "--weights")
            if weights is not None:
                assert pathlib.Path(weights).exists(), f"{cmd.where}: --weights {weights} was not written before"
            rc = main(argv)
            out = capsys.readouterr()
            assert rc == 0, (f"{cmd.where}: `{' '.join(argv)}` exited {rc}\n--- stdout\n{out.out[-3000:]}"
                             f"\n--- stderr\n{out.err[-3000:]}")
            if (task, action) == ("data", "make"):
                assert pathlib.Path(argv[3]).is_dir(), f"{cmd.where}: {argv[3]} was not made"
            if action == "train":
                assert (pathlib.Path(_run_dir(argv)) / "best.pt").is_file(), f"{cmd.where}: no {_run_dir(argv)}/best.pt"
            for flag in ("--out", "-o"):
                target = _flag(argv, flag)
                if target is not None:
                    assert pathlib.Path(target).exists(), f"{cmd.where}: {flag} {target} was not written"
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Links and images


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: pathlib.Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_links_and_images_resolve():
    """Every relative link and image of README.md and docs/*.md names an existing file and heading."""
    for path in DOCS:
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            assert dest.exists(), f"{path.relative_to(ROOT)}: link {target!r}: {file} does not exist"
            assert ROOT in dest.parents or dest == ROOT, f"{path.relative_to(ROOT)}: {target!r} leaves the repository"
            if anchor and dest.suffix == ".md":
                assert anchor in _anchors(dest), f"{path.relative_to(ROOT)}: link {target!r}: no heading #{anchor}"
    used = {p.name for path in DOCS for p in [pathlib.Path(t) for t in re.findall(r"\]\((?:\.\./)?(?:docs/)?images/([^)]+)\)",
                                                                                    path.read_text())]}
    unused = {p.name for p in (ROOT / "docs" / "images").iterdir()} - used
    assert not unused, f"images in docs/images that no page shows: {sorted(unused)}"
