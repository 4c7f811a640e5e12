"""The layering of docs/architecture.md, checked by walking every import statement of the package
(including the imports inside functions): models/, data/, nn/, runtime/ and judge/ make no pictures
and know no trainer or CLI, nn/ knows no model, runtime/ (how steps run) stands on torch and the
project's errors alone, and the modules of models/ import each other without cycles."""

import ast
from pathlib import Path

import pytest

import rnnimg

ROOT = Path(rnnimg.__file__).parent
LOWER = ("rnnimg.models", "rnnimg.data", "rnnimg.nn", "rnnimg.runtime", "rnnimg.judge")
UPPER = ("rnnimg.viz", "rnnimg.tasks", "rnnimg.train", "rnnimg.train.callbacks", "rnnimg.cli", "rnnimg.demo",
         "rnnimg.serve")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every rnnimg module named by an import statement anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rnnimg")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnnimg"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # from rnnimg import viz
    return found


GRAPH = {module_name(p): imports_of(p) for p in ROOT.rglob("*.py")}
PACKAGES = {module_name(p) for p in ROOT.rglob("__init__.py")}


def under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_walk_sees_the_package():
    assert "rnnimg.models.base" in GRAPH and "rnnimg.tasks.generate" in GRAPH
    # the walk finds imports (a walk that finds none passes all)
    assert "rnnimg.viz" in GRAPH["rnnimg.tasks.generate"]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if under(m, LOWER)))
def test_lower_layers_import_no_pictures_trainer_or_cli(module):
    bad = sorted(i for i in GRAPH[module] if under(i, UPPER))
    assert not bad, f"{module} imports {bad}: pictures belong in rnnimg.tasks, training in rnnimg.train"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if under(m, ("rnnimg.nn",))))
def test_nn_imports_no_model(module):
    bad = sorted(i for i in GRAPH[module] if under(i, ("rnnimg.models",)))
    assert not bad, f"{module} imports {bad}: building blocks must not know the models"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if under(m, ("rnnimg.runtime",))))
def test_runtime_stands_on_torch_and_errors_alone(module):
    bad = sorted(i for i in GRAPH[module] if not under(i, ("rnnimg.runtime", "rnnimg.errors")))
    assert not bad, f"{module} imports {bad}: the runtime sits below the building blocks and the models"


def test_cuda_graph_runtime_is_not_a_building_block():
    """nn/ holds recurrent building blocks; the buffers, graphs and compile options live in runtime/."""
    assert "rnnimg.runtime.graphs" in GRAPH and "rnnimg.runtime.options" in GRAPH
    assert not [m for m in GRAPH if m in ("rnnimg.nn.graphs", "rnnimg.models.static")]


def test_fileio_is_the_ground_floor():
    assert not {i for i in GRAPH["rnnimg.fileio"] if i != "rnnimg"}


def test_model_modules_import_each_other_without_cycles():
    """Package __init__ files are left out: importing ``rnnimg.models`` (or a task folder such as
    ``rnnimg.models.generate``) registers its models, which the registry does on purpose."""
    modules = {m for m in GRAPH if under(m, ("rnnimg.models",)) and m not in PACKAGES}
    assert "rnnimg.models.generate.draw" in modules and "rnnimg.models.generate" not in modules
    edges = {m: {i for i in GRAPH[m] if i in modules} for m in modules}
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(path + [m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in edges[m]:
            visit(n, path + [m])
        state[m] = 2

    for m in sorted(modules):
        visit(m, [])
