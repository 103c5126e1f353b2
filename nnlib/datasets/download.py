"""Fetch one file over HTTP(S): mirrors in order, retries for transient errors, a timeout,
progress on stderr, a checksum check, and an atomic rename into place.

Only the standard library is used; `rich` draws the progress bar when it is installed and
stderr is a terminal (imported here, lazily, so `import nnlib` stays free of it).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .._atomic import atomic_write
from .base import DatasetError

USER_AGENT = "nnlib-datasets/0.1 (+https://pypi.org/project/nntui/)"
RETRY_DELAY = 1.0  # seconds before the second attempt; doubled for each further attempt
_CHUNK = 1 << 16


class FetchError(Exception):
    """One URL failed; `transient` says whether trying the same URL again could help."""

    def __init__(self, url: str, reason: str, *, transient: bool, offline: bool = False):
        super().__init__(f"{url}: {reason}")
        self.transient = transient
        self.offline = offline  # no connection at all (refused, DNS, unreachable)


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


class _Progress:
    """Progress on stderr: a rich bar on a terminal, else one line at start and one at the end."""

    def __init__(self, url: str, total: int | None):
        self.url, self.total, self.done, self.start = url, total, 0, time.monotonic()
        self._bar = _rich_bar() if sys.stderr.isatty() else None
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(url.rsplit("/", 1)[-1], total=total)
        else:
            size = f" ({_size(total)})" if total else ""
            print(f"nnlib: downloading {url}{size}", file=sys.stderr, flush=True)

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def stop(self) -> None:
        """Take the bar off the terminal, whether the download finished or failed."""
        if self._bar is not None:
            self._bar.stop()

    def report(self) -> None:
        """The closing line of a finished download: what it got, in how long."""
        seconds = time.monotonic() - self.start
        print(
            f"nnlib: got {self.url} ({_size(self.done)} in {seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )


def _rich_bar() -> Any:
    """A rich progress bar on stderr, with bytes and speed, or None when rich is not
    installed (imported here so that `import nnlib` stays free of it)."""
    try:
        from rich.console import Console
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn
    except ImportError:
        return None
    return Progress(
        *Progress.get_default_columns(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
        console=Console(stderr=True),
    )


def _classify(url: str, e: BaseException) -> FetchError:
    """Turn a urllib/socket exception into a FetchError that says whether to retry."""
    if isinstance(e, urllib.error.HTTPError):
        return FetchError(url, f"HTTP {e.code} {e.reason}", transient=e.code >= 500)
    if isinstance(e, TimeoutError):  # while reading: the server went quiet, try again
        return FetchError(url, "read timed out", transient=True)
    reason = e.reason if isinstance(e, urllib.error.URLError) else e
    unreachable = _unreachable(reason)
    if unreachable is not None:
        return FetchError(url, unreachable, transient=False, offline=True)
    return FetchError(url, f"transfer failed ({reason})", transient=True)


#: What a connection error says when no server could be reached, by the error's type (the
#: first that matches); None: a transfer broke off, which is worth another try.
_UNREACHABLE: tuple[tuple[type[BaseException], str | None], ...] = (
    (TimeoutError, "connection timed out"),  # while connecting: treat as unreachable
    (socket.gaierror, "cannot resolve host ({})"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, None),
    (OSError, "{}"),
)


def _unreachable(reason: object) -> str | None:
    """What a connection error says when no server could be reached (the network may be
    off: no retry, and the user is told so); None when a transfer broke off, which is worth
    another try."""
    words = next((w for kind, w in _UNREACHABLE if isinstance(reason, kind)), None)
    return None if words is None else words.format(reason)


def _fetch_once(url: str, dest: Path, md5: str | None, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (OSError, http.client.HTTPException) as e:  # URLError and HTTPError are OSErrors
        raise _classify(url, e) from None
    with response:
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        digest = hashlib.md5(usedforsecurity=False)
        progress = _Progress(url, total)

        def write(f) -> None:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _classify(url, e) from None
                if not chunk:
                    break
                f.write(chunk)
                digest.update(chunk)
                progress.advance(len(chunk))
            if total is not None and progress.done != total:
                raise FetchError(
                    url, f"truncated: got {progress.done} of {total} bytes", transient=True
                )
            if md5 is not None and digest.hexdigest() != md5:
                raise FetchError(
                    url,
                    f"checksum mismatch: md5 {digest.hexdigest()}, expected {md5}",
                    transient=False,
                )

        try:
            atomic_write(dest, write)
        except OSError as e:  # network errors arrive as FetchError: this one is local
            raise DatasetError(f"cannot write {dest} ({e.strerror or e})") from None
        finally:
            progress.stop()
        progress.report()


def fetch(
    urls: list[str], dest: Path, *, md5: str | None, timeout: float = 30.0, retries: int = 2
) -> None:
    """Download the first URL that works into `dest`, else raise DownloadFailed listing why.

    Each URL is tried up to `1 + retries` times while its errors look transient (timeouts,
    dropped connections, HTTP 5xx); refused connections and 4xx move on to the next mirror.
    A file that fails its checksum is never left at `dest`.
    """
    if retries < 0:
        raise DatasetError(f"retries must be an integer >= 0, got {retries!r}")
    failures: list[FetchError] = []
    for url in urls:
        error = _fetch_from(url, dest, md5, timeout, retries)
        if error is None:
            return
        failures.append(error)
    raise DownloadFailed(failures)


def _fetch_from(
    url: str, dest: Path, md5: str | None, timeout: float, retries: int
) -> FetchError | None:
    """Fetch from one mirror, tried again (after RETRY_DELAY, doubled each time) up to
    `retries` times while its errors look transient; None once it worked, else its last
    error."""
    attempt = 0
    while True:
        try:
            _fetch_once(url, dest, md5, timeout)
            return None
        except FetchError as e:
            if not e.transient or attempt == retries:
                return e
        time.sleep(RETRY_DELAY * 2**attempt)
        attempt += 1


def fetch_all(
    name: str,
    jobs: list[tuple[list[str], Path, str | None]],
    folder: Path,
    *,
    how_to_get: str,
    timeout: float = 30.0,
    retries: int = 2,
) -> None:
    """Fetch every `(urls, dest, md5)` job, all or nothing, so a failed download never leaves
    a partial dataset that looks complete.

    When one job fails, the files this call fetched are removed (and `folder`, if this call
    created it and it is empty) before a DatasetError is raised that says whether the network
    was unreachable and ends with `how_to_get` (which files to put where by hand).
    """
    try:
        _fetch_jobs(jobs, folder, timeout, retries)
    except DownloadFailed as e:
        cause = "no network or mirror unreachable" if e.offline else "download failed"
        raise DatasetError(f"{name}: {cause} ({e}). To use {name} offline, {how_to_get}") from None


def _fetch_jobs(
    jobs: list[tuple[list[str], Path, str | None]], folder: Path, timeout: float, retries: int
) -> None:
    """Fetch every job or none: the first error goes on once the files fetched before it
    (and `folder`, when this made it) are taken back."""
    made = None if folder.exists() else folder
    fetched: list[Path] = []
    try:
        for urls, dest, md5 in jobs:
            fetch(urls, dest, md5=md5, timeout=timeout, retries=retries)
            fetched.append(dest)
    except DatasetError:
        _remove(fetched, made)
        raise


def _remove(fetched: list[Path], folder: Path | None) -> None:
    """Take back what a failed fetch_all made: the files it fetched, and `folder` (the one it
    created) when that is left empty, so no partial dataset looks complete."""
    for path in fetched:
        path.unlink(missing_ok=True)
    if folder is not None:
        with contextlib.suppress(OSError):  # not empty, or never made: nothing to take back
            folder.rmdir()


class DownloadFailed(DatasetError):
    """Every mirror failed for one file; `offline` is True when no server could be reached."""

    def __init__(self, failures: list[FetchError]):
        self.failures = failures
        self.offline = all(f.offline for f in failures)
        super().__init__("; ".join(str(f) for f in failures))
