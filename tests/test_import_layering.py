"""The package layering: the registry sits below layers; `kestrel.saving` (files) sits above
models, so no module below it imports it at module level (calls inside methods may)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "kestrel"
BELOW_SAVING = ["registry", "layers", "activations", "initializers", "losses", "metrics",
                "regularizers", "constraints", "optimizers", "ops", "models"]


def _module_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:  # module level only: function bodies run later, on demand
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("package", BELOW_SAVING)
def test_lower_packages_do_not_import_saving_at_module_level(package):
    offenders = [f"{path.relative_to(ROOT)}: {name}"
                 for path in sorted((ROOT / package).rglob("*.py"))
                 for name in _module_level_imports(path) if name.startswith("kestrel.saving")]
    assert offenders == []


def test_registry_imports_nothing_above_it():
    for path in (ROOT / "registry").glob("*.py"):
        for name in _module_level_imports(path):
            assert not name.startswith("kestrel.") or name.startswith(
                ("kestrel.registry", "kestrel.config")), f"{path.name}: {name}"
