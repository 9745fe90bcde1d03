"""The command line's arguments: `index`, `demo`, `info`, `evaluate` and `snapshot` (README).

`commands.py` runs them; `__main__` turns errors into exit status 2 with one message.
"""

from __future__ import annotations

import argparse
import math

from fashion_clip.ingest.catalog import FORMAT_NAMES
from fashion_clip.ingest.columns import ROLES
from fashion_clip.ingest.decoding import DECODE_MODES
from fashion_clip.ingest.prune import DEFAULT_MAX_FRACTION
from fashion_clip.ingest.shards import Shard, parse_shard
from fashion_clip.settings import Settings, load_settings

EPILOG = """exit status: 0 all rows indexed; 1 finished, some rows skipped (listed on stderr and
in --report) or a --prune refused; 2 usage, configuration or fatal error.
settings come from the environment or .env: FASHION_CLIP_MODEL, HF_TOKEN, QDRANT_URL,
QDRANT_API_KEY, QDRANT_PATH, FASHION_CLIP_COLLECTION, AWS_* (see README)."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
        help="log progress details and show tracebacks of errors",
    )  # fmt: skip
    parser = argparse.ArgumentParser(
        prog="indexer",
        description="Load a product catalog's FashionCLIP embeddings into Qdrant, inspect and "
        "evaluate collections, and move them as snapshots.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="details and tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=text, description=text, epilog=EPILOG, parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip

    index = command("index", "index a catalog: new and changed rows are embedded and upserted")
    index.add_argument(
        "catalog", metavar="CATALOG",
        help="a .csv, .jsonl, .json (list of objects) or .parquet file, local, s3://bucket/key "
        "or http(s)://, or a Hugging Face dataset hf://datasets/OWNER/NAME[/PATH]; needs 'id' "
        "and 'image' fields (or --id-column and --image-column naming them; Parquet: image as "
        "a path, bytes or a {bytes, path} struct), 'caption' recommended, every other field "
        "becomes payload",
    )  # fmt: skip
    index.add_argument(
        "--images", metavar="ROOT",
        help="where relative image paths point: a directory, s3://bucket/prefix or an "
        "http(s):// base URL (default: the catalog's own folder); paths never leave ROOT",
    )  # fmt: skip
    index.add_argument(
        "--collection", metavar="NAME", type=_collection,
        help="collection to fill (default: FASHION_CLIP_COLLECTION, else the catalog file's "
        "name); one this run creates and writes nothing to is removed again",
    )  # fmt: skip
    _indexing_options(index)
    index.add_argument(
        "--prune", action="store_true",
        help="delete points whose ids are no longer in the catalog; refused (exit 1, nothing "
        "deleted) when a row could not be read to its id",
    )  # fmt: skip
    index.add_argument(
        "--max-prune-fraction", type=_share, default=DEFAULT_MAX_FRACTION, metavar="F",
        help="refuse a prune that would delete more than this share of the collection, the "
        "mark of a catalog cut short (default: %(default)s; 1 allows any)",
    )  # fmt: skip
    index.add_argument(
        "--shard", type=_shard, metavar="K/N",
        help="index only shard K of N (1/N to N/N) of the catalog: the rows whose ids hash to "
        "it, so N indexers fill one collection together; --prune then prunes that shard only",
    )  # fmt: skip
    index.add_argument(
        "--format", choices=FORMAT_NAMES,
        help="catalog format when the file name's extension does not tell",
    )  # fmt: skip
    _source_options(index)
    index.set_defaults(run="index")

    demo = command(
        "demo",
        'index the bundled demo catalog into collection "demo" (rebuilt when it holds another '
        "model's vectors)",
    )
    _indexing_options(demo)
    demo.set_defaults(run="demo")

    info = command("info", "show a collection's size, model, dimension and store")
    info.add_argument(
        "--collection", metavar="NAME", type=_collection,
        help="collection to describe (default: FASHION_CLIP_COLLECTION, else list them all and "
        "name the one the app serves)",
    )  # fmt: skip
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(run="info")

    evaluate = command(
        "evaluate",
        "caption→image recall@1/5/10 and MRR (every product with the same caption counts), "
        "category→product precision@1/@10 and MRR, and zero-shot accuracy and weighted F1 of a "
        "label column, for a collection indexed from CATALOG",
    )
    evaluate.add_argument("catalog", metavar="CATALOG", help="the catalog (as for index)")
    evaluate.add_argument(
        "--label-column", metavar="COL", required=True,
        help="catalog field holding the class of each product (e.g. category)",
    )  # fmt: skip
    evaluate.add_argument(
        "--collection", metavar="NAME", type=_collection,
        help="collection to evaluate (default: FASHION_CLIP_COLLECTION, else the catalog's name "
        "where such a collection exists, else the one the app serves: the last indexed)",
    )  # fmt: skip
    evaluate.add_argument(
        "--model", metavar="M",
        help="model to embed captions and labels (default: the one the collection was built with)",
    )  # fmt: skip
    evaluate.add_argument(
        "--prompt-template", metavar="T", action="append", dest="prompt_templates",
        help="category queries: the label through T, e.g. 'a photo of a {}' (repeat to "
        "average several; default: the bare label)",
    )  # fmt: skip
    evaluate.add_argument("--format", choices=FORMAT_NAMES, help="catalog format")
    _source_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(run="evaluate")

    tag = command(
        "tag",
        "write each point's zero-shot label of an attribute into its payload (FIELD and "
        "FIELD_confidence), from the stored image vectors; a keyword index makes it a filter",
    )
    tag.add_argument(
        "--collection", metavar="NAME", type=_collection,
        help="collection to tag (default: the one the app serves: FASHION_CLIP_COLLECTION, "
        "else the last indexed catalog's, else 'demo')",
    )  # fmt: skip
    tag.add_argument(
        "--attribute", metavar="FIELD=L1,L2,...", action="append", required=True,
        help="a payload field and the labels it may take (repeat for several fields)",
    )  # fmt: skip
    tag.add_argument(
        "--min-confidence", metavar="P", type=_share, default=0.0,
        help="leave the field empty where the best label's probability is below P (0-1)",
    )  # fmt: skip
    tag.add_argument(
        "--overwrite", action="store_true", help="replace values the points already have"
    )
    tag.add_argument(
        "--model", metavar="M",
        help="model to embed the labels (default: the one the collection was built with)",
    )  # fmt: skip
    tag.set_defaults(run="tag")

    snapshot = command("snapshot", "export a collection to a snapshot file, or import one")
    snapshot.add_argument("action", choices=("push", "pull"), help="push: export; pull: import")
    snapshot.add_argument("uri", metavar="URI", help="a file path or s3://bucket/key")
    snapshot.add_argument(
        "--collection", metavar="NAME", type=_collection,
        help="collection to export or import into (default: FASHION_CLIP_COLLECTION, else "
        "for push the one the app serves, the last indexed catalog's or 'demo', and for pull "
        "the snapshot's own name)",
    )  # fmt: skip
    snapshot.add_argument(
        "--recreate", action="store_true", help="pull: replace an existing collection"
    )
    snapshot.set_defaults(run="snapshot")
    return parser


def _source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--split", metavar="NAME",
        help="hf:// catalogs: the split to read (default: the only one, else train)",
    )  # fmt: skip
    parser.add_argument("--revision", metavar="REV", help="hf:// catalogs: a branch, tag or commit")
    for role in ROLES:
        parser.add_argument(
            f"--{role}-column", metavar="COL",
            help=f"the catalog field (CSV or Parquet column, JSON key) holding the {role}, where "
            f"it goes by another name (default: '{role}'); a field called '{role}' then becomes "
            f"'{role}_original'",
        )  # fmt: skip


def _indexing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", metavar="M",
        help="model: a Hugging Face id, a folder, 'fashion-clip' or 'demo' (default: "
        "FASHION_CLIP_MODEL, else patrickjohncyh/fashion-clip)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=_positive, metavar="N",
        help="images per model call and per upsert (default: 32 on the CPU, 256 on a GPU)",
    )  # fmt: skip
    parser.add_argument(
        "--recreate", action="store_true",
        help="drop the collection first and index everything again",
    )  # fmt: skip
    parser.add_argument(
        "--report", metavar="FILE",
        help="write each skipped row as a JSON line {row, id, reason, image} to FILE",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=_positive, metavar="N",
        help="images fetched and decoded at once (default: one per CPU core, at least 4, at "
        "most 32; more for slow URLs or S3); with --decode processes (auto beside a GPU) "
        "they run in min(N, cores) processes, each with at least one at a time",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=_positive_number, default=15.0, metavar="S",
        help="seconds to wait for one HTTP image before giving up (default: 15)",
    )  # fmt: skip
    parser.add_argument(
        "--retries", type=_count, default=2, metavar="N",
        help="extra attempts after a transient HTTP failure: timeout, 5xx, 429 (default: 2)",
    )  # fmt: skip
    parser.add_argument(
        "--max-image-mb", type=_positive_number, default=50.0, metavar="MB",
        help="refuse image files larger than this (default: 50)",
    )  # fmt: skip
    parser.add_argument(
        "--decode", choices=DECODE_MODES, default="auto",
        help="where images are fetched, hashed and decoded: in threads of the indexer (on a "
        "CPU they wait while the model runs), or in decoding processes (default: auto, "
        "processes when the model is on a GPU)",
    )  # fmt: skip
    parser.add_argument(
        "--keyword-fields", metavar="F1,F2", default=None,
        help="catalog fields that keyword search matches, comma-separated (default: the id, "
        "the caption and every other text field)",
    )  # fmt: skip
    parser.add_argument(
        "--quantize", choices=("fp32", "bf16", "int8"),
        help="the image model's precision (default: FASHION_CLIP_IMAGE_PRECISION, else bf16 on "
        "CPUs with native bf16, fp32 elsewhere); int8 (CPU, both towers): ~3x faster than "
        "fp32, cosine >= 0.99, and its vectors count as another model's",
    )  # fmt: skip
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )  # fmt: skip


# argparse turns a type's ValueError into "invalid _positive value"; these say it plainly.
def _positive(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _count(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text}")
    return value


def _share(text: str) -> float:
    """A probability or a fraction: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _collection(text: str) -> str:
    if not text.strip():  # an empty name would quietly mean the default collection
        raise argparse.ArgumentTypeError("the collection name is empty")
    return text


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    """Parse arguments (argparse exits 2 on usage errors) and load the settings."""
    args = build_parser().parse_args(argv)
    return args, load_settings()
