"""A float32 array that records any ufunc which touches or produces float64.

NumPy 2 promotes `np.float64(2.0) * float32_array` to float64 (Python floats stay "weak"), and
an in-place `a -= b` silently casts such a float64 temporary back, so checking the final dtype
is not enough to see the promotion. Wrapping parameters, gradients and inputs in
`StrictFloat32` makes every ufunc that involves them (and their results, which stay wrapped)
report a float64 operand or result.
"""

from __future__ import annotations

import numpy as np


class StrictFloat32(np.ndarray):
    """Use `StrictFloat32.wrap(array)`; read `StrictFloat32.events` after the computation."""

    events: list[str] = []

    @classmethod
    def wrap(cls, array: np.ndarray) -> StrictFloat32:
        assert array.dtype == np.float32, array.dtype
        return np.asarray(array).view(cls)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        def plain(value):
            return value.view(np.ndarray) if isinstance(value, StrictFloat32) else value

        name = f"{ufunc.__name__}.{method}" if method != "__call__" else ufunc.__name__
        for value in inputs:
            if isinstance(value, np.ndarray | np.generic) and value.dtype == np.float64:
                StrictFloat32.events.append(f"{name}: float64 operand")
        outs = kwargs.get("out")
        if outs:
            kwargs["out"] = tuple(plain(o) for o in outs)
        result = getattr(ufunc, method)(*(plain(v) for v in inputs), **kwargs)
        if isinstance(result, np.ndarray) and result.dtype == np.float64:
            StrictFloat32.events.append(f"{name}: float64 result")
        if outs:
            return outs[0] if len(outs) == 1 else outs
        if isinstance(result, np.ndarray) and result.dtype.kind == "f":
            return result.view(StrictFloat32)
        return result
