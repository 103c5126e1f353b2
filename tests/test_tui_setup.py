"""The setup screen shows the experiment the user asked for (flags, a config file, a load),
reads at 80x24, and every way to quit asks first while a run is in progress."""

from __future__ import annotations

import pytest
from helpers import DATASETS, SIZE, end_event, long_run, pilot_test, press, started, until
from textual.pilot import Pilot
from textual.widgets import Input, Static, TextArea

from nnlib.config import ExperimentConfig
from nntui.app import NNTui
from nntui.architectures import quick_arch
from nntui.screens.modals import ConfirmScreen, PathScreen, SpecScreen
from nntui.screens.setup import SetupScreen
from nntui.widgets.arch_editor import ArchEditor


@pilot_test
async def test_the_palettes_quit_asks_during_a_run(tmp_path):
    app = NNTui(long_run(tmp_path), start=True)
    async with app.run_test(size=SIZE) as pilot:
        dashboard = await started(pilot)
        quit_command = next(c for c in app.get_system_commands(app.screen) if c.title == "Quit")
        app.call_next(quit_command.callback)
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await press(pilot, "n")
        await until(pilot, lambda: app.screen is dashboard)
        assert dashboard.running and not app._exit
        app.call_next(quit_command.callback)
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await press(pilot, "y")
        await until(pilot, lambda: app._exit)
    assert end_event(tmp_path)["reason"] == "stopped"


async def settled(pilot: Pilot) -> ArchEditor:
    """The setup screen once its dataset list has settled and the spec on screen has been
    checked against the dataset on screen."""
    await until(pilot, lambda: isinstance(pilot.app.screen, SetupScreen))
    await pilot.pause()
    screen = pilot.app.screen
    editor = screen.query_one(ArchEditor)
    await until(
        pilot,
        lambda: (
            editor.result is not None
            and editor.result.spec == editor.spec
            and editor.result.shape == tuple(screen.info.input_shape)
        ),
    )
    return editor


@pytest.mark.parametrize(
    ("dataset", "arch"),
    [("moons", "2-16-2"), ("glyphs", "784-64-10"), ("spirals", "2-4-3")],
)
@pilot_test
async def test_the_architecture_asked_for_is_the_one_shown(tmp_path, dataset, arch):
    app = NNTui(long_run(tmp_path, dataset=dataset, arch=arch))
    async with app.run_test(size=SIZE) as pilot:
        editor = await settled(pilot)
        assert (app.screen.info.name, editor.spec) == (dataset, arch)
        assert editor.valid
        config = app.screen.current_config()
        assert (config.dataset, config.arch) == (dataset, arch)


@pilot_test
async def test_an_architecture_that_does_not_fit_is_shown_with_its_error(tmp_path):
    app = NNTui(long_run(tmp_path, dataset="glyphs", arch="2-8-3"))
    async with app.run_test(size=SIZE) as pilot:
        editor = await settled(pilot)
        assert editor.spec == "2-8-3" and not editor.valid
        assert "2-8-3" in str(editor.query_one("#arch-message", Static).render())
        await press(pilot, "t")  # refused, not replaced
        assert isinstance(app.screen, SetupScreen) and editor.spec == "2-8-3"


