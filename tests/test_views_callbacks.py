"""The Samples, Features and test callbacks on tiny models: what each event carries, its
size, and that the numbers are the model's (a feature map of a hand-set filter is the plain
loop convolution of tests/reference.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import reference as ref

import nnlib
from nnlib import events, runs
from nnlib.callbacks import Callback
from nnlib.callbacks.features import FeatureMaps, layer_maps, pick_images
from nnlib.callbacks.samples import FILE
from nnlib.config import ExperimentConfig
from nnlib.experiment import setup
from nnlib.presets import lenet5
from nnlib.runindex import summarize

TINY = "conv(2,3) relu maxpool(2) dense(10)"


def decoded(record: dict) -> np.ndarray:
    """A maps record back in its own units: lo + data / 255 * (hi - lo), per channel."""
    data = np.asarray(record["data"], dtype=np.float64).reshape(record["shape"]) / 255
    lo, hi = np.asarray(record["lo"]), np.asarray(record["hi"])
    return lo[:, None, None] + data * (hi - lo)[:, None, None]


def test_a_feature_map_of_a_hand_set_filter_is_the_plain_loop_convolution():
    model = nnlib.build("conv(2,3) maxpool(2) dense(3)", (6, 6, 1), seed=0)
    kernel = np.zeros((3, 3, 1, 2), dtype=np.float32)
    kernel[:, :, 0, 0] = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]  # Sobel: vertical edges
    kernel[1, 1, 0, 1] = 1.0  # identity (cut to the valid part)
    model.layers[0].params["W"].value[...] = kernel
    model.layers[0].params["b"].value[...] = [0.5, 0.0]
    image = np.random.default_rng(0).random((6, 6, 1)).astype(np.float32)
    model.train()
    conv, pool = layer_maps(model, image, channels=16, side=28)
    assert model.training  # evaluation mode only for the pass
    expected = ref.conv2d_forward(image[None], kernel, np.array([0.5, 0.0]), (1, 1), (0, 0, 0, 0))
    assert conv["shape"] == [2, 4, 4] and pool["shape"] == [2, 2, 2]
    step = (np.asarray(conv["hi"]) - np.asarray(conv["lo"])).max() / 255
    np.testing.assert_allclose(decoded(conv), np.moveaxis(expected[0], -1, 0), atol=step / 2 + 1e-6)
    pooled = ref.maxpool_forward(expected, (2, 2), (2, 2))
    np.testing.assert_allclose(decoded(pool), np.moveaxis(pooled[0], -1, 0), atol=step / 2 + 1e-6)


def test_maps_are_capped_in_channels_and_side():
    model = nnlib.build("conv(20,3,pad=1) dense(2)", (64, 64, 1), seed=0)
    (conv,) = layer_maps(model, np.ones((64, 64, 1), np.float32), channels=16, side=28)
    assert conv["shape"] == [16, 22, 22] and len(conv["data"]) == 16 * 22 * 22


def test_the_images_are_the_first_of_different_classes():
    assert pick_images(np.array([3, 3, 1, 3, 0, 1]), 2) == [0, 2]
    assert pick_images(np.array([5, 5, 5]), 2) == [0, 1]  # one class: the next ones


class Seen(Callback):
    """Keeps the validation outputs of every epoch, and asks FeatureMaps for an update
    after the first batch."""

    def __init__(self) -> None:
        self.outputs: list[np.ndarray] = []

    def on_batch_end(self, trainer, batch, logs):
        if trainer.global_step == 1:
            next(c for c in trainer.callbacks if isinstance(c, FeatureMaps)).request()

    def on_epoch_end(self, trainer, epoch, logs):
        self.outputs.append(trainer.validation_outputs.copy())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Seen, object]:
    run_dir = tmp_path_factory.mktemp("views") / "run"
    config = ExperimentConfig(
        dataset="glyphs", arch=TINY, epochs=2, subset=400, batch_size=50, run_dir=str(run_dir)
    )
    seen = Seen()
    experiment = setup(config, callbacks=[seen])
    experiment.fit()
    return run_dir, seen, experiment


def test_the_images_are_stored_once_as_uint8_and_predictions_per_epoch(tiny_run):
    run_dir, seen, experiment = tiny_run
    with np.load(run_dir / FILE) as stored:
        images, labels = stored["images"], stored["labels"]
    assert images.dtype == np.uint8 and images.shape == experiment.data.x_val.shape
    np.testing.assert_array_equal(labels, experiment.data.y_val)
    samples = [e for e in runs.read(run_dir) if e.type == "samples"]
    assert [e.epoch for e in samples] == [0, 1] and all(e.file == FILE for e in samples)
    for event, outputs in zip(samples, seen.outputs, strict=True):
        assert event.predicted == outputs.argmax(axis=1).tolist()
        top = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        top = top.max(axis=1) / top.sum(axis=1)
        np.testing.assert_array_equal(event.confidence, np.rint(top * 100).astype(int))


def test_feature_maps_at_start_each_epoch_and_on_request(tiny_run):
    run_dir, _, _ = tiny_run
    maps = [e for e in runs.read(run_dir) if e.type == "feature_maps"]
    # asked for after step 1 (by a callback after FeatureMaps): served after the next batch
    assert [(e.trigger, e.step) for e in maps] == [
        ("start", 0),
        ("request", 2),
        ("epoch", 8),
        ("epoch", 16),
    ]
    first = maps[0]
    assert len(first.images) == 4
    assert [layer["shape"] for layer in first.images[0]["layers"]] == [[2, 26, 26], [2, 13, 13]]
    assert first.filters["shape"] == [2, 3, 3]


def test_the_test_split_is_evaluated_when_the_run_ends(tiny_run):
    run_dir, _, experiment = tiny_run
    (test,) = [e for e in runs.read(run_dir) if e.type == "test"]
    x, y = experiment.data.x_test, experiment.data.y_test
    scores = experiment.trainer.evaluate(x, y)
    matrix = np.asarray(test.matrix)
    assert test.trigger == "end" and test.samples == len(x) == matrix.sum()
    assert test.accuracy == pytest.approx(scores["accuracy"]) == np.trace(matrix) / len(x)
    assert test.loss == pytest.approx(scores["loss"])
    assert summarize(run_dir).test_value == pytest.approx(test.accuracy)  # the runs table


def test_an_mnist_size_epoch_of_events_stays_small():
    """LeNet-5 on 28x28: a feature_maps event of four images, and samples of 6,000."""
    model = nnlib.build(lenet5(10), (28, 28, 1), seed=0)
    image = np.random.default_rng(0).random((28, 28, 1)).astype(np.float32)
    layers = layer_maps(model, image, 16, 28)
    values = sum(len(layer["data"]) for layer in layers)
    assert values == 6 * 784 + 6 * 196 + 16 * 100 + 16 * 25
    line = events.encode("feature_maps", 0, {"images": [{"index": 0, "layers": layers}] * 4})
    assert len(line) < 150_000
    samples = events.encode(
        "samples", 0, {"file": FILE, "predicted": [9] * 6000, "confidence": [100] * 6000}
    )
    assert len(samples) < 50_000


def test_a_maps_record_that_does_not_add_up_is_refused():
    bad = {"name": "c", "shape": [1, 2, 2], "lo": [0.0], "hi": [1.0], "data": [0, 1, 2]}
    with pytest.raises(events.EventError, match="data must hold C\\*H\\*W values"):
        events.make("feature_maps", 0, {"images": [{"index": 0, "layers": [bad]}]})
    with pytest.raises(events.EventError, match="confidence must be"):
        events.make("samples", 0, {"file": FILE, "predicted": [1], "confidence": [101]})
