"""What the indexer does to the thread that drives a GPU, measured on a machine without one.

    python -m benchmarks.driver [--n 2048] [--distinct 256] [--batch-size 256] [--ops 300]
        [--gpu-ms 60] [--workers N] [--repeat 2]

On a GPU the model's call is a few hundred small PyTorch calls (each gives up the GIL and
takes it back, like a kernel launch) and then a wait while the GPU computes. Here a stand-in
does exactly that: `--ops` tiny tensor additions, then `--gpu-ms` of sleep per batch. It is
timed alone, then as the model of `ingest.job.index_catalog` with the decoding processes (the
GPU's default) over N rows of 1000x1333 JPEGs. Per batch, "lost" is the stand-in's call
inside the pipeline minus alone: its driving thread slowed by the GIL held by the indexer's
other threads and by the cores taken by decoding. "Idle" is the run's wall time per batch
minus the stand-in's own: everything a real GPU would wait for, lost time, waiting for
images and the main loop's own work included. With `--gpu-ms` above the decoding time of a
batch (~550 ms on 2 cores), the images are ready ahead and "idle" is the pipeline's own cost.
Both ways of preparing rows are run, interleaved, in fresh processes: in decoding processes
(`--decode processes`, the default beside a GPU) and in threads of the indexer (`--decode
threads`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, print_table, result_line, vitb32_folder
from benchmarks.index import FreeModel, index_into, write_catalog


class StandIn:
    """The model's image call as a GPU makes it look to the CPU: launches, then a wait."""

    def __init__(self, model, ops: int, gpu_s: float) -> None:
        import torch

        self._vectors = FreeModel(model)  # what it returns: unit vectors at no cost
        self._ops, self._gpu_s, self._tensor = ops, gpu_s, torch.zeros(16)

    def __call__(self, crops: np.ndarray, *, normalize: bool = True) -> np.ndarray:
        x = self._tensor
        for _ in range(self._ops):
            x = x + 1.0
        time.sleep(self._gpu_s)
        return self._vectors(crops)


def run(args: argparse.Namespace, decode: str) -> dict:
    import torch

    from fashion_clip.ingest.pipeline import IndexOptions, default_workers
    from fashion_clip.model.clip import ClipModel
    from fashion_clip.store.embedded import EmbeddedStore

    torch.set_num_threads(1)  # a GPU's driving thread computes nothing itself
    catalog, photos = write_catalog(args.n, args.distinct)
    model = ClipModel.load(str(vitb32_folder()), text_precision="fp32")
    stand_in = StandIn(model, args.ops, args.gpu_ms / 1000)
    batch = np.zeros((args.batch_size, 224, 224, 3), dtype=np.uint8)
    start = time.perf_counter()
    for _ in range(10):
        stand_in(batch)
    alone = (time.perf_counter() - start) / 10
    model.encode_crops = stand_in
    # To the pipeline this is a GPU's model: workers decode beside it, not between its calls
    # (the CPU's turns), as they do beside a GPU. Nothing else reads the device here.
    model.device = "cuda (stand-in)"
    options = IndexOptions(
        batch_size=args.batch_size,
        workers=args.workers or default_workers(),
        progress=False,
        decode=decode,
    )
    with tempfile.TemporaryDirectory(prefix="bench-driver-") as tmp:
        start = time.perf_counter()
        summary = index_into(EmbeddedStore(Path(tmp) / "qdrant"), catalog, photos, model, options)
        seconds = time.perf_counter() - start
    batches = -(-summary.indexed // args.batch_size)
    return {
        "rows_per_s": summary.indexed / seconds,
        "alone_ms": 1000 * alone,
        # Per batch, the run's wall time beyond the stand-in's own: what a GPU would idle.
        "idle_ms": 1000 * seconds / batches - 1000 * alone,
        "in_pipeline_ms": 1000 * summary.stages["encode_s"] / batches,
        "wait_ms": 1000 * summary.stages["wait_s"] / batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="catalog rows")
    parser.add_argument("--distinct", type=int, default=256, help="distinct photo files")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--ops", type=int, default=300, help="small PyTorch calls per batch")
    parser.add_argument("--gpu-ms", type=float, default=60.0, help="the GPU's time per batch")
    parser.add_argument(
        "--workers", type=int, help="the indexer's --workers (default: its own; processes: "
        "at most one per core)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting; the best counts")
    parser.add_argument("--role", help=argparse.SUPPRESS)  # internal: one run, this decode
    args = parser.parse_args()
    args.distinct = min(args.distinct, args.n)
    if args.role:
        print("ROLE " + json.dumps(run(args, args.role)))
        return

    settings = {"decoding processes (ours)": "processes", "threads": "threads"}
    write_catalog(args.n, args.distinct)  # once, before any timing
    vitb32_folder()
    results: dict[str, dict] = {}
    for _ in range(args.repeat):
        for name, decode in settings.items():
            command = [sys.executable, "-m", "benchmarks.driver", "--role", decode,
                       "--n", str(args.n), "--distinct", str(args.distinct),
                       "--batch-size", str(args.batch_size), "--ops", str(args.ops),
                       "--gpu-ms", str(args.gpu_ms)]  # fmt: skip
            if args.workers:
                command += ["--workers", str(args.workers)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("ROLE ")]
            if done.returncode or not lines:
                raise RuntimeError(f"{name} run failed:\n{done.stderr[-3000:]}")
            run_result = json.loads(lines[-1][len("ROLE ") :])
            best = results.get(name)
            if best is None or run_result["idle_ms"] < best["idle_ms"]:
                results[name] = run_result

    print(f"machine: {machine()}")
    print(
        f"{args.n} rows ({args.distinct} distinct 1000x1333 JPEGs), batch {args.batch_size}; "
        f"stand-in: {args.ops} PyTorch calls + {args.gpu_ms:.0f} ms per batch; best of "
        f"{args.repeat}, fresh processes, interleaved"
    )
    rows = [
        (name, f"{r['alone_ms']:.1f}", f"{r['in_pipeline_ms']:.1f}",
         f"{r['in_pipeline_ms'] - r['alone_ms']:.1f}", f"{r['wait_ms']:.1f}",
         f"{r['idle_ms']:.1f}", f"{r['rows_per_s']:.0f}")
        for name, r in results.items()
    ]  # fmt: skip
    header = (
        "setting", "alone ms", "in pipeline ms", "lost ms", "waiting ms", "idle ms", "rows/s"
    )  # fmt: skip
    print_table(rows, header)
    ours, threads = results.values()
    print(
        result_line(
            {
                "standin_alone_ms": ours["alone_ms"],
                "standin_in_pipeline_ms": ours["in_pipeline_ms"],
                "standin_lost_ms": ours["in_pipeline_ms"] - ours["alone_ms"],
                "wait_ms": ours["wait_ms"],
                "idle_ms": ours["idle_ms"],
                "rows_per_s": ours["rows_per_s"],
                "threads_in_pipeline_ms": threads["in_pipeline_ms"],
                "threads_lost_ms": threads["in_pipeline_ms"] - threads["alone_ms"],
                "threads_idle_ms": threads["idle_ms"],
                "threads_rows_per_s": threads["rows_per_s"],
            }
        )
    )


if __name__ == "__main__":
    main()
