"""``pixbox serve``: a web page (and a JSON API) to try trained models on your own images.

- ``pixbox serve --weights RUN/best.pt [--weights ...] [--host 127.0.0.1] [--port 8000]
  [--max-upload-mb 10]``: load detection, classification or segmentation checkpoints with
  :func:`pixbox.load` and serve them (:mod:`pixbox.serve`) until Ctrl-C.

The server binds to loopback unless ``--host`` says otherwise. Usage mistakes print the usage and
return exit code 2; unreadable checkpoints or a missing extra print ``error: ...`` and return 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixbox.cli._common import USER_ERRORS, fail, number
from pixbox.serve.inference import MAX_PIXELS

__all__ = ["add_parser"]


def _run(args: argparse.Namespace) -> int:
    try:
        from pixbox.serve.app import create_app, is_loopback, run_server
    except ImportError as e:
        return fail(e)
    from pixbox.serve.inference import load_models

    try:
        models = load_models(args.weights, device=args.device)
        app = create_app(models, max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels)
    except USER_ERRORS as e:
        return fail(e)
    for m in models:
        print(f"serving {m.name!r}: {m.predictor!r}")
    if not is_loopback(args.host):
        print(f"warning: binding to {args.host}: anyone who can reach this machine can use the models "
              "(there is no authentication); the default 127.0.0.1 keeps the server private", file=sys.stderr)
    try:  # the URL is printed once the port is bound: a taken port is an error before it
        run_server(app, host=args.host, port=args.port, log_level=args.log_level, read_timeout=args.read_timeout,
                   announce=lambda url: print(f"open {url} (Ctrl-C stops)", flush=True))
    except OSError as e:  # e.g. the port is taken
        return fail(e)
    return 0


def add_parser(subparsers) -> None:
    """Registers ``serve`` on the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "serve", help="a web page and JSON API to try trained models",
        description="Serve detection, classification and segmentation checkpoints on a small web page: upload or "
                    "drop an image and see boxes, an overlay or the top classes; sliders rerun the detection "
                    "post-processing. POST /api/predict returns the same results as JSON. Needs the 'serve' "
                    "extra (pip install 'pixbox[serve]').")
    parser.add_argument("--weights", type=Path, action="append", required=True, metavar="PT",
                        help="best.pt or last.pt of a run (detect, classify or segment); repeat for several models")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: %(default)s, this machine only; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=number(int, 0, high=65535), default=8000, help="(default: %(default)s)")
    parser.add_argument("--max-upload-mb", dest="max_upload_mb", type=number(float, 0, low_open=True), default=10,
                        metavar="MB", help="largest accepted upload; larger ones get 413 (default: %(default)s)")
    parser.add_argument("--max-pixels", dest="max_pixels", type=number(int, 1), default=MAX_PIXELS, metavar="N",
                        help="largest accepted image in pixels; larger ones get 413 (default: %(default)s)")
    parser.add_argument("--read-timeout", dest="read_timeout", type=number(float, 0, low_open=True),
                        default=10.0, metavar="S", help="drop a client that stalls this long while sending a "
                        "request or reading an answer (default: %(default)s)")
    parser.add_argument("--device", default="auto", metavar="DEV", help="(default: %(default)s)")
    parser.add_argument("--log-level", dest="log_level", default="info",
                        choices=("critical", "error", "warning", "info", "debug"), help="(default: %(default)s)")
    parser.set_defaults(func=_run)
