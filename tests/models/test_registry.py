import pytest

from faceveil import models
from faceveil.errors import ModelError


def test_every_model_file_ships_in_an_installed_package():
    for name, spec in models.REGISTRY.items():
        path = models.model_path(name)
        assert path.is_file() and path.stat().st_size > 100_000, name
        assert spec.license and spec.input


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelError, match="sface"):
        models.load("arcface")


def test_models_load_once():
    assert models.load("yunet") is models.load("yunet")
    assert models.load("dlib68") is models.load("dlib68")


def test_saliency_choices_come_from_the_registry():
    assert models.SALIENCY == ("sface", "facenet", "ensemble")
