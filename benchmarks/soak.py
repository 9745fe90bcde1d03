"""Soak test of the Space: does memory, disk or anything else grow over thousands of requests?

    python -m benchmarks.soak                      # 4 callers, 15 minutes, demo model
    python -m benchmarks.soak --minutes 60 --callers 8 --every 500

The app is started as a user starts it (`python app.py`, demo model, an embedded store, and
Gradio's and the app's temporary folders of its own under `--folder`), then `--callers`
threads call it with `gradio_client` for `--minutes`: text searches with ever new queries
(the text cache fills), image searches, classifications and localizations of freshly made
JPEGs and PNGs of random sizes up to `--max-side` (every upload is a new file for Gradio's
cache), and bad inputs (empty text, a text file as the image, too many labels, one label,
no image) that must come back as `AppError`s. Each caller starts a new session (a new
`Client`) every `--session` calls, as new visitors do. Every `--every` requests the app's
RSS, its temporary files, open file descriptors and threads are sampled; the table shows
whether they level off (Gradio sweeps its upload cache hourly: soak for over an hour, or
shorten `space.app.CACHE_LIFETIME`, to see it). Unintended failures: a good request that
failed, a bad one that succeeded, or a bad one answered with anything but an `AppError`.
"""

from __future__ import annotations

import argparse
import io
import itertools
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from benchmarks.common import OUT, machine, print_table, result_line
from benchmarks.load import AUDIENCES, COLOURS, KINDS, PATTERNS, STYLES

# Endpoint mix (weights); "bad" draws one of BAD_CALLS, each of which must be refused.
MIX = {"text_search": 40, "image_search": 15, "classify": 15, "localize": 15, "bad": 15}
BAD_CALLS = ["empty_query", "text_file", "too_many_labels", "one_label", "no_image", "no_text"]
LABEL_WORDS = [*KINDS, "hat", "coat", "sweater", "hoodie", "jeans", "sandals", "boots", "scarf",
               "belt", "socks", "blouse", "cardigan", "vest", "swimsuit", "gloves"]  # fmt: skip


# ---------------------------------------------------------------------- the app's process
@dataclass
class App:
    pid: int
    url: str
    watched: dict[str, Path]  # name -> folder whose files are counted
    process: subprocess.Popen | None = None
    log_path: Path | None = None


