"""``python -m pixbox``: the ``pixbox`` command (:func:`pixbox.cli.main.main`), also under ``torchrun -m pixbox``."""

import sys

from pixbox.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
