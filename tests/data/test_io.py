import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from pixbox.data.annotations import DatasetError
from pixbox.data.io import (
    VOC_CLASSES,
    VOC_COLORMAP,
    MaskColorWarning,
    image_size,
    read_image,
    read_mask,
    write_image,
    write_mask,
)


def _rgb(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mode(path):
    with Image.open(path) as img:
        return img.mode


def _chw(array):
    return torch.from_numpy(np.array(array)).permute(2, 0, 1)


# ----------------------------------------------------------------------------------------------
# read_image


def test_read_image_rgb_png_exact(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    x = read_image(tmp_path / "a.png")
    assert x.shape == (3, 5, 7) and x.dtype == torch.uint8 and x.is_contiguous()
    assert torch.equal(x, _chw(a))
    x[0, 0, 0] = 0  # writable, no warning, independent of the file
    assert image_size(str(tmp_path / "a.png")) == (7, 5)


def test_read_image_greyscale_and_bilevel_become_rgb(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(grey > 100).save(tmp_path / "b.png")
    assert torch.equal(read_image(tmp_path / "g.png"), torch.from_numpy(grey).expand(3, -1, -1))
    assert torch.equal(read_image(tmp_path / "b.png"),
                       torch.from_numpy((grey > 100).astype(np.uint8) * 255).expand(3, -1, -1))


def test_read_image_palette_with_and_without_transparency(tmp_path):
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    pal = [10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * (256 * 3 - 9)
    img = Image.fromarray(idx)
    img.putpalette(pal)
    img.save(tmp_path / "p.png")
    img.save(tmp_path / "pt.png", transparency=1)
    want = torch.tensor(np.array(pal[:9], np.uint8).reshape(3, 3)[idx]).permute(2, 0, 1)
    assert torch.equal(read_image(tmp_path / "p.png"), want)
    assert torch.equal(read_image(tmp_path / "pt.png"), want)  # alpha dropped, colours kept


def test_read_image_alpha_dropped_not_composited(tmp_path):
    rgba = np.concatenate([_rgb(), np.zeros((5, 7, 1), np.uint8)], axis=2)  # fully transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert torch.equal(read_image(tmp_path / "a.png"), _chw(rgba[..., :3]))
    la = np.stack([np.full((4, 4), 77, np.uint8), np.full((4, 4), 3, np.uint8)], axis=2)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert torch.equal(read_image(tmp_path / "la.png"), torch.full((3, 4, 4), 77, dtype=torch.uint8))


def test_read_image_cmyk(tmp_path):
    cmyk = Image.new("CMYK", (6, 4), (0, 255, 255, 0))  # pure red
    cmyk.save(tmp_path / "c.tif")
    x = read_image(tmp_path / "c.tif")
    assert x.shape == (3, 4, 6)
    assert x[:, 0, 0].tolist() == [255, 0, 0]


def test_read_image_16_bit_greyscale_scaled(tmp_path):
    values = np.array([[0, 128, 129, 257], [1000, 32768, 65280, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert _mode(tmp_path / "g16.png").startswith("I")
    x = read_image(tmp_path / "g16.png")
    # round(v / 257): golden values
    want = torch.tensor([[0, 0, 1, 1], [4, 128, 254, 255]], dtype=torch.uint8)
    assert torch.equal(x, want.expand(3, -1, -1))


def _oriented(tmp_path, orientation, suffix=".png"):
    a = _rgb(3, 5, seed=orientation)  # not square, so rotations change the shape
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}{suffix}"
    Image.fromarray(a).save(path, exif=exif)
    return a, path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_applies_exif_orientation_like_pillow(tmp_path, orientation):
    a, path = _oriented(tmp_path, orientation)
    with Image.open(path) as img:
        want = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    x = read_image(path)
    assert torch.equal(x, _chw(want))
    assert image_size(path) == (x.shape[2], x.shape[1])


def test_read_image_exif_golden_rotation(tmp_path):
    a, path = _oriented(tmp_path, 6)  # 6: the camera was turned; display = rotate 90 degrees clockwise
    assert torch.equal(read_image(path), _chw(np.rot90(a, k=-1)))
    assert image_size(path) == (3, 5)
    a, path = _oriented(tmp_path, 3)
    assert torch.equal(read_image(path), _chw(a[::-1, ::-1]))
    assert image_size(path) == (5, 3)


def test_image_size_exif_jpeg_header(tmp_path):
    _, path = _oriented(tmp_path, 8, ".jpg")
    assert image_size(path) == (3, 5)
    assert read_image(path).shape == (3, 5, 3)


def test_image_size_reads_only_the_header(tmp_path):
    Image.fromarray(_rgb(40, 50)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    assert image_size(tmp_path / "t.png") == (50, 40)  # header intact
    with pytest.raises(DatasetError, match="t.png"):
        read_image(tmp_path / "t.png")  # the pixels are not


def test_truncated_jpeg_fails_naming_the_path(tmp_path):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "a.jpg", quality=90)
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) - 200])
    with pytest.raises(DatasetError, match=r"cut\.jpg.*(truncated|cannot decode)") as info:
        read_image(tmp_path / "cut.jpg")
    assert info.value.path == str(tmp_path / "cut.jpg")


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.png: image file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DatasetError, match=r"nope\.png: image file not found"):
        image_size(tmp_path / "nope.png")
    (tmp_path / "x.png").write_text("<html>not an image</html>")
    for fn in (read_image, image_size, read_mask):
        with pytest.raises(DatasetError, match=r"x\.png: cannot read image"):
            fn(tmp_path / "x.png")
    with pytest.raises(DatasetError, match="not a file"):
        read_image(tmp_path)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        read_image(3)


# ----------------------------------------------------------------------------------------------
# write_image


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".PNG"])
def test_write_image_lossless_round_trip(tmp_path, suffix):
    x = _chw(_rgb(6, 9))
    path = write_image(x, tmp_path / "sub" / "dir" / f"a{suffix}")
    assert path == tmp_path / "sub" / "dir" / f"a{suffix}"
    assert torch.equal(read_image(path), x)
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_write_image_shapes_and_float_input(tmp_path):
    grey = torch.arange(12, dtype=torch.uint8).reshape(3, 4) * 20
    p2 = write_image(grey, tmp_path / "g.png")
    p1 = write_image(grey[None], tmp_path / "g1.png")
    assert _mode(p2) == "L"
    assert torch.equal(read_image(p2), grey.expand(3, -1, -1))
    assert torch.equal(read_image(p1), grey.expand(3, -1, -1))
    f = torch.tensor([[[0.0, 0.5, 1.0]]]).expand(3, 1, 3)
    assert read_image(write_image(f, tmp_path / "f.png"))[:, 0].tolist() == [[0, 128, 255]] * 3
    assert read_image(write_image(f + 1e-6, tmp_path / "f2.png")).max() == 255  # rounding noise clamped


