"""The checks of a run-log event's fields: each takes a value and returns None when it is
fine, else the words for what was expected ("a non-negative integer"), which the codec puts
into the EventError that names the line and the field. The bounds the views' events are held
to (raster sizes, neuron counts, trace arrays) are declared here with the checks that keep
them."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..arrays import ARRAYS_FILE, MAX_INT, is_count, is_ref


class EventError(ValueError):
    """A run-log line (or an emitted event) that is not a valid event; the message starts
    with where it is (file:line)."""


# -- plain values, and the fields of a run's course ---------------------------------------------
Check = Callable[[Any], "str | None"]


def integer(value: Any) -> str | None:
    return None if is_count(value) else "a non-negative integer"


def number(value: Any) -> str | None:
    """A finite JSON number (not a boolean); integers beyond a float's range are refused."""
    if type(value) is int:
        ok = abs(value) <= MAX_INT
    else:
        ok = type(value) is float and math.isfinite(value)
    return None if ok else "a number"


def number_or_null(value: Any) -> str | None:
    """Non-finite numbers are written as null, so measured values may be null."""
    return None if value is None or number(value) is None else "a number or null"


def string(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def string_or_null(value: Any) -> str | None:
    return None if isinstance(value, str | None) else "a string or null"


def json_object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "an object"


def scalar(value: Any) -> str | None:
    ok = isinstance(value, str | bool | None) or number(value) is None
    return None if ok else "a number, string, boolean or null"


def list_of(check: Check, what: str) -> Check:
    def check_list(value: Any) -> str | None:
        ok = isinstance(value, list) and all(check(item) is None for item in value)
        return None if ok else f"a list of {what}"

    return check_list


_NUMBERS = list_of(number, "numbers")
_SIZES = list_of(integer, "sizes")

#: A field's check and whether it may be left out, keyed by name.
Spec = dict[str, tuple[Check, bool]]

_HISTOGRAM: Spec = {
    "lo": (number, False),
    "hi": (number, False),
    "counts": (list_of(integer, "non-negative integers"), False),
    "percentiles": (_NUMBERS, False),
    "nonfinite": (integer, True),
}


def _nested(value: Any, spec: Spec, expected: str) -> str | None:
    """What a field that holds an object must be: `expected`, and when it is an object, the
    first thing wrong with it under `spec` in parentheses."""
    if not isinstance(value, dict):
        return expected
    problems = problems_in(value, spec)
    return f"{expected} ({problems[0]})" if problems else None


def histogram(value: Any) -> str | None:
    return _nested(value, _HISTOGRAM, "a histogram object")


_LAYER: Spec = {
    "weights": (histogram, True),
    "grads": (histogram, True),
    "grad_norm": (number_or_null, True),
    "update_ratio": (number_or_null, True),
    "dead_fraction": (number_or_null, True),
}


def layers(value: Any) -> str | None:
    """An object of layer entries by name; what is wrong with the first bad one."""
    if not isinstance(value, dict):
        return "an object of layers"
    return _first(itertools.starmap(_layer, value.items()))


def _layer(name: str, entry: Any) -> str | None:
    """What is wrong with the entry of layer `name` of `layers`."""
    if not isinstance(entry, dict):
        return f"an object of layers (layer {name!r} is not an object)"
    problems = problems_in(entry, _LAYER)
    return f"an object of layers (layer {name!r}: {problems[0]})" if problems else None


def _first(problems: Iterable[str | None]) -> str | None:
    """The first of `problems` that is one (not None), looking no further."""
    return next(filter(None, problems), None)


def _row_width(value: Any, rows: Check) -> int | None:
    """The one length of the rows of a table (a matrix, a grid, a raster): `value` a
    non-empty list `rows` takes, all of one length; None when it is not."""
    if rows(value) is not None:
        return None
    widths = {len(item) for item in value}
    return widths.pop() if len(widths) == 1 else None


_COUNT_ROWS = list_of(list_of(integer, "counts"), "lists of counts")


def matrix(value: Any) -> str | None:
    """A square matrix of counts (rows true, columns predicted)."""
    width = _row_width(value, _COUNT_ROWS)
    square = width is not None and width == len(value)
    return None if square else "a square list of lists of non-negative integers"


def grid(value: Any) -> str | None:
    """A non-empty rectangular list of lists of counts."""
    ok = _row_width(value, _COUNT_ROWS)  # neither None nor 0
    return None if ok else "a non-empty rectangular list of lists of non-negative integers"


COMMON: Spec = {"v": (integer, True), "time": (number, True), "step": (integer, True)}


def problems_in(record: Mapping[str, Any], spec: Spec) -> list[str]:
    """What is wrong with `record` under `spec`: missing fields first, then bad values (a
    record that is no object, only that)."""
    if not isinstance(record, Mapping):
        return ["not an object"]
    missing = [name for name, (_, optional) in spec.items() if not optional and name not in record]
    if missing:
        return [f"lacks {', '.join(missing)}"]
    return _bad_values(record, spec)


def _bad_values(record: Mapping[str, Any], spec: Spec) -> list[str]:
    """What is wrong with the values of the fields `record` has, each named with the value it
    got."""
    problems = []
    for name, (check, _) in spec.items():
        if name in record:
            expected = check(record[name])
            if expected is not None:
                problems.append(f"{name} must be {expected}, got {shown(record[name])}")
    return problems


def shown(value: Any) -> str:
    """A short, one-line picture of a bad value for a message."""
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- views of the input plane and diagnostics (issue 10) ----------------------------------------
#: The characters a raster row is written with: a value 0..63 is one character; "." is none.
RASTER_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
#: No value in this cell (no data point, no finite prediction).
RASTER_EMPTY = "."
#: The largest raster, rows and columns (a boundary grid stays small: at most 64x64).
RASTER_MAX = 64
#: Neurons shown per layer, at most (a layer of 2-32-32-3 and twice that; the panel pages).
NEURONS_MAX = 64
#: Hidden layers a boundary event carries neurons for, at most (a deeper model's first ones).
NEURON_LAYERS_MAX = 64
#: Activation-map cells of all units of one event together, at most: 36 units of 16x16, 64
#: of 12x12 (2-32-32-3), 256 of 6x6; the maps get coarser as units grow, which bounds an
#: event's size.
NEURON_CELLS_MAX = 64 * 12 * 12
#: Incoming weights of all units of one event together, at most (2-32-32-3 sends 1,088).
NEURON_WEIGHTS_MAX = 4096
_RASTER_CHARS = frozenset(RASTER_ALPHABET + RASTER_EMPTY)
_STRINGS = list_of(string, "strings")


def raster(value: Any) -> str | None:
    """Rows of equal length (1..64 each way), one character per cell from RASTER_ALPHABET
    or "." (a 64x64 grid is 4 kB of JSON rather than 8-16 kB as a list of lists)."""
    expected = f"1 to {RASTER_MAX} equal strings of 1 to {RASTER_MAX} characters 0-9a-zA-Z-_ or ."
    width = _row_width(value, _STRINGS) or 0
    ok = 0 < width <= RASTER_MAX and len(value) <= RASTER_MAX
    return None if ok and all(map(_RASTER_CHARS.issuperset, value)) else expected


def pair(value: Any) -> str | None:
    ok = _NUMBERS(value) is None and len(value) == 2
    return None if ok else "a list of two numbers"


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"one of {', '.join(choices)}"

    return check


_UNIT: Spec = {
    "map": (raster, False),
    "scale": (number, False),
    "bias": (number, False),
    "weights": (_NUMBERS, True),
}


def neurons(value: Any) -> str | None:
    """At most NEURON_LAYERS_MAX layers of at most NEURONS_MAX units, each {map, scale,
    bias, [weights]}; the maps' cells and the weights of all units within their totals."""
    expected = (
        f"a list of at most {NEURON_LAYERS_MAX} {{layer, units}} objects with 1 to "
        f"{NEURONS_MAX} units each"
    )
    if not isinstance(value, list) or len(value) > NEURON_LAYERS_MAX:
        return expected
    cells = weights = 0
    for entry in value:
        problem = _neuron_layer(entry, expected)
        if problem is not None:
            return problem
        layer_cells, layer_weights = _sizes(entry["units"])
        cells += layer_cells
        weights += layer_weights
    if cells > NEURON_CELLS_MAX or weights > NEURON_WEIGHTS_MAX:
        return (
            f"{expected}, {NEURON_CELLS_MAX} map cells and {NEURON_WEIGHTS_MAX} weights in all "
            f"(got {cells} and {weights})"
        )
    return None


def _sizes(units: list[dict[str, Any]]) -> tuple[int, int]:
    """The map cells and the incoming weights of a layer's `units` (checked), which an
    event's totals bound."""
    cells = sum(len(unit["map"]) * len(unit["map"][0]) for unit in units)
    return cells, sum(len(unit.get("weights", ())) for unit in units)


def _neuron_layer(entry: Any, expected: str) -> str | None:
    """What is wrong with one {layer, units} entry of `neurons` (`expected`, and the first
    bad unit's problem), before its units are counted."""
    if not isinstance(entry, dict) or string(entry.get("layer")) is not None:
        return expected
    units = entry.get("units")
    if not isinstance(units, list) or not 0 < len(units) <= NEURONS_MAX:
        return expected
    for unit in units:
        problems = problems_in(unit, _UNIT)
        if problems:
            return f"{expected} (layer {entry['layer']!r}: {problems[0]})"
    return None


# -- views of image models and the test split (appended: Samples, Features, test results) --------
def byte(value: Any) -> str | None:
    return None if is_count(value, 255) else "an integer in 0..255"


def percent(value: Any) -> str | None:
    return None if is_count(value, 100) else "an integer in 0..100"


_BYTES = list_of(byte, "integers in 0..255")


def bytes_or_ref(value: Any) -> str | None:
    """A list of integers in 0..255, or where it was stored in the run's side file."""
    ok = is_ref(value) or _BYTES(value) is None
    return None if ok else f"a list of integers in 0..255 or a reference into {ARRAYS_FILE}"


_MAPS: Spec = {
    "name": (string, False),
    "shape": (_SIZES, False),
    "lo": (_NUMBERS, False),
    "hi": (_NUMBERS, False),
    "data": (bytes_or_ref, False),
}


def maps(value: Any) -> str | None:
    """Channels of one layer as uint8 (C, H, W), flat, each channel scaled to [lo, hi]; in
    a line written since the side file, `data` is a reference to its block there."""
    expected = "a maps object {name, shape [C, H, W], lo, hi, data}"
    problem = _nested(value, _MAPS, expected)
    if problem is not None:
        return problem
    shape = value["shape"]
    stored = is_ref(value["data"])
    if len(shape) != 3 or (not stored and len(value["data"]) != math.prod(shape)):
        return f"{expected} (data must hold C*H*W values)"
    if not len(value["lo"]) == len(value["hi"]) == shape[0]:
        return f"{expected} (lo and hi must hold one number per channel)"
    return None


_IMAGE_MAPS: Spec = {"index": (integer, False), "layers": (list_of(json_object, "objects"), False)}


def image_maps(value: Any) -> str | None:
    """A list of {index, layers} objects; what is wrong with the first bad one."""
    expected = "a list of {index, layers} objects"
    if not isinstance(value, list):
        return expected
    problem = _first(itertools.starmap(_image_maps_item, enumerate(value)))
    return None if problem is None else f"{expected} ({problem})"


def _image_maps_item(position: int, item: Any) -> str | None:
    """What is wrong with item `position` of `image_maps`: its fields, else its first bad
    layer of maps."""
    problems = problems_in(item, _IMAGE_MAPS)
    if not problems:
        problems = [
            f"layers[{k}] must be {m}"
            for k, layer in enumerate(item["layers"])
            if (m := maps(layer))
        ]
    return f"item {position}: {problems[0]}" if problems else None


# -- a warning's suggestion --------------------------------------------------------------------
#: The hyperparameters a warning's `fix` may change (each settable while a run trains).
FIXABLE = ("lr", "weight_decay")


def _non_negative(value: Any) -> str | None:
    return None if number(value) is None and value >= 0 else "a non-negative number"


_FIX: Spec = {"name": (one_of(*FIXABLE), False), "value": (_non_negative, False)}
_FORK: Spec = {"before": (integer, False), **_FIX}


def _exactly(value: Any, spec: Spec) -> bool:
    """Whether `value` is an object of exactly `spec`'s fields, each as its check wants (a
    suggestion's fields: no more, none left out)."""
    return isinstance(value, dict) and value.keys() == spec.keys() and not problems_in(value, spec)


def fix(value: Any) -> str | None:
    """A warning's suggestion as one change: {"name": "lr", "value": 0.05}."""
    expected = f'an object {{"name": one of {", ".join(FIXABLE)}, "value": number}}'
    return None if _exactly(value, _FIX) else expected


def fork(value: Any) -> str | None:
    """A warning's suggestion as a fork: that change, from the newest checkpoint before step
    `before` (where the evidence began): {"before": 1200, "name": "lr", "value": 0.05}."""
    expected = f'an object {{"before": step, "name": one of {", ".join(FIXABLE)}, "value": number}}'
    return None if _exactly(value, _FORK) else expected


# -- one sample through the network (issue 22) ---------------------------------------------------
#: An array of a trace event with at most this many values carries them all; a larger one, its
#: shape, range and mean and a heat strip.
TRACE_VALUES_MAX = 32
#: Cells of a heat strip at most: the array's values in order, in this many equal runs.
TRACE_STRIP_MAX = 64


def trace_array(value: Any) -> str | None:
    """One array of a trace: label, shape, min/max/mean (null when not finite), and either
    every value (at most TRACE_VALUES_MAX) or a heat strip of raster characters."""
    one = not problems_in(value, _TRACE_ARRAY) and ("values" in value) != ("strip" in value)
    return None if one else "a trace array object (label, shape, min, max, mean, values or strip)"


_NUMBERS_OR_NULLS = list_of(number_or_null, "numbers or nulls")


def _trace_values(value: Any) -> str | None:
    ok = _NUMBERS_OR_NULLS(value) is None and len(value) <= TRACE_VALUES_MAX
    return None if ok else f"at most {TRACE_VALUES_MAX} numbers or nulls"


def _heat_strip(value: Any) -> str | None:
    ok = isinstance(value, str) and len(value) <= TRACE_STRIP_MAX
    strip = ok and _RASTER_CHARS.issuperset(value)
    return None if strip else f"at most {TRACE_STRIP_MAX} raster characters"


_TRACE_ARRAY: Spec = {
    "label": (string, False),
    "shape": (_SIZES, False),
    "min": (number_or_null, False),
    "max": (number_or_null, False),
    "mean": (number_or_null, False),
    "values": (_trace_values, True),
    "strip": (_heat_strip, True),
}
_TRACE_ARRAYS = list_of(trace_array, "trace arrays")
_TRACE_LAYER: Spec = {
    "name": (string, False),
    "kind": (string, False),
    "arrays": (_TRACE_ARRAYS, False),
    "update": (_TRACE_ARRAYS, True),
}


def trace_layers(value: Any) -> str | None:
    if not isinstance(value, list) or any(problems_in(layer, _TRACE_LAYER) for layer in value):
        return "a list of trace layers (name, kind, arrays, [update])"
    return None
