"""Every import of our packages, read from the source (AST), at any depth.

A function-level import counts like a top-level one: it hides a dependency from a reader but
not from the layering, so the layering test sees both.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# package -> the first-party packages it must never import
FORBIDDEN = {
    "fashion_clip": ("indexer", "space", "app"),
    "space": ("indexer", "app"),
    "indexer": ("space", "app"),
}
ROOTS = ("fashion_clip", "indexer", "space", "app")
# Inside the library, a package imports only packages of a lower rank (ARCHITECTURE.md).
LIBRARY_RANKS = {
    "fashion_clip.errors": 0,
    "fashion_clip.files": 0,
    "fashion_clip.machine": 0,
    "fashion_clip.redact": 0,
    "fashion_clip.demo": 0,
    "fashion_clip.settings": 1,
    "fashion_clip.media": 2,
    "fashion_clip.model": 3,
    "fashion_clip.tasks": 4,
    "fashion_clip.store": 4,
    "fashion_clip.ingest": 5,
    "fashion_clip.api": 6,
    "fashion_clip": 7,  # the package's own names, imported lazily
}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    where: str  # "path:line"


def module_files(repo: Path, roots: Iterable[str] = ROOTS) -> dict[str, Path]:
    """Dotted module name -> file, for our packages (and the `app.py` script)."""
    found: dict[str, Path] = {}
    for root in roots:
        single = repo / f"{root}.py"
        if single.is_file():
            found[root] = single
        for path in sorted((repo / root).rglob("*.py")) if (repo / root).is_dir() else []:
            parts = list(path.relative_to(repo).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_edges(repo: Path, roots: Iterable[str] = ROOTS) -> list[Edge]:
    """One edge per first-party import statement (or imported submodule), any depth."""
    modules = module_files(repo, roots)
    edges = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for target in _targets(node, package, modules):
                edges.append(Edge(name, target, f"{path.relative_to(repo)}:{node.lineno}"))
    return edges


def _targets(node: ast.AST, package: str, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [_known(alias.name, modules) for alias in node.names if _known(alias.name, modules)]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: climb from this module's package
        up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join([*up, base] if base else up)
    targets = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"  # `from pkg import submodule`
        target = submodule if submodule in modules else _known(base, modules)
        if target:
            targets.append(target)
    return targets


def _known(dotted: str, modules: dict[str, Path]) -> str | None:
    """`dotted` or its nearest parent that is one of our modules; None for third parties."""
    parts = dotted.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def layer_breaks(edges: Iterable[Edge]) -> list[str]:
    """Each import that points up the layers, named with its place."""
    broken = []
    for edge in edges:
        source_root, target_root = edge.source.split(".")[0], edge.target.split(".")[0]
        source, target = _library_package(edge.source), _library_package(edge.target)
        if target_root in FORBIDDEN.get(source_root, ()) or (
            source and target and source != target and rank(target) >= rank(source)
        ):
            broken.append(f"{edge.where}: {edge.source} imports {edge.target}")
    return broken


def rank(package: str) -> int:
    return LIBRARY_RANKS[package]


def _library_package(module: str) -> str | None:
    """`fashion_clip.<package>` a library module belongs to (None outside the library)."""
    parts = module.split(".")
    if parts[0] != "fashion_clip":
        return None
    return ".".join(parts[:2]) if len(parts) > 1 else "fashion_clip"


def import_cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan's SCC)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.source != edge.target:
            graph.setdefault(edge.source, set()).add(edge.target)
            graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# Third-party packages worth deferring: each costs a large share of a second to import, or
# (huggingface_hub) reads its settings once, at import, which the indexer sets first.
HEAVY = frozenset(
    {
        "torch",
        "transformers",
        "gradio",
        "boto3",
        "botocore",
        "qdrant_edge",
        "qdrant_client",
        "pyarrow",
        "huggingface_hub",
    }
)


@dataclass(frozen=True)
class Deferred:
    """An import inside a function."""

    module: str  # the module it is in
    imported: str  # dotted name as written (resolved when relative)
    where: str  # "path:line"
    has_reason: bool  # a comment on its first line or the line above
    guarded: bool  # inside a `try` that catches ImportError: an optional dependency


def deferred_imports(repo: Path, roots: Iterable[str] = ROOTS) -> list[Deferred]:
    """Every function-level import statement of our packages."""
    found = []
    for name, path in module_files(repo, roots).items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            guarded = _import_guarded(function)
            for node in _own_statements(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                    reason = "#" in lines[node.lineno - 1] or above.startswith("#")
                    for imported in _written_names(node, package):
                        found.append(
                            Deferred(
                                name,
                                imported,
                                f"{path.relative_to(repo)}:{node.lineno}",
                                reason,
                                id(node) in guarded,
                            )
                        )
    return found


def _own_statements(function: ast.AST) -> Iterable[ast.AST]:
    """Nodes of `function`'s body, not those of functions defined inside it (walked apart)."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _import_guarded(function: ast.AST) -> set[int]:
    """ids of the import nodes that sit in a `try` whose handlers catch ImportError."""
    guarded: set[int] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Try) and any(
            "ImportError" in ast.unparse(handler.type or ast.Name("BaseException"))
            for handler in node.handlers
        ):
            for inner in node.body:
                guarded.update(id(n) for n in ast.walk(inner))
    return guarded


