"""The container side imports only what ships in the code tarball.

import-linter (``make layers``) holds the layer contracts in pyproject.toml; this test
checks the one fact a contract cannot state: every sagetrack module the container code
imports, however indirectly, is among the files the estimator adds to the code tarball.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

from sagetrack.client.staging import RUNTIME_PACKAGE, bootstrap_paths


def _shipped_modules() -> set[str]:
    package = Path(bootstrap_paths()[0])
    modules = set()
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        parts[0] = "sagetrack"  # shipped under a private package name
        if parts[-1] == "__init__":
            parts.pop()
        modules.add(".".join(parts))
    return modules


def test_container_imports_only_shipped_modules() -> None:
    graph = grimp.build_graph("sagetrack", include_external_packages=True)
    container = (graph.find_descendants("sagetrack.container") | {"sagetrack.container"}) - {
        "sagetrack.container.sitecustomize"}  # ships at the root of the tarball
    imported = graph.find_upstream_modules("sagetrack.container", as_package=True)
    needed = {m for m in imported | container if m.split(".")[0] == "sagetrack"}
    shipped = _shipped_modules()
    assert needed - shipped == set(), "container code imports modules that do not ship"
    external = {m.split(".")[0] for m in imported} - {"sagetrack"} - sys.stdlib_module_names
    assert external <= {"boto3", "botocore", "keras", "tf_keras", "tensorflow", "numpy"}, \
        external


def test_the_bootstrap_ships_no_client_side_code() -> None:
    shipped = _shipped_modules()
    assert not {m for m in shipped if m.startswith(("sagetrack.client", "sagetrack.cli",
                                                    "sagetrack.local"))}


def test_the_runtime_ships_under_its_private_name() -> None:
    assert Path(bootstrap_paths()[0]).name == RUNTIME_PACKAGE != "sagetrack"


def test_no_import_cycles_among_sagetrack_modules() -> None:
    """Imports that run (lazy ones inside functions included) form no cycle."""
    graph = grimp.build_graph("sagetrack", exclude_type_checking_imports=True)
    cycles = sorted({tuple(sorted((module, imported))) for module in graph.modules
                     for imported in graph.find_modules_directly_imported_by(module)
                     if graph.chain_exists(imported=module, importer=imported)})
    assert cycles == []
