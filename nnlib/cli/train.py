"""`nnlib train`: train a model and write a run directory, or continue one (--resume) or
start one from another's checkpoint (--fork)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .argtypes import non_negative_int, positive_int
from .common import EXIT_FAILED, EXIT_OK, UsageError, fail
from .experiment_args import add_experiment_arguments, config_from_args, experiment_flags
from .modeldata import load_data_or_fail, print_warnings

if TYPE_CHECKING:
    from ..callbacks import History
    from ..config import ExperimentConfig
    from ..datasets import Prepared
    from ..experiment import Experiment
    from ..threads import Threads
    from .common import Subcommands
    from .signals import StopSignals


def add_parser(commands: Subcommands) -> None:
    """`nnlib train`: the experiment flags, and how the run is watched and kept."""
    train = commands.add_parser("train", help="train a model and write a run directory")
    add_experiment_arguments(train)
    train.add_argument(
        "--histogram-every",
        type=positive_int,
        help="weight/gradient histograms every N batches (default 50)",
    )
    train.add_argument(
        "--early-stopping",
        type=non_negative_int,
        metavar="PATIENCE",
        help="stop when val_loss has not improved for PATIENCE epochs",
    )
    train.add_argument(
        "--checkpoint-every",
        type=non_negative_int,
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
        type=positive_int,
        help="BLAS threads (default: 1 on machines with 2 cores or fewer, "
        "where more were measured slower; else the BLAS default)",
    )
    train.add_argument(
        "--replicas",
        type=positive_int,
        metavar="N",
        help="train each batch in N parts at once, on N threads of one BLAS thread each "
        "(default 1; not for models with batchnorm or dropout)",
    )
    train.add_argument(
        "--processes",
        action="store_true",
        help="with --replicas N: train the parts beyond the first in child processes instead "
        "of threads (no GIL between them: faster on small nets)",
    )


def run(args: argparse.Namespace, signals: StopSignals) -> int:
    """Train to the end, a stop or a signal; exit 0 when the run ended the ordinary way."""
    from ..runs import EVENTS_FILE
    from ..threads import AUTO, replica_count

    threads = _threads(args)
    config = train_config(args)
    try:
        data = load_data_or_fail(config)
    except ValueError as error:
        return fail(str(error), EXIT_FAILED)
    experiment = _experiment(args, config, data)
    _check_replicas(experiment, threads)
    # From here a stop signal ends the run at a batch boundary, through on_train_end (a
    # signal before fit stops it at its start): the run is never left half-made.
    signals.trainer = experiment.trainer
    asked = None if threads == AUTO else replica_count(threads)
    _print_start(experiment, asked, resumed=args.resume is not None)
    run_dir = experiment.run_dir
    try:
        history = experiment.fit(threads=threads)
    except Exception as error:  # the run log holds the 'end' event with the error, if any
        logged = f" (log: {run_dir})" if (run_dir / EVENTS_FILE).is_file() else ""
        return fail(f"training failed: {type(error).__name__}: {error}{logged}", EXIT_FAILED)
    return _print_end(experiment, history, signals)


def _threads(args: argparse.Namespace) -> Threads:
    """What --threads and --replicas ask for: a BLAS count (AUTO by default, which continues
    a resumed run on the replicas it trained with), or a plan whose replicas each call a
    1-thread BLAS (nnlib.threads)."""
    from ..threads import AUTO, ThreadPlan, resolve_threads

    if args.processes and (args.replicas or 1) < 2:
        raise UsageError("--processes runs the parts of --replicas N in processes; give N >= 2")
    if args.replicas is None:  # AUTO: a resumed run keeps its replicas (Trainer.fit)
        return args.threads if args.threads is not None else AUTO
    if args.replicas == 1:
        return resolve_threads("--threads", args.threads if args.threads is not None else AUTO)
    if args.threads not in (None, 1):
        raise UsageError(
            f"--replicas {args.replicas} trains each replica on one BLAS thread; got --threads "
            f"{args.threads} (leave it out or give 1)"
        )
    return ThreadPlan(replicas=args.replicas, processes=args.processes)


def _check_replicas(experiment: Experiment, threads: Threads) -> None:
    """A usage error, before the run starts (its new folder taken back), when the model has
    a layer that --replicas cannot split a batch for (`nnlib.replicas.check_splittable`)."""
    from ..replicas import NotSplittable, check_splittable
    from ..threads import replica_count

    try:
        check_splittable(experiment.model, replica_count(threads))
    except NotSplittable as error:
        if experiment.new_run is not None:
            experiment.new_run.discard()
        raise UsageError(f"--replicas: {error}") from None


def _experiment(args: argparse.Namespace, config: ExperimentConfig, data: Prepared) -> Experiment:
    """The run set up (or resumed) with its callbacks; a spec, run folder or value that
    cannot be used is a usage error."""
    from ..callbacks import EarlyStopping, ProgressBar
    from ..experiment import resume, setup
    from ..runs import RunDirError
    from ..spec import SpecError

    callbacks: list[Any] = []
    if args.early_stopping is not None:
        callbacks.append(EarlyStopping(patience=args.early_stopping))
    if not args.quiet:
        callbacks.append(ProgressBar())
    try:
        if args.resume is not None:
            return resume(args.resume, data=data, callbacks=callbacks, checkpoints=True)
        return setup(config, data=data, callbacks=callbacks, checkpoints=True)
    except SpecError as error:
        raise UsageError(f"--arch: {error}") from None
    except RunDirError as error:
        raise UsageError(f"--run-dir: {error}" if config.run_dir else str(error)) from None
    except ValueError as error:
        raise UsageError(str(error)) from None


def _print_start(experiment: Experiment, replicas: int | None, resumed: bool) -> None:
    """Where the run starts from (and, `resumed`, on how many replicas, when it trained on
    more than one or `replicas`, the count the flags ask for, changes that; None: AUTO keeps
    the run's; a fork's plan is its own), where it is written, its size and the spec's
    warnings."""
    start = experiment.trainer.resume_from
    if start is not None:
        print(
            f"continuing from {start.source} (step {experiment.trainer.global_step})",
            file=sys.stderr,
        )
        if resumed:
            _print_replicas(start.replicas, replicas, start.replica_processes)
    print(
        f"run: {experiment.run_dir}  arch: {experiment.arch}  "
        f"params: {experiment.model.summary().total_params:,}",
        file=sys.stderr,
    )
    print_warnings(experiment.model, experiment.loss)


def _print_replicas(trained: int, asked: int | None, processes: bool) -> None:
    """How a resumed run goes on: on the replicas it trained with (`processes`: in child
    processes), or (a note) on another count, which sums each batch's gradient in another
    order."""
    if asked is None or asked == trained:
        where = " in processes" if processes and asked is None else ""
        change = " (--replicas to change)" if asked is None else ""
        if trained > 1:
            print(f"on {trained} replicas{where}, as it trained{change}", file=sys.stderr)
        return
    print(
        f"note: the run trained on {trained} replica{'s' * (trained > 1)}; on {asked} each "
        "batch's gradient is summed in another order, so it will not go on bit for bit as it "
        "would have",
        file=sys.stderr,
    )


def _print_end(experiment: Experiment, history: History, signals: StopSignals) -> int:
    """How the run ended, with its test scores, as one line each; the exit code."""
    run_dir = experiment.run_dir
    if history.reason == "diverged":
        return fail(f"training diverged (loss is NaN or inf); log: {run_dir}", EXIT_FAILED)
    if signals.received is not None:  # fit has returned: the final model is on disk
        name = signal.Signals(signals.received).name
        print(f"interrupted ({name}); run log and final model in {run_dir}", file=sys.stderr)
        return signals.exit_code
    _print_test(experiment)
    print(f"done ({history.reason}); run written to {run_dir}", file=sys.stderr)
    return EXIT_OK


def _print_test(experiment: Experiment) -> None:
    """The scores of the run's 'test' event, when its TestEvaluator made one, as one line."""
    from ..callbacks.testset import TestEvaluator

    tested = next(
        (c.last for c in experiment.trainer.callbacks if isinstance(c, TestEvaluator)), None
    )
    if tested is not None:
        scores = {"loss": tested.loss, "accuracy": tested.accuracy}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if v is not None)
        print(f"test  {shown}", file=sys.stderr)


def train_config(args: argparse.Namespace) -> ExperimentConfig:
    """The config `nnlib train` runs: from the flags; a resumed run's own (which takes no
    experiment flags: a fork changes a run); or a fork's, the flags being its changes."""
    from ..config import ConfigError
    from ..experiment import fork_config

    own = {"checkpoint_every": args.checkpoint_every, "histogram_every": args.histogram_every}
    given = {**experiment_flags(args), **own}
    flags = {k: v for k, v in given.items() if v is not None}
    try:
        if args.resume is not None:
            return _resumed_config(args, flags)
        if args.fork is not None:
            if args.config:
                raise UsageError("--fork takes its config from the run it forks, not --config")
            return fork_config(args.fork, **flags)
        return config_from_args(args).replace(**flags)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def _resumed_config(args: argparse.Namespace, flags: dict[str, Any]) -> ExperimentConfig:
    """The config of the run --resume continues, which takes no flag that would change it."""
    from ..config import ExperimentConfig

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
