import numpy as np
import pytest

from anon_plugin.inference.fill import FILLERS, filler


@pytest.fixture
def crop_and_hole():
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    hole = np.zeros((256, 256), bool)
    hole[90:170, 70:190] = True
    return crop, hole


@pytest.mark.parametrize("name", sorted(FILLERS))
def test_every_filler_keeps_the_contract(name, crop_and_hole):
    crop, hole = crop_and_hole
    out = FILLERS[name](crop, hole, 7)
    assert out.shape == crop.shape and out.dtype == np.uint8
    assert (out[hole] != crop[hole]).any(), "the hole was left as it was"
    np.testing.assert_array_equal(out, FILLERS[name](crop, hole, 7))


def test_inpaint_only_touches_the_hole(crop_and_hole):
    crop, hole = crop_and_hole
    out = FILLERS["inpaint"](crop, hole, 0)
    np.testing.assert_array_equal(out[~hole], crop[~hole])


def test_solid_uses_the_surrounding_colour():
    crop = np.full((256, 256, 3), (200, 150, 120), np.uint8)
    hole = np.zeros((256, 256), bool)
    hole[100:150, 100:150] = True
    crop[hole] = 0
    assert tuple(FILLERS["solid"](crop, hole, 0)[120, 120]) == (200, 150, 120)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="inpaint"):
        filler("magic")
