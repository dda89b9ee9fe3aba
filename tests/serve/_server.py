"""A ``pixbox serve`` process for the tests that measure its memory: a detector ``det`` and a
segmenter ``seg`` (tests/serve/_models.py) on a free loopback port, with create_app's and
run_server's defaults unless given.

    python tests/serve/_server.py [--max-pixels N]

Prints the URL on the first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _models import Segmenter, build_detector  # noqa: E402

from pixbox.serve import ServedModel, create_app, run_server  # noqa: E402
from pixbox.tasks.segment import SegmenterPredictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-pixels", type=int, default=None)
    args = parser.parse_args()
    options = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    models = [ServedModel("det", build_detector()),
              ServedModel("seg", SegmenterPredictor(Segmenter(), ["background", "red", "green"]))]
    run_server(create_app(models, **options), port=0, log_level="warning", announce=lambda url: print(url, flush=True))


if __name__ == "__main__":
    main()
