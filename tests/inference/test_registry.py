import shutil

import pytest

from anon_plugin.errors import ModelError
from anon_plugin.inference import registry


def test_every_model_is_in_the_manifest_and_verifies():
    specs = registry.manifest()
    assert set(specs) == set(registry.LOADERS)
    for name, spec in specs.items():
        path = registry.verified_path(name)
        assert path.stat().st_size == spec.bytes > 10_000, name  # the smallest: stylegan_directions, 17 KB
        assert spec.terms and spec.trained_on and spec.input and len(spec.sha256) == 64, name


def test_our_own_weights_live_beside_the_manifest():
    for name in ("generator", "attributes"):
        assert registry.model_path(name).parent == registry.weights_dir()
    assert "non-commercial" in registry.spec("generator").terms


def test_a_file_that_differs_from_the_manifest_is_refused(tmp_path, monkeypatch):
    registry.verified_path.cache_clear()
    shipped = registry.model_path("generator")
    tampered = tmp_path / "generator.safetensors"
    shutil.copyfile(shipped, tampered)
    with open(tampered, "r+b") as f:  # same size, one byte changed
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(registry, "model_path", lambda name: tampered)
    try:
        with pytest.raises(ModelError, match=r"model 'generator': .* has sha256 [0-9a-f]{64}, the manifest says"):
            registry.verified_path("generator")
        with open(tampered, "ab") as f:
            f.write(b"x")
        with pytest.raises(ModelError, match="bytes, the manifest says"):
            registry.verified_path("generator")
    finally:
        registry.verified_path.cache_clear()


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelError, match="sface"):
        registry.load("arcface")


def test_models_load_once():
    assert registry.load("yunet") is registry.load("yunet")
    assert registry.load("dlib68") is registry.load("dlib68")


def test_saliency_choices():
    assert registry.SALIENCY == ("sface", "facenet", "ensemble")
