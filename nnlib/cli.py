"""`nnlib`: the headless command line — train, evaluate, summary, trace, datasets, runs,
plot, control, sweep.

Exit codes: 0 done (an early stop included); 1 training failed (diverged, data error,
an exception; a closed stdout, `| head`, except for train and sweep, which go on unread);
2 bad arguments, config or path, with one line on stderr; 128 + the signal's number for
SIGINT (130, Ctrl+C), SIGTERM (143) and SIGHUP (129), after the run log is closed and a final
checkpoint is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from ._output import OutputClosed, closed_pipes

if TYPE_CHECKING:  # at run time, each command imports what it needs
    from .config import ExperimentConfig
    from .datasets import Prepared
    from .trainer import Trainer

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: The commands that keep working when their stdout is closed (see nnlib._output).
KEEP_GOING = ("train", "sweep")
#: The signals that end `nnlib` the way Ctrl+C does (SIGHUP: the terminal or SSH session went).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class UsageError(Exception):
    """Bad arguments or config: reported as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage dump) and exits with code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


class Interrupted(KeyboardInterrupt):
    """A stop signal that arrived while no training run could take it: the command ends."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP, handled alike while `nnlib` runs (a context manager that
    restores the previous handlers, unless a signal came: then the process is ending, and
    they stay ignored until it has).

    The first signal raises Interrupted, unless a trainer is attached: then it asks the
    trainer to stop at the next batch boundary, so that the run ends the ordinary way (its
    `end` event logged, model.npz written). Every later signal is ignored, so a second Ctrl+C
    can neither interrupt the final save nor turn the exit into a traceback. SIGINT is taken
    even when the shell started us with it ignored (as background jobs are); SIGTERM and
    SIGHUP stay ignored if they were (nohup).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.trainer: Trainer | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # else Python refuses
            for signum in STOP_SIGNALS:
                previous = signal.getsignal(signum)
                if signum != signal.SIGINT and previous is signal.SIG_IGN:
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        # After a signal the process is ending: ignored by the OS from here, also while Python
        # shuts down and puts back the default handlers that a late signal would kill it by.
        # (Not in the handler: Python reports a signal that was pending alongside the first
        # and found ignored as "ignored due to race condition". signal.signal runs the
        # pending ones through our handler first.)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if self.received is None else signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signum
        if self.trainer is not None:
            self.trainer.control.stop("interrupted", source="signal")
        else:
            raise Interrupted(signum)

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 for SIGINT), as shells report a death by signal."""
        return 128 + self.received if self.received is not None else EXIT_INTERRUPTED


def describe_os_error(error: OSError) -> str:
    """One line for an OSError: the path(s) it names, quoted, and the OS's reason."""
    paths = [repr(os.fspath(p)) for p in (error.filename, error.filename2) if p is not None]
    return ": ".join([*paths, error.strerror or str(error)])


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum, with a message naming the bound."""
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 28,28,1, got {text!r}") from None
    if not shape or any(size < 1 for size in shape):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 28,28,1, got {text!r}")
    return shape


def _column(text: str) -> int | str:
    """A CSV column: an index when the text is an integer (negative counts from the end),
    else a header name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a column name or index, got ''")
    try:
        return int(text)
    except ValueError:
        return text


def _add_label_column(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label-column",
        type=_column,
        metavar="NAME|INDEX",
        help="the label column of a CSV dataset, by header name or 0-based index "
        "(default: a column called label/target/class/y, else the first)",
    )


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by `nnlib train` and `nntui`; they override --config values."""
    parser.add_argument("--config", metavar="FILE.toml", help="load an experiment config file")
    parser.add_argument(
        "--dataset", help="built-in name (see `nnlib datasets`) or a .npz/.csv file or IDX folder"
    )
    _add_label_column(parser)
    parser.add_argument(
        "--arch",
        metavar="SPEC",
        help="architecture spec, e.g. 784-128-10, or a preset: mlp, lenet, cnn, vgg, small",
    )
    parser.add_argument("--epochs", type=_positive_int)
    parser.add_argument("--batch-size", type=_positive_int)
    parser.add_argument("--optimizer", choices=("sgd", "adam", "rmsprop"))
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--momentum", type=float, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, help="L2 weight decay")
    parser.add_argument("--l1", type=float, help="L1 regularization of the weights")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--validation-split",
        type=float,
        metavar="FRACTION",
        help="share of the training data held out for validation, in [0, 1) (default 0.1)",
    )
    parser.add_argument(
        "--noise",
        type=float,
        help="noise of a generated dataset, in its own unit (default: the dataset's; see "
        "`nnlib datasets`)",
    )
    parser.add_argument("--subset", type=_positive_int, help="train on the first N samples")
    parser.add_argument(
        "--data-dir",
        help="data folder (default: $NNLIB_DATA_DIR, the "
        "checkout's datasets/, or a per-user cache)",
    )
    parser.add_argument(
        "--run-dir",
        help="write the run log here (default: a new directory under ./runs or $NNLIB_RUNS_DIR)",
    )


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """ExperimentConfig from --config and the flags; raises UsageError on a bad value."""
    from .config import ConfigError, ExperimentConfig

    try:
        base = ExperimentConfig.load(args.config) if args.config else ExperimentConfig()
        return base.replace(**experiment_flags(args))
    except ConfigError as error:
        raise UsageError(str(error)) from None


def experiment_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the experiment flags set (None where a flag is not given)."""
    return {
        "dataset": args.dataset,
        "arch": args.arch,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "l1": args.l1,
        "seed": args.seed,
        "validation_split": args.validation_split,
        "noise": args.noise,
        "subset": args.subset,
        "data_dir": args.data_dir,
        "run_dir": args.run_dir,
        "label_column": args.label_column,
    }


