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

Limits against hostile or broken clients (the constants below are the defaults of
:func:`create_app`, :func:`run_server` and :func:`running_server`):

- memory: uploads over ``max_upload_mb`` and images over ``max_pixels`` pixels get 413 (the
  pixel count is read from the header, before decoding: decompression bombs too); at most
  ``max_in_flight`` images are decoded or in a model at once, each reduced on decoding to what its
  model needs (:meth:`~pixbox.serve.inference.ServedModel.working_size`); up to ``max_pending``
  more wait holding only their upload, and the upload bodies held at once stay under
  ``max_buffered_mb`` (503 beyond either);
- connections: a client that takes more than ``read_timeout`` seconds to send a request's
  headers, or pauses that long while sending a body or reading an answer, is disconnected; at
  most ``max_connections`` connections are open at once, ``max_connections_per_client`` from one
  address (on a non-loopback host), and connections beyond are closed as soon as they open.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import math
import socket
import time
from typing import Any, Callable, Iterator, Sequence

try:
    import anyio
    from anyio.lowlevel import RunVar
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(f"pixbox serve needs the 'serve' extra: pip install 'pixbox[serve]' ({e})") from None

from pixbox._checks import check_number
from pixbox.serve._page import APP_CSS, APP_JS, INDEX_HTML
from pixbox.serve.inference import MAX_PIXELS, ImageError, ServedModel

__all__ = ["MAX_BUFFERED_MB", "MAX_CONNECTIONS", "MAX_CONNECTIONS_PER_CLIENT", "MAX_IN_FLIGHT", "READ_TIMEOUT",
           "create_app", "is_loopback", "run_server", "running_server"]

#: Seconds a client may take to send a request's headers (from connecting, or from the previous
#: answer), or pause while sending a body or reading an answer, before it is disconnected.
READ_TIMEOUT = 10.0
#: Connections open at once; a connection beyond is closed as soon as it opens.
MAX_CONNECTIONS = 512
#: Connections one client address may hold open on a server that listens beyond loopback (on
#: loopback every client has the same address: no bound there). Set 0 (no bound) behind a reverse
#: proxy, where every request comes from the proxy's address.
MAX_CONNECTIONS_PER_CLIENT = 64
#: Images decoded or in a model at once, all models together; other requests wait holding only
#: their upload.
MAX_IN_FLIGHT = 2
#: MiB of request bodies held in memory at once, all requests together (at least one largest
#: upload); a request that would go over gets 503.
MAX_BUFFERED_MB = 256

_log = logging.getLogger("uvicorn.error")

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
}


class _Refused(Exception):
    """A request body refused while it arrives; the answer is ``status`` and the message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _BodyLimits:
    """ASGI middleware: 413 to a request body over ``limit`` bytes (declared or streamed), 503 when
    the bodies held at once, all requests together, would pass ``budget`` bytes."""

    def __init__(self, app, limit: int, budget: int):
        self.app, self.limit, self.budget = app, limit, budget
        self.held = 0  # bytes of bodies received by requests not yet answered (one event loop: no lock)

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
                n = len(message.get("body", b""))
                if seen + n > self.limit:
                    raise _Refused(413, _too_large_message(self.limit))
                if self.held + n > self.budget:
                    raise _Refused(503, f"the server is busy receiving other uploads (the {self.budget / 2 ** 20:g} MB "
                                        "it holds for uploads are in use); try again shortly")
                seen += n
                self.held += n
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _Refused as e:
            if not started:
                await _send_error(send, e.status, str(e))
        finally:
            self.held -= seen


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


def create_app(models: Sequence[ServedModel], *, max_upload_mb: float = 10, max_pixels: int = MAX_PIXELS,
               max_pending: int = 64, max_in_flight: int = MAX_IN_FLIGHT,
               max_buffered_mb: float = MAX_BUFFERED_MB) -> Any:
    """Builds the web app around loaded models.

    Inference runs in worker threads, one image at a time per model (see
    :class:`~pixbox.serve.inference.ServedModel`) and at most ``max_in_flight`` images decoded
    or in a model at once; requests beyond ``max_pending`` waiting or running get 503 instead of
    piling up.

    Args:
        models (sequence of ServedModel): at least one, unique names
            (:func:`pixbox.serve.load_models`).
        max_upload_mb (float): the largest request body, in MiB (> 0); larger ones get 413.
        max_pixels (int): the largest image, in pixels (>= 1); larger ones get 413.
        max_pending (int): requests allowed in inference at once, running or waiting (>= 1).
        max_in_flight (int): images decoded or in a model at once, all models together (>= 1).
        max_buffered_mb (float): request bodies held in memory at once, in MiB (> 0; raised to
            ``max_upload_mb`` when smaller); a request that would go over gets 503.

    Returns:
        An ASGI app (Starlette, wrapped in the upload limits).
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
    max_in_flight = int(check_number(max_in_flight, "max_in_flight", low=1))
    budget = max(limit, int(check_number(max_buffered_mb, "max_buffered_mb", low=0, low_open=True) * 2 ** 20))
    by_name = {m.name: m for m in models}
    pending = 0
    in_flight_var = RunVar("pixbox_serve_in_flight")  # a semaphore per event loop (the app may outlive a server)

    def in_flight() -> Any:
        try:
            return in_flight_var.get()
        except LookupError:
            semaphore = anyio.Semaphore(max_in_flight)
            in_flight_var.set(semaphore)
            return semaphore

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
        try:
            data = await _read_upload(request)
        except _Refused as e:
            return _error(e.status, str(e))
        except ClientDisconnect:  # gone, e.g. disconnected for stalling past the read timeout: nobody to answer
            return Response(status_code=400)
        except ValueError as e:
            return _error(400, str(e))
        if pending >= max_pending:
            return _error(503, f"the server is busy ({pending} requests in progress); try again shortly")
        pending += 1
        try:
            async with in_flight():  # decoded images are held only in here
                result = await anyio.to_thread.run_sync(lambda: model.run_upload(
                    data, max_pixels=max_pixels, conf=conf, iou=iou, topk=topk, candidates=candidates))
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
    return _BodyLimits(app, limit, budget)


