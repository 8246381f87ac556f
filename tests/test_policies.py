"""Policy: defaults, every field's rule and message, round trips, CLI assignments, the engine's names."""

from __future__ import annotations

import json

import pytest

from anon_plugin.errors import PolicyError
from anon_plugin.policies import (DEFAULT, FIELDS, METADATA, METHODS, ON_FACE_FAILURE, OUTPUT_FORMATS, RECOGNIZERS,
                                  STRENGTHS, Policy, parse_assignments)


def test_defaults_are_the_safest_natural_policy():
    assert DEFAULT == Policy()
    assert DEFAULT.to_mapping() == {
        "enabled": True, "method": "generate", "strength": "medium", "threshold": None, "recognizer": "sface",
        "verify": True, "metadata": "strip-identifying", "on_face_failure": "cover", "output_format": "same",
        "jpeg_quality": 90,
        "after_publish": None, "after_publish_timeout": 60.0, "allow_download": False,
    }


def test_names_equal_the_engine_registries():
    from anon_plugin.inference import fill, mask, registry

    assert METHODS == tuple(fill.FILLERS)
    assert STRENGTHS == tuple(mask.STRENGTHS)
    assert RECOGNIZERS == tuple(registry.SALIENCY)


BAD = [
    ("enabled", 1, "enabled: must be true or false, got 1"),
    ("enabled", "yes", "enabled: must be true or false, got 'yes'"),
    ("method", "smudge", f"method: must be one of {', '.join(METHODS)}, got 'smudge'"),
    ("method", None, f"method: must be one of {', '.join(METHODS)}, got None"),
    ("strength", "huge", "strength: must be one of small, medium, large, got 'huge'"),
    ("threshold", 1.5, "threshold: must be a number from 0 to 1 or none, got 1.5"),
    ("threshold", -0.1, "threshold: must be a number from 0 to 1 or none, got -0.1"),
    ("threshold", True, "threshold: must be a number from 0 to 1 or none, got True"),
    ("threshold", "0.4", "threshold: must be a number from 0 to 1 or none, got '0.4'"),
    ("threshold", float("nan"), "threshold: must be a number from 0 to 1 or none, got nan"),
    ("recognizer", "arcface", "recognizer: must be one of sface, facenet, ensemble, got 'arcface'"),
    ("verify", "yes", "verify: must be true or false, got 'yes'"),
    ("verify", None, "verify: must be true or false, got None"),
    ("metadata", "keep", "metadata: must be one of strip-identifying, strip-all, got 'keep'"),
    ("on_face_failure", "skip", "on_face_failure: must be one of cover, hold, got 'skip'"),
    ("output_format", "png", "output_format: must be one of same, jpeg, got 'png'"),
    ("jpeg_quality", 120, "jpeg_quality: must be an integer from 1 to 95, got 120"),
    ("jpeg_quality", 0, "jpeg_quality: must be an integer from 1 to 95, got 0"),
    ("jpeg_quality", 90.0, "jpeg_quality: must be an integer from 1 to 95, got 90.0"),
    ("jpeg_quality", True, "jpeg_quality: must be an integer from 1 to 95, got True"),
    ("after_publish", "", "after_publish: must be a non-empty command or none, got ''"),
    ("after_publish", "   ", "after_publish: must be a non-empty command or none, got '   '"),
    ("after_publish", ["occ", "scan"], "after_publish: must be a non-empty command or none, got ['occ', 'scan']"),
    ("after_publish_timeout", 0, "after_publish_timeout: must be a number of seconds > 0, got 0"),
    ("after_publish_timeout", float("inf"), "after_publish_timeout: must be a number of seconds > 0, got inf"),
    ("after_publish_timeout", "60", "after_publish_timeout: must be a number of seconds > 0, got '60'"),
    ("allow_download", "yes", "allow_download: must be true or false, got 'yes'"),
]


@pytest.mark.parametrize("name, value, message", BAD)
def test_bad_values_name_the_field_and_what_it_accepts(name, value, message):
    with pytest.raises(PolicyError) as caught:
        Policy.from_mapping({name: value})
    assert str(caught.value) == message
    with pytest.raises(PolicyError):
        Policy(**{name: value})
    with pytest.raises(PolicyError):
        DEFAULT.with_changes(**{name: value})


