"""Text from a user, a file name or an exception is shown as typed, never read as Textual
markup: specs full of `[`, `]`, `|` and `=` go through every setup action without crashing
the app, and their errors show literally in notifications, dialogs and fields."""

from __future__ import annotations

import random

from helpers import SIZE, long_run, pilot_test, press, until
from textual.pilot import Pilot
from textual.widgets import Input, Static
from textual.widgets._toast import Toast

from nntui.app import NNTui
from nntui.architectures import check_spec
from nntui.screens.modals import PathScreen
from nntui.screens.setup import SetupScreen
from nntui.widgets.arch_editor import ArchEditor

#: Pieces of specs that look like markup (or break it), mixed with real layer tokens.
PIECES = (
    "conv(3)",
    "conv(3,stride=[x])",
    "maxpool",
    "dense(3)",
    "[bold]",
    "[/]",
    "[",
    "]",
    "|",
    "=",
    "[pad=0|same|valid]",
    "[@click=app.quit]",
    "relu",
    "2-[red]-3",
)


def random_specs(count: int, seed: int = 8) -> list[str]:
    """`count` specs of 1-4 pieces, from a fixed seed."""
    rng = random.Random(seed)
    specs = ["conv(3) dense(10)", "maxpool dense(3)"]  # the two reported in issue 8
    while len(specs) < count:
        specs.append(" ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4))))
    return specs


def toast_texts(app: NNTui) -> list[str]:
    """What the notifications on screen show, as rendered."""
    return [str(toast.render()) for toast in app.screen.query(Toast)]


async def typed_spec(pilot: Pilot, spec: str) -> ArchEditor:
    """Type `spec` into the architecture editor and wait for its check."""
    editor = pilot.app.screen.query_one(ArchEditor)
    arch = editor.query_one("#arch", Input)
    arch.focus()
    arch.value = ""
    await press(pilot, *spec)
    await until(pilot, lambda: editor.result is not None and editor.result.spec == spec.strip())
    return editor


@pilot_test
async def test_random_bracketed_specs_survive_every_setup_action(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        setup = app.screen
        for spec in random_specs(12):
            editor = await typed_spec(pilot, spec)
            error = editor.result.error
            assert error == check_spec(spec.strip(), setup.info).error
            # t with a valid spec would start a run; every other key is pressed each time.
            for key in ("ctrl+s", "ctrl+o", "tab", "t") if error else ("ctrl+s", "ctrl+o"):
                app.clear_notifications()
                await press(pilot, key)
                await pilot.pause()
                assert app.is_running and not app._exit, (spec, key)
                if isinstance(app.screen, PathScreen):  # a valid spec: the dialog opened
                    await press(pilot, "escape")
                    await until(pilot, lambda: app.screen is setup)
                elif key != "tab" and error:
                    await until(pilot, lambda: toast_texts(app))
                    assert any(error in text for text in toast_texts(app)), (spec, key)
            if error:
                message = str(editor.query_one("#arch-message", Static).render())
                assert message == f"✗ {error}"


@pilot_test
async def test_a_file_name_with_brackets_shows_as_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        await until(pilot, lambda: app.screen.query_one(ArchEditor).valid)
        await press(pilot, "ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, PathScreen))
        app.screen.query_one(Input).value = "exp[bold].toml"
        await press(pilot, "enter")
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert (tmp_path / "exp[bold].toml").exists()
        await until(pilot, lambda: toast_texts(app))
        assert any("saved exp[bold].toml" in text for text in toast_texts(app))

        await press(pilot, "ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, PathScreen))
        dialog = app.screen
        dialog.query_one(Input).value = "gone[/][pad=0|same].toml"
        await press(pilot, "enter")
        shown = str(dialog.query_one("#path-error", Static).render())
        assert "gone[/][pad=0|same].toml" in shown and app.is_running


@pilot_test
async def test_a_field_error_and_a_widget_notification_show_as_typed(tmp_path):
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        lr = app.screen.query_one("#lr", Input)
        lr.value = "[bold]1|2=[/]"
        await pilot.pause()
        shown = str(app.screen.query_one("#hp-error", Static).render())
        assert shown == "✗ lr must be a number, got '[bold]1|2=[/]'"
        # Widget.notify passes markup=True unless told otherwise; the app shows it plain.
        app.screen.notify("expected [stride=1], [pad=0|same|valid]", title="[b]x[/b]")
        await until(pilot, lambda: toast_texts(app))
        assert toast_texts(app) == ["[b]x[/b]\nexpected [stride=1], [pad=0|same|valid]"]
        assert app.is_running