def _parser() -> OneLineParser:
    parser = OneLineParser(
        prog="nnlib", description="Train and inspect numpy neural networks without a UI."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    train = commands.add_parser("train", help="train a model and write a run directory")
    add_experiment_arguments(train)
    train.add_argument(
        "--histogram-every",
        type=_positive_int,
        help="weight/gradient histograms every N batches (default 50)",
    )
    train.add_argument(
        "--early-stopping",
        type=_non_negative_int,
        metavar="PATIENCE",
        help="stop when val_loss has not improved for PATIENCE epochs",
    )
    train.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        metavar="N",
        help="complete checkpoints every N steps, besides one at every stop (default 500; "
        "0: only at stops)",
    )
    continuing = train.add_mutually_exclusive_group()
    continuing.add_argument(
        "--resume",
        metavar="RUN",
        help="continue a stopped, interrupted or crashed run in its directory from its last "
        "checkpoint",
    )
    continuing.add_argument(
        "--fork",
        metavar="RUN[@STEP|@best|@last]",
        help="start a new run from a checkpoint of RUN (default @last), with the flags given "
        "as changes",
    )
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument(
        "--threads",
        type=_positive_int,
        help="BLAS threads (default: 1 on machines with 2 cores or fewer, "
        "where more were measured slower; else the BLAS default)",
    )

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on a dataset")
    evaluate.add_argument("checkpoint", help="a model .npz written by nnlib")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--data-dir")
    _add_label_column(evaluate)
    evaluate.add_argument("--split", choices=("test", "train"), default="test")

    summary = commands.add_parser("summary", help="print a model summary for a spec")
    summary.add_argument("--arch", required=True, metavar="SPEC")
    shape = summary.add_mutually_exclusive_group(required=True)
    shape.add_argument("--input-shape", type=_shape, metavar="H,W,C")
    shape.add_argument("--dataset", help="take the input shape from this dataset")
    summary.add_argument("--batch-size", type=_positive_int, default=64)

    _add_trace_command(commands)

    commands.add_parser("datasets", help="list the datasets and whether they are on disk")

    sweep = commands.add_parser(
        "sweep", help="run a hyperparameter/architecture sweep: many runs, ranked"
    )
    sweep.add_argument(
        "sweep_file",
        nargs="?",
        metavar="SWEEP.toml",
        help="a base experiment (the --config keys) with a [sweep] table",
    )
    sweep.add_argument(
        "--resume",
        metavar="SWEEP_DIR",
        help="continue a stopped sweep: rerun its unfinished trials",
    )
    sweep.add_argument(
        "--sweep-dir",
        metavar="DIR",
        help="the sweep folder, new or empty (default: a new one under ./runs or $NNLIB_RUNS_DIR)",
    )
    sweep.add_argument(
        "--workers",
        type=_positive_int,
        help="trials at once (default: one per core locally, the cluster's threads on Dask)",
    )
    sweep.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the trials on this Dask cluster (e.g. tcp://host:8786); "
        "needs pip install 'nntui[cluster]'",
    )
    sweep.add_argument(
        "--connect-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long to wait for the Dask scheduler to answer (default 20)",
    )

    runs = commands.add_parser("runs", help="print a run log, or follow one being written")
    runs.add_argument("run", help="a run directory or its events.jsonl")
    runs.add_argument("--follow", action="store_true", help="keep printing until the run ends")
    _add_workspace_commands(commands)

    control = commands.add_parser(
        "control",
        help="pause, resume, step, stop, set a hyperparameter of or pace a run being written",
        description="Steer a run that nnlib train or nntui is writing, from any terminal of "
        "its owner: the run applies the command at its next batch boundary and answers.",
    )
    control.add_argument("run", help="the run's directory")
    control.add_argument("action", choices=("pause", "resume", "step", "stop", "set", "pace"))
    control.add_argument(
        "arguments",
        nargs="*",
        metavar="ARG",
        help="for set: NAME VALUE; for pace: EPOCHS_PER_SECOND, or full",
    )
    control.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the run's answer (default 5)",
    )
    return parser