def test_write_image_jpeg_quality_changes_the_file(tmp_path):
    x = _chw(_rgb(32, 32))
    lo = write_image(x, tmp_path / "lo.jpg", quality=10)
    hi = write_image(x, tmp_path / "hi.jpeg")
    assert lo.stat().st_size < hi.stat().st_size
    err_lo = (read_image(lo).float() - x.float()).abs().mean()
    err_hi = (read_image(hi).float() - x.float()).abs().mean()
    assert err_hi < err_lo


def test_write_image_overwrites_atomically(tmp_path):
    path = write_image(torch.zeros(3, 2, 2, dtype=torch.uint8), tmp_path / "a.png")
    write_image(torch.full((3, 2, 2), 9, dtype=torch.uint8), path)
    assert read_image(path).unique().tolist() == [9]
    assert os.listdir(tmp_path) == ["a.png"]


def test_write_image_errors(tmp_path):
    x = torch.zeros(3, 2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"path must end in one of \['.bmp', '.jpeg', '.jpg', '.png'\], got"):
        write_image(x, tmp_path / "out" / "a.gif")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"image must have shape \[3, H, W\], \[1, H, W\] or \[H, W\], got \(2, 2, 2\)"):
        write_image(torch.zeros(2, 2, 2, dtype=torch.uint8), tmp_path / "a.png")
    with pytest.raises(TypeError, match="image must be uint8 or floating point in \\[0, 1\\], got dtype torch.int64"):
        write_image(torch.zeros(3, 2, 2, dtype=torch.int64), tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"values in \[0, 1\], got \[0, 255\]"):
        write_image(torch.full((3, 2, 2), 255.0).index_fill_(1, torch.tensor([0]), 0.0), tmp_path / "a.png")
    with pytest.raises(ValueError, match="NaN"):
        write_image(torch.full((3, 2, 2), float("nan")), tmp_path / "a.png")
    with pytest.raises(TypeError, match="image must be a torch.Tensor"):
        write_image(np.zeros((2, 2, 3), np.uint8), tmp_path / "a.png")
    with pytest.raises(ValueError, match="quality must be <= 100, got 101"):
        write_image(x, tmp_path / "a.jpg", quality=101)
    with pytest.raises(TypeError, match="quality must be an int, got float"):
        write_image(x, tmp_path / "a.jpg", quality=9.5)


