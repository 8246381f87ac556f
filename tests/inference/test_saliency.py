import numpy as np
import pytest
import torch

from anon_plugin import Anonymizer
from anon_plugin.inference import registry
from anon_plugin.inference.mask import iou
from anon_plugin.inference.recognition import recognizer_input
from anon_plugin.inference.saliency import GradCAM, attention_map, own_identity


@pytest.fixture(scope="module")
def medium_masks(eval_pairs):
    """Aligned medium masks of two photos per identity, for the first 24 eval identities."""
    anonymizer = Anonymizer(strength="medium")
    pairs = []
    for _, a, b in eval_pairs:
        faces = [anonymizer.anonymize(p).faces for p in (a, b)]
        if all(f and f[0].hole_mask is not None for f in faces):
            pairs.append((faces[0][0].hole_mask, faces[1][0].hole_mask))
    return pairs


def test_same_person_masks_overlap_more_than_different_people(medium_masks):
    assert len(medium_masks) >= 20
    same = [iou(a, b) for a, b in medium_masks]
    n = len(medium_masks)
    different = [iou(medium_masks[k][0], medium_masks[(k + 1) % n][1]) for k in range(n)]
    assert np.mean(same) > np.mean(different), (np.mean(same), np.mean(different))


def test_maps_are_per_face(medium_masks):
    # Different people must not all get one fixed mask.
    ious = [iou(medium_masks[0][0], m[0]) for m in medium_masks[1:]]
    assert min(ious) < 0.9


def test_own_identity_score_has_gradient_where_cosine_has_none(eval_pairs):
    model = registry.load("sface")
    crops = np.stack([Anonymizer().anonymize(eval_pairs[0][1]).faces[0].crop])
    x = recognizer_input(crops, "sface")
    with GradCAM(model) as cam:
        maps = cam(x, own_identity)
        flat = cam(x, lambda e: torch.nn.functional.cosine_similarity(e, e.detach()))
    assert maps.shape == (1, 7, 7) and maps.max() > 0
    assert flat.abs().max() < 1e-4 * maps.max()


@pytest.mark.parametrize("recognizer", ["sface", "facenet", "ensemble"])
def test_attention_map_range_and_hooks_removed(recognizer, eval_pairs):
    crop = Anonymizer().anonymize(eval_pairs[1][1]).faces[0].crop
    maps = attention_map(crop[None], recognizer)
    assert maps.shape == (1, 256, 256) and maps.dtype == np.float32
    assert 0 <= maps.min() and maps.max() == pytest.approx(1.0, abs=0.01 if recognizer != "ensemble" else 0.5)
    for name in ("sface", "facenet"):
        assert not registry.load(name).cam_layer._forward_hooks


def test_hooks_are_removed_even_on_error():
    model = registry.load("sface")
    with pytest.raises(RuntimeError):
        with GradCAM(model) as cam:
            cam(torch.zeros(1, 3, 112, 112), lambda e: (_ for _ in ()).throw(RuntimeError("boom")))
    assert not model.cam_layer._forward_hooks


def test_unknown_recognizer():
    with pytest.raises(ValueError, match="ensemble"):
        attention_map(np.zeros((1, 256, 256, 3), np.uint8), "arcface")


@pytest.mark.parametrize("name", ["sface", "facenet"])
def test_every_recognizer_gives_a_real_map_not_rounding_noise(eval_pairs, name):
    """FaceNet normalises its embedding inside the network: scored after that, Grad-CAM
    had zero gradient and its maps were noise around 1e-9, scaled up to a peak of 1."""
    faces = [Anonymizer().analyze(a).faces[0] for _, a, _ in eval_pairs[:4]]
    crops = np.stack([f.crop for f in faces])
    with GradCAM(registry.load(name)) as cam:
        raw = cam(recognizer_input(crops, name), own_identity)
    assert raw.flatten(1).amax(1).min() > 1e-3
    maps = attention_map(crops, name)
    for face, m in zip(faces, maps, strict=True):  # the map's weight sits on the face, not around it
        assert m[face.region].mean() > 2 * m[~face.region].mean()
