"""Import hygiene: no import cycles, no module imports another's private names, ``import trailsight`` stays light."""

from __future__ import annotations

import subprocess
import sys

from import_graph import cycles, graph, private_imports


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_no_module_imports_another_modules_private_names() -> None:
    assert private_imports() == []


def test_the_graph_sees_imports_in_functions() -> None:
    edges = graph()
    # engines.spark imports the pipeline inside detect(); the graph must still see it.
    assert "trailsight.pipeline" in edges["trailsight.engines.spark"]
    assert "trailsight.engines.local" in edges["trailsight.pipeline"]


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_domain_types_import_nothing_of_the_package() -> None:
    edges = graph()
    assert edges["trailsight.finding"] == set()
    assert edges["trailsight.schema"] <= {"trailsight.errors"}


def test_importing_the_package_loads_no_engine() -> None:
    heavy = "('ibis', 'duckdb', 'pyarrow', 'trailsight.')"
    code = f"import sys, trailsight; print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
