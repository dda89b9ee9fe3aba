"""Runs the D2L book's chapter 14 notebooks (D2L 1.0.3, PyTorch) on pixbox.compat.d2l, offline.

The notebooks are not part of pixbox: pass the folder holding them (the ``.ipynb`` files of
``chapter_computer-vision`` in the public d2l-pytorch-colab repository). Each notebook runs in its
own process, cell by cell in order, with the one line ``from d2l import torch as d2l`` replaced
by ``from pixbox.compat import d2l`` and nothing else changed, from ``WORK/nb``, so the book's
relative paths ``../data`` and ``../img`` are ``WORK/data`` and ``WORK/img``. Each cell's printed
output (its stdout and the value a notebook shows for a last expression) is compared with
:data:`BOOK_OUTPUTS`, the book's printed output. Run as a script for a table::

    PYTHONPATH=. python tests/compat/d2l_notebooks.py NOTEBOOK_DIR [--work DIR] [--quick N] [--only a,b]

With IPython installed, cells run in IPython's shell as a Jupyter kernel runs them (``%`` magics,
the display hook, inline figures); else through ``exec`` with the same display rule.

What the runner provides that a student's machine would have: the book's photos ``../img/*.jpg``
(pixbox-generated stand-ins of the book's sizes, unless ``WORK/img`` holds the real ones), and, in
``WORK/torch`` (``TORCH_HOME``), stand-ins for torchvision's pretrained ImageNet weights (randomly
initialised, unless real ones are there), because the chapter downloads them through torchvision.
The book's data sets come from ``d2l.download_extract`` itself (pixbox's stand-ins).
``PIXBOX_BOOK_QUICK`` (default 1 here) cuts the training loops.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import re
import subprocess
import sys
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ORDER = ("bounding-box", "anchor", "multiscale-object-detection", "object-detection-dataset", "ssd", "rcnn",
         "semantic-segmentation-and-dataset", "transposed-conv", "fcn", "neural-style", "image-augmentation",
         "fine-tuning")
D2L_IMPORT = "from d2l import torch as d2l"
DOWNLOADING = re.compile(r"Downloading \S+ from https?://\S+\.\.\.\n")
#: torch.hub's download of pretrained weights (torchvision's ``pretrained=True``): its line and the
#: progress bar, printed when the weights are not cached yet.
HUB_DOWNLOADING = re.compile(r'Downloading: "https?://\S+" to \S+\n|(\r[^\r\n]*\d+%\|[^\r\n]*)+\n')
COMPAT_IMPORT = "from pixbox.compat import d2l"
TRAIN_CH13 = re.compile(r"loss \d+\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}\n[\d.]+ examples/sec on .+\n")

#: The book's printed output of each cell that prints something, keyed by (notebook, a piece of
#: the cell's code): (stdout, shown value). Every other cell prints nothing. A compiled pattern
#: stands for a line whose numbers vary from run to run (training), None for output that depends
#: on the book's photos or data (not compared).
BOOK_OUTPUTS = {
    ("bounding-box", "box_center_to_corner(box_corner_to_center(boxes)) == boxes"):
        ("", "tensor([[True, True, True, True],\n        [True, True, True, True]])"),
    ("anchor", "print(h, w)"): ("561 728\n", "torch.Size([1, 2042040, 4])"),
    ("anchor", "boxes[250, 250, 0, :]"): ("", "tensor([0.06, 0.07, 0.63, 0.82])"),
    ("anchor", "labels[2]"): ("", "tensor([[0, 1, 2, 0, 2]])"),
    ("anchor", "labels[1]"):
        ("", "tensor([[0., 0., 0., 0., 1., 1., 1., 1., 1., 1., 1., 1., 0., 0., 0., 0., 1., 1.,\n         1., 1.]])"),
    ("anchor", "labels[0]"):
        ("", "tensor([[-0.00e+00, -0.00e+00, -0.00e+00, -0.00e+00,  1.40e+00,  1.00e+01,\n"
             "          2.59e+00,  7.18e+00, -1.20e+00,  2.69e-01,  1.68e+00, -1.57e+00,\n"
             "         -0.00e+00, -0.00e+00, -0.00e+00, -0.00e+00, -5.71e-01, -1.00e+00,\n"
             "          4.17e-06,  6.26e-01]])"),
    ("anchor", "nms_threshold=0.5)\noutput"):
        ("", "tensor([[[ 0.00,  0.90,  0.10,  0.08,  0.52,  0.92],\n"
             "         [ 1.00,  0.90,  0.55,  0.20,  0.90,  0.88],\n"
             "         [-1.00,  0.80,  0.08,  0.20,  0.56,  0.95],\n"
             "         [-1.00,  0.70,  0.15,  0.30,  0.62,  0.91]]])"),
    ("multiscale-object-detection", "h, w = img.shape[:2]"): ("", "(561, 728)"),
    ("object-detection-dataset", "batch[0].shape, batch[1].shape"):
        ("read 1000 training examples\nread 100 validation examples\n",
         "(torch.Size([32, 3, 256, 256]), torch.Size([32, 1, 5]))"),
    ("ssd", "Y1.shape, Y2.shape"): ("", "(torch.Size([2, 55, 20, 20]), torch.Size([2, 33, 10, 10]))"),
    ("ssd", "concat_preds([Y1, Y2]).shape"): ("", "torch.Size([2, 25300])"),
    ("ssd", "down_sample_blk(3, 10)).shape"): ("", "torch.Size([2, 10, 10, 10])"),
    ("ssd", "base_net()).shape"): ("", "torch.Size([2, 64, 32, 32])"),
    ("ssd", "print('output anchors:'"):
        ("output anchors: torch.Size([1, 5444, 4])\noutput class preds: torch.Size([32, 5444, 2])\n"
         "output bbox preds: torch.Size([32, 21776])\n", None),
    ("ssd", "train_iter, _ = d2l.load_data_bananas(batch_size)"):
        ("read 1000 training examples\nread 100 validation examples\n", None),
    ("ssd", "print(f'class err"): (re.compile(r"class err \S+, bbox mae \S+\n[\d.]+ examples/sec on \S+\n"), None),
    ("rcnn", "X = torch.arange(16.)"):
        ("", "tensor([[[[ 0.,  1.,  2.,  3.],\n          [ 4.,  5.,  6.,  7.],\n          [ 8.,  9., 10., 11.],\n"
             "          [12., 13., 14., 15.]]]])"),
    ("rcnn", "torchvision.ops.roi_pool"):
        ("", "tensor([[[[ 5.,  6.],\n          [ 9., 10.]]],\n\n\n        [[[ 9., 11.],\n          [13., 15.]]]])"),
    ("semantic-segmentation-and-dataset", "y[105:115, 130:140], VOC_CLASSES[1]"): None,
    ("semantic-segmentation-and-dataset", "voc_test = VOCSegDataset(False, crop_size, voc_dir)"):
        ("read 1114 examples\nread 1078 examples\n", None),
    ("semantic-segmentation-and-dataset", "print(X.shape)"):
        ("torch.Size([64, 3, 320, 480])\ntorch.Size([64, 320, 480])\n", None),
    ("transposed-conv", "K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])\ntrans_conv(X, K)"):
        ("", "tensor([[ 0.,  0.,  1.],\n        [ 0.,  4.,  6.],\n        [ 4., 12.,  9.]])"),
    ("transposed-conv", "tconv = nn.ConvTranspose2d(1, 1, kernel_size=2, bias=False)"):
        ("", "tensor([[[[ 0.,  0.,  1.],\n          [ 0.,  4.,  6.],\n          [ 4., 12.,  9.]]]], "
             "grad_fn=<ConvolutionBackward0>)"),
    ("transposed-conv", "padding=1, bias=False"): ("", "tensor([[[[4.]]]], grad_fn=<ConvolutionBackward0>)"),
    ("transposed-conv", "stride=2, bias=False"):
        ("", "tensor([[[[0., 0., 0., 1.],\n          [0., 0., 2., 3.],\n          [0., 2., 0., 3.],\n"
             "          [4., 6., 6., 9.]]]], grad_fn=<ConvolutionBackward0>)"),
    ("transposed-conv", "tconv(conv(X)).shape == X.shape"): ("", "True"),
    ("transposed-conv", "Y = d2l.corr2d(X, K)"): ("", "tensor([[27., 37.],\n        [57., 67.]])"),
    ("transposed-conv", "W = kernel2matrix(K)\nW"):
        ("", "tensor([[1., 2., 0., 3., 4., 0., 0., 0., 0.],\n        [0., 1., 2., 0., 3., 4., 0., 0., 0.],\n"
             "        [0., 0., 0., 1., 2., 0., 3., 4., 0.],\n        [0., 0., 0., 0., 1., 2., 0., 3., 4.]])"),
    ("transposed-conv", "Y == torch.matmul(W, X.reshape(-1))"): ("", "tensor([[True, True],\n        [True, True]])"),
    ("transposed-conv", "Z == torch.matmul(W.T, Y.reshape(-1))"):
        ("", "tensor([[True, True, True],\n        [True, True, True],\n        [True, True, True]])"),
    ("fcn", "list(pretrained_net.children())[-3:]"): None,  # torchvision's module repr
    ("fcn", "net(X).shape"): ("", "torch.Size([1, 512, 10, 15])"),
    ("fcn", "print('input image shape:'"):
        ("input image shape: torch.Size([561, 728, 3])\noutput image shape: torch.Size([1122, 1456, 3])\n", None),
    ("fcn", "d2l.load_data_voc(batch_size, crop_size)"): ("read 1114 examples\nread 1078 examples\n", None),
    ("fcn", "d2l.train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices)"): (TRAIN_CH13, None),
    ("image-augmentation", "train_with_data_aug(train_augs, test_augs, net)"): (TRAIN_CH13, None),
    ("fine-tuning", "hotdog_w = torch.split(weight.data"): ("", "torch.Size([1, 512])"),
    ("fine-tuning", "pretrained_net.fc"): ("", "Linear(in_features=512, out_features=1000, bias=True)"),
    ("fine-tuning", "train_fine_tuning(finetune_net, 5e-5)"): (TRAIN_CH13, None),
    ("fine-tuning", "train_fine_tuning(scratch_net, 5e-4, param_group=False)"): (TRAIN_CH13, None),
}

#: Cells that cannot run offline whatever d2l module is used: torchvision downloads CIFAR-10
#: itself (``download=True`` checks the files' MD5, so no stand-in can take their place).
NEEDS_NETWORK = {
    ("image-augmentation", "torchvision.datasets.CIFAR10(train=True"),
    ("image-augmentation", "train_with_data_aug(train_augs, test_augs, net)"),
}


def _expected(notebook: str, src: str):
    for (nb, piece), want in BOOK_OUTPUTS.items():
        if nb == notebook and piece in src:
            return True, want
    return False, ("", None)


def _needs_network(notebook: str, src: str) -> bool:
    return any(nb == notebook and piece in src for nb, piece in NEEDS_NETWORK)


def _text(value) -> str:
    return value if isinstance(value, str) else "".join(value)


def _notebook_cells(nb_path: Path) -> list[dict]:
    nb = json.loads(Path(nb_path).read_text())
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = _text(cell["source"])
        if all(not line.strip() or line.lstrip().startswith("!") for line in src.splitlines()):
            continue
        cells.append(cell)
    return cells


def code_cells(nb_path: Path) -> list[str]:
    """The notebook's code cells, without shell-only cells (Colab's ``!pip install``)."""
    return [_text(cell["source"]) for cell in _notebook_cells(nb_path)]


def recorded_outputs(nb_path: Path) -> list[tuple[str, str | None]] | None:
    """The printed output the notebook file records for each code cell (as :func:`code_cells`).

    ``(stdout, shown)``: the cell's stdout streams (without the book's ``Downloading ...`` lines),
    and the ``text/plain`` of its ``execute_result`` (None without one). Figures
    (``display_data``) and stderr are left out.
    None when the file records no output at all (an unexecuted notebook).
    """
    cells = _notebook_cells(nb_path)
    if not any(cell.get("outputs") for cell in cells):
        return None
    out = []
    for cell in cells:
        stdout, shown = "", None
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                stdout += _text(o["text"])
            elif o.get("output_type") == "execute_result":
                shown = _text(o.get("data", {}).get("text/plain", ""))
        # the book's `download` says "Downloading F from URL..." when F is not cached yet, and torch.hub
        # shows its line and progress bar: facts of the machine the book was built on, not outputs of the code
        stdout = "".join(line for line in re.findall(r"[^\n]*\n|[^\n]+$", stdout)  # "\r" is not a line end here
                         if not DOWNLOADING.fullmatch(line) and not HUB_DOWNLOADING.fullmatch(line))
        out.append((stdout, shown))
    return out


def make_book_images(img_dir: Path) -> list[str]:
    """pixbox-generated stand-ins for the book's photos, at the sizes the book prints."""
    import torch
    from torch.nn import functional as F

    from pixbox.data.generators.bananas import render_banana
    from pixbox.data.generators.classification import render_object
    from pixbox.data.generators.segmentation import render_segmentation
    from pixbox.data.io import write_image

    def resized(image, h, w):
        out = F.interpolate(image[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
        return out.round().clamp(0, 255).to(torch.uint8)

    specs = {
        "catdog.jpg": lambda: render_segmentation(728, seed=101)[0][:, 83:83 + 561],  # 561 x 728 as the book's
        "cat1.jpg": lambda: resized(render_object(1, 128, seed=102), 400, 500),
        "banana.jpg": lambda: render_banana(256, seed=103).image,
        "rainier.jpg": lambda: resized(render_segmentation(512, seed=104)[0], 683, 1024),
        "autumn-oak.jpg": lambda: resized(render_segmentation(512, seed=105)[0], 600, 800),
    }
    made = []
    for name, make in specs.items():
        if not (img_dir / name).exists():
            write_image(make(), img_dir / name, quality=95)
            made.append(name)
    return made


def make_torch_home(torch_home: Path) -> list[str]:
    """Randomly initialised stand-ins for the torchvision ImageNet weights the chapter loads."""
    try:
        import torch
        import torchvision
    except ImportError:
        return []
    ckpt = torch_home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    made = []
    for fname, build in (("resnet18-f37072fd.pth", torchvision.models.resnet18),
                         ("vgg19-dcbb9e9d.pth", torchvision.models.vgg19)):
        if not (ckpt / fname).exists():
            torch.manual_seed(0)
            torch.save(build().state_dict(), ckpt / fname)
            made.append(fname)
    return made


class _ExecShell:
    """Cells through ``exec``, showing the value of a last expression not ended by ``;``."""

    def __init__(self):
        self.ns = {"__name__": "__main__"}

    def run(self, src: str):
        src = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.split("\n"))
        tree = ast.parse(src)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not src.rstrip().endswith(";"):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<cell>", "exec"), self.ns)  # noqa: S102 - the book's code
        value = eval(compile(last, "<cell>", "eval"), self.ns) if last is not None else None  # noqa: S307
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")  # a notebook shows and closes each cell's figures
        return None if value is None else repr(value)


class _IPythonShell:
    """Cells through IPython's shell, as a Jupyter kernel runs them."""

    def __init__(self):
        from IPython.core.interactiveshell import InteractiveShell

        class KernelLikeShell(InteractiveShell):
            def enable_gui(self, gui=None):  # a kernel draws inline; there is no GUI event loop
                pass

        self.shell = KernelLikeShell.instance()
        self.shell.displayhook.write_output_prompt = lambda: None
        self.shell.displayhook.write_format_data = lambda *a, **k: None

    def run(self, src: str):
        from IPython.utils.capture import capture_output

        with capture_output(stdout=False, stderr=False, display=True):
            res = self.shell.run_cell(src, store_history=True)
        for error in (res.error_before_exec, res.error_in_exec):
            if error is not None:
                raise error
        if res.result is None:
            return None
        return self.shell.display_formatter.format(res.result)[0].get("text/plain")


def run_notebook(nb_path: Path, *, stub_torchvision: bool = False) -> list[dict]:
    """Runs one notebook in this process (from the current folder); one dict per code cell."""
    name = Path(nb_path).stem
    if stub_torchvision:  # lets `import torchvision` pass where it is not installed; its uses fail
        import types
        sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))
    try:
        shell = _IPythonShell()
    except ImportError:
        shell = _ExecShell()
    results = []
    recorded = recorded_outputs(nb_path)
    for k, src in enumerate(code_cells(nb_path), start=1):
        src = src.replace(D2L_IMPORT, COMPAT_IMPORT)
        out, err = io.StringIO(), io.StringIO()
        start, error, shown = time.time(), None, None
        try:
            with redirect_stdout(out), redirect_stderr(err):
                shown = shell.run(src)
        except Exception as e:  # noqa: BLE001 - a failing cell is a result
            error = "".join(traceback.format_exception_only(type(e), e)).strip().splitlines()[-1][:400]
        listed, want = _expected(name, src)
        book = recorded[k - 1] if recorded is not None else None
        # the notebook file's own record is the book's output; BOOK_OUTPUTS states it for runs on
        # unexecuted copies, and gives patterns (training lines) and None (photo-dependent) cells
        book_agrees = None
        if book is not None and listed and want is not None and not isinstance(want[0], re.Pattern):
            book_agrees = book == want
        if book is not None and not listed:
            want = book
        # IPython's clear_output (the book's Animator) writes this outside a Jupyter kernel;
        # a kernel sends it as a message instead, so it is not part of the cell's output.
        stdout = out.getvalue().replace("\x1b[2K\r", "")
        if error is not None:
            verdict = "offline" if _needs_network(name, src) else "error"
        elif want is None:
            verdict = "unchecked"
        elif isinstance(want[0], re.Pattern):
            verdict = "format" if want[0].fullmatch(stdout) and shown == want[1] else "differs"
        else:
            verdict = "equal" if (stdout, shown) == want else "differs"
        results.append({"cell": k, "listed": listed, "book_agrees": book_agrees, "verdict": verdict,
                        "seconds": round(time.time() - start, 1),
                        "stdout": stdout, "shown": shown, "stderr": err.getvalue()[-2000:], "error": error,
                        "code": src[:80]})
        note = "  (BOOK_OUTPUTS differs from the notebook's record)" if book_agrees is False else ""
        print(f"  [{k:2d}] {verdict:9s} {time.time() - start:6.1f}s" + (f"  {error}" if error else "") + note,
              file=sys.__stderr__, flush=True)
    return results