def _written_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join([*up, base] if base else up)
    return [f"{base}.{alias.name}" for alias in node.names]


def heavy_at_import(repo: Path, roots: Iterable[str] = ROOTS) -> dict[str, set[str]]:
    """Module -> the HEAVY packages importing it loads, following module-level imports only
    (the ones under `if TYPE_CHECKING:` are never run)."""
    modules = module_files(repo, roots)
    direct: dict[str, set[str]] = {}
    heavy: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        parents = name.split(".")
        direct[name] = {".".join(parents[:i]) for i in range(1, len(parents))} & set(modules)
        heavy[name] = set()
        for node in _module_level_imports(ast.parse(path.read_text()).body):
            for written in _written_names(node, package):
                ours = _known(written, modules)
                if ours:
                    direct[name].add(ours)
                    if isinstance(node, ast.ImportFrom):  # `from pkg import name`: pkg runs
                        direct[name].add(_known(written.rpartition(".")[0], modules) or ours)
                elif written.split(".")[0] in HEAVY:
                    heavy[name].add(written.split(".")[0])
    closed: dict[str, set[str]] = {}
    for name in modules:
        seen, todo, found = {name}, [name], set()
        while todo:
            current = todo.pop()
            found |= heavy[current]
            for nxt in direct[current] - seen:
                seen.add(nxt)
                todo.append(nxt)
        closed[name] = found
    return closed


def _module_level_imports(body: list[ast.stmt]) -> Iterable[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            yield from _module_level_imports(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            handlers = [stmt for handler in node.handlers for stmt in handler.body]
            yield from _module_level_imports(node.body + handlers + node.orelse)


def needless_deferrals(repo: Path, roots: Iterable[str] = ROOTS) -> list[str]:
    """Function-level imports that defer nothing heavy and guard no optional dependency, or
    that do not say why they are there."""
    modules = module_files(repo, roots)
    heavy = heavy_at_import(repo, roots)
    problems = []
    for deferred in deferred_imports(repo, roots):
        ours = _known(deferred.imported, modules)
        worth_it = bool(heavy[ours]) if ours else deferred.imported.split(".")[0] in HEAVY
        if not (worth_it or deferred.guarded):
            problems.append(f"{deferred.where}: {deferred.imported} is cheap: import it at the top")
        elif not deferred.has_reason:
            problems.append(f"{deferred.where}: {deferred.imported}: say why it is deferred")
    return problems
