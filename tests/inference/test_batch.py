"""The batched path: many photos, each with its own config, give what each gives alone."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from anon_plugin.imageio import load_rgb
from anon_plugin.inference import batch, fill, verify
from anon_plugin.inference.pipeline import Anonymizer
from anon_plugin.inference.records import AnonymizerConfig

PHOTOS = (0, 7, 74, 13, 78, 21)  # 74 and 78 hold two faces each; 74 also a 19 px cartoon face on a sticker
METHODS = ("generate", "inpaint", "generate", "blur", "generate", "solid")
STRENGTHS = ("medium", "large", "small")


@pytest.fixture(scope="module")
def photos(wild_photos):
    rgbs = [load_rgb(wild_photos[i]) for i in PHOTOS]
    # Verified where the fill is the generator: the classical fills would climb to a covered box every time.
    configs = [AnonymizerConfig(method=METHODS[i], strength=STRENGTHS[i % 3], seed=10 * i,
                                verify=METHODS[i] == "generate") for i in range(len(rgbs))]
    singles = [Anonymizer(c).anonymize(r) for c, r in zip(configs, rgbs, strict=True)]
    assert sum(len(s.faces) for s in singles) == len(PHOTOS) + 3
    return rgbs, configs, singles


def _assert_same(singles, results):
    for alone, batched in zip(singles, results, strict=True):
        assert np.abs(alone.image.astype(int) - batched.image).max() <= 1
        assert len(alone.faces) == len(batched.faces)
        for a, b in zip(alone.faces, batched.faces, strict=True):
            assert a.covered == b.covered and a.seed == b.seed and a.method == b.method and a.steps == b.steps
            assert np.array_equal(a.hole_mask, b.hole_mask)


@pytest.mark.parametrize("max_batch", [1, 4, 32])
def test_batched_equals_one_photo_at_a_time(photos, max_batch):
    rgbs, configs, singles = photos
    _assert_same(singles, batch.anonymize_batch(rgbs, configs, "cpu", max_batch))


def test_on_cpu_the_result_is_bit_identical(photos):
    rgbs, configs, singles = photos
    for alone, batched in zip(singles, batch.anonymize_batch(rgbs, configs, "cpu", 8), strict=True):
        assert np.array_equal(alone.image, batched.image)


def test_threads_sharing_the_models_take_turns(photos):
    """A daemon's workers and the panel's previews share one process's models, and Grad-CAM hooks them."""
    rgbs, configs, singles = photos
    with ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(batch.anonymize_batch, rgbs[i::2], configs[i::2], "cpu", 4) for i in (0, 1, 0)]
        results = [r.result() for r in runs]
    for i, run in zip((0, 1, 0), results, strict=True):
        for alone, threaded in zip(singles[i::2], run, strict=True):
            assert np.array_equal(alone.image, threaded.image)


def test_many_faces_per_network_pass_as_on_a_gpu(photos, monkeypatch):
    """The CUDA path's grouping (several faces in one pass of Grad-CAM and the generator), run on the CPU."""
    monkeypatch.setattr(batch, "faces_per_pass", lambda device, max_batch: max_batch)
    rgbs, configs, singles = photos
    _assert_same(singles, batch.anonymize_batch(rgbs, configs, "cpu", 5))


def test_a_failing_fill_covers_only_its_own_faces(photos, monkeypatch, caplog):
    rgbs, configs, singles = photos
    monkeypatch.setattr(logging.getLogger("anon_plugin"), "propagate", True)  # to caplog, whatever ran before
    real = fill.fill_many

    def fails_for_blur(method, *args):
        if method == "blur":
            raise RuntimeError("forced failure")
        return real(method, *args)

    monkeypatch.setattr(fill, "fill_many", fails_for_blur)
    with caplog.at_level(logging.WARNING, logger="anon_plugin.inference"):
        results = batch.anonymize_batch(rgbs, configs, "cpu", 8)
    for cfg, result, alone in zip(configs, results, singles, strict=True):
        # covered because the fill failed; a face verification gave up on is covered too, but not failed
        assert all((f.covered and not verify.gave_up(f.error)) == (cfg.method == "blur") for f in result.faces)
        if cfg.method != "blur":
            assert np.array_equal(result.image, alone.image)
        else:
            assert result.faces[0].error == "fill: RuntimeError: forced failure"
    logged = [r for r in caplog.records if r.name == "anon_plugin.inference"]
    assert logged and all(r.levelname == "WARNING" and "forced failure" in str(r.exc_info[1]) for r in logged)


def test_configs_must_match_the_photos(photos):
    rgbs, configs, _ = photos
    with pytest.raises(ValueError):
        batch.anonymize_batch(rgbs, configs[:-1])


@pytest.fixture
def loads(monkeypatch):
    """The names the registry is asked to load, each load going through to the real one."""
    from anon_plugin.inference import prior_fill, registry

    names: set[str] = set()
    real = registry.load

    def spy(name: str, device: str = "cpu"):
        names.add(name)
        return real(name, device)

    monkeypatch.setattr(registry, "load", spy)
    # registry.load builds once per process but is asked every time; these keep what it gave them
    prior_fill._directions.cache_clear()
    prior_fill._bank.cache_clear()
    return names


CONFIGS = [*(dict(method=m, verify=v) for m in fill.FILLERS for v in (False, True)),
           dict(method="blur", verify=False, recognizer="ensemble"), dict(method="blur", verify=False, measure=True)]


@pytest.mark.parametrize("options", CONFIGS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_models_for_names_the_models_a_batch_loads(wild_photos, loads, options):
    config = AnonymizerConfig(**options)
    one_face = load_rgb(wild_photos[0].parent / "003817.jpg")  # 195 x 260 px: the prior serves it
    (result,) = batch.anonymize_batch([one_face], [config])
    assert len(result.faces) == 1
    named = set(batch.models_for(config))
    assert loads <= named
    # The prior's fallback (faces it cannot serve, the end of its ladder) is listed, loaded when a face needs it.
    fallback = fill.MODELS[fill.FALLBACK] if config.method in fill.NATIVE else set()
    assert named - loads <= fallback


def test_every_method_names_its_models():
    assert set(fill.MODELS) == set(fill.FILLERS)
