"""The ASGI app of ``pixbox serve`` (Starlette) and its runner (uvicorn).

Routes (fixed; nothing is read from a path in the request):

- ``GET /``: the page (upload or drop an image, see the result drawn; sliders rerun the
  detection post-processing in the browser);
- ``GET /app.js``, ``GET /app.css``: the page's script and style, embedded in the package;
- ``GET /api/models``: the models offered, their tasks, classes and default thresholds;
- ``POST /api/predict?model=NAME&conf=0.25&iou=0.45&topk=5&candidates=0``: the image as a
  ``multipart/form-data`` field ``image`` or as the raw request body; answers the JSON of
  :meth:`pixbox.serve.inference.ServedModel.run`;
- ``GET /healthz``: ``{"ok": true}``.

Errors are JSON ``{"error": "..."}`` with a 4xx status: 400 (not an image, corrupt, bad
parameter), 404 (unknown model or route), 413 (upload or image too large), 503 (too many
requests waiting).
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import time
from typing import Any, Iterator, Sequence

try:
    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(f"pixbox serve needs the 'serve' extra: pip install 'pixbox[serve]' ({e})") from None

from pixbox._checks import check_number
from pixbox.serve._page import APP_CSS, APP_JS, INDEX_HTML
from pixbox.serve.inference import ImageError, ServedModel, decode_image

__all__ = ["create_app", "is_loopback", "run_server", "running_server"]

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
}


class _TooLarge(Exception):
    pass


class _BodyLimit:
    """ASGI middleware: answers 413 to a request body over ``limit`` bytes, declared or streamed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await _send_error(send, 413, _too_large_message(self.limit))
        seen, started = 0, False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_error(send, 413, _too_large_message(self.limit))



def _too_large_message(limit: int) -> str:
    return f"the upload is larger than this server's limit of {limit / 2 ** 20:g} MB (--max-upload-mb)"


async def _send_error(send, status: int, message: str) -> None:
    response = JSONResponse({"error": message}, status_code=status, headers={**_SECURITY_HEADERS,
                                                                             "Connection": "close"})
    await response({"type": "http"}, None, send)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_SECURITY_HEADERS)


def _query_number(request: Request, key: str, kind: type, low: float, high: float | None = None):
    text = request.query_params.get(key)
    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        raise ValueError(f"{key} must be in [{low}, {high if high is not None else 'inf'}], got {text}")
    return value


