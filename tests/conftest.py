"""Shared fixtures: a tiny random CLIP saved as a Hugging Face folder, and the demo model.

The tiny model goes through the same `from_pretrained` path as FashionCLIP itself, so the
plumbing tests exercise the real loading code in milliseconds (as open_clip's tests do).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Gradio keeps uploads and answers in one folder per machine (/tmp/gradio) and each app
# removes its own files when it stops: a test run beside another (or beside a running app)
# could lose a file it had just uploaded. Each run gets its own, set before Gradio is
# imported (it reads the variable then).
if "GRADIO_TEMP_DIR" not in os.environ:
    _GRADIO_TEMP = tempfile.mkdtemp(prefix="gradio-tests-")
    os.environ["GRADIO_TEMP_DIR"] = _GRADIO_TEMP
    atexit.register(shutil.rmtree, _GRADIO_TEMP, ignore_errors=True)

TINY_TEXTS = [
    "a photo of a red striped dress",
    "blue shirt",
    "green dotted skirt",
    "black checked jacket",
    "white shoes",
    "a bag",
    "a hat",
]


def build_tiny_clip(folder: Path, *, image_size: int = 32, seed: int = 0) -> Path:
    """Save a tiny random CLIP (model, tokenizer, preprocessor config) into `folder`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from fashion_clip.demo.tokenizer import build_tokenizer

    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(TINY_TEXTS)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": image_size,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a tiny random CLIP, loadable with `ClipModel.load(str(folder))`."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from fashion_clip.model.clip import ClipModel

    # fp32 in both towers: the reference the plumbing tests compare against, on every CPU
    return ClipModel.load(str(tiny_model_dir), quantize="fp32", text_precision="fp32")


@pytest.fixture(scope="session")
def demo_model():
    from fashion_clip.model.clip import ClipModel

    # fp32 images on every CPU, so its figures do not depend on the machine (bf16's are
    # compared with them in test_precision.py)
    return ClipModel.load("demo", quantize="fp32")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 HTTP endpoint on 127.0.0.1 (moto's server mode), shared by the session."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the test endpoint, with the AWS variables pointing at it."""
    import uuid

    from fashion_clip.media import s3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"bucket-{uuid.uuid4().hex[:10]}"
    s3.s3_client().create_bucket(Bucket=name)
    return name
