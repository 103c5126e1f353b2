"""Messages between the training worker, the screens and the app."""

from __future__ import annotations

from textual.message import Message

from nnlib.config import ExperimentConfig


class RunUpdate(Message):
    """Updates of the run wait in the dashboard's inbox, one of them to be shown at once;
    posted from the worker's thread (post_message is thread-safe)."""


class StartRun(Message):
    """The setup screen asks the app to train this experiment (parked before its first batch
    with `start_paused`)."""

    def __init__(self, config: ExperimentConfig, start_paused: bool = False) -> None:
        super().__init__()
        self.config = config
        self.start_paused = start_paused
