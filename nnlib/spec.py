"""The architecture spec: one short text form for the CLI, the TUI and config files.

Grammar (tokens are separated by spaces, commas or "->"):

    spec    := mlp | token+
    mlp     := INT ("-" INT)+ [":" activation]     e.g. 784-512-128-10, 2-16-16-3:tanh
    token   := NAME ["(" arg ("," arg)* ")"]
    arg     := [KEY "="] VALUE                      VALUE: 5, 0.5, 3x5, same

Layer tokens and their arguments are not listed here: each layer class declares its own
(`kind`, `aliases`, `spec_args` in nnlib/layers), and `token_table()` writes them out, with
positional arguments in order and defaults in brackets, e.g.
`conv(filters, kernel, [stride=1], [pad=0|same|valid])`.

In an MLP the first number is the input size and hidden layers get ReLU (or the activation
after ":"); the last layer is linear (logits). A dense layer after an image layer gets an
implicit flatten, which is not written back.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import _validate
from ._validate import did_you_mean
from .layers import REGISTRY, Layer, SpecArg
from .layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .layers.dense import Dense
from .layers.shape import Dropout, Flatten
from .losses import Loss
from .model import LayerError, Sequential, Summary, check_fits
from .spec_text import MLP_ACTIVATIONS, format_value, required, to_token, token_text


class SpecError(ValueError):
    """A spec that cannot be parsed or built. `token` and `index` locate the culprit."""

    def __init__(self, message: str, token: str | None = None, index: int | None = None):
        super().__init__(message)
        self.token = token
        self.index = index


_MLP = re.compile(r"^\s*(\d+(?:\s*-\s*\d+)+)\s*(?::\s*([a-z]+))?\s*$")
_TOKEN = re.compile(r"\s*(?:(?:->|,)\s*)?([^\s,()>-](?:(?!->)[^\s,()])*(?:\([^()]*\))?|\S)")
_NAMED = re.compile(r"^([a-z][a-z0-9_]*)(?:\((.*)\))?$")


#: Where a layer was written: (token number, character index, token text).
_Origin = tuple[int, int, str]


def parse(spec: str, input_shape: Sequence[int] | None = None) -> list[Layer]:
    """Turn spec text into fresh, unbuilt layers."""
    return [layer for layer, _ in _parse_with_origins(spec, input_shape)]


def _parse_with_origins(
    spec: str, input_shape: Sequence[int] | None
) -> list[tuple[Layer, _Origin | None]]:
    """The layers of `spec`, each with its token (None for the layers of an MLP)."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(
            "empty architecture spec; expected e.g. 784-128-10 or "
            "conv(8,3) relu maxpool(2) dense(10)"
        )
    mlp = _MLP.match(spec.lower())
    if mlp:
        return [(layer, None) for layer in _parse_mlp(mlp.group(1), mlp.group(2), input_shape)]
    _check_parentheses(spec)
    return [
        (_parse_token(text, number, index), (number, index, text))
        for number, (index, text) in enumerate(_tokens(spec), start=1)
    ]


def _check_parentheses(spec: str) -> None:
    """SpecError at the first parenthesis that does not pair (or nests): a token's arguments
    are one level deep."""
    depth = 0
    for index, char in enumerate(spec):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth not in (0, 1):
            raise SpecError(
                f"spec: unbalanced parenthesis at character {index + 1}", token=char, index=index
            )
    if depth:
        raise SpecError("spec: a '(' is never closed", token="(", index=spec.rindex("("))


def build(
    spec: str, input_shape: Sequence[int], seed: int | None = 0, batch_size: int = 64
) -> Sequential:
    """Build and initialise a model from a spec for a per-sample `input_shape`.

    Errors name the offending token and what was expected; shape errors (a kernel larger
    than its input, say) name the token of the layer that could not be built. Every shape
    and the memory to train with `batch_size` are checked before any weight is allocated
    (see `plan`).
    """
    model, summary = _planned(spec, input_shape, batch_size, seed)
    return model.build(summary.input_shape, batch_size)


def plan(spec: str, input_shape: Sequence[int], batch_size: int = 64) -> Summary:
    """The summary `build` would give (shapes, parameters, memory), without allocating
    anything: what a live editor or `nnlib summary` shows. Raises SpecError like `build`,
    including for a model that would not fit in the available memory."""
    return _planned(spec, input_shape, batch_size, seed=None)[1]