def start_app(folder: Path, port: int, sweep_seconds: int | None = None) -> App:
    """`python app.py` with the demo model and temporary folders of its own under `folder`;
    with `sweep_seconds`, Gradio's cache is swept that often, of files that old (the app's
    hour, `space.app.CACHE_LIFETIME`, is longer than a soak)."""
    if folder.exists():
        shutil.rmtree(folder)
    gradio_dir, app_tmp = folder / "gradio", folder / "tmp"
    for path in (gradio_dir, app_tmp):
        path.mkdir(parents=True)
    env = {
        **os.environ,
        "FASHION_CLIP_MODEL": "demo",
        "QDRANT_PATH": str(folder / "qdrant"),
        "GRADIO_TEMP_DIR": str(gradio_dir),
        "TMPDIR": str(app_tmp),  # where the app's own temporary folders go (tempfile)
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log_path = folder / "app.log"
    root = Path(__file__).resolve().parent.parent
    with open(log_path, "w") as log_file:
        command = [sys.executable, "app.py"]
        if sweep_seconds:
            command = [
                sys.executable, "-c",
                f"import space.app; space.app.CACHE_LIFETIME = ({sweep_seconds}, {sweep_seconds}); "
                "import app; raise SystemExit(app.main([]))",
            ]  # fmt: skip
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=log_file)
    # The URL Gradio prints: it takes the next free port when `port` is busy (another app's,
    # which must not be the one soaked).
    deadline = time.monotonic() + 300
    url = None
    while url is None:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with {process.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            process.terminate()
            raise SystemExit(f"the app did not start in 5 minutes; see {log_path}")
        time.sleep(1)
        found = re.search(r"Running on local URL:\s*(\S+)", log_path.read_text(errors="replace"))
        url = found and found.group(1).rstrip("/") + "/"
    with urllib.request.urlopen(url + "config", timeout=30) as response:
        response.read()
    watched = {"gradio": gradio_dir, "app_tmp": app_tmp, "qdrant": folder / "qdrant"}
    return App(process.pid, url, watched, process, log_path)


def stop_app(app: App) -> None:
    if app.process is not None and app.process.poll() is None:
        app.process.terminate()
        try:
            app.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait()


# ---------------------------------------------------------------------- what is sampled
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def folder_usage(folder: Path) -> tuple[int, int, int]:
    """(files, bytes, folders) under `folder`."""
    files = size = folders = 0
    for _, dirs, names in os.walk(folder):
        folders += len(dirs)
        for name in names:
            files += 1
            try:
                size += os.lstat(os.path.join(_, name)).st_size
            except FileNotFoundError:  # removed while we walked
                files -= 1
    return files, size, folders


def sample(app: App, requests: int, unintended: int, started: float) -> dict[str, float]:
    figures: dict[str, float] = {
        "requests": requests,
        "minutes": (time.monotonic() - started) / 60,
        "rss_mb": rss_mb(app.pid),
        "fds": fd_count(app.pid),
        "threads": thread_count(app.pid),
        "unintended": unintended,
    }
    for name, folder in app.watched.items():
        files, size, folders = folder_usage(folder)
        figures[f"{name}_files"] = files
        figures[f"{name}_mb"] = size / 1e6
        figures[f"{name}_dirs"] = folders
    return figures


# ---------------------------------------------------------------------- the callers
@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: int = 0
    unintended: int = 0
    walls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    problems: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def make_picture(rng: random.Random, folder: Path, max_side: int) -> Path:
    """A new JPEG (or, one time in ten, PNG) of random size and content: a new upload."""
    width, height = rng.randint(32, max_side), rng.randint(32, max_side)
    image = Image.new("RGB", (width, height), tuple(rng.randint(150, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 6)):
        x0, y0 = rng.randint(0, width - 1), rng.randint(0, height - 1)
        x1, y1 = rng.randint(x0, width), rng.randint(y0, height)
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape((x0, y0, x1, y1), fill=tuple(rng.randint(0, 255) for _ in range(3)))
    kind = "PNG" if rng.random() < 0.1 else "JPEG"
    buffer = io.BytesIO()
    image.save(buffer, kind, **({"quality": rng.randint(60, 95)} if kind == "JPEG" else {}))
    path = folder / f"upload-{rng.getrandbits(64):016x}.{kind.lower()}"
    path.write_bytes(buffer.getvalue())
    return path


def make_call(
    name: str, rng: random.Random, counter: itertools.count, folder: Path, max_side: int
) -> tuple[str, tuple, dict, list[Path]]:
    """(endpoint, args, kwargs, files to delete after) for one call of kind `name`."""
    from gradio_client import handle_file

    query = (
        f"{rng.choice(STYLES)} {rng.choice(COLOURS)} {rng.choice(PATTERNS)} "
        f"{rng.choice(KINDS)} {rng.choice(AUDIENCES)} size {next(counter)}"
    ).replace("  ", " ")  # a number of its own: every query is new to the app's text cache
    if name == "text_search":
        kwargs: dict = {"query": query, "limit": rng.randint(1, 48)}
        if rng.random() < 0.3:
            kwargs["colours"] = [rng.choice(COLOURS)]
        if rng.random() < 0.2:
            kwargs["negative"] = f"{rng.choice(PATTERNS)} {next(counter)}"
        return name, (), kwargs, []
    if name == "bad":
        return make_bad_call(rng.choice(BAD_CALLS), rng, folder, max_side)
    picture = make_picture(rng, folder, max_side)
    if name == "image_search":
        kwargs = {"limit": 12}
        if rng.random() < 0.3:
            kwargs["modifier"] = f"same, but in {rng.choice(COLOURS)} {next(counter)}"
        return name, (handle_file(str(picture)),), kwargs, [picture]
    if name == "classify":
        labels = rng.sample(LABEL_WORDS, rng.randint(2, 12))
        labels[0] = f"{rng.choice(COLOURS)} {labels[0]} {next(counter)}"  # a new prompt
        return name, (handle_file(str(picture)), ", ".join(labels)), {}, [picture]
    return name, (handle_file(str(picture)), rng.choice(LABEL_WORDS)), {}, [picture]


def make_bad_call(
    kind: str, rng: random.Random, folder: Path, max_side: int
) -> tuple[str, tuple, dict, list[Path]]:
    from gradio_client import handle_file

    if kind == "empty_query":
        return "text_search", ("   ",), {}, []
    if kind == "text_file":
        path = folder / f"notes-{rng.getrandbits(64):016x}.txt"
        path.write_text(f"not a picture {rng.random()}\n" * rng.randint(1, 500))
        return "classify", (handle_file(str(path)), "dress, shirt"), {}, [path]
    if kind == "no_image":
        return "image_search", (None,), {}, []
    picture = make_picture(rng, folder, min(max_side, 400))
    if kind == "too_many_labels":
        labels = ", ".join(f"label {i}" for i in range(65 + rng.randint(0, 30)))
        return "classify", (handle_file(str(picture)), labels), {}, [picture]
    if kind == "one_label":
        return "classify", (handle_file(str(picture)), "dress"), {}, [picture]
    return "localize", (handle_file(str(picture)), ""), {}, [picture]  # no_text


def caller(
    url: str,
    seed: int,
    until: float,
    args: argparse.Namespace,
    tally: Tally,
    counter: itertools.count,
) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    rng = random.Random(seed)
    names, weights = list(MIX), list(MIX.values())
    folder = Path(tempfile.mkdtemp(prefix=f"soak-caller-{seed}-"))
    client = None
    calls = 0
    try:
        while time.monotonic() < until:
            if client is None or calls % args.session == 0:  # a new visitor
                client = Client(url, verbose=False, download_files=False)
            kind = rng.choices(names, weights)[0]
            endpoint, call_args, kwargs, files = make_call(
                kind, rng, counter, folder, args.max_side
            )
            start = time.perf_counter()
            problem = None
            try:
                client.predict(*call_args, api_name=f"/{endpoint}", **kwargs)
                if kind == "bad":
                    problem = f"bad {endpoint} call succeeded"
            except AppError as exc:
                if kind != "bad":
                    problem = f"{endpoint}: {exc}"
            except Exception as exc:  # the server or the connection failed
                problem = f"{endpoint}: {type(exc).__name__}: {exc}"
            wall = (time.perf_counter() - start) * 1000
            for path in files:
                path.unlink(missing_ok=True)
            calls += 1
            with tally.lock:
                tally.done += 1
                tally.walls["bad" if kind == "bad" else endpoint].append(wall)
                if problem:
                    tally.unintended += 1
                    tally.problems[problem[:160]] += 1
            if problem:
                logging.warning("unintended: %s", problem[:300])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def growth_per_1000(samples: list[dict[str, float]], key: str) -> float:
    """Least-squares slope of `key` per 1,000 requests over the second half of the run."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return float("nan")
    xs, ys = [s["requests"] for s in half], [s[key] for s in half]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if not var:
        return float("nan")
    return 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--every", type=int, default=200, help="requests between samples")
    parser.add_argument("--session", type=int, default=100, help="calls per Client (session)")
    parser.add_argument("--max-side", type=int, default=3000, help="largest upload side, px")
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument(
        "--sweep-seconds", type=int, metavar="S",
        help="sweep Gradio's cache every S seconds, of files over S seconds old (the app: 3600)",
    )  # fmt: skip
    parser.add_argument("--folder", type=Path, default=OUT / "soak", help="the app's files")
    parser.add_argument("--url", help="soak an app already running here (with --pid)")
    parser.add_argument("--pid", type=int, help="that app's process id")
    parser.add_argument(
        "--watch", action="append", default=[], help="with --url: a folder to count files in"
    )
    parser.add_argument("--log", type=Path, help="with --url: the app's log, to count errors")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    if args.url:
        if not args.pid:
            raise SystemExit("--url needs --pid (the app's process, for its RSS)")
        watched = {Path(w).name or w: Path(w) for w in args.watch}
        app = App(args.pid, args.url, watched, log_path=args.log)
    else:
        app = start_app(args.folder.resolve(), args.port, args.sweep_seconds)
    tally, counter = Tally(), itertools.count()
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    try:
        samples.append(sample(app, 0, 0, started))
        until = started + args.minutes * 60
        threads = [
            threading.Thread(target=caller, args=(app.url, seed, until, args, tally, counter))
            for seed in range(args.callers)
        ]
        for thread in threads:
            thread.start()
        next_at = args.every
        while any(thread.is_alive() for thread in threads):
            time.sleep(0.5)
            with tally.lock:
                done, unintended = tally.done, tally.unintended
            if done >= next_at:
                samples.append(sample(app, done, unintended, started))
                logging.info("sample %s", {k: round(v, 1) for k, v in samples[-1].items()})
                next_at = (done // args.every + 1) * args.every
        samples.append(sample(app, tally.done, tally.unintended, started))
        alive = app.process is None or app.process.poll() is None
    finally:
        stop_app(app)
    report(args, app, samples, tally, alive)


def report(
    args: argparse.Namespace, app: App, samples: list[dict], tally: Tally, alive: bool
) -> None:
    print(f"machine: {machine()}")
    print(f"app {app.url} (pid {app.pid}), {'alive' if alive else 'DEAD'} at the end")
    print(
        f"{args.callers} callers, {args.minutes:g} min, mix {MIX}, "
        f"uploads up to {args.max_side} px, a new session every {args.session} calls"
    )
    names = list(app.watched)
    header = ("requests", "min", "RSS MB", "fds", "threads", "unintended",
              *(f"{n} files/MB/dirs" for n in names))  # fmt: skip
    rows = [
        (
            str(int(s["requests"])),
            f"{s['minutes']:.1f}",
            f"{s['rss_mb']:.0f}",
            str(int(s["fds"])),
            str(int(s["threads"])),
            str(int(s["unintended"])),
            *(f"{int(s[f'{n}_files'])}/{s[f'{n}_mb']:.1f}/{int(s[f'{n}_dirs'])}" for n in names),
        )
        for s in samples
    ]
    print_table(rows, header)
    rows = [
        (name, str(len(w)), f"{statistics.median(w):.0f}", f"{max(w):.0f}")
        for name, w in sorted(tally.walls.items())
    ]
    print()
    print_table(rows, ("calls", "n", "p50 ms", "max ms"))
    for problem, count in sorted(tally.problems.items(), key=lambda kv: -kv[1])[:10]:
        print(f"unintended x{count}: {problem}")
    if app.log_path is not None:
        text = app.log_path.read_text(errors="replace")
        print(
            f"app log {app.log_path}: {text.count('Traceback')} tracebacks, "
            f"{text.count(' ERROR ')} ERROR lines, {text.count(' refused: ')} refusals"
        )
    first, last = samples[0], samples[-1]
    wall_s = last["minutes"] * 60
    figures = {
        "requests": last["requests"],
        "requests_per_s": last["requests"] / wall_s if wall_s else 0.0,
        "unintended": last["unintended"],
        "app_alive": float(alive),
        "rss_first_mb": samples[1]["rss_mb"] if len(samples) > 1 else first["rss_mb"],
        "rss_last_mb": last["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "rss_mb_per_1000_requests_2nd_half": growth_per_1000(samples, "rss_mb"),
        "fds_first": first["fds"],
        "fds_last": last["fds"],
        "fds_max": max(s["fds"] for s in samples),
        "threads_max": max(s["threads"] for s in samples),
    }
    for n in names:
        figures[f"{n}_files_last"] = last[f"{n}_files"]
        figures[f"{n}_mb_last"] = last[f"{n}_mb"]
        figures[f"{n}_files_per_1000_requests_2nd_half"] = growth_per_1000(samples, f"{n}_files")
    for name, walls in tally.walls.items():
        figures[f"{name}_p50_ms"] = statistics.median(walls)
    print(result_line(figures))


if __name__ == "__main__":
    main()
