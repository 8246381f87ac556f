"""The evaluation's shared-stage path gives exactly what the real pipeline (Anonymizer) gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anon_plugin.inference import fill
from anon_plugin.evaluate.variants import Strength, analyze, anonymize, render, same_output
from anon_plugin.imageio import load_rgb
from anon_plugin.inference.pipeline import AnonymizerConfig

STRENGTHS = ("small", "medium", "large", "0", "0.95")


def test_strengths_parse():
    assert Strength.parse("medium").threshold == 0.4 and Strength.parse("medium").is_preset
    assert Strength.parse("0.0").label == "0" and Strength.parse("0.0").threshold == 0.0
    assert not Strength.parse("0.35").is_preset
    for bad in ("huge", "1.5", "-0.1"):
        with pytest.raises(ValueError):
            Strength.parse(bad)


@pytest.fixture
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the evaluation's workers; also far faster on a busy 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_every_variant_is_bit_identical_to_anonymizer(data_root: Path, eval_pairs, one_thread):
    # Every strength on one CelebA photo; two more photos at two strengths, one a wild photo with two
    # faces (the second face gets seed + 1, and both are pasted into the same output).
    cases = [(eval_pairs[0][1], STRENGTHS), (eval_pairs[1][2], ("medium",)),
             (data_root / "wild" / "images" / "186242.jpg", ("medium", "0"))]
    checked = 0
    for path, labels in cases:
        rgb = load_rgb(path)
        analysis = analyze(rgb, AnonymizerConfig(recognizer="sface", seed=3))
        assert len(analysis.faces) == (2 if path.name == "186242.jpg" else 1)
        for method in fill.FILLERS:
            for label in labels:
                strength = Strength.parse(label)
                ours = render(analysis, method, strength, "sface", seed=3)
                real = anonymize(rgb, method, strength, "sface", seed=3)
                assert same_output(ours, real), f"{path.name} {method} {label}"
                checked += 1
    assert checked == len(fill.FILLERS) * 8


def test_a_covered_face_is_covered_in_both_paths(eval_pairs):
    # A filler that returns the wrong shape: the face is covered (fail closed) in both paths.
    rgb = load_rgb(eval_pairs[2][1])
    analysis = analyze(rgb, AnonymizerConfig())
    fill.FILLERS["_broken"] = lambda crop, hole, seed=0: crop[:10]
    try:
        ours = render(analysis, "_broken", Strength.parse("medium"), "sface", 0)
        real = anonymize(rgb, "_broken", Strength.parse("medium"), "sface", 0)
    finally:
        del fill.FILLERS["_broken"]
    assert ours.covered == real.covered == (True,) and ours.errors[0].startswith("fill:")
    assert same_output(ours, real) and not np.array_equal(ours.image, rgb)


def test_a_verified_row_is_the_pipeline_with_verification(eval_pairs):
    from anon_plugin.evaluate.variants import fill_of

    assert fill_of("generate+verify") == ("generate", True) and fill_of("generate") == ("generate", False)
    assert not Strength.parse("medium").config("inpaint", "sface", 0).verify  # a bare method: the fill alone
    rgb = load_rgb(eval_pairs[3][1])
    analysis = analyze(rgb, AnonymizerConfig(seed=2))
    ours = render(analysis, "generate+verify", Strength.parse("medium"), "sface", seed=2)
    real = anonymize(rgb, "generate+verify", Strength.parse("medium"), "sface", seed=2)
    assert same_output(ours, real) and ours.steps == real.steps and ours.steps[0][0] == "generate"
