"""A replica in another process: `ThreadPlan(replicas=N, processes=True)` (nnlib.replicas).

Why: two threads in one process hand the GIL over at every numpy call, and on the small
nets (LeNet-5, the tutorial CNN) that kept two replicas' threads from halving a step
(LeNet-5 at batch 64: 3.8-5.0 ms against 4.7-5.4 on one thread), while two processes ran
their halves as fast as one alone (2.95-3.33 ms; benchmarks/README.md).

How: the parameters and their gradients live in one shared memory map of an unnamed file
(memfd, or a temporary file deleted at once), handed to the child by descriptor, so nothing
is left behind however either process ends. The model's parameter values are moved into it
for the run, so the optimizer's in-place steps reach the child; the child trains its part
on its own copy of the model (pickled) whose values are views of the same map, and writes
its gradients there, where the parent adds them into the model's as a thread replica's are
(in the same order: the sums, and so a resume, are the same bit for bit). Each step puts the
part in a second map and sends its place and the layers' modes down the child's stdin; the
child's loss and outputs come back on its stdout (pickles). The child is a new interpreter
(no fork of a process with threads) in its own session, so a terminal's Ctrl+C or hang-up
goes to the parent alone, which ends the run and closes the pipe; a child whose pipe closes
(its parent gone, even by SIGKILL) exits.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from .layers.base import Param
from .losses import Loss
from .model import Sequential
from .training_pass import train_pass

#: Each parameter's place in the map starts on a cache line.
_ALIGN = 64
#: The inputs' map is made smaller for a part this many times smaller than its slot.
SHRINK_BELOW = 4
#: The child's environment: its BLAS runs one thread, as a thread replica's does
#: (nnlib.threads), and glibc's malloc keeps the memory it frees (arrays below 32 MiB from
#: the heap, which is never trimmed): a fresh child otherwise returned pages at every step
#: and faulted them in again, and trained LeNet-5's half batch of 32 in 3.5-4.1 ms a step
#: where a forked one took 2.9 (with this: 2.9-3.3). The child is nnlib's alone, so the
#: setting touches nothing of the user's.
_CHILD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
}


#: The child's command (`python -c`): as `python -m nnlib.replica_process`, but without the
#: working directory first on its module path, where a folder named numpy (or an older
#: nnlib) would shadow what the parent imported; `_search_path` puts the working directory
#: back where the parent had it.
_CHILD_MAIN = (
    "import sys\n"
    "if sys.path and sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "from nnlib.replica_process import main\n"
    "main()\n"
)


def _check_importable(model: Sequential, loss: Loss) -> None:
    """ReplicaProcessError for a layer or loss whose class is defined in the script being
    run: its module is `__main__`, which in the child is another program."""
    for part in (*model.layers, loss):
        kind = type(part)
        if kind.__module__ == "__main__":
            raise ReplicaProcessError(
                f"replica processes: {kind.__name__} is defined in the script being run "
                "(__main__), which a child process cannot import; move it to a module "
                "beside the script, or train on thread replicas (processes=False)"
            )


def _memory_file() -> IO[bytes]:
    """An unnamed file in memory (Linux's memfd; elsewhere a temporary file, deleted at
    once). A file on a disk would do too, but its mapped pages are written back and then
    fault at their next write: LeNet-5's half-batch step took 3.4 ms against 2.5-3.0."""
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("nnlib-replicas"), "w+b")
    return tempfile.TemporaryFile()


def _search_path() -> str:
    """The parent's module search path for the child, which unpickles the model's layers:
    a layer class from a module the parent imports (a script's folder, a test's) is found."""
    return os.pathsep.join(os.getcwd() if entry == "" else entry for entry in sys.path)


class ReplicaProcessError(RuntimeError):
    """A replica process could not start, failed in a step, or ended."""


#: Where each parameter lies in a map: (byte offset, shape, dtype string).
_Places = list[tuple[int, tuple[int, ...], str]]


def _layout(params: list[Param]) -> tuple[_Places, int]:
    """(offset, shape, dtype) of each parameter in a copy of them all, and the bytes that
    copy takes: the map holds the values, then each child's gradients, in this layout."""
    places, offset = [], 0
    for param in params:
        places.append((offset, param.value.shape, param.value.dtype.str))
        offset += _aligned(param.value.nbytes)
    return places, max(offset, _ALIGN)