def _planned(
    spec: str, input_shape: Sequence[int], batch_size: int, seed: int | None
) -> tuple[Sequential, Summary]:
    """The unbuilt model of `spec` and its checked plan; every failure is a SpecError."""
    shape = _input_shape(input_shape)
    parsed = _parse_with_origins(spec, shape)
    origins = {id(layer): origin for layer, origin in parsed}
    try:
        model = Sequential(
            _insert_implicit_flattens([layer for layer, _ in parsed], shape), seed=seed
        )
        summary = model.plan(shape)
        check_fits(summary, batch_size)
    except LayerError as error:
        raise _blamed(error, model.layers[error.position], origins) from None
    except ValueError as error:  # too large for the memory, or a bad batch size
        raise SpecError(str(error)) from None
    return model, summary


def _input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """The per-sample input shape as positive sizes, checked before the spec is parsed so
    that a bad one is not blamed on the first token."""
    try:
        return _validate.shape("spec", "input shape", input_shape)
    except ValueError:
        raise SpecError(f"input shape must be positive sizes, got {input_shape!r}") from None


def _blamed(error: LayerError, failed: Layer, origins: dict[int, _Origin | None]) -> SpecError:
    """The SpecError of the layer `failed` that could not be planned, naming its token where
    it was written (its origin), else the layer itself (an MLP layer or an implicit flatten)."""
    origin = origins.get(id(failed))
    if origin is None:
        text = to_token(failed)
        return SpecError(f"{text}: {error}", token=text)
    number, index, text = origin
    return SpecError(f"spec token {number} {text!r}: {error}", token=text, index=index)


def _insert_implicit_flattens(layers: list[Layer], input_shape: tuple[int, ...]) -> list[Layer]:
    """Put a Flatten before any Dense that would see an image; channels-last needs it. The
    shapes are followed layer by layer, so no list of image layers is needed; after a layer
    that cannot take its input nothing more is inserted (the plan reports that layer)."""
    result: list[Layer] = []
    shape = input_shape
    for position, layer in enumerate(layers):
        if isinstance(layer, Dense) and len(shape) > 1:
            result.append(Flatten(implicit=True))
            shape = (math.prod(shape),)
        result.append(layer)
        try:
            shape = tuple(layer.compute_output_shape(shape))
        except ValueError:
            return result + layers[position + 1 :]
    return result


def _tokens(spec: str) -> list[tuple[int, str]]:
    """(character index, text) of each token, in one left-to-right pass (linear time: 40,000
    tokens once took 27 s here, from re-slicing the rest of the spec after each)."""
    return [(match.start(1), match.group(1)) for match in _TOKEN.finditer(spec.rstrip())]


def _parse_mlp(body: str, activation: str | None, input_shape: Sequence[int] | None) -> list[Layer]:
    """The layers of the MLP shorthand: Dense layers of the sizes after the first, with the
    hidden activation between them."""
    sizes = _mlp_sizes(body, input_shape)
    hidden = _mlp_hidden(activation)
    layers: list[Layer] = []
    for units in sizes[1:-1]:
        layers += [Dense(units), hidden()]
    layers.append(Dense(sizes[-1]))
    return layers


def _mlp_sizes(body: str, input_shape: Sequence[int] | None) -> list[int]:
    """The MLP's sizes, each positive, the first equal to the data's features when known."""
    try:
        sizes = [int(part) for part in body.replace(" ", "").split("-")]
    except ValueError as error:  # a number longer than Python converts (4,300 digits)
        raise SpecError(f"MLP: cannot read a layer size ({error})") from None
    if min(sizes) < 1:
        raise SpecError(f"MLP {body}: every layer size must be a positive integer")
    if input_shape is not None and sizes[0] != math.prod(input_shape):
        raise SpecError(
            f"MLP {body}: the first number is the input size, {sizes[0]}, but the "
            f"data has {math.prod(input_shape)} features per sample "
            f"(shape {tuple(input_shape)})",
            token=str(sizes[0]),
            index=0,
        )
    return sizes


def _mlp_hidden(activation: str | None) -> type[Layer]:
    """The hidden layers' activation class the shorthand names (ReLU when it names none); an
    alias such as "leaky_relu" names it too."""
    cls = layer_class(activation or "relu")
    activation_name = cls.kind if cls else activation
    if activation_name not in MLP_ACTIVATIONS:
        raise SpecError(
            f"MLP activation {activation!r}{did_you_mean(str(activation), MLP_ACTIVATIONS)}"
            f" is not one of {', '.join(MLP_ACTIVATIONS)}",
            token=activation,
        )
    return MLP_ACTIVATIONS[activation_name]


