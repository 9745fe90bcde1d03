"""Kill -9 the indexer at several points; re-run to the end; get exactly a clean run's points.

The scenario: catalog v1 is indexed, then catalog v2 (4 rows gone, 4 captions and a price
changed, 8 rows new) with `--prune`. The killed run is a subprocess that SIGKILLs itself just
before or after the n-th call of a store method (see `indexer_fixtures.run_and_kill`); the
other runs go in this process, to keep the test quick.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from indexer.__main__ import main
from tests.indexer_fixtures import (
    REPO,
    assert_same_points,
    points,
    product_rows,
    write_catalog,
    write_photos,
)

BATCH = "4"


def catalogs(folder: Path) -> tuple[Path, Path]:
    v1 = product_rows(40)
    v2 = [dict(row) for row in product_rows(48)[4:]]
    for row in v2[6:10]:
        row["caption"] = "changed: " + row["caption"]
    v2[16]["price"] = 1.25
    return write_catalog(folder / "v1.jsonl", v1), write_catalog(folder / "v2.jsonl", v2)


def index(env: dict[str, str], catalog: Path, images: Path, kill_at: str | None = None):
    """Run the indexer: in a subprocess that kills itself at `kill_at`, else in this process."""
    argv = ["index", str(catalog), "--images", str(images), "--collection", "shop",
            "--batch-size", BATCH, "--prune", "--workers", "2"]  # fmt: skip
    if kill_at is None:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                code = main(argv)
        return subprocess.CompletedProcess(argv, code, out.getvalue(), "")
    code = "from tests.indexer_fixtures import run_and_kill; run_and_kill()"
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO), "INDEXER_KILL_AT": kill_at}
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=REPO, env=full_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def setting(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("resume")
    write_photos(folder / "images", 48)
    v1, v2 = catalogs(folder)
    env = {"FASHION_CLIP_MODEL": str(tiny_model_dir), "QDRANT_PATH": str(folder / "clean")}
    env |= {"QDRANT_URL": "", "FASHION_CLIP_COLLECTION": ""}  # whatever the environment says
    for catalog in (v1, v2):
        result = index(env, catalog, folder / "images")
        assert result.returncode == 0, result.stderr
    assert "indexed 13, unchanged 31, skipped 0, deleted 4" in result.stdout
    return folder, v1, v2, env, points(folder / "clean", "shop")


@pytest.mark.parametrize(
    ("phase", "kill_at"),
    [
        ("v1", "upsert:1:before"),  # collection created, nothing written yet
        ("v1", "upsert:3:after"),  # part of the first run written
        ("v2", "upsert:2:before"),  # a changed batch embedded, not written
        ("v2", "delete:1:before"),  # all upserts done, prune not
        ("v2", "optimize:1:before"),  # everything written, index not built
    ],
)
def test_killed_run_resumed_equals_a_clean_run(setting, tmp_path, phase, kill_at):
    folder, v1, v2, env, clean = setting
    env = {**env, "QDRANT_PATH": str(tmp_path / "qdrant")}
    images = folder / "images"
    if phase == "v2":
        assert index(env, v1, images).returncode == 0

    killed = index(env, v1 if phase == "v1" else v2, images, kill_at=kill_at)
    assert killed.returncode == -9, killed.stderr  # the hook fired: SIGKILL, no cleanup

    if phase == "v1":
        assert index(env, v1, images).returncode == 0
    resumed = index(env, v2, images)
    assert resumed.returncode == 0, resumed.stderr
    after = points(tmp_path / "qdrant", "shop")
    assert_same_points(after, clean)
    assert len(after) == 44

    again = index(env, v2, images)
    assert "indexed 0, unchanged 44, skipped 0, deleted 0" in again.stdout


@pytest.mark.parametrize("recreate", [False, True])
def test_ctrl_c_mid_run_exits_130_and_says_how_to_resume(tmp_path, tiny_model_dir, recreate):
    served = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.set()
            time.sleep(30)  # an image server that hangs: the run is surely mid-way

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    catalog = write_catalog(tmp_path / "c.csv", product_rows(4))
    argv = ["index", str(catalog), "--images", f"http://127.0.0.1:{server.server_address[1]}/",
            "--collection", "shop", "--decode", "threads"]  # fmt: skip
    argv += ["--recreate"] if recreate else []
    env = {**os.environ, "PYTHONPATH": str(REPO), "FASHION_CLIP_MODEL": str(tiny_model_dir),
           "QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""}  # fmt: skip
    # A suite run in the background (`.ci/run &`) ignores SIGINT, and a Python started
    # from it leaves SIGINT ignored: the indexer would never see the Ctrl-C. So it gets the
    # handler a terminal's Python has. -X faulthandler: SIGABRT prints every thread's stack.
    as_from_a_terminal = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'indexer'; runpy.run_module('indexer', run_name='__main__')"
    )
    run = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-c", as_from_a_terminal, *argv],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert served.wait(120), "the indexer never asked for an image"
        run.send_signal(signal.SIGINT)
        # Not a speed figure: before, exit waited for the fetch threads' three 15 s attempts
        # at the hung server (~50 s); now it is immediate (about a second), so 40 s only
        # guards a hang, on a machine however loaded.
        try:
            _, err = run.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGABRT)
            _, err = run.communicate(timeout=30)
            pytest.fail(f"no exit 40 s after Ctrl-C; where each thread was:\n{err}")
    finally:
        run.kill()
        server.shutdown()
        server.server_close()
    assert run.returncode == 130, err
    again = "it again without --recreate" if recreate else "the same command again"
    assert f"interrupted; run {again} to resume" in err and "Traceback" not in err
