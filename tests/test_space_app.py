"""`python app.py` as a new user runs it: an empty store gets the demo catalog, then it serves.

Each test starts the real entry point in a subprocess (its own working directory, store and
port) and talks to it over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fashion_clip.demo import DEMO_MODEL_DIR
from tests.space_support import free_port

APP = Path(__file__).resolve().parents[1] / "app.py"
START_TIMEOUT_S = 180  # indexes 400 pictures first; the machine may be busy


# app.py, with a stop (SIGTERM) sent while Gradio's launch() checks its own server in the main
# thread: the moment a busy machine once showed (the page already served, launch not blocking yet).
STOP_DURING_LAUNCH = f"""
import os, runpy, signal, sys
import gradio.networking as networking
checked = networking.url_ok
def stopped_while_checking(url):
    os.kill(os.getpid(), signal.SIGTERM)
    return checked(url)
networking.url_ok = stopped_while_checking
sys.argv = [{str(APP)!r}]
sys.path.insert(0, {str(APP.parent)!r})  # as `python app.py` has it
runpy.run_path({str(APP)!r}, run_name="__main__")
"""


def start(
    tmp_path: Path, *, command: list[str] | None = None, **env: str
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environment = {
        **os.environ,
        "QDRANT_PATH": str(tmp_path / "store"),
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    environment.pop("FASHION_CLIP_COLLECTION", None)  # the developer's, not the test's
    environment |= env
    process = subprocess.Popen(
        command or [sys.executable, str(APP)],
        cwd=tmp_path,  # no developer's .env
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}/"


def wait_for_page(process: subprocess.Popen, url: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"app.py exited ({process.returncode}): {process.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise AssertionError(f"app.py did not answer on {url} within {START_TIMEOUT_S} s")


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


def test_a_model_that_cannot_load_stops_with_its_name(tmp_path):
    process, _ = start(tmp_path, FASHION_CLIP_MODEL=str(tmp_path / "no-such-model"))
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "cannot start" in out and "no-such-model" in out


def test_a_catalog_of_the_hub_model_offline_says_to_reach_the_model_not_to_rebuild(tmp_path):
    # A Space whose hub model cannot be fetched falls back to the demo model; its catalog's
    # collection (built with FashionCLIP) then mismatches. Rebuilding it for the demo model
    # (what the mismatch error advises elsewhere) would be the wrong cure.
    from fashion_clip.settings import DEFAULT_MODEL
    from fashion_clip.store.embedded import EmbeddedStore
    from tests.store_fixtures import spec

    with EmbeddedStore(tmp_path / "store") as store:
        store.create("shop", spec(model_id=DEFAULT_MODEL, dim=512, model_revision=None)).close()
    process, _ = start(
        tmp_path,
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
        FASHION_CLIP_MODEL="",
        FASHION_CLIP_COLLECTION="shop",
    )
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 1, out
    line = next(line for line in out.splitlines() if "cannot start" in line)
    assert "using the bundled demo model, and collection 'shop' was built with" in line
    assert f"Make {DEFAULT_MODEL} reachable" in line and "--recreate" not in line


@pytest.mark.skipif(not DEMO_MODEL_DIR.is_dir(), reason="the bundled demo model is not built")
def test_first_start_offline_falls_back_indexes_the_demo_and_serves(tmp_path):
    """The README's first command on a fresh clone without network: the whole path."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    process, url = start(
        tmp_path,
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),  # nothing cached
        FASHION_CLIP_MODEL="",
        TMPDIR=str(temporary),
    )
    try:
        page = wait_for_page(process, url)
        assert list(temporary.glob("fashion-clip-pictures-*"))  # the gallery's own folder
        process.terminate()  # SIGTERM, as a Space restarting sends; then a second one, as a
        time.sleep(0.3)  # supervisor and its child both signalled send: it must not interrupt
        process.terminate()  # the closing with a traceback
    finally:
        log = stop(process)
    assert process.returncode == 0 and "Traceback" not in log, log
    assert not list(temporary.glob("fashion-clip-pictures-*"))  # removed when stopped
    assert "using the bundled demo model" in page  # the banner ...
    assert "using the bundled demo model" in log  # ... and the log
    assert "model `demo`" in page and "collection `demo`" in page and "400 items" in page
    assert "indexing the bundled demo catalog" in log and "indexed 400" in log
    assert "model demo on cpu, text queries in fp32" in log  # "fast": fp32 for a small tower


@pytest.mark.skipif(not DEMO_MODEL_DIR.is_dir(), reason="the bundled demo model is not built")
def test_a_stop_while_launch_checks_its_server_closes_cleanly(tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    process, _ = start(
        tmp_path,
        command=[sys.executable, "-c", STOP_DURING_LAUNCH],
        FASHION_CLIP_MODEL="demo",
        TMPDIR=str(temporary),
    )
    try:
        out, _ = process.communicate(timeout=START_TIMEOUT_S)
    finally:
        log = stop(process) if process.returncode is None else out
    assert process.returncode == 0 and "Traceback" not in log, log
    assert not list(temporary.glob("fashion-clip-pictures-*"))  # removed when stopped
