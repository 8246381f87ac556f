import numpy as np

from anon_plugin.inference.blend import seamless


def _disc(size=96, radius=24):
    yy, xx = np.mgrid[:size, :size]
    return (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2


def test_seamless_carries_a_colour_cast_away_and_keeps_the_shapes():
    hole = _disc()
    yy, xx = np.mgrid[:96, :96].astype(np.float32)
    image = np.dstack([100 + 0.5 * xx, 120 + 0.3 * yy, np.full_like(xx, 90)]).astype(np.float32)
    pattern = 20 * np.sin(xx / 4)[..., None] * np.ones(3, np.float32)  # the fill's own detail
    fill = image + pattern + np.array([40, -30, 25], np.float32)  # ... under a colour cast
    out = seamless(fill, image, hole)
    np.testing.assert_array_equal(out[~hole], fill[~hole])  # only the hole is touched
    cast = np.abs((out - image - pattern)[hole].mean(0))
    assert cast.max() < 4, cast  # the cast is gone (it was 40)
    detail = np.corrcoef((out - image)[hole][:, 0], pattern[hole][:, 0])[0, 1]
    assert detail > 0.9  # the fill's shapes stay (its border values are pulled to the photo)


def test_an_edge_of_the_photo_does_not_bleed_into_the_hole():
    hole = _disc()
    image = np.full((96, 96, 3), 150, np.float32)
    image[70:, :] = (200, 40, 40)  # a red band the hole's lower border runs through
    fill = np.full((96, 96, 3), 150, np.float32)
    out = seamless(fill, image, hole)
    centre = out[40:56, 40:56]
    assert np.abs(centre - 150).max() < 10  # the fill's colour where the photo agreed with it
    plain = seamless(fill, image, hole, edge=1e6)  # a plain Poisson blend bleeds more
    assert np.abs(plain[40:56, 40:56] - 150).max() > np.abs(centre - 150).max()


def test_nothing_to_blend():
    fill = np.zeros((8, 8, 3), np.float32)
    assert seamless(fill, fill + 1, np.zeros((8, 8), bool)) is fill
    np.testing.assert_array_equal(seamless(fill, fill + 1, np.ones((8, 8), bool)), fill)  # no border to meet
