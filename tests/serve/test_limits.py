"""pixbox serve against hostile input: slow-connection floods, connection bounds, big and bomb
images (pixel limit, reduction before the model, memory of a server process under 30 concurrent
worst-case uploads), the upload-memory budget and a port already in use."""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import errno
import io
import os
import selectors
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from pixbox.data.io import VOC_COLORMAP  # noqa: E402
from pixbox.serve import (MAX_PIXELS, MAX_SIDE, ImageError, ServedModel, create_app, decode_image,  # noqa: E402
                          run_server, running_server)
from pixbox.tasks.classify import ClassifierPredictor  # noqa: E402
from pixbox.tasks.detect import Predictor  # noqa: E402
from pixbox.tasks.segment import SegmenterPredictor  # noqa: E402

from ._models import Classifier, Segmenter, png  # noqa: E402

SERVER = Path(__file__).with_name("_server.py")
ROOT = Path(__file__).resolve().parents[2]
GB = 2 ** 30
PILLOW_BOMB = 2 * Image.MAX_IMAGE_PIXELS  # 178956970: Pillow refuses to open larger images


def _halves(height: int, width: int) -> np.ndarray:
    """Red left half, green right half: compresses to a few KB, and the segmenter's mask is known."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, :width // 2, 0] = 200
    image[:, width // 2:, 1] = 200
    return image


def _png_bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """A PNG of ``width x height`` black RGB pixels, only the first ``rows`` rows encoded (all: None).

    With every row it is a real decompression bomb (zeros compress about 1000:1); with a few
    rows it is the same header and a truncated body, which is all an opening decoder reads.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)  # filter byte + RGB
    n = height if rows is None else rows
    parts = [compressor.compress(row * min(1000, n - i)) for i in range(0, n, 1000)]
    idat = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _mask(result: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(result["mask"].split(",", 1)[1]))))


def _segmenter(**options) -> ServedModel:
    return ServedModel("seg", SegmenterPredictor(Segmenter(), ["background", "red", "green"]), **options)


# ------------------------------------------------------------------------------------------------
# the pixel limit and decompression bombs


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_images_over_the_pixel_limit_get_413_naming_the_limit(detector):
    bomb = _png_bomb(20_000, 10_000)  # 200 megapixels of zeros
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError, match=f"more than {PILLOW_BOMB} pixels .*at most {MAX_PIXELS} pixels") as info:
        decode_image(bomb)
    assert info.value.status == 413
    # between Pillow's warning (89 MP) and its error (179 MP), and just over the limit: our own check
    for w, h in [(12_000, 10_000), (4001, 4000)]:
        with pytest.raises(ImageError, match=f"{w}x{h} = {w * h} pixels; .*at most {MAX_PIXELS} pixels") as info:
            decode_image(_png_bomb(w, h, rows=2))
        assert info.value.status == 413
    assert MAX_PIXELS == 16_000_000 and decode_image(png(_halves(40, 50)), max_pixels=2000).shape == (40, 50, 3)

    with running_server(create_app([ServedModel("det", detector)])) as url:
        for data, match in [(bomb, f"more than {PILLOW_BOMB} pixels"), (png(_halves(5000, 5000)), "5000x5000")]:
            r = httpx.post(url + "/api/predict", content=data, timeout=60)
            assert r.status_code == 413, r.text
            assert match in r.json()["error"] and f"at most {MAX_PIXELS} pixels" in r.json()["error"]
        r = httpx.post(url + "/api/predict", files={"image": ("bomb.png", bomb)}, timeout=60)
        assert r.status_code == 413 and "decompression bomb" in r.json()["error"]
        truncated = png(_halves(300, 400))[:400]
        r = httpx.post(url + "/api/predict", content=truncated)
        assert r.status_code == 400 and "corrupt or truncated" in r.json()["error"]


# ------------------------------------------------------------------------------------------------
# reduction before the model


def test_working_size_per_task_and_parameter(detector):
    det, seg = ServedModel("det", detector), _segmenter()
    cls = ServedModel("cls", ClassifierPredictor(Classifier(), list("abcd"), 32))  # resizes the short side to 37
    for model in (det, seg, cls):
        assert model.working_size(200, 300) == (200, 300)  # small images run as given
    assert MAX_SIDE == 1024
    assert det.working_size(5000, 300) == (1024, 300)  # each side on its own: the detector squashes anyway
    assert seg.working_size(4000, 2000) == (1024, 512)
    assert seg.working_size(3, 20_000) == (1, 1024)
    assert cls.working_size(4000, 2000) == (1024, 512)
    assert cls.working_size(20_000, 100) == (7400, 37)  # never under the classifier's own resize
    assert _segmenter(max_side=256).working_size(4000, 2000) == (256, 128)
    assert ServedModel("det", detector, max_side=64).working_size(5000, 300) == (128, 128)  # at least imgsz
    with pytest.raises(ValueError, match="max_side must be >= 16, got 8"):
        _segmenter(max_side=8)


