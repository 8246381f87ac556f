"""The value rules the settings and the policies share: one set of boolean words, one wording of refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from anon_plugin import rules
from anon_plugin.config import load_settings
from anon_plugin.errors import PolicyError, SettingsError
from anon_plugin.policies import Policy, parse_assignments


@pytest.mark.parametrize("word", sorted(rules.BOOLEAN_WORDS))
def test_settings_and_policies_read_the_same_boolean_words(tmp_path: Path, monkeypatch, word: str):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    expected = rules.BOOLEAN_WORDS[word]
    for text in (word, word.upper(), f" {word} "):
        assert load_settings(environ={"ANON_SHARE_NEW_ALBUMS": text}).share_new_albums is expected
        assert parse_assignments([f"verify={text}"]) == {"verify": expected}


def test_a_word_outside_them_is_refused_by_both_in_the_same_words(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with pytest.raises(SettingsError, match=r"^ANON_SHARE_NEW_ALBUMS: must be true or false, got 'si'$"):
        load_settings(environ={"ANON_SHARE_NEW_ALBUMS": "si"})
    with pytest.raises(PolicyError, match=r"^'verify=si': verify must be true or false, got 'si'$"):
        parse_assignments(["verify=si"])
    with pytest.raises(PolicyError, match=r"^verify: must be true or false, got 1$"):
        Policy(verify=1)  # stored policies hold real booleans, as the settings file does


@pytest.mark.parametrize(("rule", "good", "bad"), [
    (rules.boolean(), [(True, True), (False, False)], [1, "true", None]),
    (rules.choice("a", "b"), [("a", "a")], ["c", 1, None]),
    (rules.integer(1), [(1, 1), (10**6, 10**6)], [0, 1.0, True, "2"]),
    (rules.integer(1, 95), [(95, 95)], [96, 0]),
    (rules.fraction(), [(0, 0.0), (1, 1.0), (0.5, 0.5)], [1.5, -0.1, float("nan"), None, True]),
    (rules.fraction(optional=True), [(None, None), (0.25, 0.25)], [2]),
    (rules.seconds(), [(2, 2.0), (0.5, 0.5)], [0, -1, float("inf"), True, "5"]),
])
def test_each_rule_cleans_what_it_accepts_and_says_what_it_accepts(rule, good, bad):
    for value, clean in good:
        assert rule.check(value) == clean and type(rule.check(value)) is type(clean)
    for value in bad:
        with pytest.raises(rules.Invalid, match=f"^must be {rule.describe}, got "):
            rule.check(value)


def test_text_is_read_by_the_rule_and_left_as_it_is_when_it_cannot_be():
    assert rules.integer(1).from_text(" 8 ") == 8 and rules.integer(1).from_text("eight") == "eight"
    assert rules.fraction(optional=True).from_text("none") is None
    assert rules.fraction(optional=True).from_text("") is None
    assert rules.fraction().from_text("none") == "none"
    assert rules.seconds().from_text("2.5") == 2.5
