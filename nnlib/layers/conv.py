"""2-D convolution, channels-last, with three kernels per pass chosen by shape.

im2col: forward copies every receptive field into a row of an (N*Ho*Wo, kh*kw*C) matrix and
multiplies by the kernel reshaped to (kh*kw*C, F); backward reuses that matrix for dL/dW and
scatters dL/d(columns) back onto the input with a short loop (col2im), measured 3-9x faster
than `np.add.at`.

shift (stride 1 only): the padded batch as one flat (N*Hp*Wp, C) matrix. Output row r is the
sum over kernel offsets (i, j) of input row r + i*Wp + j times W[i, j], so each offset is one
contiguous GEMM on a shifted slice, with no copy of the input; rows that fall outside the
valid output (the right and bottom margins) are computed and thrown away. dL/dW[i, j] and
dL/dx (gathered: row u from gradient rows u - i*Wp - j) are the same shifted GEMMs
transposed. A piece's kh*kw GEMMs are one batched matmul over a strided view and their
products one sum: two numpy calls a piece, so that threads sharing a batch do not wait on
each other's GIL hand-overs. It wins when the im2col copy (kh*kw times the input) costs
more than thin GEMMs lose, from 16 channels, and the margins are small; it loses on few
channels and on small maps with big kernels (LeNet's 5x5 on 14x14 computes 2x the rows).

chunked (stride 1 only): im2col one L2-sized block of output rows at a time (whole images,
or whole lines of one image), K = kh*kw*C, one GEMM per block straight into the output, the
block buffer reused, so the matrix is never whole and no row is wasted. The input gradient
is the same correlation of the output gradient, zero-padded by kernel - 1 - pad, with the
kernel flipped in space and transposed in channels: one GEMM per block with K = kh*kw*F, no
scatter. Its GEMMs are wide where shift's are thin: each pass takes it from 64 filters
(forward), 64 channels (input gradient) or 64x64 weights (weight gradient).

toeplitz (input gradient, any stride): for narrow maps with wide kernels (LeNet-5's 5x5 on
14x14). Each kernel row i is a banded block-Toeplitz matrix T_i from an output row's
(Wo*F) gradient to a padded input row's (Wp*C) values, so one GEMM of the (N*Ho, Wo*F)
output gradient by [T_0 ... T_kh-1] gives every input row's share, added with kh strided
adds of whole rows: no (N*Ho*Wo, kh*kw*C) column gradient and no 50-step col2im. It computes
Wp/kw times the products, so only where that is small.

`choose_kernels` picks, from the shape alone, one kernel per pass (forward, input gradient,
weight gradient); `Conv2D.kernels` overrides it, so tests check every kernel on every path.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import _validate, threads
from ..initializers import INITIALIZERS, initialize
from . import _windows as win
from .base import Layer, Param, Shape, SpecArg

#: The kernels each pass can use.
FORWARD_KERNELS = ("im2col", "shift", "chunked")
INPUT_GRAD_KERNELS = ("col2im", "shift", "chunked", "toeplitz")
WEIGHT_GRAD_KERNELS = ("im2col", "shift", "chunked")


@dataclass(frozen=True)
class Kernels:
    """The kernel of each pass of one convolution layer."""

    forward: str = "im2col"
    input_grad: str = "col2im"
    weight_grad: str = "im2col"

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("forward", self.forward, FORWARD_KERNELS),
            ("input_grad", self.input_grad, INPUT_GRAD_KERNELS),
            ("weight_grad", self.weight_grad, WEIGHT_GRAD_KERNELS),
        ):
            if value not in choices:
                raise ValueError(
                    f"Conv2D kernels: {name} must be one of {', '.join(choices)}, got {value!r}"
                )

    @property
    def needs_stride_1(self) -> bool:
        """Whether a pass uses shift or chunked, which slide the kernel one cell at a time."""
        return bool({"shift", "chunked"} & {self.forward, self.input_grad, self.weight_grad})


#: The shift kernels compute every row of the padded grid; beyond this many grid rows per
#: output row the waste outweighs the saved copy (LeNet-5's 5x5 conv on 14x14x6: 1.96, shift
#: input gradient 5.2 ms against col2im's 1.0 ms a batch of 64).
SHIFT_MAX_WASTE = 1.5
#: From this many input channels the K = C GEMMs of the shift forward and weight gradient
#: keep up with im2col's single GEMM (32x32x32 -> 32, 3x3 same, batch 64: forward 43.6 vs
#: 42.4 ms, weight gradient 44.6 vs 28.2, input gradient 38 vs 93), and the kh*kw-times
#: larger im2col matrix (75 MiB there) is not kept.
SHIFT_MIN_CHANNELS = 16
#: The toeplitz input gradient computes Wp/kw times the products of col2im's GEMM; up to
#: this ratio its one GEMM and kh row adds beat the column gradient and col2im (LeNet-5
#: conv_2, 14/5 = 2.8, batch 64, 1 thread, CPU time under load: 1.01 vs 1.26-1.27 ms).
TOEPLITZ_MAX_WIDTH = 3
#: The chunked kernel's im2col block: about the 1 MiB L2 of a core here.
CHUNK_BYTES = 1 << 20
#: OpenBLAS (SkylakeX kernels) runs a GEMM of at most this many multiply-adds through its
#: small-matrix kernels, when B is not transposed: (rows, 16) @ (16, 16) at 92-97 GFLOP/s up
#: to 3584 rows against 46-63 from 4096 rows on (1 thread, CPU time), so the thin GEMMs of
#: the shift and im2col kernels go in pieces of at most this size (see `gemm_rows`).
SMALL_GEMM = 1_000_000
#: Where the shift kernel's thin GEMMs lose to the chunked kernel's one GEMM per block,
#: measured per pass on an idle machine (1 thread, batch 64, forward + backward of one
#: layer, every combination of the two kernels, medians of 3; benchmarks/README.md): the
#: forward's (rows, C) @ (C, F) from F = 64 output channels (32x32x32 -> 64: chunked
#: forward 92.1 against shift 94.2 ms), the input gradient's (rows, F) @ (F, C) from
#: C = 64 input channels (16x16x64 -> 64: 47.7 against 51.1), the weight gradient's
#: (C, rows) @ (rows, F) from C * F = 4096 (16x16x64 -> 64: 47.7 against 51.7); below,
#: shift (32x32x32 -> 32, VGG-style's conv_2: 51.1 against chunked's 60.3 ms). An earlier
#: rule took chunked for every pass from 32 input channels, measured on a machine with
#: other processes keeping 1.4 cores of 2 busy, where the order was the other way.
CHUNKED_MIN_FILTERS = 64
CHUNKED_MIN_CHANNELS = 64
CHUNKED_MIN_WEIGHTS = CHUNKED_MIN_CHANNELS * CHUNKED_MIN_FILTERS


def gemm_rows(inner: int, columns: int) -> int:
    """Rows of a piece (rows, inner) @ (inner, columns), or of (inner, rows) @ (rows,
    columns): a product of at most 256 KiB (so it is still in cache when it is added) and at
    most SMALL_GEMM multiply-adds, but never under 256 rows (wide GEMMs, which the small
    kernels do not take, stay in large pieces)."""
    return max(256, min(65536 // columns, SMALL_GEMM // (inner * columns)))


def batched_rows(inner: int, columns: int, offsets: int) -> int:
    """Rows of a piece of the shift kernel's batched matmul, (offsets, rows, inner) @
    (offsets, inner, columns): `gemm_rows`, but the offsets' products together at most
    CHUNK_BYTES of float32 (they are summed in cache; a layer keeps the buffer)."""
    return max(256, min(gemm_rows(inner, columns), CHUNK_BYTES // (4 * offsets * columns)))


def matmul_rows(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a @ b in pieces of `gemm_rows` rows of `a`; `b` should be C-contiguous, which
    the small-matrix kernels need (im2col forward, 64 samples: LeNet-5's conv_1 (50176, 26)
    @ (26, 6) 0.61 -> 0.30-0.36 ms, conv_2 (6400, 151) @ (151, 16) 0.39 -> 0.29 ms). The
    whole pieces go as one batched matmul: one GIL hand-over, not one a piece."""
    step = gemm_rows(*b.shape)
    whole = a.shape[0] // step * step
    if whole:
        np.matmul(_pieces(a, step, whole), b, out=_pieces(out, step, whole))
    if whole < a.shape[0]:
        np.matmul(a[whole:], b, out=out[whole:])