class _Recording(Predictor):
    """A detector that remembers the size of every image it is given."""

    def predict(self, images, **options):
        self.seen = getattr(self, "seen", []) + [tuple(images.shape)]
        return super().predict(images, **options)


def test_large_uploads_are_reduced_before_the_model_and_mapped_back(detector, scene):
    big = np.ascontiguousarray(scene.repeat(10, axis=0).repeat(10, axis=1))  # 2000 x 3000
    recorder = _Recording(detector.model, detector.class_names, detector.imgsz)
    model = ServedModel("det", recorder)
    out = model.run_upload(png(big), conf=0.3, iou=0.45)
    assert recorder.seen == [(1024, 1024, 3)] and out["size"] == [2000, 3000]
    # the same as the detector on the reduced image, boxes scaled back to the original's pixels
    reduced = np.asarray(Image.fromarray(big).resize((1024, 1024), Image.Resampling.BILINEAR, reducing_gap=3.0))
    direct = detector.predict(reduced, score_threshold=0.3, nms_threshold=0.45)[0]
    assert len(out["detections"]) == len(direct["boxes"]) > 0
    expected = direct["boxes"].numpy() * np.array([3000 / 1024, 2000 / 1024, 3000 / 1024, 2000 / 1024])
    np.testing.assert_allclose(np.array([d["box"] for d in out["detections"]]), expected, atol=0.01)
    assert all(0 <= d["box"][0] <= d["box"][2] <= 3000 and 0 <= d["box"][1] <= d["box"][3] <= 2000
               for d in out["detections"])
    assert model.run(big, conf=0.3, iou=0.45) == out  # an array takes the same path
    # a small image still runs exactly as given
    assert model.run_upload(png(scene))["detections"] == ServedModel("d", detector).run(scene)["detections"]


def test_segmentation_runs_reduced_and_its_mask_is_scaled_back():
    seg = _segmenter()
    image = _halves(1500, 2400)  # reduced to 640 x 1024
    out = seg.run(image)
    mask = _mask(out)
    assert out["size"] == [1500, 2400] and mask.shape == (1500, 2400, 4)
    assert (mask[:, :1195, :3] == VOC_COLORMAP[1]).all() and (mask[:, 1205:, :3] == VOC_COLORMAP[2]).all()
    assert (mask[..., 3] == 255).all()
    fractions = {c["name"]: c["fraction"] for c in out["classes"]}
    assert set(fractions) == {"red", "green"} and abs(fractions["red"] - 0.5) < 0.003
    # the fractions count the returned mask's pixels exactly
    counts = {name: int(((mask[..., :3] == VOC_COLORMAP[i]).all(axis=2)).sum()) for i, name in
              [(1, "red"), (2, "green")]}
    assert fractions == {name: round(k / mask.shape[0] / mask.shape[1], 5) for name, k in counts.items()}
    # an upright turn (EXIF orientation 6) is applied before the reduction, a JPEG decodes reduced
    exif = Image.Exif()
    exif[0x0112] = 6
    jpeg = png(_halves(1600, 2400), "JPEG", quality=95, exif=exif.tobytes())
    out = seg.run_upload(jpeg)
    mask = _mask(out)
    assert out["size"] == [2400, 1600] and mask.shape == (2400, 1600, 4)
    assert (mask[:1180, :, :3] == VOC_COLORMAP[1]).all() and (mask[1220:, :, :3] == VOC_COLORMAP[2]).all()


# ------------------------------------------------------------------------------------------------
# memory of a server process (VmHWM: its peak resident memory)


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


