"""Local re-runs of an unchanged catalog: this tree against an earlier commit's code.

`benchmarks/rerun.py` compares today's re-run with a re-run that reads and hashes every
image, simulated in today's code. This one runs the earlier commit's own indexer instead:
the commit is exported (`git archive`) and each tree indexes the same catalog into its own
store, in its own process, the two alternating round by round so that the machine's load
falls on both alike. Each process runs the catalog once (a first run, or an untimed re-run)
and then `--repeat` timed re-runs.

`--cold` evicts the catalog's pictures from the page cache (`posix_fadvise(DONTNEED)`, which
touches only those files) before each timed re-run: a re-run after a day's other work finds
them on disk, not in memory. Without it the pictures were read just before, the case most
favourable to a re-run that reads them all.

`python -m benchmarks.rerun_commits --against 495550a [--n 2000] [--cold]`; the last line is
`RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import machine, print_table, result_line, vitb32_folder
from benchmarks.rerun import catalog_files

# One tree's runs, in a process that imports only that tree. The imports name both layouts:
# the indexing job moved from `indexer/` into `fashion_clip.ingest` in 2026-12.
_DRIVER = """
import json, os, sys, time
tree, catalog, images, store_dir, model_source, repeat, cold = sys.argv[1:8]
sys.path.insert(0, tree)
try:
    from fashion_clip.ingest.job import collection_spec, index_catalog, open_catalog
    from fashion_clip.ingest.report import Reporter
    from fashion_clip.ingest.sources import ImageRoot
    from fashion_clip.model.clip import ClipModel
except ImportError:
    from indexer.job import collection_spec, index_catalog, open_catalog
    from indexer.report import Reporter
    from indexer.sources import ImageRoot
    from fashion_clip.model import ClipModel
import fashion_clip
from fashion_clip.store.embedded import EmbeddedStore
assert fashion_clip.__file__.startswith(tree), fashion_clip.__file__
model = ClipModel.load(model_source)
pictures = [os.path.join(images, name) for name in os.listdir(images)]

def evict():
    for path in pictures:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

def run():
    started = time.perf_counter()
    with (
        open_catalog(catalog) as opened, Reporter() as reporter,
        EmbeddedStore(store_dir) as store,
        store.open_or_create("bench", collection_spec(model, opened)) as collection,
    ):
        summary = index_catalog(opened, ImageRoot(images, catalog), collection, model, reporter)
    return time.perf_counter() - started, summary

first, summary = run()
times = []
for _ in range(int(repeat)):
    if cold == "1":
        evict()
    seconds, summary = run()
    assert summary.unchanged == len(pictures), summary
    times.append(seconds)
print("RUN " + json.dumps({"first_s": first, "reruns_s": times}))
"""


def export(revision: str, into: Path) -> Path:
    """The tree of `revision` (a commit of this repository), written under `into`."""
    tree = into / f"tree-{revision}"
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def run_tree(tree: Path, catalog: Path, images: Path, store: Path, args) -> list[float]:
    """One process of `tree`'s runs; the timed re-runs' seconds."""
    command = [
        sys.executable, "-c", _DRIVER, str(tree.resolve()), str(catalog.resolve()),
        str(images.resolve()), str(store), args.model_source, str(args.repeat),
        "1" if args.cold else "0",
    ]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=store.parent)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RUN "))
    return json.loads(line[4:])["reruns_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the earlier commit to compare with")
    parser.add_argument("--n", type=int, default=2000, help="catalog rows (image files)")
    parser.add_argument("--size", default="1000x1333", help="photo width x height")
    parser.add_argument("--rounds", type=int, default=3, help="processes per tree, alternating")
    parser.add_argument("--repeat", type=int, default=5, help="timed re-runs per process")
    parser.add_argument("--cold", action="store_true", help="evict the pictures before each")
    parser.add_argument(
        "--model", default="vitb32",
        help="vitb32 (FashionCLIP's size, random weights) or demo; a re-run does not run it",
    )  # fmt: skip
    args = parser.parse_args()
    args.model_source = str(vitb32_folder().resolve()) if args.model == "vitb32" else args.model
    width, height = (int(side) for side in args.size.split("x"))
    folder, catalog, total = catalog_files(args.n, (width, height))

    work = Path(tempfile.mkdtemp(prefix="rerun-commits-"))
    trees = {"this tree": Path.cwd(), args.against: export(args.against, work)}
    times: dict[str, list[float]] = {name: [] for name in trees}
    try:
        for _ in range(args.rounds):  # alternating: the machine's load hits both alike
            for name, tree in trees.items():
                store = work / f"store-{list(trees).index(name)}"
                times[name] += run_tree(tree, catalog, folder, store, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ours, theirs = times["this tree"], times[args.against]
    cache = "cold (pictures evicted)" if args.cold else "warm (pictures in memory)"
    print(f"{args.n} pictures of {args.size} ({total / 1e6:.0f} MB), page cache {cache}")
    print(machine())
    rows = [
        (name, f"{min(t):.3f}", f"{statistics.median(t):.3f}", str(len(t)))
        for name, t in times.items()
    ]
    print_table(rows, ("tree", "best re-run s", "median re-run s", "re-runs"))
    best, median = min(theirs) / min(ours), statistics.median(theirs) / statistics.median(ours)
    print(f"this tree's re-run: {best:.2f}x faster (best), {median:.2f}x (median)")
    figures = {"n": args.n, "image_mb": total / 1e6, "cold": float(args.cold)}
    figures |= {"ours_best_s": min(ours), "ours_median_s": statistics.median(ours)}
    figures |= {"reference_best_s": min(theirs), "reference_median_s": statistics.median(theirs)}
    figures |= {"speedup_best": best, "speedup_median": median}
    print(result_line(figures))


if __name__ == "__main__":
    main()