def gram_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a.T @ b summed over pieces of `gemm_rows` rows (im2col weight gradient, 64 samples:
    LeNet-5's conv_2 (151, 6400) @ (6400, 16) 0.43 -> 0.31 ms, the stacked convs' first
    (10, 43264) @ (43264, 16) 0.31 -> 0.16 ms): the whole pieces' products by one batched
    matmul, summed by one GEMV (two GIL hand-overs, not two a piece), then the rest's."""
    step = gemm_rows(a.shape[1], b.shape[1])
    whole = a.shape[0] // step * step
    if not whole:
        return np.matmul(a.T, b)
    products = np.matmul(_pieces(a, step, whole).transpose(0, 2, 1), _pieces(b, step, whole))
    count = len(products)
    total = np.matmul(_ones(count, products.dtype), products.reshape(count, -1))
    total = total.reshape(products.shape[1:])
    if whole < a.shape[0]:
        total += np.matmul(a[whole:].T, b[whole:])
    return total


def _pieces(rows: np.ndarray, step: int, whole: int) -> np.ndarray:
    """The first `whole` rows of a 2-D array as (whole // step, step, columns): a view
    (splitting an axis never copies), so an `out` written through it fills `rows`."""
    return rows[:whole].reshape(whole // step, step, rows.shape[1])


def _offset_rows(
    rows: np.ndarray, kernel: tuple[int, int], width: int, count: int, backwards: bool = False
) -> np.ndarray:
    """A read-only view (kh, kw, count, columns) of the flat grid `rows`, `width` rows a
    line: [i, j, r] is row r + (i * width + j), or with `backwards` row r - (i * width + j)
    (then `rows` must start that far into its buffer). One batched matmul over it runs the
    kh*kw GEMMs of a piece in one numpy call: its kernels release the GIL once instead of
    kh*kw times, which lets two replicas' threads run their convolutions at once."""
    row, column = rows.strides
    sign = -1 if backwards else 1
    return np.lib.stride_tricks.as_strided(
        rows,
        shape=(*kernel, count, rows.shape[1]),
        strides=(sign * width * row, sign * row, row, column),
        writeable=False,
    )


def _sum_offsets(products: np.ndarray, count: int, out: np.ndarray) -> None:
    """out (count, columns, C-contiguous) = the sum over the offsets of the first `count`
    rows of `products` (kh, kw, rows, columns): one GEMV of a ones vector by the offsets'
    rows flattened (a strided view, no copy), which BLAS does in 16.7 us where np.sum over
    the offsets axes took 28.2 (1820 x 16 values from 9 offsets)."""
    offsets = products.shape[0] * products.shape[1]
    flat = products.reshape(offsets, -1)[:, : count * products.shape[3]]
    np.matmul(_ones(offsets, products.dtype), flat, out=out.reshape(-1))


@functools.cache
def _ones(size: int, dtype: np.dtype) -> np.ndarray:
    """A read-only ones vector, made once per size and dtype (`_sum_offsets` runs per piece)."""
    ones = np.ones(size, dtype)
    ones.flags.writeable = False
    return ones


def choose_kernels(
    input_shape: Shape,
    filters: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, ...],
) -> Kernels:
    """The kernels for a layer of this shape, by a rule from measurements (1 thread, batch
    64; benchmarks/README.md): a map at most TOEPLITZ_MAX_WIDTH kernels wide takes the
    toeplitz input gradient where shift does not apply; shift needs stride 1 and little
    waste; then its input gradient always beats col2im (28x28x1 5x5: 0.7 vs 3.4 ms;
    26x26x16 3x3: 2.8 vs 15.8 ms), and its forward and weight gradient from
    SHIFT_MIN_CHANNELS input channels on, each pass until its GEMM is wide enough for the
    chunked kernel (CHUNKED_MIN_FILTERS, CHUNKED_MIN_CHANNELS, CHUNKED_MIN_WEIGHTS)."""
    top, bottom, left, right = pads
    narrow = input_shape[1] + left + right <= TOEPLITZ_MAX_WIDTH * kernel[1]
    if stride != (1, 1):
        return Kernels(input_grad="toeplitz") if narrow else Kernels()
    grid = (input_shape[0] + top + bottom) * (input_shape[1] + left + right)
    out = (input_shape[0] + top + bottom - kernel[0] + 1) * (
        input_shape[1] + left + right - kernel[1] + 1
    )
    if grid > SHIFT_MAX_WASTE * out:
        return Kernels(input_grad="toeplitz") if narrow else Kernels()
    channels = input_shape[2]
    if channels < SHIFT_MIN_CHANNELS:
        return Kernels(input_grad="shift")
    return Kernels(
        "chunked" if filters >= CHUNKED_MIN_FILTERS else "shift",
        "chunked" if channels >= CHUNKED_MIN_CHANNELS else "shift",
        "chunked" if channels * filters >= CHUNKED_MIN_WEIGHTS else "shift",
    )


