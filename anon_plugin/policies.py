"""The per-album policy: how an album's photos are anonymized and published.

A ``Policy`` is a frozen dataclass whose every field carries its own rule
(``metadata["rule"]``, a ``rules.Rule`` as each setting's is), so validation,
the list of fields in error messages and the CLI's ``key=value`` parsing all
come from one place. It is stored as
a plain mapping (``to_mapping`` / ``from_mapping``, JSON-able and exact), and
changed only by making a new one (``with_changes``): the store turns each
change into a new policy version.

The engine's names are repeated here as constant tuples so that importing
policies never loads the engine (cv2, torch); tests check they equal
``fill.FILLERS``, ``mask.STRENGTHS`` and ``registry.SALIENCY``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import PolicyError
from .rules import BAD, NONE_WORDS, Invalid, Rule, boolean, choice, fraction, integer, seconds

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from .inference.records import AnonymizerConfig

METHODS = ("blur", "pixelate", "solid", "inpaint", "generate", "stylegan")  # inference.fill.FILLERS
STRENGTHS = ("small", "medium", "large")  # inference.mask.STRENGTHS
RECOGNIZERS = ("sface", "facenet", "ensemble")  # inference.registry.SALIENCY
METADATA = ("strip-identifying", "strip-all")
ON_FACE_FAILURE = ("cover", "hold")
OUTPUT_FORMATS = ("same", "jpeg")


def _command() -> Rule:
    def clean(v: object, base: object) -> object:
        return v if v is None or (isinstance(v, str) and v.strip() and "\0" not in v) else BAD

    return Rule("a non-empty command or none", clean, lambda text: None if text.strip().lower() in NONE_WORDS else text)


def _field(rule: Rule, default: Any) -> Any:
    return field(default=default, metadata={"rule": rule})


@dataclass(frozen=True)
class Policy:
    """How one album is anonymized and published.

    The default is the safest that still looks natural:
    ``generate`` replaces the identity-bearing pixels with a new face (blur and
    pixelate leave a visible patch, and blur can be partly reversed); ``medium``
    is the strength whose masks defeat the recognizers while keeping pose and
    expression (docs/pipeline.md); ``verify`` checks every anonymized face with
    SFace and FaceNet and, while one is still too close to its original, draws
    another person, enlarges its mask, then gives up on it (docs/verification.md);
    ``strip-identifying`` drops GPS, serial numbers, owner names, thumbnails,
    XMP and IPTC but keeps the camera and dates a gallery sorts by; ``cover``
    pixelates the whole box of a face the engine could not anonymize, so the
    photo still appears with no recognizable face, where ``hold`` would keep it
    back for the admin. ``allow_download`` is off: the shared link of an Immich
    album's copies shows them, never offers them as files.
    """

    enabled: bool = _field(boolean(), True)
    method: str = _field(choice(*METHODS), "generate")
    strength: str = _field(choice(*STRENGTHS), "medium")
    threshold: float | None = _field(fraction(optional=True), None)  # the attention threshold; overrides strength
    recognizer: str = _field(choice(*RECOGNIZERS), "sface")  # whose Grad-CAM attention drives the mask
    verify: bool = _field(boolean(), True)  # check every face and climb the ladder while it is too close
    metadata: str = _field(choice(*METADATA), "strip-identifying")
    on_face_failure: str = _field(choice(*ON_FACE_FAILURE), "cover")
    output_format: str = _field(choice(*OUTPUT_FORMATS), "same")
    jpeg_quality: int = _field(integer(1, 95), 90)
    after_publish: str | None = _field(_command(), None)  # a shell command run after a batch is published
    after_publish_timeout: float = _field(seconds(), 60.0)
    allow_download: bool = _field(boolean(), False)  # an Immich album's shared link lets visitors download copies

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f.name, getattr(self, f.name))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        """A validated policy from a mapping (stored JSON, a form); missing fields take their defaults."""
        if not isinstance(data, Mapping):
            raise PolicyError(f"a policy must be a mapping of fields, got {type(data).__name__}")
        for name in data:
            if name not in FIELDS:
                raise PolicyError(f"unknown field {name!r}; fields: {', '.join(FIELDS)}")
        return cls(**{name: _check(name, value) for name, value in data.items()})

    def to_mapping(self) -> dict[str, Any]:
        """Every field, JSON-able; ``from_mapping`` gives back an equal policy."""
        return {name: getattr(self, name) for name in FIELDS}

    def with_changes(self, **changes: Any) -> Policy:
        return Policy.from_mapping({**self.to_mapping(), **changes})

    def engine_options(self) -> dict[str, Any]:
        """Keyword options for ``inference.pipeline.AnonymizerConfig``."""
        return {"method": self.method, "strength": self.strength, "threshold": self.threshold,
                "recognizer": self.recognizer, "verify": self.verify}


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Policy))
_RULES: dict[str, Rule] = {f.name: f.metadata["rule"] for f in dataclasses.fields(Policy)}


def _check(name: str, value: Any) -> Any:
    try:
        return _RULES[name].check(value)
    except Invalid as exc:
        raise PolicyError(f"{name}: {exc}") from None


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """``["strength=large", "threshold=none"]`` -> ``{"strength": "large", "threshold": None}``, typed and checked.

    For ``anon-plugin policy set NAME key=value ...``; bools read
    ``rules.BOOLEAN_WORDS``, optional fields read ``none`` or nothing as None.
    """
    changes: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise PolicyError(f"{item!r} needs key=value")
        if name not in FIELDS:
            raise PolicyError(f"{item!r}: unknown field {name!r}; fields: {', '.join(FIELDS)}")
        if name in changes:
            raise PolicyError(f"{item!r}: {name} is set twice")
        rule = _RULES[name]
        try:
            changes[name] = rule.check(rule.from_text(text))
        except Invalid:
            raise PolicyError(f"{item!r}: {name} must be {rule.describe}, got {text!r}") from None
    return changes


DEFAULT = Policy()


def seed_of(sha256: str) -> int:
    """The fill's seed comes from the content: the same photo always gets the same new faces."""
    return int(sha256[:8], 16)


def engine_config(policy: Policy, sha256: str) -> AnonymizerConfig:
    """The engine's options for the photo with content ``sha256`` under ``policy``: what the daemon
    publishes it with, and what the panel's preview shows. Loads the engine (cv2, torch)."""
    from .inference.records import AnonymizerConfig

    return AnonymizerConfig(**policy.engine_options(), seed=seed_of(sha256))


def current(session: Session, album_id: int) -> tuple[int, Policy]:
    """The album's policy version number and policy. An album without one gets
    version 1, the default policy, written in the caller's transaction."""
    from .store import queries

    latest = queries.latest_policy_version(session, album_id)
    if latest is None:
        return save(session, album_id, DEFAULT, by=None), DEFAULT
    return latest.version, Policy.from_mapping(latest.policy)


def save(session: Session, album_id: int, policy: Policy, by: str | None) -> int:
    """Store ``policy`` as the album's next version (older versions stay) and audit it; returns the version."""
    from .store import queries

    row = queries.add_policy_version(session, album_id, policy.to_mapping(), by)
    queries.audit(session, by, "policy change", f"album {album_id}", {"version": row.version, **policy.to_mapping()})
    return row.version
