"""benchmarks/gpu.py (issue 17's GPU table): its ``--quick`` run on the CPU has every row and every check passes,
and its checks and its loader of the D2L book's code work."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"

#: Every row of the table: (pattern of the work column, how many rows, whether an op check runs).
ROWS = [
    (r"nms N=\d+", 4, True),
    (r"batched_nms N=\d+, 20 classes", 4, True),
    (r"box_iou \d+x\d+", 1, True),
    (r"roi_align K=\d+ fwd", 2, True),
    (r"roi_align K=\d+ fwd\+bwd", 2, True),
    (r"roi_pool K=\d+ fwd", 2, True),
    (r"roi_pool K=\d+ fwd\+bwd", 2, True),
    (r"multibox_target B=\d+, \d+ anchors, G=\d+", 1, True),
    (r"multibox_detection B=\d+, \d+ anchors", 1, True),
    (r"SSD-ResNet18 train step B=\d+ \d+px.*", 1, False),
    (r"Faster R-CNN ResNet-50 train step B=\d+ \d+px.*", 1, False),
    (r"FCN \(\w+\) train step B=\d+ \d+x\d+.*", 1, False),
    (r"pixbox stylize \d+ steps, long side \d+ .*", 1, False),
]


def _gpu_module():
    """benchmarks/gpu.py as a module (registered first: its dataclasses look their module up)."""
    if "_test_gpu_bench" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_test_gpu_bench", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["_test_gpu_bench"] = module
        spec.loader.exec_module(module)
    return sys.modules["_test_gpu_bench"]


def test_quick_run_on_cpu_has_every_row_and_no_mismatch():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--device", "cpu"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert lines[0] == "| work | pixbox | baseline | ratio | check |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]
    assert all(len(r) == 5 for r in rows), rows
    assert not [r for r in rows if "MISMATCH" in r[4] or "ERROR" in r[4]], proc.stdout
    assert len(rows) == sum(count for _, count, _ in ROWS), [r[0] for r in rows]
    for pattern, count, op in ROWS:
        matched = [r for r in rows if re.fullmatch(pattern, r[0])]
        assert len(matched) == count, (pattern, [r[0] for r in rows])
        for work, pix, base, ratio, check in matched:
            assert re.fullmatch(r"[0-9.]+(e[-+]?\d+)? (ms|img/s|s)", pix), (work, pix)
            assert float(pix.split()[0]) > 0, (work, pix)
            if op:  # checked against torchvision / d2l, or without them against tests/reference.py
                assert check.startswith("ok"), (work, check)
                assert (base == "n/a") == (ratio == "-"), (work, base, ratio)
            else:
                assert check == "-", (work, check)
    assert re.search(rf"^{len(rows)} rows in \d+ s; .*; 0 failed check\(s\)$", proc.stdout, re.M), proc.stdout[-500:]


def test_checks_report_differences():
    gpu = _gpu_module()
    assert gpu.same_keep(torch.tensor([3, 1, 2]), torch.tensor([3, 1, 2])) == "ok"
    assert gpu.same_keep(torch.tensor([3, 1, 2]), torch.tensor([3, 2, 1])) == \
        "MISMATCH (kept 3 vs 3, first difference at 1)"
    assert gpu.same_keep(torch.tensor([3, 1]), torch.tensor([3, 1, 2])) == \
        "MISMATCH (kept 2 vs 3, first difference at 2)"
    a = torch.tensor([1.0, 2.0, 100.0], dtype=torch.float64)
    assert gpu.close(a, a + 1e-6, 1e-5) == "ok"
    assert gpu.close(a + torch.tensor([5e-4, 0, 0]), a, 1e-5, 1e-5) == "MISMATCH (max diff 0.0005 > 1e-05 + 1e-05 |b|)"
    assert gpu.close(a + torch.tensor([0, 0, 5e-4]), a, 1e-5, 1e-5) == "ok"  # 5e-4 <= 1e-5 + 1e-5 * 100
    assert gpu.close(a + torch.tensor([0, 0, 5e-4]), a, 1e-5) == "MISMATCH (max diff 0.0005 > 1e-05)"
    assert gpu.close(a, a[:2], 1.0).startswith("MISMATCH (max diff inf")
    assert gpu.both("ok", "ok") == "ok"
    assert gpu.both("ok", "MISMATCH (masks)", "MISMATCH (x)") == "MISMATCH (masks)"


@pytest.fixture
def no_d2l():
    """No ``d2l`` in ``sys.modules`` during the test, nor the fake one after it."""
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "d2l" or k.startswith("d2l.")}
    yield
    for k in [k for k in sys.modules if k == "d2l" or k.startswith("d2l.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def test_book_loader_stands_in_for_unused_missing_modules(tmp_path, monkeypatch, no_d2l):
    """d2l.torch imports plotting and data packages the GPU machine lacks: empty stand-ins take their place for the
    import only; a missing module not on the list still means "not importable"."""
    gpu = _gpu_module()
    (tmp_path / "d2l").mkdir()
    (tmp_path / "d2l" / "__init__.py").write_text('__version__ = "9.9"\n')
    (tmp_path / "d2l" / "torch.py").write_text(textwrap.dedent("""
        import pixbox_gone_a as pd
        from pixbox_gone_b.spatial import distance_matrix
        from pixbox_gone_a import display

        def twice(x):
            return 2 * x
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(gpu, "BOOK_STANDINS", ("pixbox_gone_a",))
    book, note = gpu.load_book()
    assert book is None and "pixbox_gone_b" in note

    monkeypatch.setattr(gpu, "BOOK_STANDINS", ("pixbox_gone_a", "pixbox_gone_b"))
    book, note = gpu.load_book()
    assert book is not None and book.twice(21) == 42
    assert note == "d2l 9.9 (stand-ins for pixbox_gone_a, pixbox_gone_b)"
    assert not [m for m in sys.modules if m.startswith("pixbox_gone")]  # the stand-ins are gone again


@pytest.mark.parametrize("argv, message", [
    (["--only", "nms,bogus"], "unknown group(s) ['bogus']"),
    (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "nope"], "--device"),
])
def test_bad_arguments_name_the_option(argv, message, capsys):
    gpu = _gpu_module()
    with pytest.raises(SystemExit):
        gpu.main(argv)
    assert message in capsys.readouterr().err