def test_every_field_has_a_bad_value_tested():
    assert {name for name, _, _ in BAD} == set(FIELDS)


def test_unknown_field_lists_the_fields():
    with pytest.raises(PolicyError) as caught:
        Policy.from_mapping({"strenght": "large"})
    assert str(caught.value) == f"unknown field 'strenght'; fields: {', '.join(FIELDS)}"
    with pytest.raises(PolicyError, match="unknown field 'strenght'"):
        DEFAULT.with_changes(strenght="large")


def test_not_a_mapping():
    with pytest.raises(PolicyError, match="must be a mapping of fields, got list"):
        Policy.from_mapping([("strength", "large")])


def test_good_values_are_accepted_and_typed():
    policy = Policy.from_mapping({"enabled": False, "method": "blur", "strength": "large", "threshold": 1,
                                  "recognizer": "ensemble", "verify": False, "metadata": "strip-all",
                                  "on_face_failure": "hold",
                                  "output_format": "jpeg", "jpeg_quality": 95, "after_publish": "occ files:scan",
                                  "after_publish_timeout": 5})
    assert policy.threshold == 1.0 and isinstance(policy.threshold, float)
    assert policy.after_publish_timeout == 5.0 and isinstance(policy.after_publish_timeout, float)
    assert (policy.enabled, policy.method, policy.jpeg_quality, policy.verify) == (False, "blur", 95, False)
    assert Policy.from_mapping({}) == DEFAULT
    assert Policy.from_mapping({"threshold": 0}).threshold == 0.0


@pytest.mark.parametrize("policy", [
    DEFAULT,
    Policy(enabled=False, method="pixelate", strength="small", threshold=0.35, recognizer="facenet", verify=False,
           metadata="strip-all", on_face_failure="hold", output_format="jpeg", jpeg_quality=1,
           after_publish="curl -X POST http://immich:2283/api/libraries/scan", after_publish_timeout=0.5),
])
def test_round_trip_through_json_is_exact(policy):
    mapping = json.loads(json.dumps(policy.to_mapping()))
    assert mapping == policy.to_mapping()
    assert Policy.from_mapping(mapping) == policy
    assert Policy.from_mapping(mapping).to_mapping() == policy.to_mapping()


def test_with_changes_validates_and_leaves_the_original():
    changed = DEFAULT.with_changes(strength="large", threshold=0.3)
    assert (changed.strength, changed.threshold) == ("large", 0.3)
    assert DEFAULT.strength == "medium"
    assert changed.with_changes(threshold=None).threshold is None


def test_engine_options_build_the_engine_config():
    from anon_plugin.inference.pipeline import AnonymizerConfig

    policy = DEFAULT.with_changes(method="inpaint", threshold=0.5, recognizer="ensemble", verify=False)
    options = policy.engine_options()
    assert options == {"method": "inpaint", "strength": "medium", "threshold": 0.5, "recognizer": "ensemble",
                       "verify": False}
    config = AnonymizerConfig(**options)
    assert (config.method, config.strength, config.threshold, config.recognizer, config.verify) == \
        tuple(options.values())
    assert AnonymizerConfig(**DEFAULT.engine_options()).verify and AnonymizerConfig().verify


def test_parse_assignments_types_every_kind():
    parsed = parse_assignments(["enabled=off", "method=blur", "strength=large", "threshold=0.25", "jpeg_quality=80",
                                "after_publish=occ files:scan --path=/admin/files", "after_publish_timeout=30",
                                "metadata=strip-all", "verify=no"])
    assert parsed == {"enabled": False, "method": "blur", "strength": "large", "threshold": 0.25, "jpeg_quality": 80,
                      "after_publish": "occ files:scan --path=/admin/files", "after_publish_timeout": 30.0,
                      "metadata": "strip-all", "verify": False}
    assert DEFAULT.with_changes(**parsed).jpeg_quality == 80


@pytest.mark.parametrize("text, value", [("true", True), ("Yes", True), ("on", True),
                                          ("false", False), ("NO", False), ("off", False)])