async def _read_upload(request: Request) -> bytes:
    """The uploaded file: the form field ``image`` of a multipart body, or the raw body.

    Raises:
        ValueError: a form without a file field ``image``, or malformed form data.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await request.body()
    try:
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ValueError("the form must have a file field named 'image'")
            return await upload.read()
    except (_Refused, ClientDisconnect, ValueError):
        raise
    except Exception as e:  # malformed multipart bodies: the parser's own exceptions
        raise ValueError(f"malformed form data: {e}") from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(app, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
               read_timeout: float = READ_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
               max_connections_per_client: int | None = None, announce: Callable[[str], Any] | None = None) -> None:
    """Serves ``app`` with uvicorn until interrupted (Ctrl-C).

    The port is bound before anything else happens: a port in use raises at once, before
    ``announce`` is called.

    Args:
        app: the ASGI app (:func:`create_app`).
        host (str): the address to bind; the loopback default keeps the server private to this
            machine, ``0.0.0.0`` exposes it to the network.
        port (int): the TCP port, in [0, 65535] (0: any free port).
        log_level (str): uvicorn's log level.
        read_timeout (float): seconds, > 0: a client that takes longer to send a request's
            headers, or pauses longer while sending a body or reading an answer, is disconnected.
        max_connections (int): connections open at once, >= 1; more are closed as they open.
        max_connections_per_client (int, optional): connections from one client address, >= 0
            (0: no bound); more are closed as they open. Default: :data:`MAX_CONNECTIONS_PER_CLIENT`,
            or no bound when ``host`` is loopback (every client then has the same address).
        announce (callable, optional): called with the server's URL (``"http://127.0.0.1:8000/"``)
            once the port is bound; default: the URL is logged.

    Raises:
        OSError: the address cannot be bound, e.g. ``"cannot listen on 127.0.0.1:8000: the port
            is already in use ..."``.
        RuntimeError: the server did not start (the reason is in uvicorn's log).
    """
    port = int(check_number(port, "port", low=0, high=65535))
    server = _uvicorn_server(app, host, log_level, read_timeout, max_connections, max_connections_per_client)
    sock = _listen(host, port)
    try:
        url = _url(host, sock.getsockname()[1]) + "/"
        if announce is not None:
            announce(url)
        else:
            _log.info("pixbox serve: listening on %s (Ctrl-C stops)", url)
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise RuntimeError("the server did not start; see the log above")


@contextlib.contextmanager
def running_server(app, *, host: str = "127.0.0.1", port: int = 0, read_timeout: float = READ_TIMEOUT,
                   max_connections: int = MAX_CONNECTIONS,
                   max_connections_per_client: int | None = None) -> Iterator[str]:
    """Runs ``app`` with uvicorn in a background thread (for tests, benchmarks and notebooks).

    Args:
        app: the ASGI app (:func:`create_app`).
        host (str): the address to bind (default loopback).
        port (int): the TCP port; 0 picks a free one.
        read_timeout, max_connections, max_connections_per_client: as for :func:`run_server`.

    Yields:
        str: the base URL, e.g. ``"http://127.0.0.1:49152"``; the server stops on exit.
    """
    import threading

    port = int(check_number(port, "port", low=0, high=65535))
    server = _uvicorn_server(app, host, "warning", read_timeout, max_connections, max_connections_per_client)
    sock = _listen(host, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the uvicorn server did not start")
            time.sleep(0.01)
        yield _url(host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port``, or an OSError that says what to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0][4]
    except socket.gaierror as e:
        raise OSError(f"cannot listen on {host!r}: {e.strerror}; the host must be an address or name of this "
                      "machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # a restart need not wait for the old connections' TIME_WAIT; a live listener still holds the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        reason = {errno.EADDRINUSE: "the port is already in use (is another server running there?); choose "
                                    "another port (--port), or 0 for any free one",
                  errno.EACCES: "permission denied (ports below 1024 need administrator rights); choose a port "
                                "above 1023 (--port)",
                  errno.EADDRNOTAVAIL: "this machine has no such address (--host)"}.get(e.errno, e.strerror)
        error = OSError(f"cannot listen on {_url(host, port)[7:]}: {reason}")
        error.errno = e.errno
        raise error from None
    return sock


def _uvicorn_server(app, host: str, log_level: str, read_timeout: float, max_connections: int,
                    max_connections_per_client: int | None):
    import uvicorn

    read_timeout = float(check_number(read_timeout, "read_timeout", low=0, low_open=True))
    if not math.isfinite(read_timeout):
        raise ValueError(f"read_timeout must be a finite number of seconds, got {read_timeout}")
    max_connections = int(check_number(max_connections, "max_connections", low=1))
    if max_connections_per_client is None:
        max_connections_per_client = 0 if is_loopback(host) else MAX_CONNECTIONS_PER_CLIENT
    max_connections_per_client = int(check_number(max_connections_per_client, "max_connections_per_client", low=0))
    protocol = _guarded_protocol(read_timeout, max_connections, max_connections_per_client)
    config = uvicorn.Config(app, http=protocol, ws="none", log_level=log_level, server_header=False,
                            timeout_keep_alive=min(5.0, read_timeout))
    return uvicorn.Server(config)


def _guarded_protocol(read_timeout: float, max_connections: int, max_per_client: int) -> type:
    """uvicorn's h11 protocol, with timeouts on slow clients and bounds on open connections.

    uvicorn itself waits forever for a request's headers or body, and answers connections beyond
    its ``limit_concurrency`` only once they send a request: a few hundred silent connections
    would hold every slot. Here one timer per connection drops a client that keeps the server
    waiting (see :func:`run_server`), and a connection over the bounds is closed as it opens.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        refused = False

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            now = self.loop.time()
            self._waiting_since = now  # waiting for a request line and headers since then
            self._last_read = now  # the client's last bytes
            self._stalled_since = now  # the answer has not drained since then (while writing is paused)
            self._timer = None
            reason = self._over_bounds()
            if reason is not None:
                self.refused = True
                _log.debug("%s: connection closed at once: %s", self.client, reason)
                transport.close()
                return
            self._timer = self.loop.call_later(read_timeout, self._check_timeout)

        def _over_bounds(self) -> str | None:
            live = [p for p in self.connections if not getattr(p, "refused", False)]
            if len(live) > max_connections:
                return f"{len(live)} connections open, max_connections={max_connections}"
            host = self.client[0] if self.client else None
            if max_per_client and host is not None:
                same = sum(1 for p in live if getattr(p, "client", None) and p.client[0] == host)
                if same > max_per_client:
                    return f"{same} connections from {host}, max_connections_per_client={max_per_client}"
            return None

        def data_received(self, data: bytes) -> None:
            self._last_read = self.loop.time()
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._waiting_since = self.loop.time()
            super().on_response_complete()

        def pause_writing(self) -> None:
            self._stalled_since = self.loop.time()
            super().pause_writing()

        def connection_lost(self, exc) -> None:
            if getattr(self, "_timer", None) is not None:
                self._timer.cancel()
                self._timer = None
            super().connection_lost(exc)

        def _due(self, now: float) -> float:
            """When the connection is dropped unless the client does its part first."""
            cycle = self.cycle
            if self.flow.write_paused:  # the client does not read the answer
                return self._stalled_since + read_timeout
            if cycle is None or cycle.response_complete:  # the next request's headers
                return self._waiting_since + read_timeout
            if cycle.more_body and not cycle.disconnected:  # the body is coming
                if self.flow.read_paused:  # the app has not taken the bytes yet: the client waits on us
                    self._last_read = now
                    return now + read_timeout / 4
                return self._last_read + read_timeout
            return now + read_timeout  # the app is working on the request

        def _check_timeout(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            now = self.loop.time()
            due = self._due(now)
            if due > now:
                self._timer = self.loop.call_later(due - now, self._check_timeout)
                return
            _log.debug("%s: disconnected after %g s without progress (read_timeout)", self.client, read_timeout)
            if self.transport.get_write_buffer_size():
                self.transport.abort()  # an answer the client does not read: drop it too
            else:
                self.transport.close()

    return GuardedH11Protocol