def _add_trace_command(commands: Any) -> None:
    """`nnlib trace`: one sample through the network, as numbers (nnlib.trace)."""
    trace = commands.add_parser(
        "trace",
        help="one sample through the network: every layer's input, output and gradients",
        description="Run one sample, as a batch of one, through a float64 copy of the model "
        "in evaluation mode (BatchNorm uses its moving statistics, dropout is off) and back "
        "from the loss (softmax cross-entropy, or MSE for regression). Prints per layer the "
        "shape, min, max and mean of its input, output, gradients and parameters; with --json "
        "every value.",
    )
    trace.add_argument(
        "--dataset",
        required=True,
        help="built-in name (see `nnlib datasets`) or a .npz/.csv file or IDX folder",
    )
    trace.add_argument(
        "--sample",
        required=True,
        type=_non_negative_int,
        metavar="I",
        help="the sample's index in the split, from 0",
    )
    trace.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="train",
        help="where the sample is taken from, after the data is prepared as nnlib train "
        "prepares it: train (the default; the training split once the validation split is "
        "taken out of it), val or test",
    )
    model = trace.add_mutually_exclusive_group()
    model.add_argument(
        "--arch",
        metavar="SPEC",
        help="build this architecture with the weights nnlib train starts from (default: the "
        "architecture nnlib train picks for the dataset)",
    )
    model.add_argument(
        "--model",
        metavar="FILE.npz",
        help="load a model file, e.g. RUN/model.npz; the data is prepared as the config.json "
        "beside it says (seed, validation split, subset), as nnlib evaluate does",
    )
    trace.add_argument(
        "--seed",
        type=_non_negative_int,
        metavar="S",
        help="the seed of the initial weights and of the data (generated datasets, the "
        "validation split), as for nnlib train (default 0; with --model, its run's)",
    )
    trace.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object {"loss": ..., "layers": [{"name", "kind", "params", '
        '"input", "output", "grad_output", "grad_input", "grads"}]}, every array as nested '
        "lists of float64 values with the batch axis first (null where not finite); it holds "
        "every weight twice, about 40 bytes per parameter (LeNet-5 on glyphs: 3 MB)",
    )
    trace.add_argument("--data-dir")
    _add_label_column(trace)


#: `nnlib runs list`, `nnlib runs export`, ... are commands of their own (see _command_words).
RUNS_COMMANDS = ("list", "export", "tag", "note", "delete", "rename")


def _command_words(argv: Sequence[str]) -> list[str]:
    """`runs list ...`, `runs export ...` (RUNS_COMMANDS) as one-word commands such as "runs
    list", beside `runs RUN` (a run directory called list or export: `runs ./list`)."""
    argv = list(argv)
    if len(argv) >= 2 and argv[0] == "runs" and argv[1] in RUNS_COMMANDS:
        return [f"runs {argv[1]}", *argv[2:]]
    return argv


def _add_workspace_commands(commands: Any) -> None:
    """The runs folder as a workspace: list the runs, export one, plot some."""
    listing = commands.add_parser(
        "runs list", help="print the runs table of a runs folder (state, epochs, metrics)"
    )
    listing.add_argument(
        "dir", nargs="?", help="the runs folder (default: $NNLIB_RUNS_DIR, else ./runs)"
    )
    listing.add_argument(
        "--filter",
        metavar="TERMS",
        default="",
        help="only the runs that meet every term: lr<0.1, dataset=glyphs, tag:baseline, "
        "state:crashed, or text in the row",
    )
    shape = listing.add_mutually_exclusive_group()
    shape.add_argument(
        "--wide", action="store_true", help="every column whole, however wide the terminal"
    )
    shape.add_argument(
        "--json", action="store_true", help="one JSON array of records (raw values), for scripts"
    )
    shape.add_argument("--csv", action="store_true", help="the same records as CSV, for scripts")
    tagging = commands.add_parser("runs tag", help="add tags to a run (or remove them)")
    tagging.add_argument("run", help="a run directory")
    tagging.add_argument("tags", nargs="+", metavar="NAME", help="letters, digits, _ . + -")
    tagging.add_argument("--remove", action="store_true", help="remove these tags instead")
    note = commands.add_parser("runs note", help="set a run's note (one line; '' removes it)")
    note.add_argument("run", help="a run directory")
    note.add_argument("text", help="the note")
    delete = commands.add_parser(
        "runs delete", help="move a run to the trash folder (<runs folder>/.trash)"
    )
    delete.add_argument("run", help="a run directory")
    delete.add_argument("--yes", action="store_true", help="do not ask first")
    rename = commands.add_parser("runs rename", help="rename a run's folder")
    rename.add_argument("run", help="a run directory")
    rename.add_argument("name", help="its new folder name, in the same runs folder")
    export = commands.add_parser(
        "runs export", help="write a run's metrics as CSV, or all its events as JSON"
    )
    export.add_argument("run", help="a run directory or its events.jsonl")
    export.add_argument(
        "--csv",
        metavar="FILE",
        help="batch and epoch metrics, raw and smoothed, one row each ('-': stdout)",
    )
    export.add_argument(
        "--json", metavar="FILE", help="every event as a JSON array of records ('-': stdout)"
    )
    export.add_argument(
        "--smoothing",
        type=_smoothing,
        default=None,
        help="EMA weight of the smoothed columns, in [0, 1) (default: the app's, 0.6)",
    )
    plot = commands.add_parser(
        "plot", help="draw the loss and accuracy curves of runs in the terminal (plotext)"
    )
    plot.add_argument("runs", nargs="+", metavar="RUN", help="run directories to overlay")
    plot.add_argument(
        "--metric",
        action="append",
        choices=("loss", "accuracy"),
        help="a metric to chart (repeat for more; default: loss, and accuracy when logged)",
    )
    plot.add_argument("--x", choices=("step", "epoch"), default="step", help="the x axis")
    plot.add_argument(
        "--smoothing",
        type=_smoothing,
        default=None,
        help="EMA weight of the training curve, in [0, 1) (default 0.6; 0: raw)",
    )
    plot.add_argument("--log-y", action="store_true", help="a logarithmic y axis")
    plot.add_argument(
        "--size", type=_size, metavar="WxH", help="chart size (default: the terminal's)"
    )
    plot.add_argument(
        "--watch",
        type=_positive_float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until the runs end",
    )
    plot.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="auto: colour on a terminal unless NO_COLOR is set",
    )


def _smoothing(text: str) -> float:
    from .runindex import check_smoothing

    try:
        return check_smoothing(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


#: The smallest chart `nnlib plot` draws, and the largest (sizes are checked first).
MIN_PLOT, MAX_PLOT = (20, 6), (1000, 500)


def _size(text: str) -> tuple[int, int]:
    expected = (
        f"expected WIDTHxHEIGHT from {MIN_PLOT[0]}x{MIN_PLOT[1]} to {MAX_PLOT[0]}x{MAX_PLOT[1]}"
    )
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
    if not (MIN_PLOT[0] <= width <= MAX_PLOT[0] and MIN_PLOT[1] <= height <= MAX_PLOT[1]):
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
    return width, height


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every way it can end is turned into an exit code here."""
    with StopSignals() as signals, closed_pipes() as (stdout, _):
        try:
            args = _parser().parse_args(_command_words(sys.argv[1:] if argv is None else argv))
            # A run goes on when nobody reads its output any more (`| head -1`).
            stdout.keep_going = args.command in KEEP_GOING
            code = {
                "train": lambda args: _train(args, signals),
                "evaluate": _evaluate,
                "summary": _summary,
                "trace": _trace,
                "datasets": _datasets,
                "runs": _runs,
                "runs list": _runs_list,
                "runs export": _runs_export,
                "runs tag": _runs_tag,
                "runs note": _runs_note,
                "runs delete": _runs_delete,
                "runs rename": _runs_rename,
                "plot": _plot,
                "control": _control,
                "sweep": lambda args: _sweep(args, signals),
            }[args.command](args)
            sys.stdout.flush()  # here, so that a closed pipe is reported below, not at exit
            return code
        except UsageError as error:
            return _fail(str(error), EXIT_USAGE)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return signals.exit_code
        except OutputClosed:  # `nnlib datasets | head -1`: the rest is not wanted
            return EXIT_FAILED
        except OSError as error:  # a path the OS refuses: too long, not permitted, ...
            return _fail(describe_os_error(error), EXIT_USAGE)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _load_data_or_fail(config: ExperimentConfig) -> Prepared:
    """Prepared data; an unknown dataset name or a config field that does not fit the data
    is a usage error, a bad file a data error. The dataset's notes (e.g. a partial MNIST
    folder) are printed as one line each."""
    from .config import ConfigError
    from .datasets import UnknownDataset
    from .experiment import load_data

    try:
        data = load_data(config)
    except (UnknownDataset, ConfigError) as error:
        raise UsageError(str(error)) from None
    for note in data.dataset.notes:
        print(f"note: {note}", file=sys.stderr)
    return data


def _train(args: argparse.Namespace, signals: StopSignals) -> int:
    from .callbacks import EarlyStopping, ProgressBar
    from .callbacks.testset import TestEvaluator
    from .experiment import resume, setup
    from .runs import EVENTS_FILE, RunDirError
    from .spec import SpecError
    from .threads import AUTO

    config = _train_config(args)
    try:
        data = _load_data_or_fail(config)
    except ValueError as error:
        return _fail(str(error), EXIT_FAILED)
    callbacks: list[Any] = []
    if args.early_stopping is not None:
        callbacks.append(EarlyStopping(patience=args.early_stopping))
    if not args.quiet:
        callbacks.append(ProgressBar())
    try:
        if args.resume is not None:
            experiment = resume(args.resume, data=data, callbacks=callbacks, checkpoints=True)
        else:
            experiment = setup(config, data=data, callbacks=callbacks, checkpoints=True)
        # From here a stop signal ends the run at a batch boundary, through on_train_end (a
        # signal before fit stops it at its start): the run is never left half-made.
        signals.trainer = experiment.trainer
    except SpecError as error:
        raise UsageError(f"--arch: {error}") from None
    except RunDirError as error:
        raise UsageError(f"--run-dir: {error}" if config.run_dir else str(error)) from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    run_dir = experiment.run_dir
    start = experiment.trainer.resume_from
    if start is not None:
        print(
            f"continuing from {start.source} (step {experiment.trainer.global_step})",
            file=sys.stderr,
        )
    print(
        f"run: {run_dir}  arch: {experiment.arch}  "
        f"params: {experiment.model.summary().total_params:,}",
        file=sys.stderr,
    )
    _print_warnings(experiment.model, experiment.loss)
    try:
        history = experiment.fit(threads=args.threads if args.threads is not None else AUTO)
    except Exception as error:  # the run log holds the 'end' event with the error, if any
        logged = f" (log: {run_dir})" if (run_dir / EVENTS_FILE).is_file() else ""
        return _fail(f"training failed: {type(error).__name__}: {error}{logged}", EXIT_FAILED)
    if history.reason == "diverged":
        return _fail(f"training diverged (loss is NaN or inf); log: {run_dir}", EXIT_FAILED)
    tested = next(
        (c.last for c in experiment.trainer.callbacks if isinstance(c, TestEvaluator)), None
    )
    if tested is not None and signals.received is None:  # the run's 'test' event
        scores = {"loss": tested.loss, "accuracy": tested.accuracy}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if v is not None)
        print(f"test  {shown}", file=sys.stderr)
    if signals.received is not None:  # fit has returned: the final model is on disk
        name = signal.Signals(signals.received).name
        print(f"interrupted ({name}); run log and final model in {run_dir}", file=sys.stderr)
        return signals.exit_code
    print(f"done ({history.reason}); run written to {run_dir}", file=sys.stderr)
    return EXIT_OK


def _train_config(args: argparse.Namespace) -> ExperimentConfig:
    """The config `nnlib train` runs: from the flags; a resumed run's own (which takes no
    experiment flags: a fork changes a run); or a fork's, the flags being its changes."""
    from .config import ConfigError, ExperimentConfig
    from .experiment import fork_config

    flags = {k: v for k, v in experiment_flags(args).items() if v is not None}
    if args.checkpoint_every is not None:
        flags["checkpoint_every"] = args.checkpoint_every
    if args.histogram_every:
        flags["histogram_every"] = args.histogram_every
    try:
        if args.resume is not None:
            if not args.resume:
                raise UsageError("--resume: give the run directory to continue, got ''")
            if flags or args.config:
                given = "--" + next(iter(flags or {"config": 1})).replace("_", "-")
                raise UsageError(
                    f"--resume continues a run as it was configured and takes no {given}; "
                    "to change a run, --fork it"
                )
            toml = Path(args.resume) / "experiment.toml"
            if not toml.is_file():
                raise UsageError(f"--resume: {args.resume}: not a run directory (no {toml.name})")
            return ExperimentConfig.load(toml)
        if args.fork is not None:
            if args.config:
                raise UsageError("--fork takes its config from the run it forks, not --config")
            return fork_config(args.fork, **flags)
        return config_from_args(args).replace(**flags)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def _evaluate(args: argparse.Namespace) -> int:
    from .config import ExperimentConfig
    from .losses import loss_for
    from .model import load

    try:
        model = load(args.checkpoint)
    except ValueError as error:
        raise UsageError(str(error)) from None
    prepared = _preparation_of(Path(args.checkpoint), args.dataset)
    if args.label_column is not None:
        prepared["label_column"] = args.label_column
    try:
        data = _load_data_or_fail(
            ExperimentConfig(dataset=args.dataset, data_dir=args.data_dir, **prepared)
        )
    except ValueError as error:
        return _fail(str(error), EXIT_FAILED)
    x, y = (data.x_test, data.y_test) if args.split == "test" else (data.x_train, data.y_train)
    _check_model_fits(model, data, args.checkpoint, args.dataset)
    result = model.evaluate(x, y, loss_for(data.task))
    print(
        f"{args.split} ({len(x)} samples)  " + "  ".join(f"{k} {v:.4f}" for k, v in result.items())
    )
    return EXIT_OK


