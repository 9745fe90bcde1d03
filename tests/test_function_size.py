"""No function a reader cannot hold: none over 100 lines, but the command line's declarative
argparse builders (a list of options reads top to bottom, however long)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 100  # lines, decorators and docstring included
ARGPARSE_BUILDERS = {"indexer/cli.py": {"build_parser", "_indexing_options"}}
ROOTS = ("fashion_clip", "indexer", "space", "benchmarks", "tests", "app.py")


def long_functions(repo: Path, limit: int = LIMIT) -> list[str]:
    """`path:line name (N lines)` for each function or method longer than `limit` lines."""
    found = []
    for path in sorted(p for root in ROOTS for p in _python_files(repo / root)):
        relative = path.relative_to(repo).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - start + 1
            if length > limit and node.name not in ARGPARSE_BUILDERS.get(relative, ()):
                found.append(f"{relative}:{node.lineno} {node.name} ({length} lines)")
    return found


def _python_files(root: Path) -> list[Path]:
    if root.suffix == ".py":
        return [root] if root.is_file() else []
    return sorted(root.rglob("*.py"))


def test_no_function_is_over_100_lines() -> None:
    assert long_functions(REPO) == []


def test_a_long_function_is_found(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "space").mkdir()
    (tmp_path / "space" / "long.py").write_text(f"def long():\n{body}\n")
    (tmp_path / "indexer").mkdir()  # the allow-list is for these names in indexer/cli.py only
    (tmp_path / "indexer" / "cli.py").write_text(f"def build_parser():\n{body}\n")
    (tmp_path / "space" / "cli.py").write_text(f"def build_parser():\n{body}\n")
    assert long_functions(tmp_path) == [
        "space/cli.py:1 build_parser (101 lines)",
        "space/long.py:1 long (101 lines)",
    ]
