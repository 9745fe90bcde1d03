"""`load_configured_model`: the settings' model and token, and the one allowed fallback."""

from __future__ import annotations

import pytest

from fashion_clip.errors import ModelLoadError, ModelUnavailableError
from fashion_clip.model import runtime
from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import DEFAULT_MODEL, load_settings


@pytest.fixture
def loads(monkeypatch):
    """Record ClipModel.load calls; the default hub model is 'offline', others load a stand-in."""
    calls = []

    def fake_load(name, **kwargs):
        calls.append((name, kwargs))
        if name == DEFAULT_MODEL or name == "someone/else":
            raise ModelUnavailableError(f"model {name!r} is not in the local cache")
        if name == "private/repo":
            raise ModelLoadError("no access to model 'private/repo': set HF_TOKEN")
        return f"<model {name}>"

    monkeypatch.setattr(ClipModel, "load", staticmethod(fake_load))
    return calls


def test_the_configured_model_loads_with_token_and_device(tiny_model_dir):
    settings = load_settings({"FASHION_CLIP_MODEL": str(tiny_model_dir)})
    model, note = runtime.load_configured_model(settings)
    assert note is None
    assert isinstance(model, ClipModel) and model.info.name == str(tiny_model_dir)


def test_name_overrides_the_settings_and_token_is_passed(loads):
    settings = load_settings({"HF_TOKEN": "hf_secret", "FASHION_CLIP_DEVICE": "cpu"})
    model, note = runtime.load_configured_model(settings, "org/model", quantize="int8")
    assert (model, note) == ("<model org/model>", None)
    name, kwargs = loads[0]
    assert name == "org/model"
    assert kwargs["token"] == "hf_secret" and kwargs["device"] == "cpu"
    assert kwargs["quantize"] == "int8"
    assert kwargs["text_precision"] == "auto"  # the settings' default


def test_the_text_precision_setting_reaches_the_model(loads):
    settings = load_settings({"FASHION_CLIP_TEXT_PRECISION": "int8"})
    runtime.load_configured_model(settings, "org/model")
    runtime.load_configured_model(settings, "org/model", text_precision="fp32")
    runtime.load_configured_model(settings, "org/model", default_text_precision="fast")
    unset = load_settings({})
    runtime.load_configured_model(unset, "org/model", default_text_precision="fast")  # the app
    runtime.load_configured_model(unset, "org/model")
    assert [kwargs["text_precision"] for _, kwargs in loads] == [
        "int8",
        "fp32",
        "int8",
        "fast",
        "auto",
    ]


@pytest.mark.parametrize("configured", [DEFAULT_MODEL, "fashion-clip"])
def test_unavailable_default_model_falls_back_to_demo_with_a_note(loads, configured):
    settings = load_settings({"FASHION_CLIP_MODEL": configured})
    model, note = runtime.load_configured_model(settings)
    assert model == "<model demo>"
    assert note == (
        "could not fetch patrickjohncyh/fashion-clip (offline?); using the bundled demo model"
    )
    assert [name for name, _ in loads] == [DEFAULT_MODEL, "demo"]


def test_other_failures_propagate(loads):
    with pytest.raises(ModelUnavailableError, match="someone/else"):
        runtime.load_configured_model(load_settings({}), "someone/else")
    with pytest.raises(ModelLoadError, match="no access"):
        runtime.load_configured_model(load_settings({"FASHION_CLIP_MODEL": "private/repo"}))
    assert [name for name, _ in loads] == ["someone/else", "private/repo"]


def test_without_fallback_an_unavailable_default_model_propagates(loads):
    settings = load_settings({"FASHION_CLIP_MODEL": "fashion-clip"})
    with pytest.raises(ModelUnavailableError, match="fashion-clip"):
        runtime.load_configured_model(settings, fallback=False)
    assert [name for name, _ in loads] == [DEFAULT_MODEL]
