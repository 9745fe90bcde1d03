"""The README's "Python API" section runs as written, offline, on the demo dataset."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Appended to the README's code: what each line promised, checked on what it bound.
CHECKS = """
assert len(dataset) == 400 and fclip.collection is not None
assert len(ids) == 10 and all(i in dataset for i in ids), ids
assert sum("red" in dataset[i]["caption"] for i in ids) >= 8, [dataset[i]["caption"] for i in ids]
assert len(mine) == 1 and mine[1]["caption"] == "image x"
print("README API OK")
"""


def readme_python_api() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no python block in its Python API section"
    return match.group(1)


def test_readme_python_api_runs_as_written(tmp_path: Path) -> None:
    code = readme_python_api()
    assert 'FashionCLIP("demo", dataset' in code  # the line a reader copies first
    # the README's own catalog points at a folder of the reader's; here it exists, empty
    (tmp_path / "path" / "to" / "images").mkdir(parents=True)
    env = {
        **os.environ,
        "QDRANT_PATH": str(tmp_path / "qdrant"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("QDRANT_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", code + CHECKS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "README API OK" in done.stdout
