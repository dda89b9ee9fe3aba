"""What the task commands share: an action parser with did-you-mean, argument types, errors."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["ActionParser", "USER_ERRORS", "add_predict_parser", "add_resume_flags", "add_run_flags", "add_train_parser",
           "add_outside_paths_flag", "add_val_parser", "choice", "fail", "load_predictor", "number", "run_training", "run_validation"]

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
    train.add_argument("--ema", action=argparse.BooleanOptionalAction, default=None,
                       help="evaluate and keep an exponential moving average of the weights (best.pt holds it) "
                            "(default: off)")
    train.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                       help="mixed precision: --amp forces autocast (bfloat16 on any CPU, float16 on CUDA), "
                            "--no-amp trains in float32; by default autocast runs where it is native (CUDA, "
                            "or a CPU with AVX512-BF16/AMX), and the run prints what it chose")


def add_train_parser(actions, *, help: str, description: str, config: str, data_help: str, models,
                     model_help: str, defaults: dict) -> argparse.ArgumentParser:
    """A task's ``train`` parser with the flags every task's has first: ``--config``, ``--data``,
    ``--model``, ``--epochs``, ``--batch``, ``--lr``, ``--optimizer`` (the task adds its own, then
    :func:`add_run_flags` and :func:`add_resume_flags`).

    Args:
        actions: the task's subparsers.
        help, description (str): the action's texts.
        config (str): the config class, for ``--config``'s help (e.g. ``pixbox.tasks.detect.DetectConfig``).
        data_help (str): what ``--data`` is.
        models (callable): the model names, for ``--model``.
        model_help (str): examples of model names.
        defaults (dict): the config's default values, shown in the help.
    """
    d = defaults
    train = actions.add_parser("train", help=help, description=description)
    train.add_argument("--config", type=Path, metavar="YAML", help=f"a YAML file of config keys (see {config})")
    train.add_argument("--data", type=Path, metavar="DIR", help=data_help)
    train.add_argument("--model", type=choice("model", models), metavar="NAME",
                       help=f"{model_help} (default: {d['model']})")
    train.add_argument("--epochs", type=number(int, 1), metavar="N", help=f"(default: {d['epochs']})")
    train.add_argument("--batch", type=number(int, 1), metavar="N", help=f"images per batch (default: {d['batch']})")
    train.add_argument("--lr", type=number(float, 0, low_open=True), help=f"learning rate (default: {d['lr']})")
    train.add_argument("--optimizer", type=choice("optimizer", ("sgd", "adamw")), metavar="OPT",
                       help=f"sgd or adamw (default: {d['optimizer']})")
    return train


def add_val_parser(actions, *, help: str, description: str, batch: int) -> argparse.ArgumentParser:
    """A task's ``val`` parser with the flags :func:`run_validation` reads (``--weights``, ``--data``,
    ``--split``, ``--batch``, ``--device``, ``--workers``, ``--out``)."""
    val = actions.add_parser("val", help=help, description=description)
    val.add_argument("--weights", type=Path, required=True, metavar="PT", help="best.pt or last.pt of a run")
    val.add_argument("--data", type=Path, metavar="DIR", help="the dataset folder (default: the run's)")
    val.add_argument("--split", metavar="S", help="the split (default: the run's validation split)")
    val.add_argument("--batch", type=number(int, 1), default=batch, metavar="N", help="(default: %(default)s)")
    val.add_argument("--device", default="auto", metavar="DEV", help="(default: %(default)s)")
    val.add_argument("--workers", type=number(int, 0), default=0, metavar="N", help="(default: %(default)s)")
    val.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: the weights' folder)")
    return val


def add_predict_parser(actions, *, help: str, description: str, out_help: str,
                       metavar: str = "IMAGE") -> argparse.ArgumentParser:
    """A task's ``predict`` parser with ``SOURCE...``, ``--weights``, ``--out`` and ``--device``."""
    predict = actions.add_parser("predict", help=help, description=description)
    predict.add_argument("sources", nargs="+", metavar=metavar, help="image files, folders or globs ('imgs/*.jpg')")
    predict.add_argument("--weights", type=Path, required=True, metavar="PT",
                         help="best.pt or last.pt of a run, or an .onnx export")
    predict.add_argument("--out", type=Path, metavar="DIR", help=out_help)
    predict.add_argument("--device", default="auto", metavar="DEV", help="(default: %(default)s)")
    return predict