def _aligned(size: int) -> int:
    """`size` bytes rounded up to whole cache lines."""
    return -(-size // _ALIGN) * _ALIGN


def _views(buffer: mmap.mmap, places: _Places, start: int) -> list[np.ndarray]:
    """The arrays at `places` in `buffer`, from byte `start` on."""
    return [
        np.ndarray(shape, np.dtype(dtype), buffer=buffer, offset=start + offset)
        for offset, shape, dtype in places
    ]


class ProcessReplicas:
    """`count` child processes, each training a part of each batch for `model` (see the
    module's docstring). `send` child k a part, train another meanwhile, then `receive` its
    loss and outputs; `gradients[k]` are then its part's. `close` ends the children and gives
    the model's parameters back their own arrays."""

    def __init__(self, model: Sequential, loss: Loss, count: int) -> None:
        if os.name != "posix":  # the maps go to the child by descriptor (pass_fds)
            raise ReplicaProcessError(
                "replica processes need a POSIX system (Linux, macOS); train on thread "
                "replicas (processes=False)"
            )
        _check_importable(model, loss)
        self.count = count
        self.params = model.parameters()
        places, size = _layout(self.params)
        total = (1 + count) * size  # the values, then each child's gradients
        self._file = _memory_file()
        self._file.truncate(total)
        self._map = mmap.mmap(self._file.fileno(), total)
        self.values = _views(self._map, places, 0)
        self.gradients = [_views(self._map, places, (1 + k) * size) for k in range(count)]
        for param, view in zip(self.params, self.values, strict=True):
            np.copyto(view, param.value)
            param.value = view
        # The parts go through a second map, resized when a part outgrows its slot or is
        # SHRINK_BELOW times smaller (`send`).
        self._inputs = _memory_file()
        self._inputs_map: mmap.mmap | None = None
        self._slot = 0
        self._children: list[subprocess.Popen[bytes]] = []
        self._busy: set[int] = set()  # children sent a step whose answer is not read yet
        try:
            for k in range(count):
                self._children.append(self._start())
                self._send_model(k, ("init", model.replica(), loss, places, total, (1 + k) * size))
            for k in range(count):
                self._receive(k)
        except BaseException:
            self.close()
            raise

    def _send_model(self, k: int, message: tuple[Any, ...]) -> None:
        """Send child k its model: a ReplicaProcessError when the model cannot be pickled
        (a layer class defined inside a function, a lock in a layer)."""
        try:
            self._send(k, message)
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            raise ReplicaProcessError(
                f"replica processes: the model cannot be sent to a child process ({error}); "
                "train it on thread replicas (processes=False)"
            ) from None

    def _start(self) -> subprocess.Popen[bytes]:
        descriptors = (self._file.fileno(), self._inputs.fileno())
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD_MAIN, *map(str, descriptors)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=descriptors,
            start_new_session=True,  # the terminal's signals go to the parent alone
            env={**os.environ, **_CHILD_ENV, "PYTHONPATH": _search_path()},
        )

    def send(self, k: int, x: np.ndarray, y: np.ndarray, share: float, modes: list[bool]) -> None:
        """Start child k on a part; the parameters' values it reads are the model's now."""
        for param, view in zip(self.params, self.values, strict=True):
            if param.value is not view:  # an optimizer that assigned a new array
                np.copyto(view, param.value)
                param.value = view
        slot = _aligned(x.nbytes) + _aligned(y.nbytes)
        # The child maps the resized file at its next step (it reads nothing between steps).
        # A part 4x smaller gives the memory back (a batch size steered up and down again),
        # a part smaller by less keeps the map (an epoch's shorter last batch).
        if slot > self._slot or slot * SHRINK_BELOW < self._slot:
            self._slot = slot
            self._inputs.truncate(self.count * slot)
            self._inputs_map = mmap.mmap(self._inputs.fileno(), self.count * slot)
        assert self._inputs_map is not None
        start = k * self._slot
        parts = []
        for array, offset in ((x, start), (y, start + _aligned(x.nbytes))):
            into = np.ndarray(array.shape, array.dtype, buffer=self._inputs_map, offset=offset)
            np.copyto(into, array)
            parts.append((array.shape, array.dtype.str, offset))
        self._send(k, ("step", parts, len(self._inputs_map), share, modes))
        self._busy.add(k)

    def receive(self, k: int) -> tuple[float, np.ndarray]:
        """Child k's part's mean loss and outputs, once it has written its gradients."""
        return self._receive(k)

    def close(self) -> None:
        """End the children (`_end`) and give the parameters their own arrays again, so
        nothing refers to the map once it is closed. The files are closed however this ends
        (a second Ctrl+C while a child ends)."""
        try:
            self._give_arrays_back()
            children, self._children = self._children, []
            busy, self._busy = self._busy, set()
            _end(children, busy)
        finally:
            self.values, self.gradients = [], []
            self._inputs_map = None
            self._inputs.close()
            self._file.close()  # the maps go with the last array that views them

    def _give_arrays_back(self) -> None:
        """Each parameter whose value is still its view of the map gets an array of its own."""
        for param, view in zip(self.params, self.values, strict=True):
            if param.value is view:
                param.value = np.array(view)

    def _send(self, k: int, message: tuple[Any, ...]) -> None:
        stream = self._children[k].stdin
        assert stream is not None
        try:
            pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
            stream.flush()
        except OSError:  # BrokenPipeError: it has ended
            raise self._ended(k) from None

    def _receive(self, k: int) -> Any:
        stream = self._children[k].stdout
        assert stream is not None
        try:
            kind, payload = pickle.load(stream)
        except (EOFError, OSError, pickle.UnpicklingError):
            self._busy.discard(k)
            raise self._ended(k) from None
        self._busy.discard(k)  # (not when the read itself was interrupted: still busy)
        if kind == "error":
            raise ReplicaProcessError(f"replica process {k + 1}: {payload}")
        return payload

    def _ended(self, k: int) -> ReplicaProcessError:
        child = self._children[k]
        try:
            code: int | None = child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        how = "is not answering" if code is None else f"ended (exit code {code})"
        return ReplicaProcessError(f"replica process {k + 1} {how}")