def _check_model_fits(model: Any, data: Prepared, source: str, dataset: str) -> None:
    """A usage error unless the loaded `model` takes `data`'s inputs and gives its outputs."""
    from .experiment import outputs_for

    if tuple(data.input_shape) != model.input_shape:
        raise UsageError(
            f"{source} expects inputs of shape {model.input_shape}, "
            f"{dataset} has {tuple(data.input_shape)}"
        )
    if model.output_shape != (outputs_for(data),):
        raise UsageError(
            f"{source} outputs {model.output_shape} values per sample, "
            f"{dataset} needs {outputs_for(data)}"
        )


def _trace(args: argparse.Namespace) -> int:
    """One sample through the network (nnlib.trace): a readable summary, or every value as
    JSON. The model is built as nnlib train builds it, or loaded (--model)."""
    from .config import ConfigError, ExperimentConfig
    from .experiment import build_model
    from .losses import loss_for
    from .model import load
    from .spec import SpecError
    from .trace import fit, trace

    prepared: dict[str, Any] = {}
    if args.model is not None:
        try:
            model = load(args.model)
        except ValueError as error:
            raise UsageError(str(error)) from None
        prepared = _preparation_of(Path(args.model), args.dataset)
    for key in ("seed", "label_column"):
        if getattr(args, key) is not None:
            prepared[key] = getattr(args, key)
    try:
        config = ExperimentConfig(
            dataset=args.dataset, arch=args.arch, data_dir=args.data_dir, **prepared
        )
    except ConfigError as error:
        raise UsageError(str(error)) from None
    try:
        data = _load_data_or_fail(config)
    except ValueError as error:
        return _fail(str(error), EXIT_FAILED)
    if args.model is not None:
        _check_model_fits(model, data, args.model, args.dataset)
    else:
        try:
            model = build_model(config, data)
        except SpecError as error:
            raise UsageError(f"--arch: {error}") from None
        except ValueError as error:
            raise UsageError(str(error)) from None
    x, y = {
        "train": (data.x_train, data.y_train),
        "val": (data.x_val, data.y_val),
        "test": (data.x_test, data.y_test),
    }[args.split]
    if args.sample >= len(x):
        raise UsageError(
            f"--sample: {args.sample} is out of range: the {args.split} split of "
            f"{data.dataset.name} has {len(x)} samples"
            + (f" (0 to {len(x) - 1})" if len(x) else "")
        )
    i = args.sample
    result = trace(model, x[i : i + 1], y[i : i + 1], loss_for(data.task))
    if args.json:
        json.dump(result.to_dict(), sys.stdout, allow_nan=False)
        print()
        return EXIT_OK
    if data.task == "regression":
        target = f"target {y[i].tolist()}"
    else:
        name = data.class_names[y[i]] if data.class_names else str(y[i])
        target = f"label {y[i]}" + ("" if name == str(y[i]) else f" ({name})")
    print(fit(f"sample {i} of the {args.split} split of {data.dataset.name}, {target}"))
    print(fit(f"model {model.spec}"))
    print("float64, evaluation mode (BatchNorm: moving statistics; dropout off)")
    print(result.summary())
    return EXIT_OK