def prepare(work: Path) -> dict:
    """``WORK/nb``, ``WORK/img`` with the book's photos, and the environment the notebooks get."""
    (work / "nb").mkdir(parents=True, exist_ok=True)
    (work / "img").mkdir(parents=True, exist_ok=True)
    make_book_images(work / "img")
    make_torch_home(work / "torch")
    return {"TORCH_HOME": str(work / "torch"), "MPLBACKEND": os.environ.get("MPLBACKEND", "Agg")}


def run_in_subprocess(nb_path: Path, work: Path, env: dict, *, timeout: float | None = None,
                      stub_torchvision: bool = False) -> list[dict]:
    """Runs a notebook in a fresh process (as a fresh kernel) from ``work/nb``."""
    report = work / f".cells-{Path(nb_path).stem}.json"
    report.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--single", str(nb_path), "--work", str(work), "--report", str(report)]
    if stub_torchvision:
        cmd.append("--stub-torchvision")
    root = str(Path(__file__).resolve().parents[2])
    full_env = dict(os.environ, **env)
    full_env["PYTHONPATH"] = root + os.pathsep + full_env.get("PYTHONPATH", "")
    subprocess.run(cmd, env=full_env, timeout=timeout, check=True)
    return json.loads(report.read_text())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="?", help="folder with the chapter's .ipynb files")
    ap.add_argument("--work", default="book-work", help="the folder that holds nb/, img/, data/ and torch/")
    ap.add_argument("--quick", default="1", help="PIXBOX_BOOK_QUICK for the notebooks ('' for the book's loops)")
    ap.add_argument("--only", default="", help="comma-separated notebook names")
    ap.add_argument("--stub-torchvision", action="store_true", help="for an environment without torchvision")
    ap.add_argument("--report", default="", help="write the per-cell results as JSON")
    ap.add_argument("--single", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    if args.single:
        os.chdir(work / "nb")
        results = run_notebook(Path(args.single), stub_torchvision=args.stub_torchvision)
        Path(args.report).write_text(json.dumps(results))
        return
    env = prepare(work)
    env["PIXBOX_BOOK_QUICK"] = args.quick
    names = [n for n in ORDER if not args.only or n in args.only.split(",")]
    table = {}
    for name in names:
        print(f"{name}:", file=sys.stderr, flush=True)
        nb_path = Path(args.notebooks) / f"{name}.ipynb"
        try:
            table[name] = run_in_subprocess(nb_path, work, env, stub_torchvision=args.stub_torchvision)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            print(f"  failed: {e}", file=sys.stderr)
            table[name] = []
    print(f"{'notebook':36s} cells  ran  equal  format  unchecked  offline  differs  errors  listed!=book")
    for name, cells in table.items():
        v = [c["verdict"] for c in cells]
        print(f"{name:36s} {len(v):5d}  {sum(x not in ('error', 'offline') for x in v):3d}  {v.count('equal'):5d}  "
              f"{v.count('format'):6d}  {v.count('unchecked'):9d}  {v.count('offline'):7d}  {v.count('differs'):7d}  "
              f"{v.count('error'):6d}  {sum(c.get('book_agrees') is False for c in cells):12d}")
    if args.report:
        Path(args.report).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