@pytest.fixture
def server_process(request):
    """Starts tests/serve/_server.py with the given arguments; yields (url, pid)."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc to read the server's peak memory")
    processes = []

    def start(*args: str) -> tuple[str, int]:
        process = subprocess.Popen([sys.executable, str(SERVER), *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        processes.append(process)
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"the server printed {url!r} instead of its URL"
        return url.rstrip("/"), process.pid

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=30)


def test_thirty_concurrent_worst_case_uploads_stay_under_2_gb(server_process):
    # 25 MP: the command line's earlier default pixel limit, over create_app's (16 MP)
    url, pid = server_process("--max-pixels", "25000000")
    data = png(_halves(5000, 5000))
    assert len(data) < 100_000  # a few KB that decode to 75 MB
    before = _peak_rss(pid)

    def upload(i: int):
        model = "seg" if i % 5 == 0 else "det"  # 6 segmentations, 24 detections
        with httpx.Client(timeout=120) as client:
            r = client.post(f"{url}/api/predict?model={model}", content=data)
            body = r.json()
            return r.status_code, body.get("size"), body.get("classes", body.get("error"))

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        results = list(pool.map(upload, range(30)))
    elapsed = time.perf_counter() - start
    peak = _peak_rss(pid)
    assert [r[0] for r in results] == [200] * 30, results
    assert all(size == [5000, 5000] for _, size, _ in results)
    assert all([c["name"] for c in classes] == ["red", "green"] for _, _, classes in results[::5])
    print(f"\n30 uploads of 5000x5000: {elapsed:.1f} s, server peak RSS {peak / GB:.2f} GB "
          f"(at start {before / GB:.2f})")
    assert peak < 2 * GB, f"the server's peak memory was {peak / GB:.2f} GB (expected under 2 GB)"


def test_segmentation_at_the_pixel_limit_completes_in_bounded_memory(server_process):
    url, pid = server_process()  # create_app's defaults: 16 MP
    data = png(_halves(4000, 4000))
    before = _peak_rss(pid)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: httpx.post(url + "/api/predict?model=seg", content=data, timeout=120),
                                  range(4)))
    elapsed = time.perf_counter() - start
    peak = _peak_rss(pid)
    assert [r.status_code for r in responses] == [200] * 4, responses[0].text
    out = responses[0].json()
    mask = _mask(out)
    assert out["size"] == [4000, 4000] and mask.shape == (4000, 4000, 4)
    assert (mask[:, :1990, :3] == VOC_COLORMAP[1]).all() and (mask[:, 2010:, :3] == VOC_COLORMAP[2]).all()
    assert {c["name"]: round(c["fraction"], 2) for c in out["classes"]} == {"red": 0.5, "green": 0.5}
    print(f"\n4 segmentations of 4000x4000: {elapsed:.1f} s, server peak RSS {peak / GB:.2f} GB "
          f"(at start {before / GB:.2f})")
    assert peak < 2 * GB, f"the server's peak memory was {peak / GB:.2f} GB (expected under 2 GB)"


# ------------------------------------------------------------------------------------------------
# the upload-memory budget


def test_uploads_held_at_once_stay_within_the_budget(detector):
    import anyio

    app = create_app([ServedModel("det", detector)], max_upload_mb=1, max_buffered_mb=1)  # 1 MiB in all
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def request(chunks, release=None) -> tuple[int, str]:
        messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
        sent = []

        async def receive():
            if messages:
                return messages.pop(0)
            if release is not None:
                await release.wait()
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await app(dict(scope), receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]).decode()

    async def main():
        release, results = anyio.Event(), {}

        async def first():
            results["first"] = await request([b"x" * 700_000], release)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(first)
            await anyio.sleep(0.05)  # the first upload holds 700 KB and waits for the rest
            results["second"] = await request([b"y" * 400_000])  # would pass 1 MiB in all
            release.set()
        results["third"] = await request([b"z" * 400_000])  # the first is answered: room again
        return results

    results = anyio.run(main)
    assert results["second"][0] == 503 and "busy receiving other uploads" in results["second"][1]
    assert results["first"][0] == 400 and "not an image" in results["first"][1]
    assert results["third"][0] == 400 and "not an image" in results["third"][1]


# ------------------------------------------------------------------------------------------------
# slow and many connections


def _is_open(sock: socket.socket) -> bool:
    """Whether the server has neither closed ``sock`` nor answered on it (no wait)."""
    sock.setblocking(False)
    try:
        sock.recv(1)  # an answer, or b"" when closed
        return False
    except BlockingIOError:
        return True
    except ConnectionError:
        return False
    finally:
        sock.setblocking(True)


def _wait_closed(socks: list[socket.socket], timeout: float, count: int | None = None) -> dict[int, float]:
    """Waits up to ``timeout`` s for the server to close ``count`` of the sockets (default all);
    returns {index: monotonic time} of those it closed."""
    count = len(socks) if count is None else count
    selector, closed = selectors.DefaultSelector(), {}
    for i, sock in enumerate(socks):
        selector.register(sock, selectors.EVENT_READ, i)
    deadline = time.monotonic() + timeout
    while len(closed) < count and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            try:
                data = key.fileobj.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                closed[key.data] = time.monotonic()
                selector.unregister(key.fileobj)
    selector.close()
    return closed


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def test_slow_connection_flood_does_not_block_other_clients(detector, scene):
    timeout = 3.0
    data = png(scene)
    app = create_app([ServedModel("det", detector)])
    with running_server(app, read_timeout=timeout) as url:  # on loopback: no per-address bound
        port = int(url.rsplit(":", 1)[1])
        expected = httpx.post(url + "/api/predict", content=data).json()
        start = time.monotonic()
        slow = [_connect(port) for _ in range(255)]
        for i, sock in enumerate(slow):
            if i % 3 == 1:  # stalls in its headers
                sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Le")
            elif i % 3 == 2:  # sends 2 bytes of a 24 KB body and stops
                sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 24000\r\n\r\n\x89P")
            # else: connects and sends nothing
        with httpx.Client(timeout=30) as client:
            answers = [client.post(url + "/api/predict", content=data) for _ in range(3)]
            answers += [client.get(url + "/healthz"),
                        client.post(url + "/api/predict", files={"image": ("s.png", data)})]
        answered = time.monotonic() - start
        assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
        assert all(a.json() == expected for a in answers[:3])
        still_open = sum(_is_open(s) for s in slow)
        assert still_open == 255, f"{still_open} of 255 slow connections open after {answered:.1f} s (expected all)"

        closed = _wait_closed(slow, timeout + 10)
        assert len(closed) == 255, f"{255 - len(closed)} slow connections still open {timeout + 10:.0f} s later"
        waited = sorted(t - start for t in closed.values())
        assert timeout - 0.5 < waited[0] and waited[-1] < timeout + 5, (waited[0], waited[-1])
        assert httpx.get(url + "/healthz").status_code == 200
        for sock in slow:
            sock.close()
    print(f"\n5 answers in {answered:.2f} s during the flood; slow connections closed after "
          f"{waited[0]:.2f} to {waited[-1]:.2f} s (read_timeout {timeout} s)")


def test_connection_bounds_close_extra_connections_at_once(detector):
    app = create_app([ServedModel("det", detector)])
    with running_server(app, read_timeout=60, max_connections=24, max_connections_per_client=8) as url:
        port = int(url.rsplit(":", 1)[1])
        flood = [_connect(port, "127.0.0.2") for _ in range(20)]
        closed = _wait_closed(flood, 5, count=12)
        time.sleep(0.2)  # no more are closed
        assert len(closed) == 12 and sum(_is_open(s) for s in flood) == 8  # one address: 8 connections
        assert httpx.get(url + "/healthz").status_code == 200  # another address is not affected
        others = [_connect(port, f"127.0.0.{i}") for i in (3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4)]
        assert not _wait_closed(others, 0.5)  # 24 open now: the total bound
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/healthz")
        for sock in flood + others:
            sock.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the server notices the closed connections
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        assert httpx.get(url + "/healthz").status_code == 200


def test_a_client_that_does_not_read_its_answers_is_dropped(detector):
    app = create_app([ServedModel("det", detector)])
    with running_server(app, read_timeout=1.0) as url:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        n = 2000  # pipelined requests for the 9 KB script: 18 MB of answers, never read
        sock.sendall(b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n" * n)
        time.sleep(3)
        sock.settimeout(5)
        received = 0
        try:
            while chunk := sock.recv(65536):
                received += len(chunk)
        except (ConnectionError, socket.timeout):
            pass
        sock.close()
        one = len(httpx.get(url + "/app.js").content)
        assert received < n * one / 4, f"read {received} bytes: the server kept writing"


# ------------------------------------------------------------------------------------------------
# a port already in use


def test_port_in_use_is_an_error_before_the_url(detector, tmp_path, capsys):
    from pixbox.cli import serve

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    app = create_app([ServedModel("det", detector)])
    announced = []
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: the port is already in use") as info:
            run_server(app, port=port, announce=announced.append)
        assert info.value.errno == errno.EADDRINUSE and announced == []
        with pytest.raises(OSError, match="already in use"), running_server(app, port=port):
            pass
        # the command line: one clear line and a non-zero exit code
        (tmp_path / "run").mkdir()
        detector.save(tmp_path / "run" / "best.pt")
        parser = argparse.ArgumentParser(prog="pixbox")
        serve.add_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["serve", "--weights", str(tmp_path / "run" / "best.pt"), "--port", str(port)])
        capsys.readouterr()
        assert args.func(args) == 1
        out, err = capsys.readouterr()
        assert "open http" not in out  # the URL is printed only once the port is bound
        from pixbox.serve.app import READ_TIMEOUT
        from pixbox.serve.inference import MAX_PIXELS

        assert (args.read_timeout, args.max_pixels) == (READ_TIMEOUT, MAX_PIXELS)  # the CLI's defaults are the limits
        assert err == f"error: cannot listen on 127.0.0.1:{port}: the port is already in use (is another server " \
                      "running there?); choose another port (--port), or 0 for any free one\n"
    finally:
        taken.close()
    with running_server(app, port=port) as url:  # free again
        assert httpx.get(url + "/healthz").status_code == 200