def _preparation_of(checkpoint: Path, dataset: str) -> dict[str, Any]:
    """How the run that wrote `checkpoint` prepared its data (seed, split, subset, CSV label
    column, and the noise of a generated `dataset` when it trained on that one), read from the
    config.json beside it, so that the data is generated and normalised as in training."""
    from .runs import CONFIG_FILE

    try:
        saved = json.loads((checkpoint.parent / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"validation_split": 0.0}
    if not isinstance(saved, dict):
        return {}
    keys = ["seed", "validation_split", "subset", "label_column"]
    if saved.get("dataset") == dataset:
        keys.append("noise")
    return {key: saved[key] for key in keys if key in saved}


def _summary(args: argparse.Namespace) -> int:
    from .presets import named, resolve
    from .spec import SpecError, build

    shape, loss, arch = args.input_shape, None, args.arch
    if shape is None:
        from . import datasets

        try:
            dataset = datasets.load(args.dataset)
        except ValueError as error:
            raise UsageError(f"--dataset: {error}") from None
        shape = dataset.input_shape
        loss = "softmax_cross_entropy" if dataset.task == "classification" else "mse"
        outputs = dataset.num_classes if dataset.task == "classification" else 1
        try:
            arch = resolve(arch, tuple(shape), outputs, dataset.task, args.dataset)
        except SpecError as error:
            raise UsageError(f"--arch: {error}") from None
    elif named(arch):
        raise UsageError(
            f"--arch: the preset {arch!r} is written for a dataset's outputs: give --dataset"
        )
    try:
        model = build(arch, shape, batch_size=args.batch_size)
    except SpecError as error:
        raise UsageError(f"--arch: {error}") from None
    print(model.spec)
    print(model.summary().format(batch_size=args.batch_size))
    _print_warnings(model, loss)
    return EXIT_OK


def _print_warnings(model: Any, loss: Any) -> None:
    """The spec's advice for this loss (nnlib.spec.warnings_for), one line each on stderr."""
    from .spec import warnings_for

    for text in warnings_for(model, loss):
        print(f"warning: {text}", file=sys.stderr)


def _datasets(args: argparse.Namespace) -> int:
    from . import datasets

    rows = [
        ("name", "task", "shape", "classes", "train", "test", "on disk", "noise", "description")
    ]
    for info in datasets.available():
        rows.append(
            (
                info.name,
                info.task,
                "x".join(map(str, info.input_shape)),
                str(info.num_classes or "-"),
                str(info.train_size),
                str(info.test_size),
                "yes" if info.on_disk else "no",
                "-" if info.noise is None else f"{info.noise:g}",
                info.description,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        *columns, description = row
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(columns, widths, strict=True))
            + "  "
            + description
        )
    return EXIT_OK


#: What `nnlib runs` leaves out: one line per batch, and summaries made for a picture.
RUNS_SKIPPED = ("batch", "histograms", "confusion", "regression")


def _runs(args: argparse.Namespace) -> int:
    from . import runs

    try:
        events = runs.follow(args.run) if args.follow else iter(runs.read(args.run))
        for event in events:
            if event.type not in RUNS_SKIPPED:
                print(f"step {event.step:>7}  {event.type:<11} {event.describe()}", flush=True)
    except runs.WriterGone as error:  # the run failed: not a usage error
        return _fail(str(error), EXIT_FAILED)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return EXIT_OK


def _runs_list(args: argparse.Namespace) -> int:
    from .runfilter import FilterError
    from .runindex import RunIndex
    from .runmeta import MetaCache
    from .runtable import format_table, record, rows_of, select_with_trials, sweep_rows, with_trials
    from .sweepindex import SweepIndex

    index = RunIndex(args.dir)
    try:
        index.check()
    except ValueError as error:
        raise UsageError(str(error)) from None
    metas = MetaCache()
    sweeps, trials = sweep_rows(SweepIndex(index.root).refresh(), metas, lambda _: True)
    rows = sorted(
        [*rows_of(index.refresh(), metas), *sweeps],
        key=lambda r: (r.summary.started is None, r.summary.started or 0),
    )
    try:  # a sweep is listed with its trials under it
        rows = with_trials(*select_with_trials(rows, trials, args.filter))
    except FilterError as error:
        raise UsageError(f"--filter: {error}") from None
    if args.json:
        print(json.dumps([record(r) for r in rows], indent=1, allow_nan=False))
    elif args.csv:
        _write_csv([record(r) for r in rows])
    else:  # on a terminal the table fits its width; piped or --wide, every column is whole
        fits = sys.stdout.isatty() and not args.wide
        print(format_table(rows, width=shutil.get_terminal_size().columns if fits else None))
    for row in rows:
        if row.summary.problem or row.meta_problem:
            problem = row.summary.problem or row.meta_problem
            print(f"warning: {row.name}: {problem}", file=sys.stderr)
        if row.summary.error:
            print(f"{row.name}: ended with an error: {row.summary.error}", file=sys.stderr)
    for line in index.skipped.values():
        print(f"warning: {line}", file=sys.stderr)
    return EXIT_OK


def _write_csv(records: list[dict[str, Any]]) -> None:
    """Records as CSV on stdout: lists joined by spaces, tables as JSON, None as an empty
    cell."""
    import csv

    from .runtable import RECORD_FIELDS

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(RECORD_FIELDS)
    for item in records:
        cells = [item[k] for k in RECORD_FIELDS]
        writer.writerow(
            [
                " ".join(c)
                if isinstance(c, list)
                else json.dumps(c)
                if isinstance(c, dict)
                else ""
                if c is None
                else c
                for c in cells
            ]
        )


def _runs_tag(args: argparse.Namespace) -> int:
    from .runmeta import tag

    try:
        meta = tag(args.run, remove=args.tags) if args.remove else tag(args.run, add=args.tags)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"{args.run}: tags {' '.join(meta.tags) or '(none)'}")
    return EXIT_OK