def test_parse_assignments_bools(text, value):
    assert parse_assignments([f"enabled={text}"]) == {"enabled": value}


@pytest.mark.parametrize("item", ["threshold=none", "threshold=", "after_publish=None", "after_publish="])
def test_parse_assignments_none_for_optional_fields(item):
    assert parse_assignments([item]) == {item.partition("=")[0]: None}


@pytest.mark.parametrize("item, message", [
    ("strength", "'strength' needs key=value"),
    ("=large", "'=large' needs key=value"),
    ("strenght=large", f"'strenght=large': unknown field 'strenght'; fields: {', '.join(FIELDS)}"),
    ("strength=huge", "'strength=huge': strength must be one of small, medium, large, got 'huge'"),
    ("enabled=maybe", "'enabled=maybe': enabled must be true or false, got 'maybe'"),
    ("jpeg_quality=high", "'jpeg_quality=high': jpeg_quality must be an integer from 1 to 95, got 'high'"),
    ("jpeg_quality=99", "'jpeg_quality=99': jpeg_quality must be an integer from 1 to 95, got '99'"),
    ("threshold=half", "'threshold=half': threshold must be a number from 0 to 1 or none, got 'half'"),
    ("after_publish_timeout=none",
     "'after_publish_timeout=none': after_publish_timeout must be a number of seconds > 0, got 'none'"),
    ("method=", f"'method=': method must be one of {', '.join(METHODS)}, got ''"),
])
def test_parse_assignments_errors_name_the_item(item, message):
    with pytest.raises(PolicyError) as caught:
        parse_assignments([item])
    assert str(caught.value) == message


def test_parse_assignments_refuses_a_field_set_twice():
    with pytest.raises(PolicyError, match="strength is set twice"):
        parse_assignments(["strength=large", "strength=small"])


def test_constants_cover_the_documented_choices():
    assert METADATA == ("strip-identifying", "strip-all")
    assert ON_FACE_FAILURE == ("cover", "hold")
    assert OUTPUT_FORMATS == ("same", "jpeg")


# --- versions in the store (a real SQLite database migrated to head) ---

def test_every_change_is_a_new_version_and_old_ones_stay(engine):
    from anon_plugin import policies
    from anon_plugin.store import queries
    from anon_plugin.store.db import session_scope

    with session_scope(engine) as session:
        album = queries.add_album(session, "/lib", "family").id
        assert policies.current(session, album) == (1, DEFAULT)
    with session_scope(engine) as session:
        version, policy = policies.current(session, album)
        assert policies.save(session, album, policy.with_changes(strength="large"), by="ann") == 2
        assert policies.save(session, album, policy.with_changes(method="blur"), by="bob") == 3
    with session_scope(engine, read_only=True) as session:
        rows = queries.policy_versions(session, album)
        assert [r.version for r in rows] == [1, 2, 3]
        assert [Policy.from_mapping(r.policy) for r in rows] == [
            DEFAULT, DEFAULT.with_changes(strength="large"), DEFAULT.with_changes(method="blur")]
        assert [r.created_by for r in rows] == [None, "ann", "bob"]
        assert policies.current(session, album) == (3, DEFAULT.with_changes(method="blur"))
        from anon_plugin.store.tables import AuditEntry
        import sqlalchemy as sa

        audit = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(a.user_name, a.action, a.detail["version"]) for a in audit] == [
            (None, "policy change", 1), ("ann", "policy change", 2), ("bob", "policy change", 3)]


def test_a_stored_version_cannot_be_edited(engine):
    from anon_plugin import policies
    from anon_plugin.errors import StoreError
    from anon_plugin.store import queries
    from anon_plugin.store.db import session_scope

    with session_scope(engine) as session:
        album = queries.add_album(session, "/lib", "club").id
        policies.current(session, album)
    with pytest.raises(StoreError, match="immutable"):
        with session_scope(engine) as session:
            row = queries.latest_policy_version(session, album)
            row.policy = {**row.policy, "strength": "small"}
    with session_scope(engine, read_only=True) as session:
        assert policies.current(session, album) == (1, DEFAULT)
