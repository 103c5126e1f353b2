"""The header of a .npy member, read before any of its data: model files, checkpoints and
users' .npz datasets are all checked from their headers first (shape, dtype) so that nothing
is decompressed or allocated for an array that would be refused."""

from __future__ import annotations

from typing import IO

import numpy as np


def read_header(
    handle: IO[bytes], where: str, error: type[ValueError] = ValueError
) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from the header at `handle`'s position; `error` naming
    `where` for a format version numpy does not define (a damaged or foreign file)."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(handle)
    raise error(f"{where}: .npy format version {version} is not supported")
