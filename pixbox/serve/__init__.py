"""``pixbox serve``: a small web app to try trained models on your own pictures.

Open the page, upload or drop an image and see the result drawn on it: boxes with labels and
scores (detection; confidence and IoU sliders rerun the post-processing), a segmentation
overlay, or the top-k classes. ``POST /api/predict`` returns the same results as JSON.

It runs on Starlette and uvicorn (the optional extra: ``pip install 'pixbox[serve]'``), binds to
loopback by default, limits uploads and images (413), answers bad uploads with a 4xx JSON error,
serves only its fixed routes (the page's files are embedded in the package), runs models on
images reduced to what they need, and bounds memory and slow or many connections (see
:mod:`pixbox.serve.app` for the limits).

Example:
    >>> from pixbox.serve import create_app, load_models, run_server  # doctest: +SKIP
    >>> app = create_app(load_models(["runs/detect/train/best.pt"]))  # doctest: +SKIP
    >>> run_server(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

from pixbox.serve.inference import (CANDIDATE_FLOOR, MAX_CANDIDATES, MAX_PIXELS, MAX_SIDE, ImageError, ServedModel,
                                    decode_image, load_models, postprocess)

_WEB = ("MAX_BUFFERED_MB", "MAX_CONNECTIONS", "MAX_CONNECTIONS_PER_CLIENT", "MAX_IN_FLIGHT", "READ_TIMEOUT",
        "create_app", "is_loopback", "run_server", "running_server")

__all__ = ["CANDIDATE_FLOOR", "MAX_CANDIDATES", "MAX_PIXELS", "MAX_SIDE", "ImageError", "ServedModel", "decode_image",
           "load_models", "postprocess", *_WEB]


def __getattr__(name: str):
    # The web parts import Starlette only when asked for, so the inference helpers work without it.
    if name in _WEB:
        from pixbox.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'pixbox.serve' has no attribute {name!r}")