@pilot_test
async def test_loading_a_config_shows_its_dataset_architecture_and_epochs(tmp_path):
    path = ExperimentConfig(dataset="glyphs", arch="784-32-10", epochs=7).save(
        tmp_path / "exp.toml"
    )
    app = NNTui(long_run(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await press(pilot, "ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, PathScreen))
        app.screen.query_one(Input).value = str(path)
        await press(pilot, "enter")
        editor = await settled(pilot)
        for _ in range(5):  # let any late highlight of the list arrive
            await pilot.pause()
        config = app.screen.current_config()
        assert (config.dataset, config.arch, config.epochs) == ("glyphs", "784-32-10", 7)
        assert editor.valid


@pilot_test
async def test_picking_a_dataset_by_hand_offers_its_preset_unless_the_spec_was_typed(tmp_path):
    app = NNTui(long_run(tmp_path, arch=None))
    async with app.run_test(size=SIZE) as pilot:
        editor = await settled(pilot)
        setup = app.screen
        assert editor.spec == quick_arch(setup.info)
        setup.query_one("#dataset-list").focus()
        await press(pilot, "down")  # spirals -> moons: the offered spec follows
        editor = await settled(pilot)
        assert setup.info.name == "moons" and editor.spec == quick_arch(setup.info)
        editor.set_spec("2-5-2")  # the user's own from now on
        await press(pilot, "down")  # moons -> circles: same shape, kept
        editor = await settled(pilot)
        assert setup.info.name == "circles" and editor.spec == "2-5-2" and editor.valid
        await press(pilot, "down", "down")  # -> blobs (4 classes): kept, with its error
        editor = await settled(pilot)
        assert setup.info.name == "blobs" and editor.spec == "2-5-2" and not editor.valid
        assert "dense(4)" in str(editor.query_one("#arch-message", Static).render())


@pilot_test
async def test_the_selected_datasets_description_is_shown_whole_at_80x24(tmp_path):
    app = NNTui(long_run(tmp_path, dataset="mnist", arch=None))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        described = app.screen.query_one("#dataset-info", Static)
        width = described.content_size.width
        needed = described.get_content_height(described.size, app.size, width)
        assert needed >= 5 and described.content_size.height == needed
        assert "downloaded when training starts" in str(described.render())


@pilot_test
async def test_f2_shows_the_whole_spec_wrapped_and_applies_the_edit(tmp_path):
    app = NNTui(long_run(tmp_path, dataset="glyphs", arch=None))
    async with app.run_test(size=SIZE) as pilot:
        editor = await settled(pilot)
        lenet = editor.spec
        field = editor.query_one("#arch", Input)
        assert len(lenet) > field.content_size.width  # the one-line field shows only part
        field.focus()
        await press(pilot, "f2")
        await until(pilot, lambda: isinstance(app.screen, SpecScreen))
        text_area = app.screen.query_one(TextArea)
        assert text_area.text == lenet
        assert text_area.wrapped_document.height >= 2
        assert text_area.content_size.height >= text_area.wrapped_document.height
        text_area.text = lenet.replace("dense(84)", "dense(42)\n")
        await press(pilot, "enter")
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert editor.spec == lenet.replace("dense(84)", "dense(42)")
        editor = await settled(pilot)
        assert editor.valid
        await press(pilot, "f2")
        await until(pilot, lambda: isinstance(app.screen, SpecScreen))
        app.screen.query_one(TextArea).text = "dense(3"
        await press(pilot, "escape")  # cancelled: nothing changes
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert editor.spec == lenet.replace("dense(84)", "dense(42)")


@pilot_test
async def test_a_softmax_after_the_logits_is_a_warning_in_the_editor(tmp_path):
    """Issue 8 item 8: a double softmax trains badly without an error; the editor says so
    beside the ✓ and still accepts the spec."""
    config = ExperimentConfig(
        dataset="spirals", arch="dense(16) relu dense(3) softmax", run_dir=str(tmp_path)
    )
    app = NNTui(config)
    async with app.run_test(size=SIZE) as pilot:
        editor = await settled(pilot)
        assert editor.valid and editor.result.warnings
        message = str(editor.query_one("#arch-message", Static).render())
        assert "✓" in message and "⚠" in message and "softmax" in message
        editor.set_spec("2-16-3")
        await until(pilot, lambda: editor.result is not None and editor.result.spec == "2-16-3")
        assert editor.result.warnings == ()
        assert "⚠" not in str(editor.query_one("#arch-message", Static).render())


@pilot_test
async def test_noise_ratio_and_l1_are_set_on_the_setup_screen_and_checked_in_place(tmp_path):
    """Issue 19 item 5: a generated set's noise (its default as the placeholder; off for a
    dataset without one), the validation split and L1, each checked as typed; the run
    started from the screen gets them."""
    app = NNTui(long_run(tmp_path, arch=None), datasets=DATASETS)  # spirals, sine, glyphs, ...
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        fields = {name: screen.query_one(f"#{name}", Input) for name in ("noise", "l1")}
        fields["split"] = screen.query_one("#validation_split", Input)
        shown = screen.query_one("#hp-error", Static)
        assert not fields["noise"].disabled and fields["noise"].placeholder == "0.2"
        assert screen.current_config().noise is None  # empty: the dataset's own
        for name, bad, words, good in (
            ("noise", "-1", "noise must be a number >= 0", "0.35"),
            ("split", "1", "validation_split must be a fraction in [0, 1)", "0.3"),
            ("l1", "lots", "l1 must be a number, got 'lots'", "0.002"),
        ):
            fields[name].value = bad
            await until(pilot, lambda words=words: words in str(shown.render()))
            assert fields[name].has_class("-invalid")
            await press(pilot, "t")  # refused, in place
            assert app.screen is screen
            fields[name].value = good
            await until(pilot, lambda: str(shown.render()) == "")
        config = screen.current_config()
        assert (config.noise, config.validation_split, config.l1) == (0.35, 0.3, 0.002)

        fields["noise"].value = "-1"  # bad, but about to be off: glyphs has no noise
        screen.query_one("#dataset-list").focus()
        await press(pilot, "down", "down")
        await until(pilot, lambda: screen.info.name == "glyphs")
        assert fields["noise"].disabled and fields["noise"].placeholder == "-"
        await until(pilot, lambda: str(shown.render()) == "")
        assert screen.current_config().noise is None
        await press(pilot, "up", "up")
        await until(pilot, lambda: screen.info.name == "spirals")
        fields["noise"].value = "0.35"
        await settled(pilot)
        await press(pilot, "t")
        dashboard = await started(pilot)
        experiment = dashboard.experiment
        assert (experiment.config.noise, experiment.config.l1) == (0.35, 0.002)
        assert experiment.data.dataset.description.endswith("angular noise 0.35")
        assert experiment.trainer.optimizer.l1 == 0.002
        assert len(experiment.data.x_val) == 450  # 0.3 of 1500
        await press(pilot, "s")
        await until(pilot, lambda: dashboard.state.end is not None, "the run's end")
