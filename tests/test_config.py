"""ExperimentConfig: defaults, validation naming the field, TOML files, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

import nnlib as nl
from nnlib.config import ConfigError, ExperimentConfig

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_defaults_are_valid_and_round_trip_through_toml(tmp_path):
    config = ExperimentConfig()
    assert config.dataset == "glyphs" and config.arch is None and config.optimizer == "sgd"
    path = config.save(tmp_path / "sub" / "exp.toml")
    assert path.read_text().startswith("# nnlib experiment")
    assert "arch" not in path.read_text()  # None fields are left out
    assert ExperimentConfig.load(path) == config
    assert [p.name for p in path.parent.iterdir()] == ["exp.toml"]  # no temporary left


def test_every_field_round_trips(tmp_path):
    config = ExperimentConfig(
        dataset='data/my "quoted" \\ file.csv',
        arch="conv(8,3) relu maxpool(2) dense(10)",
        epochs=3,
        batch_size=16,
        optimizer="adam",
        lr=1e-05,
        momentum=0.0,
        weight_decay=0.0005,
        l1=1e-4,
        seed=7,
        validation_split=0.0,
        subset=100,
        noise=0.3,
        data_dir="/data",
        run_dir="runs/x",
        histogram_every=3,
    )
    path = config.save(tmp_path / "exp.toml")
    loaded = ExperimentConfig.load(path)
    assert loaded == config
    assert loaded.to_dict() == config.to_dict()


@pytest.mark.parametrize(
    "field, value",
    [
        ("dataset", ""),
        ("dataset", "   "),
        ("dataset", 3),
        ("arch", ""),
        ("arch", 5),
        ("epochs", 0),
        ("epochs", -1),
        ("epochs", 2.0),
        ("epochs", True),
        ("epochs", "5"),
        ("batch_size", 0),
        ("histogram_every", 0),
        ("seed", -1),
        ("seed", 1.5),
        ("subset", 0),
        ("subset", 2.5),
        ("optimizer", "SGD"),
        ("optimizer", "lbfgs"),
        ("lr", 0),
        ("lr", -0.1),
        ("lr", float("nan")),
        ("lr", float("inf")),
        ("lr", "0.1"),
        ("lr", True),
        ("momentum", 1.0),
        ("momentum", -0.1),
        ("weight_decay", -1e-4),
        ("l1", -1e-4),
        ("l1", float("nan")),
        ("l1", "0.1"),
        ("validation_split", 1.0),
        ("validation_split", -0.1),
        ("validation_split", float("nan")),
        ("noise", -0.1),
        ("noise", float("inf")),
        ("noise", "0.2"),
        ("noise", True),
        ("data_dir", 5),
        ("data_dir", ""),
        ("run_dir", 5),
        ("run_dir", ["runs"]),
    ],
)
def test_a_bad_value_names_its_field(field, value):
    with pytest.raises(ConfigError, match=rf"^{field} must be ") as error:
        ExperimentConfig(**{field: value})
    assert str(error.value).endswith(f", got {value!r}")
    with pytest.raises(ConfigError, match=rf"^exp\.toml: {field} must be"):
        ExperimentConfig.from_dict({field: value}, source="exp.toml")
    with pytest.raises(ConfigError, match=rf"^{field} must be"):
        ExperimentConfig().replace(**{field: value})


@pytest.mark.parametrize("field", ["lr", "momentum", "weight_decay", "l1", "noise"])
def test_an_integer_past_a_floats_range_is_refused_by_name_in_one_short_line(field):
    """A JSON 10**400 made math.isfinite raise OverflowError instead of the config's error."""
    with pytest.raises(ConfigError, match=rf"^exp\.toml: {field} must be ") as error:
        ExperimentConfig.from_dict({field: 10**400}, source="exp.toml")
    assert len(str(error.value)) < 120


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_replace_ignores_unset_values():
    config = ExperimentConfig(lr=0.1, epochs=3)
    changed = config.replace(lr=0.2, epochs=None, arch=None)
    assert (changed.lr, changed.epochs, changed.arch) == (0.2, 3, None)
    assert config.lr == 0.1  # a copy


def test_from_dict_unknown_field():
    with pytest.raises(
        ConfigError,
        match=r"^my\.toml: unknown field 'learning_rate'; known "
        r"fields: .*\blr\b",
    ):
        ExperimentConfig.from_dict({"lr": 0.1, "learning_rate": 0.1}, source="my.toml")


def test_load_errors_name_the_file_and_the_problem(tmp_path):
    path = tmp_path / "exp.toml"
    with pytest.raises(ConfigError, match="no such config file"):
        ExperimentConfig.load(path)
    path.write_text('dataset = "spirals"\nepochs = \n')
    with pytest.raises(ConfigError, match=rf"^{path}: not valid TOML \(.*line 2"):
        ExperimentConfig.load(path)
    path.write_text('dataset = "spirals"\nbatchsize = 32\n')
    with pytest.raises(ConfigError, match=rf"^{path}: unknown field 'batchsize'"):
        ExperimentConfig.load(path)
    path.write_text('dataset = "spirals"\nepochs = "ten"\n')
    with pytest.raises(
        ConfigError,
        match=rf"^{path}: epochs must be a positive integer, "
        r"got 'ten'",
    ):
        ExperimentConfig.load(path)
    path.write_text("[section]\nlr = 0.1\n")
    with pytest.raises(ConfigError, match="unknown field 'section'"):
        ExperimentConfig.load(path)
    path.write_bytes(b'dataset = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match=rf"^{path}: cannot read the config file"):
        ExperimentConfig.load(path)
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(ConfigError, match="folder.toml: is a folder, not a regular file"):
        ExperimentConfig.load(tmp_path / "folder.toml")


def test_a_valid_file_with_ints_for_floats(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('dataset = "xor"\nlr = 1\nmomentum = 0\nvalidation_split = 0\n')
    config = ExperimentConfig.load(path)
    assert (config.dataset, config.lr, config.momentum, config.validation_split) == ("xor", 1, 0, 0)
    assert config.epochs == 5  # the rest are defaults


def test_the_playground_example_is_a_valid_config_of_the_playground_settings():
    """examples/playground.toml, named in the README: spirals-hard with input features, noise,
    split and L1 (issue 19 item 5)."""
    config = ExperimentConfig.load(EXAMPLES / "playground.toml")
    assert (config.dataset, config.noise, config.l1) == ("spirals-hard", 0.05, 0.0)
    model = nl.build(config.arch, (2,))
    assert isinstance(model.layers[0], nl.InputFeatures) and model.spec == config.arch
