"""Run torchvision's own operator tests (``test/test_ops.py``) on pixbox's ops.

The torchvision.ops functions that pixbox implements are replaced by pixbox's (set on the
``torchvision.ops`` module, through which the tests call them), then pytest runs the tests in
this process and a table gives passed / failed / skipped per test class, with the reasons for
the skips. Skipped, because they are not about what the ops compute:

- classes and tests of ops pixbox does not have (PS RoI ops, deformable convolution, focal loss,
  rotated boxes, ...) and of torchvision internals (``ops._utils``, ``ops.misc``);
- TorchScript (``torch.jit.script``), ``torch.fx`` (tracing, leaf nodes), the opcheck tests
  (``torch.library`` registration of torchvision's C++ kernels), quantized tensors, and
  ``torch.compile(fullgraph=True)`` of the RoI ops with symbolic output sizes (pixbox's RoI ops
  validate their input on the host, a graph break; they are not registered custom ops);
- CUDA or MPS tests on a machine without that device;
- the documented differences of docs/ops.md (pixbox raises ``ValueError`` for bad shapes where
  torchvision raises ``RuntimeError`` or ``AssertionError``).

The RoI ``test_backward`` tests gradcheck the op, then the op compiled by TorchScript; here the
second gradcheck runs on the eager op (pixbox's ops are not scriptable).

torchvision's tests are not part of pixbox: put ``test/test_ops.py`` of the torchvision release
you compare with (``git show v0.28.0:test/test_ops.py`` in a clone of pytorch/vision) in a
folder of its own and pass its path. When ``test/common_utils.py`` is not next to it, a small
stand-in provides the five names test_ops.py imports from it. The tests run on a copy in a
temporary folder (opcheck needs a failures file next to the tests), so nothing is written
next to the file you pass. Run it with an interpreter that has torchvision and pytest (see
../shared/peers/README.md)::

    PYTHONPATH=. ~/.cache/pixbox-peers/bin/python benchmarks/torchvision_tests.py /tmp/tvtests/test_ops.py
    ... benchmarks/torchvision_tests.py /tmp/tvtests/test_ops.py -k "TestNMS or TestBoxIou"  # a subset

Exit status 0 when no test fails.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import pathlib
import re
import shutil
import sys
import tempfile
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
import torch  # noqa: E402

#: torchvision.ops name -> (pixbox module, pixbox name)
PIXBOX_OPS = {
    "nms": ("pixbox.ops", "nms"),
    "batched_nms": ("pixbox.ops", "batched_nms"),
    "box_area": ("pixbox.ops", "box_area"),
    "box_convert": ("pixbox.ops", "box_convert"),
    "box_iou": ("pixbox.ops", "box_iou"),
    "generalized_box_iou": ("pixbox.ops", "generalized_box_iou"),
    "distance_box_iou": ("pixbox.ops", "distance_box_iou"),
    "complete_box_iou": ("pixbox.ops", "complete_box_iou"),
    "clip_boxes_to_image": ("pixbox.ops", "clip_boxes"),
    "remove_small_boxes": ("pixbox.ops", "remove_small_boxes"),
    "roi_align": ("pixbox.ops", "roi_align"),
    "roi_pool": ("pixbox.ops", "roi_pool"),
    "RoIAlign": ("pixbox.ops", "RoIAlign"),
    "RoIPool": ("pixbox.ops", "RoIPool"),
    "generalized_box_iou_loss": ("pixbox.losses", "generalized_box_iou_loss"),
    "distance_box_iou_loss": ("pixbox.losses", "distance_box_iou_loss"),
    "complete_box_iou_loss": ("pixbox.losses", "complete_box_iou_loss"),
}

#: Test classes about ops pixbox does not implement, or about torchvision's internals.
NOT_IN_PIXBOX = {
    "TestPSRoIPool": "not in pixbox (position-sensitive RoI pooling)",
    "TestPSRoIAlign": "not in pixbox (position-sensitive RoI align)",
    "TestMultiScaleRoIAlign": "not in pixbox (MultiScaleRoIAlign)",
    "TestDeformConv": "not in pixbox (deformable convolution)",
    "TestFrozenBNT": "not in pixbox (FrozenBatchNorm2d)",
    "TestBoxConversionToRoi": "torchvision internals (ops._utils)",
    "TestFocalLoss": "not in pixbox (sigmoid_focal_loss)",
    "TestMasksToBoxes": "not in pixbox (masks_to_boxes)",
    "TestStochasticDepth": "not in pixbox (StochasticDepth)",
    "TestUtils": "torchvision internals (ops._utils)",
    "TestDropBlock": "not in pixbox (DropBlock)",
    "TestRotatedBoxIou": "not in pixbox (rotated boxes)",
}

#: (test name regular expression, reason): tests outside those classes of what pixbox does not implement
#: (module-level tests parametrized over torchvision's ops, the rotated formats of box_convert).
NOT_IN_PIXBOX_TESTS = [
    (r"ps_roi", "not in pixbox (position-sensitive RoI ops)"),
    (r"^test_deform_conv2d", "not in pixbox (deformable convolution)"),
    (r"xywhr|cxcywhr|xyxyxyxy", "not in pixbox (rotated boxes)"),
]

#: (test name regular expression, reason): tests that are not about what the ops compute.
NOT_SEMANTICS = [
    (r"^(test_schema|test_autograd_registration|test_faketensor|test_aot_dispatch_dynamic)__",
     "opcheck (torch.library registration of torchvision's C++ ops)"),
    (r"jit", "TorchScript"),
    (r"^test_roi_opcheck\b", "opcheck (torch.library registration of torchvision's C++ ops)"),
    (r"^test_roi_pooled_size_symint\b", "torch.compile(fullgraph=True) with SymInt sizes"),
    (r"^(test_is_leaf_node|test_torch_fx_trace)\b", "torch.fx"),
    (r"^(test_qroialign|test_qroi_align_multiple_images|test_qnms)\b", "quantized tensors"),
]

#: (class name or None for any, test name regular expression, reason): documented differences.
DOCUMENTED_DIFFERENCES = [
    ("TestNMS", r"^test_nms_input_errors\b", "documented difference: ValueError, not RuntimeError, for bad shapes"),
    (None, r"^test_boxes_shape\b", "documented difference: ValueError, not AssertionError, for bad shapes"),
]

#: RoI test classes whose test_backward also gradchecks a TorchScript-compiled op.
ROI_CLASSES = {"TestRoiPool", "TestRoIAlign"}


def _common_utils_stand_in() -> types.ModuleType:
    """The five names test_ops.py imports from torchvision's test/common_utils.py."""
    mod = types.ModuleType("common_utils")
    mod.needs_cuda = pytest.mark.needs_cuda
    mod.needs_mps = pytest.mark.needs_mps
    mod.assert_equal = functools.partial(torch.testing.assert_close, rtol=0, atol=0)
    mod.cpu_and_cuda = lambda: ("cpu", pytest.param("cuda", marks=pytest.mark.needs_cuda))
    mod.cpu_and_cuda_and_mps = lambda: mod.cpu_and_cuda() + (pytest.param("mps", marks=pytest.mark.needs_mps),)
    return mod


