"""Messages between the training worker, the screens and the app."""

from __future__ import annotations

from textual.message import Message

from nnlib.config import ExperimentConfig

from .bridge import Snapshot


class RunUpdate(Message):
    """One bridge snapshot, posted from the training thread (post_message is thread-safe)."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class StartRun(Message):
    """The setup screen asks the app to train this experiment."""

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__()
        self.config = config
