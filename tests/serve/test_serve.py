"""pixbox.serve: upload decoding, post-processing, the app's routes and limits, a real server
under 50 concurrent requests and an end-to-end run in headless Chromium."""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from pixbox.data.io import VOC_COLORMAP  # noqa: E402
from pixbox.tasks.classify import ClassifierPredictor  # noqa: E402
from pixbox.tasks.segment import SegmenterPredictor  # noqa: E402
from pixbox.serve import (CANDIDATE_FLOOR, ImageError, ServedModel, create_app, decode_image, is_loopback,  # noqa: E402
                          load_models, postprocess, running_server)

from ._models import Classifier as _Classifier, Segmenter as _Segmenter, png as _png  # noqa: E402


def _reference_postprocess(cands, conf, iou, topk):
    """A slow, obvious greedy loop."""
    def box_iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
        return iw * ih / union if union > 0 else 0.0

    order = sorted((i for i, c in enumerate(cands) if c["score"] > conf), key=lambda i: (-cands[i]["score"], i))
    kept = []
    for i in order:
        c = cands[i]
        if all(k["label"] != c["label"] or box_iou(k["box"], c["box"]) <= iou for k in kept):
            kept.append(c)
    return kept[:topk]


# ------------------------------------------------------------------------------------------------
# decode_image


def test_decode_image_round_trip_and_errors(scene):
    assert np.array_equal(decode_image(_png(scene)), scene)
    gray = decode_image(_png(scene[:, :, 0]))
    assert gray.shape == (200, 300, 3) and np.array_equal(gray[:, :, 2], scene[:, :, 0])
    with pytest.raises(ImageError, match="empty") as info:
        decode_image(b"")
    assert info.value.status == 400
    with pytest.raises(ImageError, match="not an image"):
        decode_image(b"%PDF-1.4 definitely not a picture")
    with pytest.raises(ImageError, match="corrupt or truncated") as info:
        decode_image(_png(scene)[:300])
    assert info.value.status == 400
    with pytest.raises(ImageError, match="200x300|300x200") as info:
        decode_image(_png(scene), max_pixels=1000)
    assert info.value.status == 413
    with pytest.raises(TypeError, match="data must be bytes"):
        decode_image("a.png")


def test_decode_image_applies_exif_orientation(scene):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _png(scene, "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(data)
    assert out.shape == (300, 200, 3)
    plain = decode_image(_png(scene, "JPEG", quality=95))
    assert np.abs(out.astype(int) - np.rot90(plain, k=-1).astype(int)).mean() < 1


# ------------------------------------------------------------------------------------------------
# post-processing


@pytest.mark.parametrize("seed", range(4))
def test_postprocess_matches_reference_loop(seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(60, 2, generator=g) * 80
    wh = torch.rand(60, 2, generator=g) * 40 + 1
    boxes = torch.cat([xy, xy + wh], 1).tolist()
    scores = torch.rand(60, generator=g).tolist()
    labels = torch.randint(0, 3, (60,), generator=g).tolist()
    cands = [{"box": b, "score": s, "label": c} for b, s, c in zip(boxes, scores, labels)]
    for conf, iou, topk in [(0.1, 0.3, 100), (0.5, 0.5, 100), (0.0, 0.0, 7), (0.9, 1.0, 100)]:
        assert postprocess(cands, conf, iou, topk) == _reference_postprocess(cands, conf, iou, topk)
    assert postprocess(cands, 1.0, 0.5) == []
    with pytest.raises(ValueError, match="conf"):
        postprocess(cands, 1.5, 0.5)


def test_detection_candidates_reproduce_the_predictor(detector, scene):
    model = ServedModel("det", detector)
    for conf, iou in [(0.3, 0.45), (0.45, 0.2), (0.5, 0.7)]:
        out = model.run(scene, conf=conf, iou=iou, candidates=True)
        direct = detector.predict(scene, score_threshold=conf, nms_threshold=iou)[0]
        assert [d["label"] for d in out["detections"]] == direct["labels"].tolist()
        got = torch.tensor([d["box"] for d in out["detections"]]).reshape(-1, 4)
        torch.testing.assert_close(got, direct["boxes"], atol=0.01, rtol=0)
        torch.testing.assert_close(torch.tensor([d["score"] for d in out["detections"]]), direct["scores"],
                                   atol=1e-5, rtol=0)
        # the page's sliders rerun the same steps on the candidates
        assert postprocess(out["candidates"], conf, iou, detector.topk) == out["detections"]
    assert all(c["score"] > CANDIDATE_FLOOR for c in out["candidates"])
    assert out["size"] == [200, 300] and out["task"] == "detect"
    with pytest.raises(ValueError, match="conf"):
        model.run(scene, conf=0.01)


def test_classify_and_segment_results(scene):
    classifier = ServedModel("cls", ClassifierPredictor(_Classifier(), list("abcd"), 32))
    out = classifier.run(scene, topk=3)
    assert [t["name"] for t in out["topk"]] == ["d", "c", "b"]
    assert out["topk"][0]["score"] > out["topk"][1]["score"] > out["topk"][2]["score"]

    seg = ServedModel("seg", SegmenterPredictor(_Segmenter(), ["background", "red", "green"]))
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    image[:, :10, 0] = 200  # red
    image[:, 10:15, 1] = 200  # green
    out = seg.run(image)
    assert out["task"] == "segment" and out["size"] == [20, 30]
    assert out["classes"] == [{"label": 0, "name": "background", "fraction": 0.5},
                              {"label": 1, "name": "red", "fraction": round(1 / 3, 5)},
                              {"label": 2, "name": "green", "fraction": round(1 / 6, 5)}]
    rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(out["mask"].split(",", 1)[1]))))
    assert rgba.shape == (20, 30, 4)
    assert (rgba[:, :10, :3] == VOC_COLORMAP[1]).all() and (rgba[:, 10:15, :3] == VOC_COLORMAP[2]).all()
    assert (rgba[:, :15, 3] == 255).all() and (rgba[:, 15:, 3] == 0).all()
    assert seg.info()["colors"][2] == VOC_COLORMAP[2].tolist()


