"""What the task commands share: an action parser with did-you-mean, argument types, errors."""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Callable, Sequence

__all__ = ["ActionParser", "USER_ERRORS", "add_resume_flags", "add_run_flags", "choice", "fail", "number",
           "run_training"]

#: What the handlers turn into "error: ..." (exit code 1) instead of a traceback. DatasetError is a
#: ValueError; FileNotFoundError, PermissionError, ... are OSErrors.
USER_ERRORS = (ValueError, TypeError, OSError)


class ActionParser(argparse.ArgumentParser):
    """An action's parser: unknown options are an error here, with the nearest valid option."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            options = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
            message = f"unrecognized arguments: {' '.join(extras)}"
            for token in extras:
                if token.startswith("-"):
                    typed = token.split("=", 1)[0]
                    started = [o for o in options if o.startswith(typed)]  # an abbreviation of one option
                    hint = started if len(started) == 1 else difflib.get_close_matches(typed, options, n=1, cutoff=0.5)
                    if hint:
                        message += f"; did you mean {hint[0]!r}?"
                        break
            self.error(message)
        return namespace, extras


def choice(kind: str, choices: Sequence[str] | Callable[[], Sequence[str]]) -> Callable[[str], str]:
    """An argparse ``type`` accepting one of ``choices``, suggesting the nearest name otherwise."""
    def parse(text: str) -> str:
        options = list(choices() if callable(choices) else choices)
        if text in options:
            return text
        hint = difflib.get_close_matches(text, options, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise argparse.ArgumentTypeError(f"unknown {kind} {text!r}{extra} (choose from {', '.join(options)})")

    parse.__name__ = kind
    return parse


def number(kind: type, low: float, *, low_open: bool = False, high: float | None = None) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if value != value or (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_run_flags(train: argparse.ArgumentParser, defaults: dict) -> None:
    """Adds the training-loop flags every task's ``train`` parser shares (``--workers``,
    ``--device``, ``--name``, ``--project``, ``--seed``, ``--patience``, ``--eval-every``,
    ``--amp/--no-amp``);
    ``defaults`` are the task config's values, shown in the help."""
    d = defaults
    train.add_argument("--workers", type=number(int, 0), metavar="N",
                       help=f"data loading processes (default: {d['workers']})")
    train.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    train.add_argument("--name", help=f"the run's folder name (default: {d['name']})")
    train.add_argument("--project", metavar="DIR", help=f"the folder of the runs (default: {d['project']})")
    train.add_argument("--seed", type=number(int, 0), help=f"(default: {d['seed']})")
    train.add_argument("--patience", type=number(int, 0), metavar="N",
                       help="stop after N epochs without improvement, 0 never (default: 0)")
    train.add_argument("--eval-every", dest="eval_every", type=number(int, 1), metavar="N",
                       help=f"validate every N epochs (default: {d['eval_every']})")
    train.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                       help="mixed precision: --amp forces autocast (bfloat16 on any CPU, float16 on CUDA), "
                            "--no-amp trains in float32; by default autocast runs where it is native (CUDA, "
                            "or a CPU with AVX512-BF16/AMX), and the run prints what it chose")


def add_resume_flags(train: argparse.ArgumentParser) -> None:
    """Adds ``--sync-bn`` (config key ``sync_bn``) and ``--resume`` to a task's ``train`` parser."""
    train.add_argument("--sync-bn", dest="sync_bn", action="store_true", default=None,
                       help="under torchrun with several GPUs, synchronise BatchNorm statistics across the "
                            "processes (torch.nn.SyncBatchNorm; CUDA only)")
    train.add_argument("--resume", nargs="?", const="", metavar="RUN",
                       help="continue a stopped run: a run name (under --project), a run folder or a last.pt "
                            "file; alone, the run --name")


def fail(error: BaseException | str) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 1


def run_training(args, flags: dict, config_class: type, train, *, task: str, data_help: str) -> int:
    """The ``pixbox <task> train`` handler every task shares: ``--config`` values, overridden by
    the flags, then a new run or ``--resume``; user mistakes print ``error: ...`` (exit 1).

    Args:
        args (argparse.Namespace): with ``config`` and ``resume``.
        flags (dict): the config keys given on the command line.
        config_class (type): the task's config (e.g. ``DetectConfig``).
        train (callable): ``train(config, resume=...) -> run folder``.
        task (str): the command name, for the resume hint.
        data_help (str): what ``--data`` is, for the "required" message.
    """
    from pixbox.engine.config import read_yaml_values
    from pixbox.engine.distributed import destroy_distributed

    try:
        values = read_yaml_values(args.config, config_class) if args.config is not None else {}
        values.update(flags)
        if args.resume is not None:
            train(values or None, resume=True if args.resume == "" else args.resume)
        else:
            config = config_class.from_dict(values)
            if config.data is None:
                return fail(f"--data is required: {data_help} (or 'data:' in --config)")
            train(config)
    except USER_ERRORS as e:
        return fail(e)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: pixbox {task} train --resume RUN_DIR", file=sys.stderr)
        return 130
    finally:
        destroy_distributed()  # under torchrun: leave the process group the run joined
    return 0  # the run printed where its results are and how to evaluate and use them

