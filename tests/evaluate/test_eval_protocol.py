"""The protocol's selection, known answers on synthetic labels.csv files (no photos needed)."""

from __future__ import annotations

import re

import pytest

from anon_plugin.evaluate.protocol import ProtocolError, identity_order, read_labels, select


def _labels(tmp_path, text: str):
    (tmp_path / "labels.csv").write_text(text)
    return tmp_path


def test_identities_sort_numerically_and_probes_follow_the_gallery(tmp_path):
    rows = ["path,identity,split"]
    rows += [f"img/{name}.jpg,{identity},eval" for identity, names in
             {"10": "dcba", "9": "zy", "100": "q", "2": "fedcb", "1": "ba"}.items() for name in names]
    rows += ["img/t1.jpg,7,train", "img/t2.jpg,7,train"]
    chosen = select(_labels(tmp_path, "\n".join(rows) + "\n"), split="eval", identities=3, probes=3)
    # 100 has one image only; numeric order 1, 2, 9, 10: the first three are 1, 2, 9.
    assert [s.identity for s in chosen.subjects] == ["1", "2", "9"]
    assert [s.gallery.path for s in chosen.subjects] == ["img/a.jpg", "img/b.jpg", "img/y.jpg"]
    assert [[p.path for p in s.probes] for s in chosen.subjects] == [
        ["img/b.jpg"], ["img/c.jpg", "img/d.jpg", "img/e.jpg"], ["img/z.jpg"]]
    assert [(k, p.path) for k, p in chosen.probes][:2] == [(0, "img/b.jpg"), (1, "img/c.jpg")]
    everyone = select(tmp_path, split="eval", probes=1)
    assert [s.identity for s in everyone.subjects] == ["1", "2", "9", "10"]
    assert all(len(s.probes) == 1 for s in everyone.subjects)
    with pytest.raises(ProtocolError, match="1 identities"):
        select(tmp_path, split="train")


def test_non_integer_identities_sort_as_strings():
    assert identity_order(["b", "10", "a", "9"]) == ["10", "9", "a", "b"]
    assert identity_order(["10", "9", "011"]) == ["9", "10", "011"]


def test_without_split_every_row_counts_and_attributes_are_parsed(tmp_path):
    _labels(tmp_path, "path,identity,Smiling,Male\na/1.jpg,x,1,-1\na/2.jpg,x,-1,-1\nb/1.jpg,y,1,1\nb/0.jpg,y,-1,1\n")
    labels = read_labels(tmp_path)
    assert labels.splits is None and labels.attribute_names == ("Smiling", "Male")
    chosen = select(tmp_path)
    assert [s.identity for s in chosen.subjects] == ["x", "y"]
    assert chosen.subjects[1].gallery.path == "b/0.jpg"
    assert chosen.subjects[1].probes[0].attributes.tolist() == [True, True]
    assert chosen.subjects[0].probes[0].attributes.tolist() == [False, False]


def test_plain_labels_have_no_attributes(tmp_path):
    _labels(tmp_path, "path,identity\na.jpg,1\nb.jpg,1\nc.jpg,2\nd.jpg,2\n")
    chosen = select(tmp_path)
    assert chosen.attribute_names == () and chosen.subjects[0].gallery.attributes is None


@pytest.mark.parametrize("text, split, message", [
    ("path,name\na.jpg,1\n", None, "missing column"),
    ("path,identity\na.jpg,1\nb.jpg,1\nc.jpg,2\nd.jpg,2\n", "eval", "no split column"),
    ("path,identity,split\na.jpg,1,train\nb.jpg,1,train\n", "eval", "no such split"),
    ("path,identity\na.jpg,1\nb.jpg,1\nc.jpg,2\n", None, "need 2 or more"),
    ("path,identity,Smiling\na.jpg,1,yes\n", None, "expected +1 or -1"),
])
def test_bad_labels_say_why(tmp_path, text, split, message):
    with pytest.raises(ProtocolError, match=re.escape(message)):
        select(_labels(tmp_path, text), split=split)


def test_missing_labels_file(tmp_path):
    with pytest.raises(ProtocolError, match="labels.csv"):
        select(tmp_path)
