"""Shape of the package's code: modules and lines, the longest functions, import cycles.

    python bench/code_shape.py [--top 10]

Import cycles are counted as tests/test_imports.py counts them (tests/import_graph.py).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from import_graph import PACKAGE, cycles, graph, module_name  # the tests' helper


def functions(tree: ast.AST) -> list[tuple[int, str, int]]:
    """(lines, name, first line) of every function and method."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.append((int(node.end_lineno or node.lineno) - node.lineno + 1, node.name, node.lineno))
    return out


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description="modules, lines, longest functions, import cycles")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    paths = sorted(PACKAGE.rglob("*.py"))
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in paths)
    print(f"modules: {len(paths)}  lines: {lines}")
    longest = sorted(
        ((n, f"{module_name(p)}.{f}", at) for p in paths for n, f, at in functions(ast.parse(p.read_text("utf-8")))),
        reverse=True,
    )
    print(f"longest functions (top {args.top}):")
    for n, name, at in longest[: args.top]:
        print(f"  {n:4d}  {name} (line {at})")
    found = cycles(graph())
    print(f"import cycles: {len(found)}")
    for group in found:
        print("  " + " <-> ".join(group))
    return 0


if __name__ == "__main__":
    sys.exit(main())
