"""`nnlib`: the headless command line — train, evaluate, summary, trace, datasets, runs,
plot, control, sweep; one module per command, assembled in `main`.

Exit codes: 0 done (an early stop included); 1 training failed (diverged, data error,
an exception; a closed stdout, `| head`, except for train and sweep, which go on unread);
2 bad arguments, config or path, with one line on stderr; 128 + the signal's number for
SIGINT (130, Ctrl+C), SIGTERM (143) and SIGHUP (129), after the run log is closed and a final
checkpoint is written.

Each command imports what it needs when it runs: `import nnlib.cli` loads no UI library.
"""

from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    OneLineParser,
    UsageError,
    describe_os_error,
)
from .experiment_args import add_experiment_arguments, config_from_args, experiment_flags
from .main import KEEP_GOING, RUNS_COMMANDS, main
from .plot import plot_text
from .signals import STOP_SIGNALS, Interrupted, StopSignals

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "KEEP_GOING",
    "RUNS_COMMANDS",
    "STOP_SIGNALS",
    "Interrupted",
    "OneLineParser",
    "StopSignals",
    "UsageError",
    "add_experiment_arguments",
    "config_from_args",
    "describe_os_error",
    "experiment_flags",
    "main",
    "plot_text",
]
