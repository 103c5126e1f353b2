"""The big arrays of a run's events in its side file (nnlib.arrays): stored as a line is
written, read back as a line is read, and an event whose arrays cannot be read comes back
without them and says why."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..arrays import ArrayFileError, ArrayReader, ArrayWriter, Packer, is_packed, is_ref
from ..events import Event, FeatureMaps, packed_fields

# -- the big arrays of an event, in the side file (nnlib.arrays) ----------------------------------
#: The key an event read back gets when its arrays cannot be read: the one-line reason.
UNREADABLE = "unreadable"


def _maps_records(event: FeatureMaps) -> list[dict[str, Any]]:
    """Every maps record of a feature_maps event: each image's layers, then the filters."""
    records = [layer for image in event.images for layer in image["layers"]]
    return records + ([event.filters] if event.filters else [])


def store_arrays(event: Event, writer: ArrayWriter) -> Event:
    """The event as its line is written: its packed fields (histograms, sample predictions,
    feature maps: `nnlib.events.packed_fields`) appended to the side file as blocks, which
    the line refers to. Other events are returned as they are."""
    stored = {
        name: packer.store(getattr(event, name), writer)
        for name, packer in packed_fields(type(event)).items()
        if getattr(event, name) is not None
    }
    return dataclasses.replace(event, **stored) if stored else event


def _packed_now(event: Event) -> dict[str, Packer]:
    """The packers of the fields a record read back holds as blocks of the side file."""
    return {
        name: packer
        for name, packer in packed_fields(type(event)).items()
        if is_packed(getattr(event, name), packer.name)
    }


def has_arrays(event: Event) -> bool:
    """Whether a record read back refers to blocks of the side file."""
    return bool(_packed_now(event)) or (
        isinstance(event, FeatureMaps)
        and any(is_ref(record["data"]) for record in _maps_records(event))
    )


def resolve_arrays(event: Event, reader: ArrayReader) -> Event:
    """The event as it was emitted: what it keeps in the side file read back. When that
    cannot be (the file is missing, truncated or damaged, or its blocks do not fit the
    line), the event comes back without it (a feature_maps event with no images, a
    histograms event with no layers, samples without predictions) and with
    extra[UNREADABLE], the one-line reason, for its view to show. Lines of older logs hold
    their arrays and come back as they are."""
    if not has_arrays(event):
        return event
    try:
        return _loaded(event, reader)
    except ArrayFileError as error:
        reason = f"the {event.type} event of step {event.step} cannot be read: {error}"
        emptied = {name: packer.empty for name, packer in packed_fields(type(event)).items()}
        extra = {**event.extra, UNREADABLE: reason}
        return dataclasses.replace(event, **emptied, extra=extra)


def _loaded(event: Event, reader: ArrayReader) -> Event:
    """`event` with its side-file fields read; ArrayFileError if one cannot be, or reads back
    as what its field may not hold."""
    loaded = {
        name: _read_field(event, name, packer, reader)
        for name, packer in _packed_now(event).items()
    }
    event = dataclasses.replace(event, **loaded) if loaded else event
    return _loaded_maps(event, reader) if isinstance(event, FeatureMaps) else event


def _read_field(event: Event, name: str, packer: Packer, reader: ArrayReader) -> Any:
    """The value of one packed field of `event`, read from its blocks and held to the
    field's own check (and not packed again): blocks that do not fit are a damaged file."""
    value = packer.load(getattr(event, name), reader)
    expected = type(event).spec()[name][0](value)
    if expected is not None or is_packed(value, packer.name):
        raise ArrayFileError(
            f"{reader.path}: the blocks of {name} read back as what it may not hold "
            f"({expected or 'a reference'})"
        )
    return value


def _loaded_maps(event: FeatureMaps, reader: ArrayReader) -> FeatureMaps:
    """A feature_maps event whose pixels (schema 1: a reference per maps record) are read."""
    images = [
        {**image, "layers": [_resolved(layer, reader) for layer in image["layers"]]}
        for image in event.images
    ]
    filters = _resolved(event.filters, reader) if event.filters else None
    return dataclasses.replace(event, images=images, filters=filters)


def _resolved(record: dict[str, Any], reader: ArrayReader) -> dict[str, Any]:
    """A maps record with its pixels, read when its data is a reference to them."""
    data = record["data"]
    return {**record, "data": _pixels(record, reader) if is_ref(data) else data}


def _pixels(record: dict[str, Any], reader: ArrayReader) -> list[int]:
    """The pixels of one schema-1 maps record, read from the block its data refers to,
    which must hold uint8 values of the record's shape."""
    pixels = reader.read(record["data"])
    if pixels.dtype != np.uint8 or list(pixels.shape) != record["shape"]:
        raise ArrayFileError(
            f"{reader.path} at byte {record['data']['offset']:,}: a "
            f"{pixels.dtype} array of shape {pixels.shape}, where the maps of "
            f"{record['name']!r} are uint8 of shape {tuple(record['shape'])}"
        )
    return pixels.ravel().tolist()
