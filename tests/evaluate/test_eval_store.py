"""The evaluation cache: items round-trip, anonymized photos are rebuilt bit for bit."""

from __future__ import annotations

import numpy as np

from anon_plugin.evaluate import store


def test_patch_rebuilds_the_output_exactly():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
    output = original.copy()
    output[60:140, 40:130] = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
    output[100, 20] = 0  # a lone changed pixel widens the window
    item = store.patch(original, output)
    assert item["patch_origin"].tolist() == [60, 20]
    np.testing.assert_array_equal(store.output_image(original, item), output)
    assert store.patch(original, original) is None
    np.testing.assert_array_equal(store.output_image(original, {}), original)


def test_items_round_trip_and_stale_versions_are_ignored(tmp_path, monkeypatch):
    root = store.root(tmp_path / "out", tmp_path / "data", "sface", 0)
    path = store.item_path(root, "images/a b.jpg", "solid", "medium")
    assert path.parent == root / "solid" / "medium" and path.name == "images__a_b.jpg.npz"
    mask = np.zeros((256, 256), bool)
    mask[10:20, 30:40] = True
    item = {"failed": False, "reason": None, "seconds": 0.25, "sface": np.arange(4, dtype=np.float32),
            "hole_mask": store.pack_mask(mask), "note": "covered"}
    store.save(path, item)
    back = store.load(path)
    assert back["failed"] is False and back["seconds"] == 0.25 and back["note"] == "covered" and "reason" not in back
    np.testing.assert_array_equal(back["sface"], item["sface"])
    np.testing.assert_array_equal(store.unpack_mask(back["hole_mask"], (256, 256)), mask)
    assert store.load(path.with_name("missing.npz")) is None
    monkeypatch.setattr(store, "VERSION", store.VERSION + 1)
    assert store.load(path) is None
