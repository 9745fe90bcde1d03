"""The commands behind the CLI: each returns its exit status for a finished run.

0: all rows indexed; 1: finished with some rows skipped, or a prune refused. Errors
propagate to `__main__`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from fashion_clip.ingest.catalog import Row
from fashion_clip.ingest.choice import choose_collection
from fashion_clip.ingest.columns import ROLES
from fashion_clip.ingest.evaluate import evaluate
from fashion_clip.ingest.job import (
    OpenCatalog,
    catalog_name,
    collection_spec,
    index_catalog,
    index_demo,
    open_catalog,
    run_collection,
)
from fashion_clip.ingest.pictures import pictures_folder
from fashion_clip.ingest.pipeline import IndexOptions, default_batch_size, default_workers
from fashion_clip.ingest.report import Reporter
from fashion_clip.ingest.sources import ImageRoot
from fashion_clip.ingest.tagging import parse_attribute, tag_collection
from fashion_clip.model import allocator
from fashion_clip.model.runtime import load_configured_model
from fashion_clip.settings import DEFAULT_COLLECTION, Settings
from fashion_clip.store import Store, open_store
from fashion_clip.store.snapshot import pull_snapshot, push_snapshot
from indexer import exit_codes

if TYPE_CHECKING:
    from fashion_clip.ingest.pipeline import IndexOptions
    from fashion_clip.ingest.report import Skip, Summary
    from fashion_clip.model.clip import ClipModel


def _note(message: str) -> None:
    tqdm.write(f"indexer: {message}", file=sys.stderr)


# ---------------------------------------------------------------------- index and demo
def run_index(args: argparse.Namespace, settings: Settings) -> int:
    with _open_catalog(args) as catalog:
        root = ImageRoot(args.images, args.catalog)
        name = args.collection or settings.collection or catalog_name(args.catalog)
        model, options = _model_and_options(args, settings, fallback=False)
        options = replace(options, pictures=pictures_folder(settings.qdrant_path, name))
        spec = collection_spec(model, catalog)
        with (
            open_store(settings) as store,
            Reporter(args.report, _print_skip) as reporter,
            run_collection(
                store, name, spec, recreate=args.recreate, shared=options.shard is not None,
                on_removed=_note,
            ) as collection,
        ):  # fmt: skip
            summary = index_catalog(catalog, root, collection, model, reporter, options)
    return _finished(f"{name} shard {options.shard}" if options.shard else name, summary)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """The bundled catalog into `demo`, rebuilt when it holds another model's vectors."""
    # Only the demo catalog may fall back to the demo model when the hub is unreachable.
    model, options = _model_and_options(args, settings, fallback=True)
    with open_store(settings) as store, Reporter(args.report, _print_skip) as reporter:
        collection, summary = index_demo(
            store, model, reporter, options, recreate=args.recreate,
            on_rebuild=lambda message: _note(f"note: {message}"),
        )  # fmt: skip
        collection.close()
    return _finished(DEFAULT_COLLECTION, summary)


def _open_catalog(args: argparse.Namespace) -> contextlib.AbstractContextManager[OpenCatalog]:
    """The catalog as the command line names it: format, hub split and revision, and the
    columns that hold the id, image and caption (--id-column and friends)."""
    given = {role: getattr(args, f"{role}_column") for role in ROLES}
    columns = {role: column for role, column in given.items() if column}
    return open_catalog(
        args.catalog, args.format, split=args.split, revision=args.revision, columns=columns
    )


def _model_and_options(
    args: argparse.Namespace, settings: Settings, *, fallback: bool
) -> tuple[ClipModel, IndexOptions]:
    """The model to index with and the run's options, from the command line."""
    # fp32 text: stored caption vectors should not depend on which rows shared their batch
    # (bf16, the query-latency default on some CPUs, moves them by ~1e-3 with the padding).
    model, note = load_configured_model(
        settings, args.model, quantize=args.quantize, text_precision="fp32", fallback=fallback
    )
    allocator.tune_for(model.device)  # activation memory reused between batches
    if note:
        _note(f"note: {note}")
    options = IndexOptions(
        batch_size=args.batch_size or default_batch_size(model.device),
        workers=args.workers or default_workers(),
        prune=getattr(args, "prune", False),
        max_prune_fraction=getattr(args, "max_prune_fraction", 1.0),
        decode=args.decode,
        progress=args.progress,
        max_bytes=int(args.max_image_mb * 1024 * 1024),
        timeout=args.timeout,
        retries=args.retries,
        keyword_fields=_keyword_fields(getattr(args, "keyword_fields", None)),
        shard=getattr(args, "shard", None),
    )
    return model, options


def _keyword_fields(text: str | None) -> list[str] | None:
    """`--keyword-fields a,b` as a list; None (every text field) when not given."""
    return None if text is None else text.split(",")


def _finished(name: str, summary: Summary) -> int:
    print(f"{name}: {summary.line()}")
    if summary.prune_refused:
        _note(summary.prune_refused)
    return exit_codes.SKIPPED if summary.skipped or summary.prune_refused else exit_codes.OK


def _print_skip(skip: Skip) -> None:
    _note(skip.message())


