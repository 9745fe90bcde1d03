"""Secrets stay secret: a password and API keys planted in every setting that takes one
appear in nothing a user or a log sees (reprs, `indexer info`, the messages of a failed
connection, the page, its config and `/gradio_api/info`)."""

from __future__ import annotations

import dataclasses
import logging

import httpx
import pytest

from fashion_clip.errors import FashionCLIPError
from fashion_clip.media import s3
from fashion_clip.settings import load_settings
from fashion_clip.store import open_store
from space.app import build_demo
from space.startup import launch_options
from tests.indexer_fixtures import run_indexer
from tests.space_support import free_port, open_shop, serving, shared_shop

MARK = "Zq8"  # every planted secret holds it, and nothing else does
USER, PASSWORD = "bob", f"AUTHPW-{MARK}5"


@pytest.fixture
def planted(monkeypatch, tmp_path):
    closed = free_port()  # nothing listens there: the connection fails
    env = {
        "QDRANT_URL": f"http://alice:PW-qdrant-{MARK}1@127.0.0.1:{closed}/?api_key=URLKEY-{MARK}2",
        "QDRANT_API_KEY": f"APIKEY-{MARK}3",
        "HF_TOKEN": f"hf_TOKEN{MARK}4",
        "FASHION_CLIP_AUTH": f"{USER}:{PASSWORD}",
        "AWS_ACCESS_KEY_ID": f"AKIA{MARK}6",
        "AWS_SECRET_ACCESS_KEY": f"AWSSECRET-{MARK}7",
        "AWS_SESSION_TOKEN": f"AWSSESSION-{MARK}8",
        "QDRANT_PATH": str(tmp_path / "qdrant"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    return load_settings()


def _clean(text: str) -> None:
    assert MARK not in text, text


def test_reprs_and_a_failed_connection_show_no_secret(planted, caplog):
    settings = planted
    _clean(repr(settings) + str(settings))
    assert "127.0.0.1" in repr(settings)  # the server is still named, only not its secrets
    with caplog.at_level(logging.DEBUG):
        store = open_store(settings)
        _clean(store.location + repr(store))
        with pytest.raises(FashionCLIPError) as failed:
            store.list_collections()
    _clean(str(failed.value) + caplog.text)
    assert "127.0.0.1" in str(failed.value)


def test_indexer_info_shows_no_secret(planted, capsys, caplog):
    with caplog.at_level(logging.DEBUG):
        code, out, err = run_indexer(capsys, "info")
    assert code == 2 and "127.0.0.1" in err
    _clean(out + err + caplog.text)


def test_a_failed_s3_read_shows_no_secret(planted, s3_endpoint, monkeypatch, caplog):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    with caplog.at_level(logging.DEBUG), pytest.raises(FashionCLIPError) as failed:
        s3.read_bytes("s3://no-such-bucket/x.jpg")
    _clean(str(failed.value) + caplog.text)


def test_the_page_its_config_and_api_info_show_no_secret(planted, tiny_model, tmp_path_factory):
    shop = shared_shop(tiny_model, tmp_path_factory)
    collection = open_shop(shop, tiny_model)
    # The shop's embedded collection, under settings holding every secret: the header names
    # the Qdrant server of the settings, the login is the planted one.
    settings = dataclasses.replace(planted, qdrant_path=shop.qdrant_path, collection="shop")
    try:
        demo = build_demo(tiny_model, collection, settings)
        with serving(demo, **launch_options(settings)) as address, httpx.Client() as web:
            _clean(web.get(address).text)  # the login page
            signed_in = web.post(f"{address}login", data={"username": USER, "password": PASSWORD})
            assert signed_in.status_code == 200, signed_in.text
            page = web.get(address).text
            assert "Qdrant server http://127.0.0.1" in page  # the header, signed in
            for path in ("", "config", "gradio_api/info"):
                answer = web.get(f"{address}{path}")
                assert answer.status_code == 200, (path, answer.status_code)
                _clean(answer.text)
    finally:
        collection.close()


def test_a_model_that_cannot_load_shows_no_token(planted, caplog):
    from fashion_clip.model.runtime import load_configured_model

    with caplog.at_level(logging.DEBUG), pytest.raises(FashionCLIPError) as failed:
        load_configured_model(planted, "nobody-zz/nothing-zz", fallback=False)
    _clean(str(failed.value) + caplog.text)
    assert "nobody-zz/nothing-zz" in str(failed.value)