def _runs_note(args: argparse.Namespace) -> int:
    from .runmeta import set_note

    try:
        meta = set_note(args.run, args.text)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"{args.run}: note {meta.note!r}" if meta.note else f"{args.run}: note removed")
    return EXIT_OK


def _runs_delete(args: argparse.Namespace) -> int:
    """Never silent: without --yes it asks on a terminal, and refuses without one."""
    from .runmeta import TRASH, movable, trash

    run = Path(args.run)
    try:
        movable(run)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"nnlib runs delete: give --yes to move {run} to the trash")
        answer = input(f"move {run} to {run.parent / TRASH}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("left as it is", file=sys.stderr)
            return EXIT_FAILED
    return _move_run(run, lambda: trash(run), "moved")


def _runs_rename(args: argparse.Namespace) -> int:
    from .runmeta import movable, rename

    run = Path(args.run)
    return _move_run(run, lambda: rename(movable(run), args.name), "renamed")


def _move_run(run: Path, move: Callable[[], Path], verb: str) -> int:
    """Move a run (to the trash, or renamed), then warn about the forks that still name its
    old folder as their parent."""
    from .runmeta import children, children_warning

    try:
        forks = children(run)
        target = move()
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"{verb} {run} to {target}")
    if forks:
        print(f"warning: {children_warning(run, forks)}", file=sys.stderr)
    return EXIT_OK


