"""The `nnlib` and `nntui` console scripts: a Ctrl+C at any moment of start-up is one line,
`interrupted`, and exit code 130, like a Ctrl+C later on.

Both commands install their signal handling only once their code runs, after importing
numpy, the library and, for nntui, Textual (a few hundred milliseconds on a slow machine). A
Ctrl+C in that time raised KeyboardInterrupt inside some import and printed a traceback. This
module imports nothing but importlib, signal and sys (built in, loaded in no time), so the
whole import of the real `main` happens inside the `try` below. It is a top-level module, not
`nnlib._entry`, because importing anything in the nnlib package first runs nnlib/__init__.py,
which imports numpy and every layer: the very imports that a Ctrl+C interrupts.
"""

import importlib
import signal
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as nnlib.cli reports a Ctrl+C


#: The Ctrl+Cs that _note_ctrl_c has seen.
_CTRL_C: list[int] = []


def _note_ctrl_c(signum: int, frame: object) -> None:
    """Python's SIGINT handler, but one that also leaves a note (see launch)."""
    _CTRL_C.append(signum)
    raise KeyboardInterrupt


def launch(module: str) -> int:
    """Import `module` and return what its `main()` returns; a KeyboardInterrupt that gets
    out of either (the import above all) is reported in one line.

    So is any error after a Ctrl+C: a C extension that imports a module turns the
    KeyboardInterrupt raised inside that import into its own error (numpy: "ImportError:
    PyCapsule_Import could not import module datetime", a traceback, exit 1). Python's own
    SIGINT handler is replaced by one that also notes the Ctrl+C (an ignored SIGINT stays
    ignored); the command installs its own later."""
    try:  # first: a Ctrl+C may come at once
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _note_ctrl_c)
        return importlib.import_module(module).main()
    except KeyboardInterrupt:
        pass
    except Exception:
        if not _CTRL_C:
            raise
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C cannot cut the line
    print("interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def nnlib() -> int:
    """The `nnlib` command (nnlib.cli)."""
    return launch("nnlib.cli")


def nntui() -> int:
    """The `nntui` command (nntui.cli)."""
    return launch("nntui.cli")
