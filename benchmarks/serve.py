"""``pixbox serve`` latency and throughput on loopback, and the README screenshot.

Trains TinySSD for ``--epochs`` (default 1) on a seeded, generated banana set (256 x 256 images),
unless ``--weights`` names a checkpoint, then serves it with uvicorn on 127.0.0.1 and measures

- latency: one 256 x 256 detection request at a time (a PNG posted as the raw body), the
  median and 90th percentile over ``--requests`` after warm-up, next to the model alone
  (:meth:`pixbox.serve.ServedModel.run` without HTTP);
- throughput: ``--clients`` (default 8) threads posting the same image concurrently, each with
  its own keep-alive connection (``http.client``), ``--requests`` in all: requests per second over the wall time.

With ``--screenshot PATH`` it also opens the page in headless Chromium (``chromium`` and
``chromium-driver``), uploads a validation image and saves the page as PNG.

    PYTHONPATH=. .venv/bin/python benchmarks/serve.py
    PYTHONPATH=. .venv/bin/python benchmarks/serve.py --weights RUN/best.pt --image IMG \\
        --screenshot docs/images/serve.png
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import io
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


class Client:
    """A keep-alive HTTP/1.1 client posting raw PNG bodies to ``/api/predict`` (the standard
    library's: httpx's keep-alive requests wait ~40 ms for a delayed ACK on loopback here)."""

    def __init__(self, host: str, port: int):
        self.connection = http.client.HTTPConnection(host, port, timeout=120)
        self.connection.connect()
        self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, body: bytes) -> bytes:
        self.connection.request("POST", "/api/predict", body=body, headers={"Content-Type": "image/png"})
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        return data


def train(root: Path, images: int, epochs: int) -> Path:
    from pixbox.data.generators import make_dataset
    from pixbox.tasks.detect import train_detector

    make_dataset("bananas", root / "bananas", num_train=images, num_val=16, image_size=256, progress=False)
    run = train_detector({"data": str(root / "bananas"), "model": "tiny_ssd", "epochs": epochs, "batch": 16,
                          "imgsz": 256, "lr": 0.2, "warmup_epochs": 0.0, "workers": 0, "device": "cpu",
                          "project": str(root / "runs"), "name": "bananas", "seed": 0, "amp": False},
                         progress=False, verbose=False)
    return run / "best.pt"


def sample_image(root: Path) -> Path:
    found = sorted((root / "bananas").rglob("*.png")) + sorted((root / "bananas").rglob("*.jpg"))
    val = [p for p in found if "val" in p.as_posix()]
    return (val or found)[0]


def screenshot(url: str, image: Path, out: Path, conf: float | None = None) -> int:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from pixbox._files import atomic_open

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1000,720", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    try:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready")
        browser.find_element(By.ID, "file").send_keys(str(image.resolve()))
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error"))
        if conf is not None:  # move the confidence slider (the page reruns the post-processing)
            browser.execute_script("const s = document.getElementById('conf'); s.value = arguments[0];"
                                   "s.dispatchEvent(new Event('input'));", str(conf))
        count = browser.find_element(By.ID, "count").get_attribute("data-count")
        png = browser.get_screenshot_as_png()
    finally:
        browser.quit()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "wb") as f:
        f.write(png)
    return int(count or 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, help="a detection checkpoint (default: train TinySSD here)")
    parser.add_argument("--train-images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--image", type=Path, help="the image to time and show (default: a generated one)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG")
    parser.add_argument("--conf", type=float, help="the confidence slider's position in the screenshot")
    args = parser.parse_args(argv)

    from pixbox.serve import create_app, load_models, running_server

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.weights is None:
            start = time.perf_counter()
            weights = train(root, args.train_images, args.epochs)
            print(f"trained TinySSD for {args.epochs} epoch(s) on {args.train_images} generated 256x256 banana "
                  f"images in {time.perf_counter() - start:.0f} s")
            image_path = sample_image(root)
        else:
            weights = args.weights
            image_path = root / "sample.png"
            Image.fromarray((np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)).save(image_path)
        if args.image is not None:
            image_path = args.image
        buffer = io.BytesIO()
        Image.open(image_path).convert("RGB").resize((256, 256)).save(buffer, "PNG")
        png = buffer.getvalue()
        models = load_models([weights], device="cpu")
        model = models[0]
        app = create_app(models)
        from pixbox.serve import decode_image

        array = decode_image(png)
        for _ in range(3):
            model.run(array)
        direct = []
        for _ in range(args.requests):
            t = time.perf_counter()
            model.run(array)
            direct.append(time.perf_counter() - t)
        with running_server(app) as url:
            host, port = url.removeprefix("http://").rsplit(":", 1)
            client = Client(host, int(port))
            for _ in range(3):
                client.post(png)
            single = []
            for _ in range(args.requests):
                t = time.perf_counter()
                body = client.post(png)
                single.append(time.perf_counter() - t)
            detections = len(json.loads(body)["detections"])

            def worker(n: int) -> list[float]:
                times, c = [], Client(host, int(port))
                for _ in range(n):
                    t = time.perf_counter()
                    c.post(png)
                    times.append(time.perf_counter() - t)
                return times

            share = [args.requests // args.clients + (i < args.requests % args.clients) for i in range(args.clients)]
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                latencies = [x for part in pool.map(worker, share) for x in part]
            wall = time.perf_counter() - start
            shown = None
            if args.screenshot is not None:
                shown = screenshot(url, image_path, args.screenshot, args.conf)

    def ms(values, q=0.5):
        return 1000 * float(np.quantile(values, q))

    print(f"model {model.predictor!r}; one 256x256 PNG, {detections} detections at the default thresholds")
    print(f"{'':34} {'median ms':>10} {'p90 ms':>8}")
    print(f"{'model only (no HTTP)':34} {ms(direct):10.1f} {ms(direct, 0.9):8.1f}")
    print(f"{'one request at a time':34} {ms(single):10.1f} {ms(single, 0.9):8.1f}")
    print(f"{f'{args.clients} concurrent clients':34} {ms(latencies):10.1f} {ms(latencies, 0.9):8.1f}")
    print(f"throughput at {args.clients} concurrent clients: {len(latencies) / wall:.1f} requests/s "
          f"({len(latencies)} requests in {wall:.1f} s; one at a time: {1 / statistics.median(single):.1f}/s)")
    if shown is not None:
        print(f"wrote {args.screenshot} ({shown} detections shown)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
