"""Layers point one way: `app.py`, `indexer/`, `space/` -> `fashion_clip/`, whose packages
are ranked; `space` and `indexer` never import each other; no two modules import each other,
even through function-level imports; a function-level import defers something heavy and
says so; entry points import cheaply."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.import_graph import (
    ROOTS,
    import_cycles,
    import_edges,
    layer_breaks,
    needless_deferrals,
)

REPO = Path(__file__).resolve().parents[1]


def test_no_layer_points_up() -> None:
    assert layer_breaks(import_edges(REPO)) == []


def test_no_modules_import_each_other() -> None:
    assert import_cycles(import_edges(REPO)) == []


def test_function_level_imports_defer_something_heavy_and_say_why() -> None:
    assert needless_deferrals(REPO) == []


def _copy_sources(target: Path) -> Path:
    """Our packages' Python files (not the demo's model and pictures) under `target`."""
    for root in ROOTS:
        if (REPO / root).is_dir():
            shutil.copytree(
                REPO / root,
                target / root,
                ignore=lambda folder, names: [
                    n for n in names if not n.endswith(".py") and not (Path(folder) / n).is_dir()
                ],
            )
        else:
            shutil.copy(REPO / f"{root}.py", target / f"{root}.py")
    return target


def _plant(path: Path, code: str) -> None:
    path.write_text(path.read_text() + textwrap.dedent(code))


def test_a_planted_indexer_import_in_the_library_is_found(tmp_path: Path) -> None:
    tree = _copy_sources(tmp_path)
    assert layer_breaks(import_edges(tree)) == []
    # Hidden inside a function, where an import-time check would never see it.
    _plant(
        tree / "fashion_clip/api/fclip.py",
        """
        def _planted():
            from indexer import commands  # noqa

            return commands
        """,
    )
    _plant(tree / "space/results.py", "\nimport indexer.cli  # noqa\n")
    _plant(tree / "indexer/commands.py", "\nfrom space import handlers  # noqa\n")
    broken = layer_breaks(import_edges(tree))
    assert len(broken) == 3, broken
    assert broken[0].startswith("fashion_clip/api/fclip.py:")
    assert broken[0].endswith("fashion_clip.api.fclip imports indexer.commands")
    assert broken[1].endswith("indexer.commands imports space.handlers")
    assert broken[2].endswith("space.results imports indexer.cli")


def test_a_library_package_importing_a_higher_one_is_found(tmp_path: Path) -> None:
    tree = _copy_sources(tmp_path)
    # The model must not know the ingestion that uses it, nor a store know the tasks.
    _plant(tree / "fashion_clip/model/clip.py", "\nfrom fashion_clip.ingest import job  # noqa\n")
    _plant(tree / "fashion_clip/store/ids.py", "\nimport fashion_clip.tasks.embed  # noqa\n")
    broken = layer_breaks(import_edges(tree))
    assert [b.split(": ", 1)[1] for b in broken] == [
        "fashion_clip.model.clip imports fashion_clip.ingest.job",
        "fashion_clip.store.ids imports fashion_clip.tasks.embed",
    ], broken


def test_a_planted_cycle_is_found(tmp_path: Path) -> None:
    tree = _copy_sources(tmp_path)
    # store.base imports store.vectors; a function in vectors importing base closes a loop.
    _plant(
        tree / "fashion_clip/store/vectors.py",
        """
        def _planted():
            from fashion_clip.store.base import Hit  # noqa

            return Hit
        """,
    )
    assert import_cycles(import_edges(tree)) == [
        ["fashion_clip.store.base", "fashion_clip.store.vectors"]
    ]


def test_a_needless_or_unexplained_deferred_import_is_found(tmp_path: Path) -> None:
    tree = _copy_sources(tmp_path)
    _plant(
        tree / "fashion_clip/ingest/report.py",
        """
        def _cheap():
            from fashion_clip.errors import CatalogError

            return CatalogError


        def _unexplained():
            import torch

            return torch


        def _optional():
            try:
                import pyarrow.parquet  # optional: only Parquet catalogs need it
            except ImportError:
                return None
            return pyarrow.parquet
        """,
    )
    problems = needless_deferrals(tree)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "fashion_clip.errors.CatalogError is cheap: import it at the top",
        "torch: say why it is deferred",
    ], problems


# huggingface_hub reads HF_HUB_* once, at import: the indexer sets them after parsing -v.
HEAVY_AT_START = (
    "torch",
    "transformers",
    "gradio",
    "qdrant_edge",
    "qdrant_client",
    "boto3",
    "pyarrow",
    "huggingface_hub",
)


def test_importing_the_packages_and_indexer_help_load_nothing_heavy() -> None:
    code = textwrap.dedent(
        f"""
        import contextlib, io, runpy, sys
        import fashion_clip, space, indexer
        sys.argv = ["indexer", "--help"]
        with contextlib.redirect_stdout(io.StringIO()) as shown:
            try:
                runpy.run_module("indexer", run_name="__main__")
            except SystemExit as stop:
                assert stop.code == 0, stop.code
        assert "index" in shown.getvalue()
        print(sorted(set({HEAVY_AT_START!r}) & set(sys.modules)))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert run.stdout.strip() == "[]"
