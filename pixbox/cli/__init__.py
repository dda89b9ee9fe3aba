"""pixbox.cli: the ``pixbox <task> <action> [options]`` command line.

The CLI only parses arguments and calls library functions. Each task module (such as
:mod:`pixbox.cli.demo`) has an ``add_parser(subparsers)`` function that registers its
subcommand; :data:`pixbox.cli.main.TASKS` lists them.
"""

__all__ = ["main"]


def main(argv=None) -> int:
    """Runs the command line; see :func:`pixbox.cli.main.main`."""
    from pixbox.cli.main import main as _main

    return _main(argv)