def test_served_model_and_app_validation(detector):
    with pytest.raises(TypeError, match="predictor must be"):
        ServedModel("x", torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="name"):
        ServedModel("", detector)
    with pytest.raises(ValueError, match="unique names"):
        create_app([ServedModel("a", detector), ServedModel("a", detector)])
    with pytest.raises(ValueError, match="non-empty"):
        create_app([])
    with pytest.raises(ValueError, match="max_upload_mb"):
        create_app([ServedModel("a", detector)], max_upload_mb=0)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_load_models_names_runs(detector, tmp_path):
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        detector.save(tmp_path / run / "best.pt")
    detector.save(tmp_path / "a" / "last.pt")
    models = load_models([tmp_path / "a" / "best.pt", tmp_path / "b" / "best.pt", tmp_path / "a" / "last.pt"],
                         device="cpu")
    assert [m.name for m in models] == ["a", "b", "a-2"] and all(m.task == "detect" for m in models)
    with pytest.raises(FileNotFoundError):
        load_models([tmp_path / "missing.pt"])


# ------------------------------------------------------------------------------------------------
# the app


@pytest.fixture(scope="module")
def app(detector):
    seg = ServedModel("seg", SegmenterPredictor(_Segmenter(), ["background", "red", "green"]))
    return create_app([ServedModel("det", detector), seg], max_upload_mb=0.5)


@pytest.fixture(scope="module")
def server(app):
    with running_server(app) as url:
        yield url


def test_routes_and_errors(server, scene):
    page = httpx.get(server + "/")
    assert page.status_code == 200 and "<canvas" in page.text and page.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "function postprocess" in httpx.get(server + "/app.js").text
    info = httpx.get(server + "/api/models").json()["models"]
    assert [(m["name"], m["task"]) for m in info] == [("det", "detect"), ("seg", "segment")]
    png = _png(scene)
    form = httpx.post(server + "/api/predict?model=det&conf=0.4&iou=0.5", files={"image": ("s.png", png)})
    raw = httpx.post(server + "/api/predict?conf=0.4&iou=0.5", content=png, headers={"content-type": "image/png"})
    assert form.status_code == raw.status_code == 200 and form.json() == raw.json()
    assert form.json()["conf"] == 0.4 and "candidates" not in form.json()
    assert "candidates" in httpx.post(server + "/api/predict?candidates=1", content=png).json()
    seg = httpx.post(server + "/api/predict?model=seg", content=png).json()
    assert seg["task"] == "segment" and seg["mask"].startswith("data:image/png;base64,")

    def error(response, status, match):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert match in response.json()["error"]

    error(httpx.post(server + "/api/predict", content=b"GIF89a but not really"), 400, "not an image")
    error(httpx.post(server + "/api/predict", content=png[:200]), 400, "corrupt or truncated")
    error(httpx.post(server + "/api/predict", content=b""), 400, "empty")
    error(httpx.post(server + "/api/predict", files={"file": ("s.png", png)}), 400, "field named 'image'")
    error(httpx.post(server + "/api/predict?model=nope", content=png), 404, "unknown model 'nope'")
    error(httpx.post(server + "/api/predict?conf=abc", content=png), 400, "conf must be a number")
    error(httpx.post(server + "/api/predict?conf=0.01", content=png), 400, "candidate floor")
    error(httpx.post(server + "/api/predict?iou=2", content=png), 400, "iou must be in")
    error(httpx.get(server + "/api/predict"), 405, "not allowed")
    big = b"\x89PNG" + b"0" * (2 ** 20)
    error(httpx.post(server + "/api/predict", content=big), 413, "0.5 MB")
    error(httpx.post(server + "/api/predict", content=iter([big[i:i + 65536] for i in range(0, len(big), 65536)])),
          413, "limit")
    error(httpx.post(server + "/api/predict", files={"image": ("big.png", big)}), 413, "limit")
    for path in ("/../pyproject.toml", "/app.js/../../pyproject.toml", "/static/%2e%2e/pyproject.toml",
                 "/pixbox/serve/app.py", "/etc/passwd"):
        error(httpx.get(server + path), 404, "no such page")
    assert httpx.get(server + "/healthz").json() == {"ok": True}  # still alive after all that