def _parse_token(text: str, number: int, index: int) -> Layer:
    where = f"spec token {number} {text!r}"
    match = _NAMED.match(text.lower())
    if not match:
        raise SpecError(f"{where}: {_not_a_layer(text)}", text, index)
    name, body = match.groups("")
    cls = layer_class(name)
    if cls is None:
        raise SpecError(
            f"{where}: unknown layer {name!r}{did_you_mean(name, _layer_names())}; "
            f"expected one of {', '.join(sorted(REGISTRY))} (or an MLP like 784-128-10)",
            text,
            index,
        )
    try:
        return cls(**_parse_args(body, cls))
    except (ValueError, TypeError) as error:
        raise SpecError(f"{where}: {error}; expected {usage(cls)}", text, index) from None


def _not_a_layer(text: str) -> str:
    """What a token that is no layer name should be: a bare number belongs in an MLP."""
    if re.fullmatch(r"\d+", text):
        return (
            "a bare number is only valid in an MLP like 784-128-10; "
            f"in a token list write dense({text})"
        )
    return "expected a layer such as conv(8,3), maxpool(2), dense(10) or relu"


def _layer_names() -> dict[str, type[Layer]]:
    """Every name a spec token may give a registered layer class: its kind and its aliases
    (registration keeps them all distinct)."""
    aliases = {alias: cls for cls in REGISTRY.values() for alias in cls.aliases}
    return {**aliases, **REGISTRY}


def layer_class(token: str) -> type[Layer] | None:
    """The registered layer class a spec token (or one of its aliases) names, else None."""
    return _layer_names().get(token)


def usage(cls: type[Layer]) -> str:
    """How a layer's token is written, from what its class declares:
    `conv(filters, kernel, [stride=1], [pad=0|same|valid])`."""
    defaults = inspect.signature(cls.__init__).parameters
    parts = [_usage_of(cls, arg, defaults) for arg in cls.arguments() if arg.documented]
    return token_text(cls.kind, parts, ", ")


def _usage_of(cls: type[Layer], arg: SpecArg, defaults: Mapping[str, inspect.Parameter]) -> str:
    """How one argument of `usage` is written: `filters`, `[stride=1]` (its default or its
    hint), or `sizes, ...` for one that collects every value after it."""
    if arg.variadic:
        return f"{arg.hint or arg.name}, ..."
    if required(cls, arg):
        return arg.name
    return f"[{arg.name}={arg.hint or format_value(defaults[arg.init_name].default)}]"


def token_table() -> str:
    """The README's table of spec tokens, as Markdown, from the registry: one row per layer
    token (alphabetical) and one for the MLP shorthand. A test keeps the README equal to it."""
    rows = ["| token | meaning |", "|---|---|"]
    for token in sorted(REGISTRY):
        cls = REGISTRY[token]
        also = ", ".join(f"`{alias}`" for alias in cls.aliases)
        meaning = cls.description + (f" (also {also})" if also else "")
        written = usage(cls).replace("|", "\\|")  # a literal | inside a Markdown table cell
        rows.append(f"| `{written}` | {meaning} |")
    rows.append(
        "| `784-512-128-10` | MLP shorthand: input size, hidden sizes (ReLU), output size "
        "(linear logits); `2-16-16-3:tanh` picks the hidden activation |"
    )
    return "\n".join(rows)


def _parse_args(body: str, cls: type[Layer]) -> dict[str, Any]:
    """The constructor keywords of a token's arguments (`body`, the text inside its
    parentheses): positional ones in the order of `cls.arguments()`, the last of which may
    collect every value after it, then keyword ones. ValueError names the first mistake."""
    arguments = {arg.name: arg for arg in cls.arguments()}
    parts = [p.strip() for p in body.split(",")] if body.strip() else []
    values = _argument_values(parts, arguments)
    missing = [n for n, arg in arguments.items() if required(cls, arg) and n not in values]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    return {arguments[key].init_name: value for key, value in values.items()}


def _argument_values(parts: list[str], arguments: dict[str, SpecArg]) -> dict[str, Any]:
    """The value of each argument written in `parts`, by the argument's spec name: by
    position first (a variadic last argument collects the rest), then by keyword."""
    values: dict[str, Any] = {}
    keyword_seen = False
    for position, part in enumerate(parts):
        if "=" in part:
            keyword_seen = True
            key, raw = _keyword_argument(part, arguments)
        elif keyword_seen:
            raise ValueError("positional argument after a keyword argument")
        else:
            key, raw = _positional_argument(position, len(parts), arguments), part
            if arguments[key].variadic:  # it collects this value and every one after it
                values[key] = (*values.get(key, ()), _parse_value(raw))
                continue
        if key in values:
            raise ValueError(f"argument {key!r} given twice")
        values[key] = _parse_value(raw)
    return values