def _end(children: list[subprocess.Popen[bytes]], busy: set[int]) -> None:
    """End `children`: one waiting for a message ends when its pipe closes; one still in a
    step nobody will read (`busy`: a Ctrl+C left it there) is killed at once rather than
    waited for; one that outlives 10 s is killed."""
    for k, child in enumerate(children):
        if k in busy:
            child.kill()
        _close_pipes(child)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _close_pipes(child: subprocess.Popen[bytes]) -> None:
    """Close the pipes to a child, which ends it; a child gone has a broken pipe."""
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


# -- the child ----------------------------------------------------------------------------
class _Child:
    """The child's side: the replica on the parameters' map (`init`), then a part a step
    (`step`), its gradients written into the map when its loss is finite."""

    def __init__(self, descriptors: tuple[int, int]) -> None:
        self.descriptors = descriptors
        self.model: Sequential | None = None
        self.loss: Loss | None = None
        self.gradients: list[np.ndarray] = []
        self.inputs: mmap.mmap | None = None

    def init(
        self,
        model: Sequential,
        loss: Loss,
        places: _Places,
        total: int,
        start: int,
    ) -> None:
        buffer = mmap.mmap(self.descriptors[0], total)
        for param, view in zip(model.parameters(), _views(buffer, places, 0), strict=True):
            param.value = view
        self.model, self.loss, self.gradients = model, loss, _views(buffer, places, start)

    def step(
        self,
        parts: list[tuple[tuple[int, ...], str, int]],
        size: int,
        share: float,
        modes: list[bool],
    ) -> tuple[float, np.ndarray]:
        """Train the part the parent put in the inputs' map (mapped again once it grew),
        in the parent's layer modes."""
        model, loss = self.model, self.loss
        assert model is not None and loss is not None, "a step before init"
        if self.inputs is None or len(self.inputs) != size:
            self.inputs = mmap.mmap(self.descriptors[1], size)
        x, y = (
            np.ndarray(shape, np.dtype(dtype), buffer=self.inputs, offset=offset)
            for shape, dtype, offset in parts
        )
        for layer, training in zip(model.layers, modes[1:], strict=True):
            layer.training = training
        model.training = modes[0]
        value, outputs = train_pass(model, loss, x, y, share)
        if np.isfinite(value):
            for view, param in zip(self.gradients, model.parameters(), strict=True):
                np.copyto(view, param.grad)
        return value, outputs


def _serve(descriptors: tuple[int, int], reader: IO[bytes], writer: IO[bytes]) -> None:
    """Answer the parent until its pipe closes, a message at a time. What fails is sent
    back as an error, not raised: the parent names it."""
    child = _Child(descriptors)
    answers: dict[str, Callable[..., Any]] = {"init": child.init, "step": child.step}
    while True:
        try:
            kind, *arguments = pickle.load(reader)
        except EOFError:
            return
        except Exception as error:  # a class it cannot import: said, then the stream is lost
            unreadable = "cannot unpickle what the parent sent (are its classes importable?)"
            _reply(writer, ("error", f"{unreadable}: {_detail(error)}"))
            return
        try:
            reply: tuple[str, Any] = ("ok", answers[kind](*arguments))
        except Exception as error:  # sent to the parent, which raises it by name
            reply = ("error", _detail(error))
        if not _reply(writer, reply):
            return


def _detail(error: Exception) -> str:
    """An error as its one-line form, "ValueError: ..."."""
    return traceback.format_exception_only(type(error), error)[-1].strip()


def _reply(writer: IO[bytes], reply: tuple[str, Any]) -> bool:
    """Send `reply`; False when the parent has gone (it stopped waiting: a Ctrl+C)."""
    try:
        pickle.dump(reply, writer, protocol=pickle.HIGHEST_PROTOCOL)
        writer.flush()
    except OSError:  # BrokenPipeError
        return False
    return True


def main() -> None:
    """The child (`_CHILD_MAIN PARAMS INPUTS`), on the descriptors of the parameters' and
    the inputs' maps."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):  # the parent ends the run, then the pipe
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    # The pipe to the parent keeps descriptor 1's file; a print (or a library's) goes to
    # stderr instead of into a reply.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve((int(sys.argv[1]), int(sys.argv[2])), sys.stdin.buffer, replies)
