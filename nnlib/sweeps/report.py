"""The ranked table at the end of a sweep (rich, imported only when it is printed)."""

from __future__ import annotations

from typing import Any

from .driver import DONE, ranked


def ranking_table(index: dict[str, Any]) -> Any:
    """A rich Table of the trials, best first: rank, run folder, state, metric, its best
    epoch, epochs run and the parameters. Every cell is plain text (a parameter such as an
    architecture may hold brackets, an error anything): none is read as rich markup."""
    from rich.table import Table
    from rich.text import Text

    spec = index["spec"]
    metric = spec["metric"]
    table = Table(title=Text(f"sweep: {metric} ({spec['direction']}), best first"))
    names = list(spec["params"])
    for heading in ("#", "run", "state", metric, "best epoch", "epochs", *names):
        numeric = heading in ("#", metric, "best epoch", "epochs")
        table.add_column(Text(heading), justify="right" if numeric else "left")
    for rank, trial in enumerate(ranked(index), start=1):
        table.add_row(*(Text(cell) for cell in _cells(rank, trial, names)))
    return table


def _cells(rank: int, trial: dict[str, Any], names: list[str]) -> list[str]:
    """A trial's row of the ranking as text, in the table's column order; "-" where it has
    no metric or best epoch yet (the epoch counted from 1)."""
    value, best_epoch = trial["metric"], trial["best_epoch"]
    return [
        str(rank),
        _run_name(trial),
        trial["state"],
        f"{value:.4f}" if value is not None else "-",
        str(best_epoch + 1) if best_epoch is not None else "-",
        str(trial["epochs"]),
        *(str(trial["params"].get(name, "")) for name in names),
    ]


def _run_name(trial: dict[str, Any]) -> str:
    """A trial's run folder, or `trial N` before any attempt made one."""
    return trial["run"] or f"trial {trial['index']}"


def failures(index: dict[str, Any]) -> list[str]:
    """One line per failed trial: its run and why (shown under the table, whole)."""
    return [
        f"{trial['run']} failed: {trial['error']}"
        for trial in index["trials"]
        if trial["state"] == "failed"
    ]


def best_line(index: dict[str, Any], sweep_dir: str) -> str:
    """One line naming the best trial and its run directory (or saying there is none)."""
    best = index.get("best")
    if best is None:
        return "no trial finished"
    trial = index["trials"][best]
    params = "  ".join(f"{k}={v}" for k, v in trial["params"].items())
    metric = index["spec"]["metric"]
    run = f"{sweep_dir}/{trial['run']}"
    return f"best: {trial['run']}  {metric} {trial['metric']:.4f}  {params}  ({run})"


def unfinished(index: dict[str, Any], sweep_dir: str) -> str | None:
    """One line naming the trials a sweep left to run (their workers were lost again and
    again) and how to run them, or None when every trial is done."""
    left = [trial for trial in index["trials"] if trial["state"] not in DONE]
    if not left:
        return None
    names = ", ".join(_run_name(trial) for trial in left[:5])
    more = f" and {len(left) - 5} more" if len(left) > 5 else ""
    return (
        f"{len(left)} trial(s) did not run to their end ({names}{more}: "
        f"{left[0]['error'] or left[0]['state']}); continue with: nnlib sweep --resume {sweep_dir}"
    )
