"""The rules modules and the PK engine are pure (docs: architecture): no Django import, so
they are tested without a database and never reach for a model. Read from the source, so a
module split off rules.py (rules_base.py, rules_metrics.py) is held to it too, and a pure
module may import only other pure ones of the app (a relative import of models.py would
bring Django in through the back door)."""

import ast
from pathlib import Path

import pytest

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
PURE = sorted([*MONITORING.glob("rules*.py"), *(MONITORING / "pk").rglob("*.py")])


def _module(path: Path) -> str:
    parts = ["monitoring", *path.relative_to(MONITORING).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    package = _module(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add(".".join([*base, node.module] if node.module else base))
    return names


PURE_MODULES = {_module(path) for path in PURE}


def test_the_pure_modules_are_found():
    assert {"monitoring.rules", "monitoring.rules_metrics", "monitoring.pk"} <= PURE_MODULES


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(MONITORING)))
def test_it_imports_no_django_and_nothing_impure_of_the_app(path):
    imported = _imported(path)
    django = {name for name in imported if name.split(".")[0] == "django"}
    impure = {
        name
        for name in imported
        if name.split(".")[0] == "monitoring"
        and not any(name == m or name.startswith(m + ".") for m in PURE_MODULES)
    }
    assert not django, f"{path.name} imports {sorted(django)}"
    assert not impure, f"{path.name} imports {sorted(impure)}"