def _runs_export(args: argparse.Namespace) -> int:
    from ._atomic import atomic_write_text
    from .runindex import DEFAULT_SMOOTHING, curves_csv, events_json, read_curves

    if args.csv is None and args.json is None:
        raise UsageError("nnlib runs export: give --csv FILE, --json FILE or both")
    smoothing = DEFAULT_SMOOTHING if args.smoothing is None else args.smoothing
    try:  # everything is read before anything is written
        outputs = []
        if args.csv is not None:
            outputs.append((args.csv, curves_csv(read_curves(args.run), smoothing)))
        if args.json is not None:
            outputs.append((args.json, events_json(args.run)))
    except ValueError as error:
        raise UsageError(str(error)) from None
    for target, text in outputs:
        if target == "-":
            sys.stdout.write(text)
        else:
            atomic_write_text(Path(target), text)
            print(f"wrote {target}", file=sys.stderr)
    return EXIT_OK


def _plot(args: argparse.Namespace) -> int:
    import shutil
    import time

    from .runindex import DEFAULT_SMOOTHING, CurvesFollower

    try:
        followers = [CurvesFollower(run) for run in args.runs]
    except ValueError as error:
        raise UsageError(str(error)) from None
    if len(followers) > len(PLOT_STYLES):
        raise UsageError(
            f"nnlib plot: at most {len(PLOT_STYLES)} runs overlaid, got {len(followers)}"
        )
    terminal = shutil.get_terminal_size()
    size = args.size or (max(terminal.columns, MIN_PLOT[0]), max(terminal.lines - 1, MIN_PLOT[1]))
    color = args.color == "always" or (
        args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    )
    smoothing = DEFAULT_SMOOTHING if args.smoothing is None else args.smoothing
    options = dict(metrics=args.metric, x=args.x, smoothing=smoothing, log_y=args.log_y, size=size)
    chart = plot_text([f.curves for f in followers], color=color, **options)
    if args.watch is None:
        print(chart)
        return EXIT_OK
    print(CLEAR + chart, flush=True)
    while True:
        time.sleep(args.watch)
        done = all(f.done for f in followers)  # asked first: then the last poll has it all
        try:
            if any([f.poll() for f in followers]):
                chart = plot_text([f.curves for f in followers], color=color, **options)
                print(CLEAR + chart, flush=True)
        except ValueError as error:  # a bad line written since
            return _fail(str(error), EXIT_FAILED)
        if done:
            return EXIT_OK


#: Cursor home and clear screen: `--watch` redraws in place.
CLEAR = "\x1b[H\x1b[2J"


#: plotext colours, one per overlaid run (the markers are runindex.RUN_MARKERS).
PLOT_STYLES = ("blue+", "orange+", "green+", "magenta+", "yellow+", "red+")


