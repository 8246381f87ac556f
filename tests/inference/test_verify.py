"""Verification and its ladder, on real faces: a face that stays too close climbs until it is covered."""

from __future__ import annotations

import numpy as np
import pytest

from anon_plugin.imageio import load_rgb
from anon_plugin.inference import batch, fill, verify
from anon_plugin.inference.pipeline import Anonymizer
from anon_plugin.inference.records import AnonymizerConfig

LADDER = ("generate", "redraw", "strength:large", "region", "covered")


def test_the_ladder_of_each_method_and_strength():
    names = lambda method, t: tuple(s.name for s in verify.ladder(method, t))  # noqa: E731
    assert names("generate", 0.4) == ("redraw", "strength:large", "region")
    assert names("generate", 0.6) == ("redraw", "strength:medium", "region")
    assert names("inpaint", 0.4) == ("strength:large", "region")  # a classical fill has one answer: no redraw
    assert names("blur", 0.5) == ("strength:medium", "region")  # an explicit threshold: the next preset below
    assert names("generate", 0.2) == ("redraw", "region")
    assert names("solid", 0.0) == ()
    steps = verify.ladder("generate", 0.4)
    assert steps[0].first == fill.VERIFY_CANDIDATES and steps[0].threshold == 0.4  # the next people, same mask
    assert [s.threshold for s in steps[1:]] == [0.2, 0.0] and all(s.first == 0 for s in steps[1:])
    assert [verify.rung(s) for s in LADDER] == ["fill", "redraw", "strength", "region", "covered"]


def test_lines_are_stricter_than_the_same_person_lines():
    from anon_plugin.evaluate.calibrate import CELEBA_TRAIN_THRESHOLD
    from anon_plugin.inference.recognition import RECOGNIZERS

    assert verify.LINES["sface"] < RECOGNIZERS["sface"].threshold
    assert verify.LINES["facenet"] < CELEBA_TRAIN_THRESHOLD
    assert verify.too_close({"sface_cosine": 0.1, "facenet_cosine": verify.LINES["facenet"]}) == ["facenet"]
    assert verify.too_close({"sface_cosine": 0.1, "facenet_cosine": 0.1}) == []


def test_excess_is_how_far_over_its_line_the_nearest_recognizer_is():
    line = verify.LINES["sface"]
    assert verify.excess({"sface_cosine": line + 0.05, "facenet_cosine": 0.0}) == pytest.approx(0.05)
    passing = {"sface_cosine": line - 0.2, "facenet_cosine": verify.LINES["facenet"] - 0.1}
    assert verify.excess(passing) == pytest.approx(-0.1)


@pytest.fixture(scope="module")
def photos(eval_pairs):
    return [load_rgb(a) for _, a, _ in eval_pairs[:2]]


@pytest.fixture
def unchanged(monkeypatch):
    """A fill that gives back the original crop: the face never changes. Records each call's ``first``."""
    calls = []

    def same(method, crops, holes, seeds, device="cpu", first=0, *rest):
        calls.append((method, first, [int(h.sum()) for h in holes]))
        return crops.copy(), [{}] * len(crops)

    monkeypatch.setattr(fill, "fill_many", same)
    return calls


def test_a_face_that_stays_too_close_climbs_every_step_then_is_covered(photos, unchanged):
    result = Anonymizer(method="generate").anonymize(photos[0])
    (face,) = result.faces
    assert face.steps == LADDER and face.covered
    assert verify.gave_up(face.error) and "after region" in face.error and "sface" in face.error
    assert face.similarity["sface_cosine"] > 0.99 and face.similarity["facenet_cosine"] > 0.99
    # one fill per rung: the first, the redraw past the first candidates, then ever larger holes
    assert [(m, first) for m, first, _ in unchanged] == [("generate", 0), ("generate", fill.VERIFY_CANDIDATES),
                                                        ("generate", 0), ("generate", 0)]
    areas = [area for *_, (area,) in unchanged]
    assert areas[0] == areas[1] < areas[2] < areas[3]
    assert face.threshold == 0.0 and face.mask_area > 0.9  # the last fill's mask: the whole region
    x0, y0, x1, y1 = face.box.astype(int)
    inner = result.image[y0 + 4:y1 - 4, x0 + 4:x1 - 4].reshape(-1, 3)
    assert len(np.unique(inner, axis=0)) <= 81  # the box is pixelated, not published as it was


def test_a_classical_fill_skips_the_redraw(photos, unchanged):
    (face,) = Anonymizer(method="inpaint").anonymize(photos[0]).faces
    assert face.steps == ("inpaint", "strength:large", "region", "covered")
    assert [first for _, first, _ in unchanged] == [0, 0, 0]


def test_without_verification_no_step_follows_the_fill(photos, unchanged):
    result = Anonymizer(method="generate", verify=False).anonymize(photos[0])
    (face,) = result.faces
    assert face.steps == ("generate",) and not face.covered and face.similarity is None
    assert len(unchanged) == 1
    assert np.abs(result.image.astype(int) - photos[0]).mean() < 0.5  # what the fill gave is published


def test_the_ladder_stops_at_the_first_step_that_passes(photos, unchanged, monkeypatch):
    rounds = []

    def scripted(originals, anonymized, device="cpu"):
        rounds.append(len(originals))
        cosine = 0.9 if len(rounds) < 3 else 0.0
        return [{"sface_cosine": cosine, "facenet_cosine": cosine} for _ in originals]

    monkeypatch.setattr(verify, "similarities", scripted)
    (face,) = Anonymizer(method="generate").anonymize(photos[0]).faces
    assert face.steps == ("generate", "redraw", "strength:large") and not face.covered
    assert face.threshold == 0.2 and face.similarity["sface_cosine"] == 0.0 and len(rounds) == 3


def test_real_faces_end_below_the_lines_or_covered_in_one_batch(photos):
    configs = [AnonymizerConfig(method="generate", seed=s) for s in (0, 5)]
    for result in batch.anonymize_batch(photos, configs):
        for face in result.faces:
            assert face.steps[0] == "generate" and set(face.similarity) == {"sface_cosine", "facenet_cosine"}
            assert face.covered or not verify.too_close(face.similarity)
            assert face.seconds["verify"] > 0