def _keyword_argument(part: str, arguments: dict[str, SpecArg]) -> tuple[str, str]:
    """`name=value` split into the argument's name and its raw value; a variadic argument is
    written by position only."""
    key, raw = (s.strip() for s in part.split("=", 1))
    if key not in arguments:
        raise ValueError(f"unknown argument {key!r}{did_you_mean(key, arguments)}")
    if arguments[key].variadic:
        raise ValueError(f"argument {key!r} is written by position, without {key}=")
    return key, raw


def _positional_argument(position: int, count: int, arguments: dict[str, SpecArg]) -> str:
    """The name of the argument at `position` of `count`: past the last one, the last if it
    is variadic, else too many arguments."""
    names = list(arguments)
    variadic = bool(names) and arguments[names[-1]].variadic
    if position >= len(names) and not variadic:
        raise ValueError(f"too many arguments ({count})")
    return names[min(position, len(names) - 1)]


def _size_pair(raw: str) -> tuple[int, int]:
    """`3x5`, a kernel's or a pool's (height, width)."""
    height, width = raw.split("x")
    return (int(height), int(width))


#: The forms an argument's value may take, in the order they are tried, each with what
#: reads it: an integer, a size pair, a number, a word (same, valid, an initialiser's name).
_VALUE_FORMS: tuple[tuple[re.Pattern[str], Callable[[str], Any]], ...] = (
    (re.compile(r"[-+]?\d+"), int),
    (re.compile(r"\d+x\d+"), _size_pair),
    (re.compile(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?"), float),
    (re.compile(r"[a-z_][a-z0-9_]*"), str),
)


def _parse_value(raw: str) -> Any:
    """The value an argument's text stands for (the first of `_VALUE_FORMS` it matches)."""
    for form, read in _VALUE_FORMS:
        if form.fullmatch(raw):
            return read(raw)
    raise ValueError(f"cannot read the value {raw!r}")


#: Losses that take raw outputs and apply softmax themselves, by name.
_SOFTMAX_LOSSES = ("softmax_cross_entropy",)
_SQUASHING = (ReLU, LeakyReLU, Sigmoid, Tanh)


def warnings_for(model: Sequential | str, loss: Loss | str | None = None) -> list[str]:
    """Mistakes that build and train without an error but train badly, for a model (or spec
    text) paired with the loss it will train with; one sentence each, empty when all is well.

    A softmax (or relu, sigmoid, tanh) after the logits is the usual one: the softmax
    cross-entropy applies softmax to the raw outputs itself, so a final softmax is a double
    softmax (issue 8 measured 69% instead of 97% on MNIST). How to use it: after a spec has
    been built (or at least parsed) and the loss is known, show each string as a
    non-fatal warning next to the spec, e.g.

        for text in warnings_for(model, trainer.loss):
            print(f"warning: {text}", file=sys.stderr)

    `loss` is a Loss or its name ("softmax_cross_entropy", "mse"); None when it is not known
    yet reports only what is wrong with every loss. A spec that does not parse gives no
    warnings: `build` reports its error.
    """
    layers = _layers_of(model)
    if not layers:
        return []
    warning = _ending_warning(layers[-1], loss.name if isinstance(loss, Loss) else loss)
    return [warning] if warning else []


def _layers_of(model: Sequential | str) -> list[Layer]:
    """A model's layers, or those of spec text (none when it does not parse)."""
    if not isinstance(model, str):
        return list(model.layers)
    try:
        return parse(model)
    except ValueError:
        return []


def _ending_warning(last: Layer, name: str | None) -> str | None:
    """The warning about a model ending in `last` when it trains with the loss `name`."""
    token = to_token(last)
    if isinstance(last, Softmax):
        return _softmax_warning(token, name)
    if isinstance(last, _SQUASHING) and name in _SOFTMAX_LOSSES:
        return (
            f"the model ends in {token} after the logits: the softmax cross-entropy loss "
            f"needs unbounded logits, and {token} clips or squashes them, which slows or "
            "stalls training; end with the last dense layer"
        )
    if isinstance(last, Dropout):
        return (
            f"the model ends in {token}, which zeroes random outputs while training; "
            "put dropout before the last dense layer"
        )
    return None


def _softmax_warning(token: str, name: str | None) -> str:
    """The warning about a model ending in a softmax (`token`): a double softmax with the
    softmax cross-entropy (or a loss not known yet), else outputs forced to sum to 1."""
    if name in _SOFTMAX_LOSSES or name is None:
        return (
            f"the model ends in {token}, but the softmax cross-entropy loss applies softmax "
            "to the raw outputs itself: a double softmax trains badly; end with the last "
            "dense layer (its logits), and apply softmax only to read probabilities"
        )
    return (
        f"the model ends in {token}, which forces the outputs to sum to 1; "
        f"the {name} loss compares them with the targets as they are"
    )