# ----------------------------------------------------------------------------------------------
# Colour map and masks


def test_voc_colormap_golden():
    assert VOC_COLORMAP.shape == (256, 3) and VOC_COLORMAP.dtype == np.uint8
    assert VOC_COLORMAP[:6].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128],
                                         [128, 0, 128]]
    assert VOC_COLORMAP[15].tolist() == [192, 128, 128]  # person
    assert VOC_COLORMAP[20].tolist() == [0, 64, 128]  # tvmonitor
    assert VOC_COLORMAP[255].tolist() == [224, 224, 192]  # boundary
    assert len({tuple(c) for c in VOC_COLORMAP.tolist()}) == 256
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person"
    with pytest.raises(ValueError):
        VOC_COLORMAP[0, 0] = 1  # read-only


def _save_palette_png(path, indices, palette=VOC_COLORMAP):
    img = Image.fromarray(indices.astype(np.uint8), "L")
    img.putpalette(np.asarray(palette, np.uint8).reshape(-1).tolist())
    img.save(path)
    assert _mode(path) == "P"
    return path


def test_read_mask_palette_png_gives_indices(tmp_path):
    m = np.array([[0, 1, 15, 255], [20, 0, 255, 3]])
    path = _save_palette_png(tmp_path / "m.png", m)
    x = read_mask(path)
    assert x.dtype == torch.int64 and x.tolist() == m.tolist()
    # The palette does not matter: only the indices do.
    path2 = _save_palette_png(tmp_path / "m2.png", m, palette=np.zeros((256, 3), np.uint8))
    assert read_mask(path2).tolist() == m.tolist()


def test_read_mask_plain_8_and_16_bit(tmp_path):
    m8 = np.array([[0, 5, 255], [1, 2, 3]], np.uint8)
    Image.fromarray(m8).save(tmp_path / "m8.png")
    assert read_mask(tmp_path / "m8.png").tolist() == m8.tolist()
    m16 = np.array([[0, 300, 65535], [1, 256, 1000]], np.uint16)
    Image.fromarray(m16).save(tmp_path / "m16.png")
    assert read_mask(tmp_path / "m16.png").tolist() == m16.tolist()  # left as they are


