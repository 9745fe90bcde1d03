"""The API tour (in place of the original notebook) runs as written, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_api_tour_runs_on_the_demo_dataset(tmp_path: Path) -> None:
    env = {**os.environ, "QDRANT_PATH": str(tmp_path / "qdrant"), "HF_HUB_OFFLINE": "1"}
    env.pop("QDRANT_URL", None)
    env.pop("PYTHONPATH", None)  # the docstring's command, as a reader runs it from the root
    command = [sys.executable, "examples/api_tour.py", str(tmp_path / "out")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "vectors for demo-" in done.stdout and ": computed" in done.stdout
    assert "'red striped dress':" in done.stdout
    assert Image.open(tmp_path / "out" / "heatmap.png").mode == "RGB"
    assert Image.open(tmp_path / "out" / "similar.png").width > 0
    # A second run finds the vectors in the store instead of recomputing them.
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert ": store" in again.stdout
