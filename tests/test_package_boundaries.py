"""The packages' import boundaries, read from the source (no import is run).

``spatial`` is the core and imports none of the others; ``tiles`` and
``scenarios`` build on ``spatial`` and not on each other's internals, the HTTP
application or the demo-city generator; pygeoapi is imported only at the edge:
``server`` and the process adapter ``scenarios/processes/adapter.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spatial", "tiles", "scenarios", "server", "democity")

#: what each package may not import (top-level names)
FORBIDDEN = {
    "spatial": {"tiles", "scenarios", "server", "democity", "pygeoapi"},
    "tiles": {"scenarios", "server", "democity", "pygeoapi"},
    "scenarios": {"tiles", "server", "democity", "pygeoapi"},
    "democity": {"tiles", "scenarios", "server", "pygeoapi"},
    "server": set(),
}
#: the one module outside ``server`` allowed to import pygeoapi
PYGEOAPI_EDGE = {Path("scenarios/processes/adapter.py")}


def imported_top_levels(path: Path) -> set[str]:
    """Top-level package names imported anywhere in ``path`` (lazy imports too).

    Examples
    --------
    >>> sorted(imported_top_levels(Path(__file__)))[:3]
    ['__future__', 'ast', 'pathlib']
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_it_may(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules under {package}/"
    wrong = []
    for module in modules:
        relative = module.relative_to(ROOT)
        forbidden = set(FORBIDDEN[package])
        if relative in PYGEOAPI_EDGE:
            forbidden.discard("pygeoapi")
        bad = imported_top_levels(module) & forbidden
        if bad:
            wrong.append(f"{relative} imports {', '.join(sorted(bad))}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from tiles.spec import x\n    import pygeoapi.api\n")
    assert imported_top_levels(module) >= {"tiles", "pygeoapi"}
