"""pixbox.compat.d2l beyond boxes: the chapter's computation, data, offline downloads, utilities and
plotting names, checked against the book's printed values, slow reference loops, and D2L 1.0.3
itself where it is importable (the peers venv, ../shared/peers/README.md)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import warnings
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pixbox.compat import _d2l_download, _d2l_standins, d2l

try:  # the real D2L, only in the peers venv
    from d2l import torch as real_d2l  # type: ignore
except Exception:  # noqa: BLE001
    real_d2l = None

try:
    import matplotlib  # noqa: F401
    HAS_MPL = True
except ImportError:
    HAS_MPL = False

needs_mpl = pytest.mark.skipif(not HAS_MPL, reason="matplotlib (pixbox[book]) not installed")
needs_real = pytest.mark.skipif(real_d2l is None, reason="d2l not importable (see ../shared/peers)")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def book_dir(tmp_path, monkeypatch):
    """A notebook folder ``nb/`` whose ``../data`` is empty, with tiny stand-ins."""
    (tmp_path / "nb").mkdir()
    monkeypatch.chdir(tmp_path / "nb")
    monkeypatch.setattr(_d2l_standins, "_BANANAS", {"train": 5, "val": 3})
    monkeypatch.setattr(_d2l_standins, "_VOC", {"train": (7, 6), "val": (6, 5)})
    monkeypatch.setattr(_d2l_standins, "_HOTDOG", {"train": 3, "test": 2})
    monkeypatch.setattr(_d2l_download, "_told", set())
    monkeypatch.delenv(d2l.QUICK_ENV, raising=False)
    return tmp_path


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", d2l.BookDataWarning)
        with redirect_stdout(io.StringIO()) as out:
            result = fn(*args, **kwargs)
    return result, out.getvalue()


# ---------------------------------------------------------------------------------------------
# Computation


def _corr2d_loop(X, K):
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=torch.float64)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w].double() * K.double()).sum()
    return Y


def test_corr2d_book_values_and_reference():
    # Sections 7.2 and 14.10: the 3x3 input 0..8 and the kernel [[1, 2], [3, 4]].
    X, K = torch.arange(9.0).reshape(3, 3), torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert d2l.corr2d(X, K).tolist() == [[27.0, 37.0], [57.0, 67.0]]
    # Section 7.2's edge detector: a 6x8 image with a dark band, kernel [[1, -1]].
    img = torch.ones((6, 8))
    img[:, 2:6] = 0
    Y = d2l.corr2d(img, torch.tensor([[1.0, -1.0]]))
    assert Y[0].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0] and Y.shape == (6, 7)
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        X, K = torch.randn(7, 9, generator=g), torch.randn(1 + seed % 3, 2 + seed % 2, generator=g)
        torch.testing.assert_close(d2l.corr2d(X, K).double(), _corr2d_loop(X, K), rtol=1e-5, atol=1e-5)


def test_corr2d_dtypes_gradients_and_errors():
    X64 = torch.rand(5, 5, dtype=torch.float64, requires_grad=True)
    K64 = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert d2l.corr2d(X64, K64).dtype == torch.float64
    assert torch.autograd.gradcheck(d2l.corr2d, (X64, K64))
    assert d2l.corr2d(torch.arange(9).reshape(3, 3), torch.ones(2, 2, dtype=torch.int64)).dtype == torch.float32
    assert d2l.corr2d(torch.rand(3, 3), torch.rand(3, 3)).shape == (1, 1)
    with pytest.raises(ValueError, match="X must have shape"):
        d2l.corr2d(torch.rand(1, 3, 3), torch.rand(2, 2))
    with pytest.raises(ValueError, match="K must fit"):
        d2l.corr2d(torch.rand(2, 2), torch.rand(3, 3))


def test_resnet18_shapes_names_and_init_cnn():
    net = d2l.resnet18(10, 3)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert d2l.resnet18(5)(torch.zeros(1, 1, 28, 28)).shape == (1, 5)  # in_channels=1 by default
    names = [n for n, _ in net.named_children()]
    assert names == ["0", "1", "2", "resnet_block1", "resnet_block2", "resnet_block3", "resnet_block4",
                     "global_avg_pool", "fc"]
    assert net.resnet_block1[0].conv3 is None and net.resnet_block2[0].conv3.stride == (2, 2)
    torch.manual_seed(0)
    net.apply(d2l.init_cnn)
    for m in net.modules():
        if type(m) in (nn.Conv2d, nn.Linear):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = (6 / (fan_in + fan_out)) ** 0.5
            assert m.weight.abs().max() <= bound + 1e-6
    bn = net[1]
    assert torch.equal(bn.weight, torch.ones(64))  # init_cnn leaves other layers alone


@needs_real
def test_resnet18_matches_the_book_model():
    torch.manual_seed(0)
    book = real_d2l.resnet18(10, 3)
    book(torch.zeros(1, 3, 16, 16))  # materialize the lazy layers
    mine = d2l.resnet18(10, 3)
    theirs = book.state_dict()
    assert {k: tuple(v.shape) for k, v in mine.state_dict().items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    mine.load_state_dict(theirs)
    x = torch.randn(2, 3, 24, 24)
    book.eval(), mine.eval()
    torch.testing.assert_close(mine(x), book(x), rtol=1e-4, atol=1e-5)


def test_accuracy_book_values():
    # Section 4.1: two examples, three classes; one prediction is right.
    y_hat = torch.tensor([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])
    y = torch.tensor([0, 2])
    assert d2l.accuracy(y_hat, y) == 1.0 and isinstance(d2l.accuracy(y_hat, y), float)
    assert d2l.accuracy(torch.tensor([2, 2]), y) == 1.0  # predicted labels
    if real_d2l is not None:
        assert real_d2l.accuracy(y_hat, y) == d2l.accuracy(y_hat, y)


class _Counting:
    """An iterable over fixed batches that counts how many were taken."""

    def __init__(self, batches):
        self.batches, self.taken = batches, 0

    def __iter__(self):
        for b in self.batches:
            self.taken += 1
            yield b

    def __len__(self):
        return len(self.batches)


def _toy_batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 3, generator=g), torch.randint(0, 2, (4,), generator=g)) for _ in range(n)]


def test_evaluate_accuracy_gpu_counts_and_quick_env(monkeypatch):
    net = nn.Linear(3, 2)
    net.train()
    data = _Counting(_toy_batches(6))
    want = sum(d2l.accuracy(net(X), y) for X, y in data.batches) / 24
    monkeypatch.delenv(d2l.QUICK_ENV, raising=False)
    assert d2l.evaluate_accuracy_gpu(net, data) == pytest.approx(want)
    assert not net.training and data.taken == 6
    monkeypatch.setenv(d2l.QUICK_ENV, "2")
    data.taken = 0
    d2l.evaluate_accuracy_gpu(net, data)
    assert data.taken == 2
    if real_d2l is not None:
        monkeypatch.delenv(d2l.QUICK_ENV)
        assert real_d2l.evaluate_accuracy_gpu(net, data.batches) == pytest.approx(want)


def test_quick_env_must_be_a_positive_int(monkeypatch):
    for bad in ("0", "-3", "two"):
        monkeypatch.setenv(d2l.QUICK_ENV, bad)
        with pytest.raises(ValueError, match="PIXBOX_BOOK_QUICK"):
            d2l.evaluate_accuracy_gpu(nn.Linear(3, 2), _toy_batches(1))


def test_train_batch_ch13_steps_and_returns_sums():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    X, y = _toy_batches(1)[0]
    w, b = net.weight.detach().clone(), net.bias.detach().clone()
    loss = nn.CrossEntropyLoss(reduction="none")
    logits = nn.functional.linear(X, w, b)
    l_sum, acc = d2l.train_batch_ch13(net, X, y, loss, torch.optim.SGD(net.parameters(), lr=0.1),
                                      [torch.device("cpu")])
    assert not torch.equal(w, net.weight) and net.training
    assert float(l_sum.detach()) == pytest.approx(float(loss(logits, y).sum()), rel=1e-5)
    assert acc == d2l.accuracy(logits, y) and isinstance(acc, float)


def test_train_ch13_prints_the_books_lines_with_few_batches(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(d2l.QUICK_ENV, raising=False)
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    train = _Counting(_toy_batches(3))  # the book divides by zero with fewer than 5 batches
    loss = nn.CrossEntropyLoss(reduction="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d2l.train_ch13(net, train, _toy_batches(2, 1), loss, torch.optim.SGD(net.parameters(), lr=0.1), 2)
    out = capsys.readouterr().out
    assert re.fullmatch(r"loss \d\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}\n"
                        r"\d+\.\d examples/sec on \[device\(type='cpu'\)\]\n", out), out
    assert train.taken == 6
    monkeypatch.setenv(d2l.QUICK_ENV, "1")
    train.taken = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d2l.train_ch13(net, train, _toy_batches(2, 1), loss, torch.optim.SGD(net.parameters(), lr=0.1), 3, devices=[])
    assert train.taken == 3
    if HAS_MPL:
        assert list(tmp_path.glob("d2l-animator-*.png"))  # outside a notebook the curves go to a PNG


def test_devices_timer_accumulator_workers(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert d2l.try_gpu() == cpu and d2l.try_all_gpus() == [cpu] and d2l.num_gpus() == 0
    if real_d2l is not None:
        assert real_d2l.try_all_gpus() == []  # what breaks the book's loops on a CPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert d2l.try_gpu(1) == torch.device("cuda:1") and d2l.try_gpu(2) == cpu
    assert d2l.try_all_gpus() == [torch.device("cuda:0"), torch.device("cuda:1")]
    assert d2l.cpu() == cpu and d2l.gpu(3) == torch.device("cuda:3")
    assert 1 <= d2l.get_dataloader_workers() <= 4
    acc = d2l.Accumulator(3)
    acc.add(1, torch.tensor(2.0), 3.5)
    acc.add(1, 1, 1)
    assert acc[0] == 2.0 and acc[1] == 3.0 and acc[2] == 4.5
    acc.reset()
    assert acc.data == [0.0, 0.0, 0.0]
    timer = d2l.Timer()
    timer.stop(), timer.start(), timer.stop()
    assert len(timer.times) == 2 and timer.sum() >= 0 and timer.cumsum()[-1] == pytest.approx(timer.sum())
    assert timer.avg() == pytest.approx(timer.sum() / 2)


# ---------------------------------------------------------------------------------------------
# Offline data


def test_download_extract_generates_once_and_says_so_once(book_dir):
    with pytest.warns(d2l.BookDataWarning, match="banana-detection.*stand-in"):
        path = d2l.download_extract("banana-detection")
    assert path == os.path.join("..", "data", "banana-detection")
    root = book_dir / "data" / "banana-detection"
    assert (root / _d2l_standins.MARKER).is_file()
    for split, n in (("bananas_train", 5), ("bananas_val", 3)):
        lines = (root / split / "label.csv").read_text().splitlines()
        assert lines[0] == "img_name,label,xmin,ymin,xmax,ymax" and len(lines) == n + 1
        assert sorted(p.name for p in (root / split / "images").iterdir()) == sorted(f"{i}.png" for i in range(n))
    before = (root / "bananas_train" / "label.csv").stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: no second warning
        assert d2l.download_extract("banana-detection") == path
    assert (root / "bananas_train" / "label.csv").stat().st_mtime_ns == before  # reused, not rewritten


def test_download_extract_voc_and_hotdog_layouts(book_dir):
    with pytest.warns(d2l.BookDataWarning):
        voc = d2l.download_extract("voc2012", "VOCdevkit/VOC2012")
    assert voc == os.path.join("..", "data", "VOCdevkit/VOC2012")
    root = book_dir / "data" / "VOCdevkit" / "VOC2012"
    train = (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert len(train) == 7 and len((root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()) == 6
    assert all((root / "JPEGImages" / f"{i}.jpg").is_file() and (root / "SegmentationClass" / f"{i}.png").is_file()
               for i in train)
    with pytest.warns(d2l.BookDataWarning):
        hotdog = d2l.download_extract("hotdog")
    assert hotdog == os.path.join("..", "data", "hotdog")
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("hotdog", "not-hotdog"):
            assert len(list((book_dir / "data" / "hotdog" / split / cls).glob("*.png"))) == n


def test_download_extract_returns_a_real_copy(book_dir):
    real = book_dir / "data" / "banana-detection" / "bananas_train"
    real.mkdir(parents=True)
    (real / "label.csv").write_text("img_name,label,xmin,ymin,xmax,ymax\n")
    voc = book_dir / "data" / "VOCdevkit" / "VOC2012"
    voc.mkdir(parents=True)
    (voc / "README").write_text("a real copy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert d2l.download_extract("banana-detection") == os.path.join("..", "data", "banana-detection")
        assert d2l.download_extract("voc2012", os.path.join("VOCdevkit", "VOC2012")) == os.path.join(
            "..", "data", "VOCdevkit", "VOC2012")
    assert not (book_dir / "data" / "banana-detection" / _d2l_standins.MARKER).exists()
    assert sorted(p.name for p in (book_dir / "data" / "banana-detection").iterdir()) == ["bananas_train"]


def test_download_extract_extracts_the_books_archive_offline(book_dir, monkeypatch):
    archive = book_dir / "data" / "hotdog.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("hotdog/train/hotdog/0.png", b"not really a png")
    sha1 = hashlib.sha1(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(d2l.DATA_HUB, "hotdog", (d2l.DATA_URL + "hotdog.zip", sha1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert d2l.download_extract("hotdog") == os.path.join("..", "data", "hotdog")
    assert (book_dir / "data" / "hotdog" / "train" / "hotdog" / "0.png").read_bytes() == b"not really a png"
    assert d2l.download(d2l.DATA_URL + "hotdog.zip", sha1_hash=sha1) == os.path.join("..", "data", "hotdog.zip")


def test_download_never_downloads(book_dir, monkeypatch):
    assert d2l.DATA_URL == "http://d2l-data.s3-accelerate.amazonaws.com/"
    assert set(d2l.DATA_HUB) >= {"banana-detection", "voc2012", "hotdog"}
    with pytest.raises(FileNotFoundError, match="never downloads.*banana-detection.zip.*stand-in"):
        d2l.download("banana-detection")
    monkeypatch.setitem(d2l.DATA_HUB, "airfoil", (d2l.DATA_URL + "airfoil_self_noise.dat", "76e5"))
    with pytest.raises(FileNotFoundError, match="airfoil_self_noise.dat"):
        d2l.download_extract("airfoil")
    with pytest.raises(KeyError, match="DATA_HUB"):
        d2l.download_extract("no-such-data")
    (book_dir / "data").mkdir(exist_ok=True)
    (book_dir / "data" / "x.txt").write_text("x")
    assert d2l.download(d2l.DATA_URL + "x.txt") == os.path.join("..", "data", "x.txt")
    with pytest.raises(FileNotFoundError, match="another SHA-1"):
        d2l.download(d2l.DATA_URL + "x.txt", sha1_hash="0" * 40)


def test_bananas_read_dataset_and_loaders(book_dir, monkeypatch):
    (images, labels), _ = _quiet(d2l.read_data_bananas, True)
    assert len(images) == 5 and all(im.dtype == torch.uint8 and im.shape == (3, 256, 256) for im in images)
    assert labels.shape == (5, 1, 5) and labels.dtype == torch.float32
    assert (labels[:, 0, 0] == 0).all() and (labels[:, 0, 1:] <= 1).all()
    rows = (book_dir / "data" / "banana-detection" / "bananas_train" / "label.csv").read_text().splitlines()[1:]
    first = [int(v) for v in rows[0].split(",")[1:]]
    torch.testing.assert_close(labels[0, 0], torch.tensor(first) / 256)
    ds, out = _quiet(d2l.BananasDataset, False)
    assert out == "read 3 validation examples\n" and len(ds) == 3
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.max() > 1 and y.shape == (1, 5)
    (train_iter, val_iter), out = _quiet(d2l.load_data_bananas, 2)
    assert out == "read 5 training examples\nread 3 validation examples\n"
    X, Y = next(iter(train_iter))
    assert X.shape == (2, 3, 256, 256) and Y.shape == (2, 1, 5)
    assert len(train_iter) == 3 and sum(1 for _ in val_iter) == 2
    monkeypatch.setenv(d2l.QUICK_ENV, "1")
    assert len(train_iter) == 1 and sum(1 for _ in train_iter) == 1


@needs_real
def test_bananas_match_the_books_reader(book_dir, monkeypatch):
    (images, labels), _ = _quiet(d2l.read_data_bananas, True)
    monkeypatch.setattr(real_d2l, "download_extract", lambda name, folder=None: _d2l_download.download_extract(name))
    book_images, book_labels = _quiet(real_d2l.read_data_bananas, True)[0]
    assert all(torch.equal(a, b) for a, b in zip(images, book_images)) and len(images) == len(book_images)
    assert torch.equal(labels, book_labels)


def test_voc_constants_are_the_books():
    assert len(d2l.VOC_COLORMAP) == len(d2l.VOC_CLASSES) == 21
    assert d2l.VOC_COLORMAP[:4] == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert d2l.VOC_COLORMAP[15] == [192, 128, 128] and d2l.VOC_COLORMAP[20] == [0, 64, 128]
    assert d2l.VOC_CLASSES[1] == "aeroplane" and d2l.VOC_CLASSES[16] == "potted plant"
    assert d2l.VOC_CLASSES[20] == "tv/monitor"
    if real_d2l is not None:
        assert d2l.VOC_COLORMAP == real_d2l.VOC_COLORMAP and d2l.VOC_CLASSES == real_d2l.VOC_CLASSES


def test_voc_label_indices_and_colormap2label():
    c2l = d2l.voc_colormap2label()
    assert c2l.shape == (256 ** 3,) and c2l.dtype == torch.int64
    for i, (r, g, b) in enumerate(d2l.VOC_COLORMAP):
        assert c2l[(r * 256 + g) * 256 + b] == i
    label = torch.tensor(d2l.VOC_COLORMAP, dtype=torch.uint8)[torch.tensor([[0, 1, 2], [20, 15, 0]])]  # [2, 3, 3]
    label[1, 2] = torch.tensor([224, 224, 192])  # VOC's boundary colour: not a class, so 0
    got = d2l.voc_label_indices(label.permute(2, 0, 1), c2l)
    assert got.tolist() == [[0, 1, 2], [20, 15, 0]]
    if real_d2l is not None:
        assert torch.equal(real_d2l.voc_colormap2label(), c2l)
        assert torch.equal(real_d2l.voc_label_indices(label.permute(2, 0, 1), c2l), got)


def test_voc_rand_crop_draws_as_torchvision():
    feature = torch.arange(3 * 10 * 12).reshape(3, 10, 12)
    label = feature[:1] * 2
    for seed in range(5):
        torch.manual_seed(seed)
        f, lab = d2l.voc_rand_crop(feature, label, 4, 5)
        torch.manual_seed(seed)
        i, j = int(torch.randint(0, 7, (1,))), int(torch.randint(0, 8, (1,)))
        assert torch.equal(f, feature[:, i:i + 4, j:j + 5]) and torch.equal(lab, label[:, i:i + 4, j:j + 5])
        try:
            import torchvision
        except ImportError:
            continue
        torch.manual_seed(seed)
        assert torchvision.transforms.RandomCrop.get_params(feature, (4, 5)) == (i, j, 4, 5)
    assert torch.equal(d2l.voc_rand_crop(feature, label, 10, 12)[0], feature)
    with pytest.raises(ValueError, match="larger than input image size"):
        d2l.voc_rand_crop(feature, label, 11, 5)


def test_voc_reading_dataset_and_loaders(book_dir, monkeypatch):
    voc_dir = _quiet(d2l.download_extract, "voc2012", "VOCdevkit/VOC2012")[0]
    features, labels = d2l.read_voc_images(voc_dir, True)
    assert len(features) == len(labels) == 7
    assert features[0].dtype == torch.uint8 and features[0].shape == (3, 360, 480)
    assert labels[0].shape == (3, 360, 480)
    classes = d2l.voc_label_indices(labels[0], d2l.voc_colormap2label()).unique().tolist()
    assert set(classes) <= set(range(6)) and len(classes) >= 2
    ds, out = _quiet(d2l.VOCSegDataset, True, (320, 480), voc_dir)
    assert out == "read 6 examples\n" and len(ds) == 6  # the small image is filtered out, as VOC's are
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(ds.features[0], (features[0].float() / 255 - mean[:, None, None]) / std[:, None, None])
    x, y = ds[0]
    assert x.shape == (3, 320, 480) and y.shape == (320, 480) and y.dtype == torch.int64
    monkeypatch.setattr(d2l, "get_dataloader_workers", lambda: 0)
    monkeypatch.setattr(sys.modules["pixbox.compat._d2l_data"], "get_dataloader_workers", lambda: 0)
    (train_iter, test_iter), out = _quiet(d2l.load_data_voc, 2, (320, 480))
    assert out == "read 6 examples\nread 5 examples\n"
    X, Y = next(iter(train_iter))
    assert X.shape == (2, 3, 320, 480) and Y.shape == (2, 320, 480)
    assert len(test_iter) == 2 and isinstance(test_iter.dataset, d2l.VOCSegDataset)
    monkeypatch.setenv(d2l.QUICK_ENV, "1")
    assert sum(1 for _ in train_iter) == 1


@needs_real
def test_voc_dataset_matches_the_books(book_dir):
    voc_dir = _quiet(d2l.download_extract, "voc2012", "VOCdevkit/VOC2012")[0]
    mine = _quiet(d2l.VOCSegDataset, False, (200, 300), voc_dir)[0]
    theirs = _quiet(real_d2l.VOCSegDataset, False, (200, 300), voc_dir)[0]
    assert len(mine) == len(theirs)
    for k in range(len(mine)):
        torch.testing.assert_close(mine.features[k], theirs.features[k])
        torch.manual_seed(k)
        a = mine[k]
        torch.manual_seed(k)
        b = theirs[k]
        assert torch.equal(a[1], b[1])
        torch.testing.assert_close(a[0], b[0])


# ---------------------------------------------------------------------------------------------
# Plotting


@needs_mpl
def test_plotting_names(tmp_path):
    import matplotlib.pyplot as pyplot
    from matplotlib.patches import Rectangle

    assert d2l.plt is pyplot
    d2l.set_figsize((4, 3))
    assert list(pyplot.rcParams["figure.figsize"]) == [4, 3]
    rect = d2l.bbox_to_rect([60.0, 45.0, 378.0, 516.0], "blue")
    assert isinstance(rect, Rectangle) and rect.get_xy() == (60.0, 45.0)
    assert rect.get_width() == 318.0 and rect.get_height() == 471.0 and not rect.get_fill()
    fig = d2l.plt.imshow(np.zeros((50, 60, 3)))
    d2l.show_bboxes(fig.axes, torch.tensor([[1.0, 2, 30, 40], [5, 5, 20, 20]]), ["a", "b"])
    d2l.show_bboxes(fig.axes, [[0, 0, 10, 10]], "c", "w")
    assert len(fig.axes.patches) == 3 and [t.get_text() for t in fig.axes.texts] == ["a", "b", "c"]
    assert fig.axes.texts[2].get_color() == "k"  # a label on white is black
    from PIL import Image

    axes = d2l.show_images([torch.rand(8, 8, 3), Image.new("RGB", (8, 8))], 1, 2, titles=["x", "y"])
    assert len(axes) == 2 and axes[1].get_title() == "y"
    animator = d2l.Animator(xlabel="epoch", xlim=[1, 3], legend=["a", "b"], path=tmp_path / "curves.png")
    with pytest.warns(UserWarning, match="curves.png"):
        animator.add(1, (0.5, None))
    animator.add(2, (0.4, 0.9))
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert animator.X == [[1, 2], [2]] and animator.Y == [[0.5, 0.4], [0.9]]
    d2l.use_svg_display()  # a no-op outside IPython
    pyplot.close("all")


def test_importable_without_matplotlib_and_plot_names_name_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "pixbox.compat._d2l_plot", raising=False)
    with pytest.raises(ImportError, match=re.escape("pip install 'pixbox[book]'")):
        d2l.plt
    with pytest.raises(ImportError, match="pixbox.compat.d2l.Animator needs matplotlib"):
        d2l.Animator()
    with pytest.raises(AttributeError):
        d2l.no_such_name
    assert "show_images" in dir(d2l) and "show_images" in d2l.__all__
    net = nn.Linear(3, 2)
    d2l.train_ch13(net, _toy_batches(2), _toy_batches(1), nn.CrossEntropyLoss(reduction="none"),
                   torch.optim.SGD(net.parameters(), lr=0.1), 1)  # trains without a plot
    assert "examples/sec" in capsys.readouterr().out


@needs_mpl
def test_headless_plotting_uses_agg(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env["PYTHONPATH"] = str(ROOT)
    code = ("from pixbox.compat import d2l; import matplotlib; d2l.set_figsize(); "
            "d2l.plt.plot([1, 2]); print(matplotlib.get_backend().lower())")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "agg"