def create_app(models: Sequence[ServedModel], *, max_upload_mb: float = 10, max_pixels: int = 25_000_000,
               max_pending: int = 64) -> Any:
    """Builds the web app around loaded models.

    Inference runs in worker threads, one image at a time per model (see
    :class:`~pixbox.serve.inference.ServedModel`); requests beyond ``max_pending`` waiting or
    running get 503 instead of piling up.

    Args:
        models (sequence of ServedModel): at least one, unique names
            (:func:`pixbox.serve.load_models`).
        max_upload_mb (float): the largest request body, in MiB (> 0); larger ones get 413.
        max_pixels (int): the largest image, in pixels (>= 1); larger ones get 413.
        max_pending (int): requests allowed in inference at once, running or waiting (>= 1).

    Returns:
        starlette.applications.Starlette: an ASGI app (wrapped in the upload limit).
    """
    if isinstance(models, ServedModel) or not isinstance(models, Sequence) or not models:
        raise ValueError(f"models must be a non-empty list of ServedModel, got {models!r}")
    for i, m in enumerate(models):
        if not isinstance(m, ServedModel):
            raise TypeError(f"models[{i}] must be a ServedModel, got {type(m).__name__}")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"models must have unique names, got {names}")
    limit = int(check_number(max_upload_mb, "max_upload_mb", low=0, low_open=True) * 2 ** 20)
    max_pixels = int(check_number(max_pixels, "max_pixels", low=1))
    max_pending = int(check_number(max_pending, "max_pending", low=1))
    by_name = {m.name: m for m in models}
    too_large = _too_large_message(limit)
    pending = 0

    async def index(request: Request) -> Response:
        return Response(INDEX_HTML, media_type="text/html; charset=utf-8", headers=_SECURITY_HEADERS)

    async def script(request: Request) -> Response:
        return Response(APP_JS, media_type="text/javascript; charset=utf-8", headers=_SECURITY_HEADERS)

    async def style(request: Request) -> Response:
        return Response(APP_CSS, media_type="text/css; charset=utf-8", headers=_SECURITY_HEADERS)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True}, headers=_SECURITY_HEADERS)

    async def list_models(request: Request) -> Response:
        return JSONResponse({"models": [m.info() for m in models]}, headers=_SECURITY_HEADERS)

    async def predict(request: Request) -> Response:
        nonlocal pending
        name = request.query_params.get("model") or models[0].name
        if name not in by_name:
            return _error(404, f"unknown model {name!r}; this server has {names}")
        model = by_name[name]
        try:
            conf = _query_number(request, "conf", float, 0, 1)
            iou = _query_number(request, "iou", float, 0, 1)
            topk = _query_number(request, "topk", int, 1, 1000) or 5
            floor = model.info().get("conf_min")  # a detector's candidate floor
            if conf is not None and floor is not None and conf < floor:
                raise ValueError(f"conf must be >= {floor} (the candidate floor), got {conf}")
        except ValueError as e:
            return _error(400, str(e))
        candidates = request.query_params.get("candidates", "0").lower() in ("1", "true", "yes")
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            try:
                async with request.form(max_files=1, max_fields=10) as form:
                    upload = form.get("image")
                    if upload is None or isinstance(upload, str):
                        return _error(400, "the form must have a file field named 'image'")
                    data = await upload.read()
            except _TooLarge:
                return _error(413, too_large)
            except Exception as e:  # malformed multipart bodies: the parser's own exceptions
                return _error(400, f"malformed form data: {e}")
        else:
            try:
                data = await request.body()
            except _TooLarge:
                return _error(413, too_large)
        if pending >= max_pending:
            return _error(503, f"the server is busy ({pending} requests in progress); try again shortly")
        pending += 1
        try:
            image = await anyio.to_thread.run_sync(lambda: decode_image(data, max_pixels=max_pixels))
            result = await anyio.to_thread.run_sync(
                lambda: model.run(image, conf=conf, iou=iou, topk=topk, candidates=candidates))
        except ImageError as e:
            return _error(e.status, str(e))
        except ValueError as e:
            return _error(400, str(e))
        finally:
            pending -= 1
        return JSONResponse(result, headers=_SECURITY_HEADERS)

    async def not_found(request: Request, exc) -> Response:
        return _error(404, f"no such page: {request.url.path}")

    async def not_allowed(request: Request, exc) -> Response:
        return _error(405, f"{request.method} is not allowed on {request.url.path}")

    async def server_error(request: Request, exc) -> Response:
        return _error(500, f"internal error: {type(exc).__name__}")

    routes = [Route("/", index), Route("/app.js", script), Route("/app.css", style), Route("/healthz", health),
              Route("/api/models", list_models), Route("/api/predict", predict, methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed, 500: server_error})
    app.state.models = by_name
    return _BodyLimit(app, limit)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(app, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serves ``app`` with uvicorn until interrupted (Ctrl-C).

    Args:
        app: the ASGI app (:func:`create_app`).
        host (str): the address to bind; the loopback default keeps the server private to this
            machine, ``0.0.0.0`` exposes it to the network.
        port (int): the TCP port, in [0, 65535] (0: any free port).
        log_level (str): uvicorn's log level.
    """
    import uvicorn

    port = int(check_number(port, "port", low=0, high=65535))
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False, timeout_keep_alive=5,
                limit_concurrency=256)


@contextlib.contextmanager
def running_server(app, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Runs ``app`` with uvicorn in a background thread (for tests, benchmarks and notebooks).

    Args:
        app: the ASGI app (:func:`create_app`).
        host (str): the address to bind (default loopback).
        port (int): the TCP port; 0 picks a free one.

    Yields:
        str: the base URL, e.g. ``"http://127.0.0.1:49152"``; the server stops on exit.
    """
    import socket
    import threading

    import uvicorn

    port = int(check_number(port, "port", low=0, high=65535))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", server_header=False, timeout_keep_alive=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the uvicorn server did not start")
            time.sleep(0.01)
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