def test_read_mask_rgb_colours(tmp_path):
    idx = np.array([[0, 1, 15, 20], [255, 0, 7, 7]])
    rgb = VOC_COLORMAP[idx].copy()
    rgb[1, 3] = (1, 2, 3)  # a colour not in the map
    rgb[0, 0] = VOC_COLORMAP[21]  # in the full palette, but not one of the 21 class colours
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.warns(MaskColorWarning, match=r"c\.png: 25\.0% of the pixels \(2 of 8\)"):
        x = read_mask(tmp_path / "c.png")
    assert x.tolist() == [[255, 1, 15, 20], [255, 0, 7, 255]]  # unknown -> 255, never 0
    rgba = np.concatenate([rgb, np.full((2, 4, 1), 10, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "c4.png")
    assert torch.equal(read_mask(tmp_path / "c4.png", unmapped_threshold=1.0), x)


def test_read_mask_colormap_parameter(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 0], [224, 224, 192]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    quiet = dict(unmapped_threshold=1.0)  # colours off the map are the point here
    assert read_mask(tmp_path / "c.png", **quiet).tolist() == [[255, 255, 0, 255]]
    cmap = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    assert read_mask(tmp_path / "c.png", colormap=cmap, **quiet).tolist() == [[1, 2, 0, 255]]
    # The full 256-row palette maps the boundary colour to 255 too.
    assert read_mask(tmp_path / "c.png", colormap=VOC_COLORMAP, **quiet).tolist() == [[255, 255, 0, 255]]
    with pytest.raises(ValueError, match=r"colormap must have shape \[K, 3\] with 1 <= K <= 256, got \(2, 2\)"):
        read_mask(tmp_path / "c.png", colormap=[[0, 0], [1, 1]])
    with pytest.raises(ValueError, match=r"colormap must have distinct colours, got \(255, 0, 0\) more than once"):
        read_mask(tmp_path / "c.png", colormap=[(255, 0, 0), (255, 0, 0)])
    with pytest.raises(ValueError, match=r"colormap must hold integer colours in \[0, 255\]"):
        read_mask(tmp_path / "c.png", colormap=[(256, 0, 0)])


def test_write_mask_round_trip_palette_png(tmp_path):
    m = torch.from_numpy(np.random.default_rng(0).integers(0, 21, (9, 11)))
    m[0, :3] = 255
    path = write_mask(m, tmp_path / "d" / "m.png")
    with Image.open(path) as img:
        assert img.mode == "P"
        assert np.array(img.getpalette()[:768], np.uint8).reshape(256, 3).tolist() == VOC_COLORMAP.tolist()
        assert np.array(img.convert("RGB"))[0, 0].tolist() == [224, 224, 192]
    assert torch.equal(read_mask(path), m)
    assert torch.equal(read_mask(write_mask(m.numpy().astype(np.uint8), tmp_path / "n.png")), m)
    assert os.listdir(tmp_path / "d") == ["m.png"]


def test_write_mask_palette_parameter(tmp_path):
    m = np.array([[0, 1], [2, 1]])
    path = write_mask(m, tmp_path / "m.png", palette=[(9, 9, 9), (255, 0, 0), (0, 0, 255)])
    with Image.open(path) as img:
        assert np.array(img.convert("RGB")).tolist() == [[[9, 9, 9], [255, 0, 0]], [[0, 0, 255], [255, 0, 0]]]
    assert read_mask(path).tolist() == m.tolist()  # the indices do not depend on the palette


def test_write_mask_errors(tmp_path):
    with pytest.raises(ValueError, match=r"mask values must be in \[0, 255\] to fit a palette PNG, got \[0, 256\]"):
        write_mask(np.array([[0, 256]]), tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"got \[-1, 0\]"):
        write_mask(torch.tensor([[-1, 0]]), tmp_path / "m.png")
    with pytest.raises(TypeError, match="mask must hold integer class indices, got dtype float32"):
        write_mask(np.zeros((2, 2), np.float32), tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"mask must have shape \[H, W\] with H, W > 0, got \(1, 2, 2\)"):
        write_mask(np.zeros((1, 2, 2), np.uint8), tmp_path / "m.png")
    with pytest.raises(ValueError, match="path must end in .png"):
        write_mask(np.zeros((2, 2), np.uint8), tmp_path / "m.jpg")
    with pytest.raises(TypeError, match="mask must be a torch.Tensor or numpy array"):
        write_mask([[0, 1]], tmp_path / "m.png")
    assert not list(tmp_path.iterdir())


def test_read_mask_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"m\.png: image file not found"):
        read_mask(tmp_path / "m.png")


def test_write_image_compress_level_changes_size_not_pixels(tmp_path):
    g = torch.Generator().manual_seed(0)
    image = (torch.rand(3, 64, 64, generator=g) * 40).to(torch.uint8) + 100
    fast = write_image(image, tmp_path / "fast.png", compress_level=1)
    small = write_image(image, tmp_path / "small.png", compress_level=9)
    assert fast.stat().st_size > small.stat().st_size
    assert torch.equal(read_image(fast), read_image(small))
    with pytest.raises(ValueError, match="compress_level"):
        write_image(image, tmp_path / "bad.png", compress_level=10)