def test_fifty_concurrent_requests(server, scene):
    png = _png(scene)
    expected = httpx.post(server + "/api/predict?conf=0.4", content=png).json()

    def one(i):
        with httpx.Client(timeout=60) as client:
            if i % 5 == 4:  # a bad upload among them must not disturb the others
                return client.post(server + "/api/predict", content=b"junk").status_code, None
            r = client.post(server + "/api/predict?conf=0.4", files={"image": ("s.png", png)})
            return r.status_code, r.json()

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    elapsed = time.perf_counter() - start
    assert [s for s, _ in results] == [400 if i % 5 == 4 else 200 for i in range(50)]
    assert all(body == expected for _, body in results if body is not None)
    assert elapsed < 60, f"50 requests took {elapsed:.1f} s"


# ------------------------------------------------------------------------------------------------
# the CLI


def test_cli_parser_and_errors(tmp_path, capsys):
    from pixbox.cli import serve

    parser = argparse.ArgumentParser(prog="pixbox")
    serve.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--weights", "a.pt", "--weights", "b.pt"])
    assert args.weights == [tmp_path.__class__("a.pt"), tmp_path.__class__("b.pt")]
    assert (args.host, args.port, args.max_upload_mb) == ("127.0.0.1", 8000, 10)
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--weights", "a.pt", "--max-upload-mb", "0"])
    assert "must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["serve"])
    capsys.readouterr()
    args = parser.parse_args(["serve", "--weights", str(tmp_path / "missing.pt")])
    assert args.func(args) == 1
    assert "error:" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# a real browser


def expected_colors(detections):
    from pixbox.viz import label_color

    return sorted({label_color(d["label"]) for d in detections})


def _chrome():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def test_browser_upload_draws_detections(server, scene, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path = tmp_path / "scene.png"
    path.write_bytes(_png(scene))
    iou = 0.3
    cands = httpx.post(f"{server}/api/predict?candidates=1", content=path.read_bytes()).json()["candidates"]
    # a slider position (steps of 0.01) that leaves a few boxes
    conf = next(c / 100 for c in range(99, 4, -1) if len(postprocess(cands, c / 100, iou)) >= 3)
    expected = httpx.post(f"{server}/api/predict?conf={conf}&iou={iou}", content=path.read_bytes()).json()
    n = len(expected["detections"])
    assert 3 <= n < 100
    browser = _chrome()
    try:
        browser.get(server + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready")
        browser.find_element(By.ID, "file").send_keys(str(path))
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error"))
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", \
            browser.find_element(By.ID, "status").text
        default = len(httpx.post(server + "/api/predict", content=path.read_bytes()).json()["detections"])
        assert browser.find_element(By.ID, "count").get_attribute("data-count") == str(default)
        # move the sliders: the page reruns NMS on the candidates, no new request
        browser.execute_script(
            "for (const [id, v] of [['conf', arguments[0]], ['iou', arguments[1]]]) {"
            " const s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event('input')); }",
            str(conf), str(iou))
        assert browser.find_element(By.ID, "count").get_attribute("data-count") == str(n)
        items = browser.find_elements(By.CSS_SELECTOR, "#results li.detection")
        assert len(items) == n
        first = expected["detections"][0]
        assert items[0].text.startswith(f"{first['name']} {first['score']:.2f}")
        canvas = browser.find_element(By.ID, "canvas")
        # small images are drawn enlarged to 480 pixels on the long side
        assert (int(canvas.get_attribute("width")), int(canvas.get_attribute("height"))) == (480, 320)
        # the labels are drawn: solid patches of the class colours, absent from the plain image
        pixels = browser.execute_script(
            "const c = document.getElementById('canvas');"
            "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);")
        drawn = np.array(pixels, dtype=np.uint8).reshape(320, 480, 4)[:, :, :3]
        colors = [np.array(c, dtype=np.uint8) for c in expected_colors(expected["detections"])]

        def solid(image):
            return sum(int((image == c).all(axis=2).sum()) for c in colors)

        assert solid(scene) < 10 and solid(drawn) > 100 * n
    finally:
        browser.quit()