class _Slot:
    """The buffers of one slot: the parts of a batch that run at once (`nnlib.threads`) each
    have their own, reused between batches by (purpose, shape, dtype)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, tuple[int, ...], np.dtype], np.ndarray] = {}
        self.fresh: set[str] = set()  # buffers just allocated by `buffer`

    def buffer(self, purpose: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A buffer kept between batches; zero-filled when it is allocated, so parts nobody
        writes (the grid's margins, im2col's ones column once set) keep their values from
        then on. Two shapes are kept per purpose: a batch run in parts of two sizes (100 =
        64 + 36), or an epoch's shorter last batch, reuses both instead of allocating
        them again every time."""
        key = (purpose, shape, np.dtype(dtype))
        buffer = self.buffers.get(key)
        if buffer is None:
            others = [k for k in self.buffers if k[0] == purpose]
            for old in others[:-1]:  # the oldest go; the latest other shape stays
                del self.buffers[old]
            buffer = self.buffers[key] = np.zeros(shape, dtype)
            self.fresh.add(purpose)
        else:
            self.fresh.discard(purpose)
        return buffer


@dataclass
class _Part:
    """One part of a batch: its padded input, its slot's buffers and, when forward made
    it, its im2col matrix."""

    padded: np.ndarray
    slot: _Slot
    cols: np.ndarray | None = None

    def buffer(self, purpose: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The slot's buffer for `purpose` (see `_Slot.buffer`)."""
        return self.slot.buffer(purpose, shape, dtype)


class Conv2D(Layer):
    kind = "conv"
    not_splittable = ""
    aliases = ("conv2d",)
    spec_args = (
        "filters",
        SpecArg("kernel", "kernel_size"),
        "stride",
        SpecArg("pad", "padding", hint="0|same|valid"),
        SpecArg("init", documented=False),
    )
    description = "2-D convolution; `kernel` may be `3x5`; `pad` an integer, `same` or `valid`"

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | str = 0,
        init: str = "he",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.filters = _validate.positive_int("Conv2D", "filters", filters)
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self._kernel = win.pair("Conv2D", "kernel_size", kernel_size)
        self._stride = win.pair("Conv2D", "stride", stride)
        if not (
            padding in ("same", "valid")
            or (isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0)
        ):
            raise ValueError(
                f"Conv2D: padding must be a non-negative integer, 'same' or "
                f"'valid', got {padding!r}"
            )
        if init not in INITIALIZERS:
            raise ValueError(f"Conv2D: init must be one of {', '.join(INITIALIZERS)}, got {init!r}")
        self.init = init
        #: None: the kernels `choose_kernels` picks for the input shape; a Kernels to force.
        self.kernels: Kernels | None = None
        #: Buffers reused between batches, one set per part that runs at once.
        self._slots: list[_Slot] = []
        #: The last forward's padded input, and its parts (views of it), for backward.
        self._whole: np.ndarray | None = None
        self._parts: list[_Part] = []
        self._parts_workers = 1  # the batch workers the parts' slots were given for

    def _pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            # TensorFlow's rule: output = ceil(input / stride), extra padding at the bottom/right.
            pads = []
            for size, k, s in (
                (height, self._kernel[0], self._stride[0]),
                (width, self._kernel[1], self._stride[1]),
            ):
                total = max((-(-size // s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            return tuple(pads)  # type: ignore[return-value]
        p = int(self.padding)
        return (p, p, p, p)

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        output = super().build(input_shape, rng)  # the shape is checked before allocating
        shape = tuple(input_shape)
        self.selected_kernels(shape)  # a forced kernel that cannot run fails here
        shapes = self.param_shapes(shape)
        kh, kw, channels, _ = shapes["W"]
        fan_in, fan_out = kh * kw * channels, kh * kw * self.filters
        kernel = initialize(self.init, shapes["W"], fan_in, fan_out, rng, self.dtype)
        self.params = {
            "W": Param.of(f"{self.name}.W", kernel),
            "b": Param.of(f"{self.name}.b", np.zeros(shapes["b"], self.dtype), regularize=False),
        }
        return output

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.name or 'Conv2D'}: Conv2D needs an image input (height, width, "
                f"channels), got {input_shape}"
            )
        height, width = input_shape[0], input_shape[1]
        self._pad = self._pads(height, width)
        self._out = win.output_size(
            self.name or "Conv2D", (height, width), self._kernel, self._stride, self._pad
        )
        return (*self._out, self.filters)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"W": (*self._kernel, input_shape[2], self.filters), "b": (self.filters,)}

    def selected_kernels(self, input_shape: Shape) -> Kernels:
        """`kernels` if forced (stride 1 for shift), else the rule's choice for the shape."""
        if self.kernels is not None:
            if self.kernels.needs_stride_1 and self._stride != (1, 1):
                raise ValueError(
                    f"{self.name or 'Conv2D'}: the shift and chunked kernels need stride 1, "
                    f"got stride {self._stride}"
                )
            return self.kernels
        self.compute_output_shape(input_shape)
        return choose_kernels(input_shape, self.filters, self._kernel, self._stride, self._pad)

    def cache_size(self, input_shape: Shape) -> int:
        """What the selected kernels keep per sample: the padded input with padding, the
        im2col matrix (one row per output position, with the ones column) when a pass uses
        it, for the shift input gradient the grid-sized dL/dx, and for the chunked input
        gradient the padded output gradient (partial products, shift's pieces, its image
        groups' gradient and im2col blocks are bounded at 256 KiB and CHUNK_BYTES, whatever
        the batch). Temporaries of
        the input gradient alone are not counted: col2im's column gradient, toeplitz's row
        shares (kh/kw of it)."""
        kernels = self.selected_kernels(input_shape)
        out_h, out_w, filters = self.compute_output_shape(input_shape)
        top, bottom, left, right = self._pad
        height, width, channels = input_shape
        grid = (height + top + bottom) * (width + left + right)
        size = grid * channels if top + bottom + left + right else 0
        if "im2col" in (kernels.forward, kernels.weight_grad):
            size += out_h * out_w * (self._kernel[0] * self._kernel[1] * channels + 1)
        if kernels.input_grad == "shift":
            size += grid * channels  # dL/dx on the grid, cropped by a view
        if kernels.input_grad == "chunked":
            size += (height + self._kernel[0] - 1) * (width + self._kernel[1] - 1) * filters
        return size

    def release_cache(self) -> None:
        """Drop the padded input and its parts (the slots' buffers stay: they are reused)."""
        self._whole, self._parts = None, []

    def replica(self) -> Conv2D:
        """A copy (`Layer.replica`) with its own slots: its buffers are filled by its thread."""
        twin = super().replica()
        twin._slots = []
        return twin

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        self._active = self.selected_kernels(self.input_shape or x.shape[1:])
        self._whole = whole = np.ascontiguousarray(win.pad(x, self._pad))
        self._x_shape = x.shape
        out = np.empty((x.shape[0], *self._out, self.filters), x.dtype)
        wheres = win.parts(x.shape[0], threads.workers())
        self._parts = self._make_parts(whole, wheres)
        threads.run_parts(lambda i: self._forward_part(self._parts[i], out[wheres[i]]), len(wheres))
        # A slot keeps the im2col of the last part that used it: the earlier parts' went.
        for part in self._parts[: -threads.workers()]:
            part.cols = None
        return out

    def _make_parts(self, whole: np.ndarray, wheres: list[slice]) -> list[_Part]:
        """The parts at `wheres` of the padded batch `whole`: part i uses slot i % workers,
        which no other part uses at the same time (`threads.run_parts`)."""
        slots = self._parts_workers = threads.workers()
        while len(self._slots) < min(slots, len(wheres)):
            self._slots.append(_Slot())
        return [_Part(whole[w], self._slots[i % slots]) for i, w in enumerate(wheres)]

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        grad = np.ascontiguousarray(grad)
        wheres = win.parts(grad.shape[0], threads.workers())
        # The workers changed since forward: the parts' slots are made again (a part count
        # can stay while the slots differ: 128 samples are two parts on 1 worker or 2).
        if len(wheres) != len(self._parts) or threads.workers() != self._parts_workers:
            assert self._whole is not None, f"{self.name}: backward before forward"
            self._parts = self._make_parts(self._whole, wheres)
        # With several parts, each writes its dL/dx straight into the batch's: a part's
        # own is not kept beside it (VGG-style conv_2 at batch 256: 3 parts of 8 MiB).
        dx = np.empty(self._x_shape, grad.dtype) if need_input_grad and len(wheres) > 1 else None
        shares: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

        def run(index: int) -> None:
            where = wheres[index]
            shares[index] = self._backward_part(
                self._parts[index], grad[where], need_input_grad, None if dx is None else dx[where]
            )

        # The last parts first: their im2col matrices are still in the slots (LeNet-5 at
        # batch 256 fills three of its four parts' again, not four).
        threads.run_parts(lambda k: run(len(wheres) - 1 - k), len(wheres))
        kernel, bias = self.params["W"], self.params["b"]
        kernel.grad[...], bias.grad[...], first_dx = shares[0]
        for index in range(1, len(wheres)):
            kernel.grad += shares[index][0]
            bias.grad += shares[index][1]
        return first_dx if dx is None else dx

    def _forward_part(self, part: _Part, out: np.ndarray) -> None:
        """The output of the samples of `part`, written into `out`."""
        kernel, bias = self.params["W"].value, self.params["b"].value
        part.cols = None
        if self._active.forward == "shift":
            self._shift_forward(part, kernel, bias, out)
        elif self._active.forward == "chunked":
            self._chunked_forward(part, kernel, bias, out)
        else:
            part.cols = self._im2col(part, part.padded)
            weights = np.concatenate([kernel.reshape(-1, self.filters), bias[None]])
            matmul_rows(part.cols, weights, out.reshape(-1, self.filters))

    def _backward_part(
        self, part: _Part, grad: np.ndarray, need_input_grad: bool, into: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """dL/dW, dL/db (not in the slot's buffers, which the next round reuses) and, when
        asked, dL/dx of the samples of `part`: written into `into` if given (and then
        `into` is returned), else a new array or a view of one."""
        kernel = self.params["W"]
        grad2d = grad.reshape(-1, self.filters)
        shift_dx = need_input_grad and self._active.input_grad == "shift"
        if self._active.weight_grad == "im2col":
            if part.cols is None:
                part.cols = self._im2col(part, part.padded)
            grads = gram_rows(part.cols, grad2d)  # dL/dW and, from the ones column, dL/db
            kernel_grad, bias_grad = grads[:-1].reshape(kernel.grad.shape), grads[-1]
        else:
            if self._active.weight_grad == "chunked":
                kernel_grad = self._chunked_weight_grad(part, grad)
            else:
                kernel_grad = np.zeros(kernel.grad.shape, grad.dtype)  # filled below
            # A GEMV with a ones vector: a sum over a narrow (rows, F) array is several
            # times slower.
            bias_grad = np.ones(grad2d.shape[0], grad2d.dtype) @ grad2d
        shift_grid = None
        if shift_dx or self._active.weight_grad == "shift":  # one pass for both
            shift_grid = self._shift_backward(
                part,
                grad,
                kernel_grad if self._active.weight_grad == "shift" else None,
                kernel.value if shift_dx else None,
                copied=into is not None,
            )
        if not need_input_grad:
            return kernel_grad, bias_grad, None
        if shift_grid is not None:
            part_dx = win.crop(shift_grid, self._pad)
        elif self._active.input_grad == "chunked":
            return kernel_grad, bias_grad, self._chunked_input_grad(part, grad, kernel.value, into)
        elif self._active.input_grad == "toeplitz":
            part_dx = win.crop(self._toeplitz_input_grad(part, grad, kernel.value), self._pad)
        else:
            dcols = grad2d @ kernel.value.reshape(-1, self.filters).T
            part_dx = win.crop(self._col2im(part, dcols), self._pad)
        if into is None:
            return kernel_grad, bias_grad, part_dx
        np.copyto(into, part_dx)
        return kernel_grad, bias_grad, into

    # -- the shift kernel ----------------------------------------------------------------
    def _grid_pieces(self, part: _Part, chunk: int) -> tuple[int, list[tuple[slice, slice, int]]]:
        """The padded grid of `part` as flat rows in pieces of at most about `chunk` rows:
        the rows a piece buffer needs, and per piece (images, lines, start), its first row
        `start` and the grid lines it covers. Whole images when one fits, with their bottom
        margin lines; else lines of one image, the valid ones only."""
        n, height, width, _ = part.padded.shape
        if height * width <= chunk:
            step = min(chunk // (height * width), n)
            pieces = [
                (slice(i, min(i + step, n)), slice(0, height), i * height * width)
                for i in range(0, n, step)
            ]
            return step * height * width, pieces
        step = min(max(1, chunk // width), self._out[0])
        pieces = [
            (slice(i, i + 1), slice(y, min(y + step, self._out[0])), (i * height + y) * width)
            for i in range(n)
            for y in range(0, self._out[0], step)
        ]
        return step * width, pieces

    @staticmethod
    def _piece_rows(width: int, images: slice, lines: slice) -> int:
        """Grid rows of a piece from `_grid_pieces`, `width` rows a line."""
        return (images.stop - images.start) * (lines.stop - lines.start) * width

    def _valid(self, rows: np.ndarray, width: int, images: slice, lines: slice) -> np.ndarray:
        """The output positions among a piece buffer's rows (`_grid_pieces`, `width` rows a
        line): a view (images, valid lines, Wo, columns) without the margins."""
        grid = rows[: self._piece_rows(width, images, lines)].reshape(
            images.stop - images.start, lines.stop - lines.start, width, rows.shape[1]
        )
        return grid[:, : min(lines.stop, self._out[0]) - lines.start, : self._out[1]]

    def _shift_forward(
        self, part: _Part, kernel: np.ndarray, bias: np.ndarray, out: np.ndarray
    ) -> None:
        """out[r] = sum over kernel offsets (i, j) with flat shift s of input row r + s @
        W[i, j], one piece of `gemm_rows` grid rows at a time: one batched matmul of the
        piece's kh*kw shifted views (`_offset_rows`) by the kernel into a products buffer,
        one sum over the offsets (`_sum_offsets`, in cache), then the piece's output
        positions go to `out` with the bias. No grid-sized output (2.8 MiB a layer of
        26x26x16 at batch 64)."""
        n, height, width, channels = part.padded.shape
        flat = part.padded.reshape(-1, channels)
        kh, kw = self._kernel
        span = flat.shape[0] - (kh - 1) * width - (kw - 1)  # every offset stays on the grid
        shifted = _offset_rows(flat, self._kernel, width, span)
        rows, pieces = self._grid_pieces(part, batched_rows(channels, self.filters, kh * kw))
        total = part.buffer("shift_sum", (rows, self.filters), flat.dtype)
        products = part.buffer("shift_products", (kh, kw, rows, self.filters), flat.dtype)
        # The bias of a line of outputs: added over runs of Wo*F values, not of F (3x faster).
        line_bias = np.tile(bias, (self._out[1], 1))
        for images, lines, start in pieces:
            count = min(start + self._piece_rows(width, images, lines), span) - start
            np.matmul(shifted[:, :, start : start + count], kernel, out=products[:, :, :count])
            _sum_offsets(products, count, total[:count])
            valid = self._valid(total, width, images, lines)
            np.add(valid, line_bias, out=out[images, lines.start : lines.start + valid.shape[1]])

    def _shift_backward(
        self,
        part: _Part,
        grad: np.ndarray,
        kernel_grad: np.ndarray | None,
        kernel: np.ndarray | None,
        copied: bool,
    ) -> np.ndarray | None:
        """Adds dL/dW into `kernel_grad` (zeros) if given and, if `kernel` is given, returns
        dL/d(padded input) (N, Hp, Wp, C). A group of whole images at a time (about
        CHUNK_BYTES of output gradient), their output gradient is laid on the grid (zero
        margins, after `reach` zero rows: a group's first rows reach back only into the
        margins of the image before), then in pieces each one batched matmul over the
        kh*kw offsets and one sum: dL/dW[i, j] = sum over r of (input rows r + s).T @
        gradient rows r, and dL/dx[u] = sum over (i, j) of gradient rows u - s @ W[i, j].T
        (gathered: every dL/dx row is written once, no scatter, no zeroing). dL/dx is a new
        array, or the slot's buffer if the caller only `copied` it out (a batch in parts:
        new arrays, given back to the system and faulted in again every batch, cost the
        stacked 16@3x3 convs 6,700 page faults a step of batch 256, 10% of the epoch)."""
        n, height, width, channels = part.padded.shape
        flat = part.padded.reshape(-1, channels)
        kh, kw = self._kernel
        reach = (kh - 1) * width + kw - 1  # the largest flat shift
        image_rows = height * width
        group = max(1, min(n, CHUNK_BYTES // (image_rows * self.filters * grad.itemsize)))
        # Its first `reach` rows and the margins are never written: zero from the allocation.
        padded_grad = part.buffer(
            "shift_grad", (reach + group * image_rows, self.filters), grad.dtype
        )
        on_grid = padded_grad[reach:]
        dx = transposed = None
        if kernel is not None:
            dx = part.buffer("dx_grid", flat.shape, grad.dtype) if copied else np.empty_like(flat)
            transposed = np.ascontiguousarray(kernel.transpose(0, 1, 3, 2))
        span = flat.shape[0] - reach  # rows whose every shift stays on the grid
        for first in range(0, n, group):
            images = slice(first, min(first + group, n))
            start, count = first * image_rows, (images.stop - images.start) * image_rows
            grids = on_grid[:count].reshape(-1, height, width, self.filters)
            grids[:, : self._out[0], : self._out[1]] = grad[images]
            if kernel_grad is not None:
                self._shift_weight_grad(
                    part, flat[start:], on_grid, min(count, span - start), kernel_grad
                )
            if dx is not None and transposed is not None:
                self._shift_input_grad(part, on_grid, transposed, dx[start : start + count])
        return None if dx is None else dx.reshape(part.padded.shape)

    def _shift_weight_grad(
        self,
        part: _Part,
        rows: np.ndarray,
        on_grid: np.ndarray,
        count: int,
        kernel_grad: np.ndarray,
    ) -> None:
        """kernel_grad[i, j] += (input `rows` r + s).T @ output gradient `on_grid` r, for
        the first `count` rows, in pieces of one batched matmul each."""
        width = part.padded.shape[2]
        shifted = _offset_rows(rows, self._kernel, width, count).transpose(0, 1, 3, 2)
        products = part.buffer("dw_products", kernel_grad.shape, kernel_grad.dtype)
        step = gemm_rows(rows.shape[1], self.filters)
        for start in range(0, count, step):
            stop = min(start + step, count)
            np.matmul(shifted[:, :, :, start:stop], on_grid[start:stop], out=products)
            kernel_grad += products

    def _shift_input_grad(
        self, part: _Part, on_grid: np.ndarray, transposed: np.ndarray, out: np.ndarray
    ) -> None:
        """out[u] = sum over offsets (i, j) of `on_grid` row u - s @ W[i, j].T (`transposed`),
        for every row of `out`; `on_grid` starts `reach` zero rows into its buffer."""
        kh, kw = self._kernel
        rows, channels = out.shape
        gathered = _offset_rows(on_grid, self._kernel, part.padded.shape[2], rows, backwards=True)
        step = batched_rows(self.filters, channels, kh * kw)
        products = part.buffer("dx_products", (kh, kw, step, channels), out.dtype)
        for start in range(0, rows, step):
            count = min(start + step, rows) - start
            np.matmul(gathered[:, :, start : start + count], transposed, out=products[:, :, :count])
            _sum_offsets(products, count, out[start : start + count])

    # -- the chunked kernel: im2col in L2-sized blocks of output rows -------------------------
    def _blocks(
        self, part: _Part, source: np.ndarray, out: tuple[int, int]
    ) -> Iterator[tuple[tuple[slice, slice], np.ndarray]]:
        """(where, block) over the (N, Ho, Wo) output positions of a stride-1 correlation of
        the C-contiguous (N, Hs, Ws, C) `source`: block[r] is the receptive field of the r-th
        position of out-array[where] (kh, kw, C flattened), and `where` selects whole images
        or whole lines of one image, so that out-array[where] is contiguous. A kernel row's
        kw cells are kw*C contiguous values of `source`, so each block is filled by one
        strided copy. Blocks of about CHUNK_BYTES stay in L2 for their GEMM; the buffer is
        reused."""
        kh, kw = self._kernel
        n, _, _, channels = source.shape
        out_h, out_w = out
        run = kw * channels
        rows = max(out_w, CHUNK_BYTES // (kh * run * source.itemsize))
        if out_h * out_w <= rows:  # whole images per block
            step = rows // (out_h * out_w)
            spans = [(slice(i, min(i + step, n)), slice(0, out_h)) for i in range(0, n, step)]
        else:  # lines of one image per block
            step = rows // out_w
            spans = [
                (slice(i, i + 1), slice(y, min(y + step, out_h)))
                for i in range(n)
                for y in range(0, out_h, step)
            ]
        size = max(
            (images.stop - images.start) * (lines.stop - lines.start) for images, lines in spans
        )
        buffer = part.buffer(f"block_{channels}", (size * out_w, kh * run), source.dtype)
        image, line, cell, value = source.strides
        for images, lines in spans:
            shape = (images.stop - images.start, lines.stop - lines.start, out_w, kh, run)
            block = buffer[: shape[0] * shape[1] * out_w]
            # [n, y, x, i] is the run of kernel row i: one copy a block, not kh.
            fields = np.lib.stride_tricks.as_strided(
                source[images.start, lines.start],
                shape=shape,
                strides=(image, line, cell, line, value),
                writeable=False,
            )
            np.copyto(block.reshape(shape), fields)
            yield (images, lines), block

    def _chunked_forward(
        self, part: _Part, kernel: np.ndarray, bias: np.ndarray, out: np.ndarray
    ) -> None:
        weights = kernel.reshape(-1, self.filters)
        for where, block in self._blocks(part, part.padded, self._out):
            rows = out[where].reshape(-1, self.filters)  # a view: `where` is contiguous
            np.matmul(block, weights, out=rows)
            rows += bias  # in cache, unlike a pass over the whole output

    def _chunked_weight_grad(self, part: _Part, grad: np.ndarray) -> np.ndarray:
        """dL/dW = sum over blocks of block.T @ dL/d(output) rows: K = the block's rows."""
        kh, kw = self._kernel
        total = np.zeros((kh * kw * part.padded.shape[3], self.filters), grad.dtype)
        piece = part.buffer("dw_part", total.shape, grad.dtype)
        for where, block in self._blocks(part, part.padded, self._out):
            np.matmul(block.T, grad[where].reshape(-1, self.filters), out=piece)
            total += piece
        return total.reshape(kh, kw, -1, self.filters)

    def _chunked_input_grad(
        self, part: _Part, grad: np.ndarray, kernel: np.ndarray, out: np.ndarray | None
    ) -> np.ndarray:
        """dL/dx (into `out`, C-contiguous, when given) as a correlation of the output
        gradient with the kernel flipped in space and transposed in channels: with G
        zero-padded by kernel - 1 - pad on each side,
        dx[u, v] = sum over (i, j) of G'[u + i, v + j] @ W[kh-1-i, kw-1-j].T, an (H, W)
        output straight from the blocks, with no scatter and no crop. Where a pad is larger
        than kernel - 1, the outputs beyond it saw only padding, and their gradient is
        dropped instead."""
        kh, kw = self._kernel
        n, (height, width, channels) = grad.shape[0], self._x_shape[1:]
        padded = part.buffer(
            "grad_padded", (n, height + kh - 1, width + kw - 1, self.filters), grad.dtype
        )
        into, source = [slice(None)], [slice(None)]
        for axis, (size, k, pad) in enumerate(
            ((height, kh, self._pad[0]), (width, kw, self._pad[2])), start=1
        ):
            offset = k - 1 - pad
            first = max(0, -offset)  # gradient rows before it saw only padding
            count = min(grad.shape[axis] - first, size + k - 1 - max(0, offset))
            into.append(slice(max(0, offset), max(0, offset) + count))
            source.append(slice(first, first + count))
        padded[tuple(into)] = grad[tuple(source)]  # the margins stay zero from the allocation
        flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, channels)
        dx = np.empty((n, height, width, channels), grad.dtype) if out is None else out
        for where, block in self._blocks(part, padded, (height, width)):
            np.matmul(block, flipped, out=dx[where].reshape(-1, channels))
        return dx

    def _toeplitz_input_grad(self, part: _Part, grad: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        """dL/d(padded input) from one GEMM: row (xo, f) of T = [T_0 ... T_kh-1] holds
        W[i, :, :, f] where output column xo reads the padded row (from xo*sw on, kw*C
        values) and zeros elsewhere, so (dL/d(output row) @ T)[i] is dL/d(padded row y*sh+i)
        from output row y."""
        n, height, width, channels = part.padded.shape
        kh, kw = self._kernel
        (sh, sw), (out_h, out_w) = self._stride, self._out
        # The band is written every time (the kernel changes each step; 0.02 ms on LeNet-5),
        # the zeros outside it stay from the allocation.
        band = part.buffer("toeplitz", (out_w, self.filters, kh, width, channels), grad.dtype)
        rows = kernel.transpose(3, 0, 1, 2)  # (F, kh, kw, C)
        for column in range(out_w):
            band[column, :, :, column * sw : column * sw + kw] = rows
        shares = grad.reshape(n * out_h, out_w * self.filters) @ band.reshape(
            out_w * self.filters, -1
        )
        shares = shares.reshape(n, out_h, kh, width * channels)
        dpadded = np.zeros((n, height, width * channels), grad.dtype)
        for i in range(kh):
            dpadded[:, i : i + sh * (out_h - 1) + 1 : sh] += shares[:, :, i]
        return dpadded.reshape(part.padded.shape)

    def _im2col(self, part: _Part, x: np.ndarray) -> np.ndarray:
        """Every receptive field as a row of an (N*Ho*Wo, kh*kw*C + 1) matrix.

        The last column is all ones so the bias rides in the GEMM: no broadcast add forward,
        and dL/db comes out of the dL/dW GEMM instead of a sum over a narrow (N*Ho*Wo, F)
        array (LeNet-5 epoch 0.68 -> 0.56 s). The buffer is kept between batches, so the ones
        are written once. With one channel the rows would be copied in runs of kw values; a
        kernel-offset-major buffer, filled one (N, Ho, Wo) plane per offset, copies runs of Wo
        values instead and is 3-4x faster (LeNet-5 conv_1: 0.21 vs 0.82 ms a batch).
        """
        n, channels = x.shape[0], x.shape[3]
        kh, kw = self._kernel
        rows, size = n * self._out[0] * self._out[1], kh * kw * channels
        layout = (size + 1, rows) if channels == 1 else (rows, size + 1)
        buffer = part.buffer("cols", layout, x.dtype)
        if "cols" in part.slot.fresh:
            ones = buffer[-1] if channels == 1 else buffer[:, -1]
            ones[...] = 1
        if channels > 1:
            target = buffer[:, :size].reshape(n, *self._out, kh, kw, channels)
            np.copyto(target, win.windows(x, self._kernel, self._stride, self._out))
            return buffer
        # One copy of the (kh, kw, N, Ho, Wo) window view: one numpy call, not kh*kw.
        offsets_first = win.windows(x, self._kernel, self._stride, self._out)[..., 0]
        np.copyto(
            buffer[:size].reshape(kh, kw, n, *self._out), offsets_first.transpose(3, 4, 0, 1, 2)
        )
        return buffer.T

    def _col2im(self, part: _Part, dcols: np.ndarray) -> np.ndarray:
        """Sum the (N*Ho*Wo, kh*kw*C) column gradients back onto the padded input.

        One add per (kernel row, output column) moves runs of kw*C contiguous values; one add
        per kernel offset would move runs of only C values and was 1.1-4x slower (LeNet-5
        conv_2: 0.64 ms vs 1.73 ms a batch). `np.add.at` is slower still.
        """
        n, height, width, channels = part.padded.shape
        kh, kw = self._kernel
        (sh, sw), (out_h, out_w) = self._stride, self._out
        dcols = dcols.reshape(n, out_h, out_w, kh, kw * channels)
        dpadded = np.zeros((n, height, width * channels), dtype=dcols.dtype)
        for i in range(kh):
            rows = dpadded[:, i : i + sh * (out_h - 1) + 1 : sh]
            for column in range(out_w):
                start = column * sw * channels
                rows[:, :, start : start + kw * channels] += dcols[:, :, column, i]
        return dpadded.reshape(part.padded.shape)