def add_outside_paths_flag(parser: argparse.ArgumentParser) -> None:
    """``--allow-outside-paths``: read annotation image paths that lead outside the dataset folder."""
    parser.add_argument("--allow-outside-paths", dest="allow_outside_paths", action="store_true", default=None,
                        help="read images that the annotations place outside the dataset folder (../ or absolute "
                             "paths; refused by default)")


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
    except FloatingPointError as e:  # a NaN/inf loss: last.pt keeps the last finished epoch
        return fail(f"{e}; the run folder's last.pt holds the last finished epoch")
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: pixbox {task} train --resume RUN_DIR", file=sys.stderr)
        return 130
    finally:
        destroy_distributed()  # under torchrun: leave the process group the run joined
    return 0  # the run printed where its results are and how to evaluate and use them


def load_predictor(weights, task: str, **options):
    """:func:`pixbox.load` (a ``.pt`` or an ``.onnx`` file), refusing another task's model with the
    command that takes it."""
    import pixbox

    predictor = pixbox.load(weights, **options)
    if predictor.task != task:
        raise ValueError(f"{weights} is a {predictor.task!r} model, not a {task!r} one; use it with `pixbox "
                         f"{predictor.task} predict` or `pixbox {predictor.task} val`")
    return predictor


def run_validation(args, task: str, evaluate: Callable, table: Callable, figure: Callable,
                   saved: dict[str, tuple[str, object]] | None = None, **options) -> int:
    """The ``pixbox <task> val`` handler every task shares.

    The dataset, the split and the ``saved`` keys default to those of the checkpoint's run; the
    model is evaluated (``evaluate(predictor, data, split=, batch=, workers=, **keys, **options)``),
    ``val_metrics.json`` and the task's figure (``figure(metrics, class_names, folder) -> path``)
    go to ``--out`` (default: the checkpoint's folder), and ``table(metrics, class_names)`` is
    printed.

    Args:
        args (argparse.Namespace): ``weights``, ``data``, ``split``, ``batch``, ``device``,
            ``workers``, ``out`` and the flags named in ``saved``.
        task (str): the task's name.
        saved (dict): evaluate's keyword -> ``(flag and config key, default)``, e.g.
            ``{"fmt": ("format", "auto")}``: the flag, else the run's config value, else the default.
        **options: more keywords for ``evaluate``.
    """
    from pixbox.engine.checkpoint import load_checkpoint
    from pixbox.metrics.files import save_metrics_json

    try:
        config = load_checkpoint(args.weights).get("config") or {}
        data = args.data if args.data is not None else config.get("data")
        if data is None:
            return fail(f"--data is required: {args.weights} does not name its dataset")
        split = args.split or config.get("val_split") or "val"
        keys = {}
        for keyword, (name, default) in (saved or {}).items():
            value = getattr(args, name)
            keys[keyword] = value if value is not None else config.get(name) or default
        predictor = load_predictor(args.weights, task, device=args.device, batch=args.batch)
        metrics = evaluate(predictor, data, split=split, batch=args.batch, workers=args.workers, **keys, **options)
    except (*USER_ERRORS, ImportError) as e:
        return fail(e)
    images = f" ({metrics['num_images']} images)" if "num_images" in metrics else ""
    print(f"{args.weights} on split {split!r} of {data}{images}:")  # the metrics first: a write error loses nothing
    print(table(metrics, predictor.class_names))
    out = Path(args.out) if args.out is not None else Path(args.weights).parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        json_path = save_metrics_json(metrics, out / "val_metrics.json")
        png_path = figure(metrics, predictor.class_names, out)
    except OSError as e:
        return fail(f"cannot write the metrics files to {out} ({e.strerror or e}); the metrics are printed above; "
                    "pass --out FOLDER to write them elsewhere")
    print(f"wrote {json_path} and {png_path}")
    return 0