def plot_text(
    runs: Sequence[Any],
    metrics: Sequence[str] | None = None,
    x: str = "step",
    smoothing: float = 0.6,
    log_y: bool = False,
    size: tuple[int, int] = (80, 24),
    color: bool = False,
) -> str:
    """The charts of `nnlib plot` as text: one per metric, stacked; per run its smoothed
    training curve and its validation points (one run: its raw batch values too, faint).
    `runs` are runindex.RunCurves. Drawn with plotext (imported here, never by `import
    nnlib`), which suits a chart printed once or redrawn every few seconds."""
    import plotext as plt

    from .runindex import RUN_MARKERS, ema

    if metrics is None:
        logged = any(c.metrics("batch").count("accuracy") for c in runs)
        metrics = ["loss", "accuracy"] if logged else ["loss"]
    plt.main()  # back to the whole figure: clear_figure clears only the active subplot
    plt.clear_figure()
    plt.theme("pro" if color else "clear")
    plt.limitsize(False, False)  # the size asked for, not clipped to the terminal
    plt.plotsize(*size)
    plt.subplots(len(metrics), 1)
    for row, metric in enumerate(metrics, start=1):
        plt.subplot(row, 1)
        plt.title(metric + (" (log y)" if log_y else ""))
        plt.xlabel("epoch" if x == "epoch" else "step")
        if log_y:
            plt.yscale("log")
        for i, curves in enumerate(runs):
            name, style = curves.name, PLOT_STYLES[i]
            xs, raw = curves.series("batch", metric, x)
            if len(runs) == 1 and smoothing > 0 and len(xs):
                plt.plot(xs.tolist(), raw.tolist(), label="batch", color="gray", marker="dot")
            smooth = ema(raw, smoothing)
            if len(xs):
                label = f"{name} EMA {smoothing:g}" if smoothing > 0 else name
                marker = "braille" if color or i == 0 else RUN_MARKERS[i]
                plt.plot(xs.tolist(), smooth.tolist(), label=label, color=style, marker=marker)
            vx, val = curves.series("epoch", f"val_{metric}", x)
            if len(vx) and not all(math.isnan(v) for v in val):
                plt.scatter(
                    vx.tolist(),
                    val.tolist(),
                    label=f"{name} val",
                    color=style,
                    marker=RUN_MARKERS[i],
                )
    text = plt.build()
    return text if color else plt.uncolorize(text)


def _control(args: argparse.Namespace) -> int:
    """Send one command to a live run and print its answer: exit 0 when made, 2 when the run
    refused it (a bad value: nothing changed), 1 when it could not be delivered (the run has
    ended, has not started, is not yours) or got no answer in time."""
    from .remote import SteerError, cli_value, send

    if not args.timeout > 0 or args.timeout > 600:
        raise UsageError(
            f"nnlib control: --timeout must be in (0, 600] seconds, got {args.timeout}"
        )
    arguments = [args.arguments[0], *map(cli_value, args.arguments[1:])] if args.arguments else []
    try:
        reply = send(args.run, args.action, *arguments, timeout=args.timeout)
    except SteerError as error:
        return _fail(str(error), EXIT_FAILED)
    if not reply.ok:
        return _fail(f"refused by the run: {reply.message}", EXIT_USAGE)
    print(reply.message)
    return EXIT_OK


def _sweep(args: argparse.Namespace, signals: StopSignals) -> int:
    """Create (or reopen with --resume) a sweep folder, run its trials, print the ranking.
    Ctrl+C stops the running trials at a batch boundary (their logs end) and exits 130."""
    from .config import ConfigError
    from .sweeps import WorkersLost, create_sweep, load_sweep, run_sweep
    from .sweeps.report import best_line, failures, ranking_table, unfinished

    if (args.sweep_file is None) == (args.resume is None):
        raise UsageError("nnlib sweep: give a SWEEP.toml file, or --resume SWEEP_DIR (not both)")
    if args.resume is not None and args.sweep_dir is not None:
        raise UsageError("nnlib sweep: --sweep-dir is for a new sweep; --resume names the folder")
    for flag, value in (("--resume", args.resume), ("--sweep-dir", args.sweep_dir)):
        if value == "":
            raise UsageError(f"{flag}: give the sweep folder, got ''")
    try:
        if args.resume is not None:
            sweep_dir = Path(args.resume)
        else:
            spec = load_sweep(args.sweep_file)
            sweep_dir = create_sweep(spec, args.sweep_dir, name=Path(args.sweep_file).stem)
        index = run_sweep(
            sweep_dir,
            workers=args.workers,
            scheduler=args.scheduler,
            report=lambda line: print(line, file=sys.stderr, flush=True),
            connect_timeout=args.connect_timeout,
        )
    except ConfigError as error:  # a sweep file, folder or scheduler that cannot be used
        raise UsageError(str(error)) from None
    except WorkersLost as error:  # the scheduler is gone: the trials run so far are kept
        return _fail(str(error), EXIT_FAILED)
    except KeyboardInterrupt:
        if signals.received is None:  # not ours (a worker's): let main report it
            raise
        name = signal.Signals(signals.received).name
        print(
            f"interrupted ({name}); continue with: nnlib sweep --resume {sweep_dir}",
            file=sys.stderr,
        )
        return signals.exit_code
    from rich.console import Console

    Console().print(ranking_table(index))
    for line in failures(index):
        print(line, file=sys.stderr)
    print(best_line(index, str(sweep_dir)), file=sys.stderr)
    left = unfinished(index, str(sweep_dir))
    if left:
        print(left, file=sys.stderr)
    return EXIT_OK if index["best"] is not None and not left else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
