"""Layers register themselves: a class that sets `kind` is a spec token, a model-file type and
a row of the README's token table, with no list elsewhere to edit."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import writer_env

import nnlib as nl
from nnlib import spec
from nnlib.layers import LAYER_TYPES, REGISTRY, Layer, SpecArg

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


@pytest.fixture
def scale_layer():
    """A layer defined outside nnlib, registered for one test only."""
    saved = dict(REGISTRY), dict(LAYER_TYPES)

    class Scale(Layer):
        kind = "testscale"
        aliases = ("testmul",)
        spec_args = (SpecArg("by", "factor"),)
        description = "multiply by a constant"

        def __init__(self, factor: float = 1.0, name: str | None = None) -> None:
            super().__init__(name)
            self.factor = float(factor)

        def forward(self, x: np.ndarray) -> np.ndarray:
            self.check_input(x)
            return x * self.factor

        def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
            return grad * self.factor if need_input_grad else None

    yield Scale
    for registry, before in zip((REGISTRY, LAYER_TYPES), saved, strict=True):
        registry.clear()
        registry.update(before)


def _readme_token_table() -> str:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| token | meaning |")
    end = next(k for k in range(start, len(lines)) if not lines[k].startswith("|"))
    return "\n".join(lines[start:end])


def test_readme_token_table_is_the_generated_one():
    assert _readme_token_table() == spec.token_table(), (
        "the README's spec token table is out of date; paste in the output of "
        "python -c 'from nnlib.spec import token_table; print(token_table())'"
    )


def test_every_builtin_layer_is_registered_and_exported():
    for token, cls in REGISTRY.items():
        assert cls.kind == token and cls.description, cls
        assert getattr(nl, cls.__name__) is cls
        assert getattr(nl.layers, cls.__name__) is cls
        assert f"`{spec.usage(cls)}`".replace("|", "\\|") in spec.token_table()
    assert set(LAYER_TYPES.values()) == set(REGISTRY.values())


def type_checker_imports(tree: ast.Module) -> dict[str, str]:
    """{name: the nnlib submodule it comes from} for what a module's top level imports with
    `from .x import name`, `if TYPE_CHECKING:` blocks included (a type checker reads those)."""
    body = list(tree.body)
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            body += node.body
    return {
        alias.asname or alias.name: node.module or ""
        for node in body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if node.module != "typing" and node.module != "__future__"
    }


@pytest.mark.parametrize("package", ["nnlib/__init__.py", "nnlib/layers/__init__.py"])
def test_layer_names_are_visible_without_running_the_package(package):
    """A type checker or an editor reads the source: each built-in layer class is imported by
    name and listed in a literal __all__, not put into the namespace at run time."""
    tree = ast.parse((ROOT / package).read_text(encoding="utf-8"))
    imported = set(type_checker_imports(tree))
    listed = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__all__"]
    )
    builtin = {name for name, cls in LAYER_TYPES.items() if cls.__module__.startswith("nnlib.")}
    assert builtin - imported == set() and builtin - set(listed) == set()
    assert set(listed) <= imported


@pytest.mark.parametrize("package", ["nnlib", "nnlib.callbacks"])
def test_the_lazy_names_are_the_names_type_checkers_see(package):
    """The packages import their public names on first use (nnlib._lazy): each from the
    submodule its `TYPE_CHECKING` import names, and every name of __all__ resolves to it."""
    module = importlib.import_module(package)
    source = ROOT / package.replace(".", "/") / "__init__.py"
    imported = type_checker_imports(ast.parse(source.read_text(encoding="utf-8")))
    assert {name: where for name, where in imported.items() if name[0] != "_"} == module._LAZY
    assert set(module.__all__) == set(module._LAZY)
    for name in module.__all__:
        where = module._LAZY[name]
        home = importlib.import_module(f"{package}.{where or name}")
        assert getattr(module, name) is (getattr(home, name) if where else home), name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match=f"'{package}' has no attribute 'Dens'"):
        module.Dens  # noqa: B018


def test_the_run_log_modules_import_no_layer_dataset_or_callback():
    """What `nnlib runs list` and the runs screen import: the packages' `__init__` import
    nothing else (the layers, datasets and callbacks were most of the time to the screen)."""
    code = (
        "import sys, nnlib, nnlib.config, nnlib.runindex, nnlib.runfilter, nnlib.runtable\n"
        "print(sorted(sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=writer_env(), capture_output=True, text=True, timeout=60
    )
    loaded = set(ast.literal_eval(done.stdout))
    assert {"nnlib.runs", "nnlib.callbacks.base"} <= loaded
    heavy = {
        "nnlib.layers",
        "nnlib.datasets",
        "nnlib.callbacks.monitor",
        "nnlib.model",
        "nnlib.spec",
        "nnlib.trainer",
    }
    assert heavy & loaded == set()


def test_the_gradcheck_function_keeps_its_name_once_its_module_is_imported():
    """`nnlib.gradcheck` is the function, also after `import nnlib.gradcheck` (which binds
    the submodule to that name in the package) in a process that had not asked for it yet."""
    code = (
        "import nnlib.gradcheck, nnlib\n"
        "from nnlib import gradcheck\n"
        "print(callable(nnlib.gradcheck), gradcheck is nnlib.gradcheck.__globals__['gradcheck'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=writer_env(), capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_usage_comes_from_the_declaration():
    assert spec.usage(nl.Conv2D) == "conv(filters, kernel, [stride=1], [pad=0|same|valid])"
    assert spec.usage(nl.MaxPool2D) == "maxpool(pool, [stride=pool])"
    assert spec.usage(nl.LeakyReLU) == "leakyrelu([alpha=0.01])"
    assert spec.usage(nl.Dense) == "dense(units)"  # init is accepted but not advertised
    assert spec.usage(nl.ReLU) == "relu"


def test_a_new_layer_is_a_spec_token_at_once(scale_layer, tmp_path):
    model = nl.build("conv(2,3) testscale(by=0.5) dense(3)", (6, 6, 1), seed=0)
    assert [type(layer) for layer in model] == [nl.Conv2D, scale_layer, nl.Flatten, nl.Dense]
    assert model.layers[1].factor == 0.5 and model.layers[1].name == "testscale_1"
    assert model.spec == "conv(2,3) testscale(by=0.5) dense(3)"  # implicit flatten left out
    assert nl.build("testmul(2) relu", (4,)).layers[0].factor == 2.0  # alias, positional
    assert spec.to_token(scale_layer()) == "testscale"  # the default is not written back
    assert "| `testscale([by=1.0])` | multiply by a constant (also `testmul`) |" in (
        spec.token_table()
    )
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 1)).astype(np.float32)
    same = nl.load(model.save(tmp_path / "scale.npz"))
    np.testing.assert_array_equal(same.predict(x), model.predict(x))


def test_a_new_layer_appears_in_spec_errors(scale_layer):
    with pytest.raises(nl.SpecError) as error:
        nl.build("nosuch(2)", (4,))
    assert "testscale" in str(error.value)
    with pytest.raises(nl.SpecError) as error:
        nl.build("testscale(by=1,times=2)", (4,))
    assert str(error.value) == (
        "spec token 1 'testscale(by=1,times=2)': unknown argument 'times'; "
        "expected testscale([by=1.0])"
    )


def test_a_taken_token_is_refused_at_class_definition(scale_layer):
    with pytest.raises(TypeError, match=r"spec token 'dense' is already taken by .*dense\.Dense"):

        class Other(Layer):
            kind = "dense"

    with pytest.raises(TypeError, match=r"'testmul' is already taken by .*Scale"):

        class Another(Layer):
            kind = "another"
            aliases = ("testmul",)


def test_a_spec_argument_must_name_a_constructor_parameter():
    with pytest.raises(TypeError, match=r"spec argument 'size' names no constructor parameter"):

        class Broken(Layer):
            kind = "broken"
            spec_args = ("size",)

    assert "broken" not in REGISTRY


def test_only_the_last_spec_argument_may_be_variadic():
    with pytest.raises(TypeError, match=r"only the last spec argument may be variadic"):

        class Spread(Layer):
            kind = "spread"
            spec_args = (SpecArg("names", variadic=True), "size")

            def __init__(self, names: tuple, size: int = 1, name: str | None = None) -> None:
                super().__init__(name)

    assert "spread" not in REGISTRY


def test_an_unregistered_layer_has_no_token():
    class Anonymous(nl.ReLU):  # inherits kind, does not set it: not registered
        pass

    with pytest.raises(ValueError, match="Anonymous has no spec token"):
        spec.to_token(Anonymous())
    assert REGISTRY["relu"] is nl.ReLU