def _patch_torchvision() -> list[str]:
    """Replaces torchvision.ops' functions by pixbox's; returns the names replaced."""
    import importlib

    import torchvision.ops as tv_ops
    import torchvision.ops.boxes as tv_boxes

    for tv_name, (module, name) in PIXBOX_OPS.items():
        setattr(tv_ops, tv_name, getattr(importlib.import_module(module), name))
    # test_batched_nms_implementations compares torchvision's two batched_nms strategies and
    # then checks the empty case of batched_nms: both strategies become pixbox's batched_nms.
    tv_boxes._batched_nms_vanilla = tv_boxes._batched_nms_coordinate_trick = tv_ops.batched_nms
    return sorted(PIXBOX_OPS)


def _skip_reason(item) -> str | None:
    cls = item.cls.__name__ if item.cls is not None else ""
    name = item.name
    if cls in NOT_IN_PIXBOX:
        return NOT_IN_PIXBOX[cls]
    for pattern, reason in NOT_IN_PIXBOX_TESTS:
        if re.search(pattern, name):
            return reason
    for pattern, reason in NOT_SEMANTICS:
        if re.search(pattern, name):
            return reason
    for klass, pattern, reason in DOCUMENTED_DIFFERENCES:
        if (klass is None or klass == cls) and re.search(pattern, name):
            return reason
    if item.get_closest_marker("needs_cuda") and not torch.cuda.is_available():
        return "CUDA test, no GPU here"
    if item.get_closest_marker("needs_mps") and not torch.backends.mps.is_available():
        return "MPS test, no MPS here"
    return None


