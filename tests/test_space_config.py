"""The Space's configuration (the block at the top of README.md) agrees with the code."""

from __future__ import annotations

from pathlib import Path

import gradio
import yaml

from fashion_clip.settings import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must start with the Space's YAML block"
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_the_space_runs_what_the_tests_run():
    config = front_matter()
    assert config["sdk"] == "gradio" and (ROOT / config["app_file"]).is_file()
    # A Space installs the Gradio of `sdk_version`, whatever requirements.txt says: the same
    # one, so that local runs and these tests see what the Space runs.
    pins = [
        line.split("#")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("gradio")
    ]
    assert pins == [f"gradio=={config['sdk_version']}"]
    assert gradio.__version__ == config["sdk_version"]
    # The Space's Python resolves requirements.txt as the tests' does: transformers 5.21+
    # and numpy 2.3+ need 3.11, so the Space's default (3.10) would get older ones.
    major, minor = (int(part) for part in str(config["python_version"]).split(".")[:2])
    assert (major, minor) >= (3, 11)
    # The default model is in the Space's image, so a start downloads nothing.
    assert DEFAULT_MODEL in config["preload_from_hub"]
    assert len(config["short_description"]) <= 60  # the Hub's limit