# ---------------------------------------------------------------------- info
def run_info(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as store:
        wanted = args.collection or settings.collection
        names = [wanted] if wanted else store.list_collections()
        chosen = None if wanted else choose_collection(settings, store)
        described = []
        for name in names:
            with store.open(name) as collection:
                described.append(collection.info())
        location = f"{store.kind} ({store.location})"
    if args.json:
        records = [{**_info_record(info), "store": location} for info in described]
        print(json.dumps(records[0] if wanted else records, indent=2, default=str))
        return exit_codes.OK
    if not described:
        print(f"store: {location}\nno collections yet; index a catalog with `indexer index`")
        return exit_codes.OK
    for info in described:
        record = _info_record(info)
        rows = [("collection", info.name), ("store", location)]
        rows += [(key, record[key]) for key in ("count", "model", "revision", "dimension")]
        rows += [(key, record[key]) for key in ("catalog", "indexed_at", "payload_indexes")]
        width = max(len(key) for key, _ in rows)
        print("\n".join(f"{key:<{width}}  {value if value not in (None, '') else '-'}"
                        for key, value in rows))  # fmt: skip
        if len(described) > 1:
            print()
    if chosen is not None:
        print(f"without --collection the app and the commands use {chosen.name!r} "
              f"({chosen.reason})")  # fmt: skip
    return exit_codes.OK


def _info_record(info: Any) -> dict[str, Any]:
    indexes = ", ".join(f"{k}:{v}" for k, v in sorted(info.payload_indexes.items()))
    return {
        "collection": info.name,
        "count": info.count,
        "model": info.model_id,
        "revision": info.model_revision,
        "dimension": info.dim,
        "distance": info.distance,
        "catalog": info.extra.get("catalog_source") or info.catalog,
        "indexed_at": info.extra.get("indexed_at"),
        "payload_indexes": indexes,
    }


# ---------------------------------------------------------------------- evaluate
def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    with _open_catalog(args) as catalog, open_store(settings) as store:
        name = _evaluated_collection(args, settings, store)
        built_with = store.open(name).info().model_id
        model, note = load_configured_model(settings, args.model or built_with, fallback=False)
        allocator.tune_for(model.device)
        if note:
            _note(f"note: {note}")
        info = model.info
        with store.open(name, model_id=info.name, model_revision=info.revision, dim=info.dim) as c:
            rows = (row for row in catalog.rows() if isinstance(row, Row))
            templates = args.prompt_templates or ("{}",)
            result = evaluate(rows, c, model, args.label_column, category_templates=templates)
    figures = result.as_dict()
    if args.json:
        print(json.dumps({"collection": name, "model": info.name, **figures}, indent=2))
        return exit_codes.OK
    print(f"collection {name!r} ({result.collection_size} points), model {info.name!r}")
    print(f"{'metric':<24}  {'value':>6}  n")
    for key, count in (
        ("recall_at_1", result.queries), ("recall_at_5", result.queries),
        ("recall_at_10", result.queries), ("mrr", result.queries),
        ("category_precision_at_1", result.labels), ("category_precision_at_10", result.labels),
        ("category_mrr", result.labels),
        ("zero_shot_accuracy", result.labelled), ("weighted_f1", result.labelled),
    ):  # fmt: skip
        value = figures[key]
        print(f"{key:<24}  {'n/a' if value is None else f'{value:.4f}':>6}  {count}")
    print(f"labels: {result.labels}; catalog rows not in the collection: {result.not_indexed}")
    return exit_codes.OK


def _evaluated_collection(args: argparse.Namespace, settings: Settings, store: Store) -> str:
    """--collection; else FASHION_CLIP_COLLECTION; else the collection `index CATALOG` fills
    (named after the catalog). Not the last indexed one: scored against another catalog's
    collection, the figures would mean nothing."""
    if args.collection or settings.collection:
        return _existing_collection(args, settings, store)
    own = catalog_name(args.catalog)
    _note(f"collection {own!r} (named after the catalog; --collection chooses another)")
    return own


# ---------------------------------------------------------------------- tag
def run_tag(args: argparse.Namespace, settings: Settings) -> int:
    attributes = [parse_attribute(text) for text in args.attribute]
    with open_store(settings) as store:
        name = _existing_collection(args, settings, store)
        built_with = store.open(name).info().model_id
        model, note = load_configured_model(settings, args.model or built_with, fallback=False)
        if note:
            _note(f"note: {note}")
        info = model.info
        with store.open(name, model_id=info.name, model_revision=info.revision, dim=info.dim) as c:
            summary = tag_collection(
                c, model, attributes, min_confidence=args.min_confidence, overwrite=args.overwrite
            )
    print(f"{name}: {summary.line()}")
    return exit_codes.OK


# ---------------------------------------------------------------------- snapshot
def run_snapshot(args: argparse.Namespace, settings: Settings) -> int:
    with open_store(settings) as store:
        if args.action == "push":
            name = _existing_collection(args, settings, store)
            where = push_snapshot(store, name, args.uri)
            print(f"pushed collection {name!r} to {where}")
        else:
            name = args.collection or settings.collection  # None: the snapshot's own name
            info = pull_snapshot(store, args.uri, name, recreate=args.recreate)
            print(f"pulled {args.uri} into collection {info.name!r} ({info.count} points, "
                  f"model {info.model_id!r})")  # fmt: skip
    return exit_codes.OK


def _existing_collection(args: argparse.Namespace, settings: Settings, store: Store) -> str:
    """--collection, else the collection the app serves (`choose_collection`), said on
    stderr: a command that acts on a collection never leaves the user guessing which."""
    if args.collection:
        return args.collection
    choice = choose_collection(settings, store)
    _note(f"collection {choice.name!r} ({choice.reason}; --collection chooses another)")
    return choice.name


COMMANDS = {
    "index": run_index,
    "demo": run_demo,
    "info": run_info,
    "evaluate": run_evaluate,
    "tag": run_tag,
    "snapshot": run_snapshot,
}