class PixboxPlugin:
    """pytest plugin: patches torchvision, skips what is not about semantics, counts outcomes."""

    def __init__(self) -> None:
        self.counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.skips: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.failures: list[str] = []

    def pytest_configure(self, config) -> None:
        for marker in ("needs_cuda", "needs_mps", "opcheck_only_one", "opcheck_only_one()"):
            config.addinivalue_line("markers", f"{marker}: torchvision test marker")

    def pytest_collection_modifyitems(self, items) -> None:
        for item in items:
            reason = _skip_reason(item)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        if item.cls is not None and item.cls.__name__ in ROI_CLASSES and item.name.startswith("test_backward"):
            real = torch.jit.script
            torch.jit.script = lambda fn, *args, **kwargs: fn  # the TorchScript half runs eagerly
            try:
                yield
            finally:
                torch.jit.script = real
        else:
            yield

    def pytest_runtest_logreport(self, report) -> None:
        parts = report.nodeid.split("::")
        cls = parts[1] if len(parts) > 2 else "(module)"
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.skipped:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                self.counts[cls]["skipped"] += 1
                self.skips[cls][reason.removeprefix("Skipped: ")] += 1
            elif report.failed:
                self.counts[cls]["failed"] += 1
                self.failures.append(report.nodeid)
            else:
                self.counts[cls]["passed"] += 1

    def table(self) -> str:
        lines = ["| class | passed | failed | skipped | skip reasons |", "|---|---|---|---|---|"]
        total = collections.Counter()
        for cls in sorted(self.counts):
            c = self.counts[cls]
            total.update(c)
            reasons = "; ".join(f"{r} ({n})" for r, n in self.skips[cls].most_common())
            lines.append(f"| {cls} | {c['passed']} | {c['failed']} | {c['skipped']} | {reasons} |")
        lines.append(f"| **all** | {total['passed']} | {total['failed']} | {total['skipped']} | |")
        return "\n".join(lines)


def _prepare(test_file: pathlib.Path, workdir: pathlib.Path) -> pathlib.Path:
    """A copy of the tests in ``workdir`` with what they need beside them."""
    target = workdir / "test_ops.py"
    shutil.copyfile(test_file, target)
    utils = test_file.parent / "common_utils.py"
    if utils.is_file():
        shutil.copyfile(utils, workdir / "common_utils.py")
    else:
        sys.modules["common_utils"] = _common_utils_stand_in()
    # generate_opcheck_tests reads a failures file next to the tests: an empty one.
    from torch.testing._internal.optests.generate_tests import FailuresDict

    failures = workdir / "optests_failures_dict.json"
    failures.write_text(FailuresDict(str(failures), {})._save(to_str=True))
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("test_ops", type=pathlib.Path, help="torchvision's test/test_ops.py")
    ap.add_argument("-k", default=None, help="pytest -k expression (a subset of the tests)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--verbose", "-v", action="store_true", help="pytest's own report too")
    args = ap.parse_args(argv)
    if not args.test_ops.is_file():
        ap.error(f"{args.test_ops} is not a file: fetch torchvision's test/test_ops.py first")
    torch.set_num_threads(args.threads)
    import torchvision

    replaced = _patch_torchvision()
    plugin = PixboxPlugin()
    with tempfile.TemporaryDirectory(prefix="pixbox-tv-tests-") as tmp:
        target = _prepare(args.test_ops, pathlib.Path(tmp))
        pytest_args = [str(target), "-p", "no:cacheprovider", "-W", "ignore", "--rootdir", tmp,
                       "-o", "addopts=", "-o", "console_output_style=classic", "--no-header"]
        pytest_args += ["-q", "-rfE"] if args.verbose else ["-qq", "--tb=no"]
        if args.k:
            pytest_args += ["-k", args.k]
        cwd = os.getcwd()
        os.chdir(tmp)  # pytest's rootdir and conftest lookup stay in the temporary folder
        try:
            code = pytest.main(pytest_args, plugins=[plugin])
        finally:
            os.chdir(cwd)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads {torch.get_num_threads()}; "
          f"torchvision.ops replaced by pixbox's: {', '.join(replaced)}\n")
    print(plugin.table())
    if plugin.failures:
        print("\nfailed:\n" + "\n".join(f"  {nodeid}" for nodeid in plugin.failures))
    return 1 if plugin.failures or code not in (0, 5) else 0


if __name__ == "__main__":
    sys.exit(main())
