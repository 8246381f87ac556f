"""The panel's forms (Flask-WTF: each carries the CSRF token) and the policy form's reading.

The policy form's fields are the policy's own (``policies.FIELDS``), checked by
``policies.parse_assignments``, so a value refused here is refused with the
same message as on the command line. ``after_publish`` is a shell command the
daemon runs: it is shown, not edited, here (``anon-plugin policy set`` changes
it), so that a panel account is not a way to run commands on the server.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from .. import policies
from ..errors import PolicyError
from ..policies import Policy

READ_ONLY = ("after_publish",)
EDITABLE = tuple(name for name in policies.FIELDS if name not in READ_ONLY)
ENGINE_FIELDS = tuple(policies.DEFAULT.engine_options())  # what the preview depends on


class SignInForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=150)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Sign in")


class ActionForm(FlaskForm):
    """A button that changes something: nothing but the CSRF token."""


# Choice fields and their options (policies keeps them as constants); every other field is a
# checkbox when its default is a bool, else a text box: a new policy field appears on its own.
_CHOICES = {"method": policies.METHODS, "strength": policies.STRENGTHS, "recognizer": policies.RECOGNIZERS,
            "metadata": policies.METADATA, "on_face_failure": policies.ON_FACE_FAILURE,
            "output_format": policies.OUTPUT_FORMATS}
_LABELS = {"enabled": "Publish this album's photos", "threshold": "Threshold (0 to 1; empty: the strength's)",
           "verify": "Verify every face with the recognizers (and redo the ones still recognized)",
           "on_face_failure": "A face that cannot be anonymized", "jpeg_quality": "JPEG quality (1 to 95)",
           "after_publish_timeout": "After-publish command timeout (seconds)"}


def _policy_field(name: str) -> Field:
    label = _LABELS.get(name, name.replace("_", " ").capitalize())
    if name in _CHOICES:
        # validate_choice=False: an unknown choice is reported by the policy's own rule, with its wording.
        return SelectField(label, choices=list(_CHOICES[name]), validate_choice=False)
    if isinstance(getattr(policies.DEFAULT, name), bool):
        return BooleanField(label)
    return StringField(label)


class PolicyForm(FlaskForm):
    """One field per editable policy field (``EDITABLE``), plus the two buttons."""

    preview = SubmitField("Preview")
    save = SubmitField("Save as a new version")


for _name in EDITABLE:
    setattr(PolicyForm, _name, _policy_field(_name))
BOXES = tuple(name for name in EDITABLE if isinstance(getattr(policies.DEFAULT, name), bool))


class SearchForm(FlaskForm):
    """Provenance search, sent by GET: it changes nothing, so it carries no token."""

    class Meta:
        csrf = False

    name = StringField("File name contains")
    sha256 = StringField("sha256 starts with")
    date = StringField("Date (YYYY-MM-DD, UTC)")


def form_values(policy: Policy) -> dict[str, Any]:
    """A policy as the form shows it."""
    values = {}
    for name in EDITABLE:
        value = getattr(policy, name)
        values[name] = value if isinstance(value, bool) else "" if value is None else str(value)
    return values


def _message(exc: PolicyError, item: str) -> str:
    text = str(exc)
    prefix = f"{item!r}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def read_fields(values: dict[str, str | bool], names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed policy values from form text, and a message per field that was refused."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in names:
        value = values.get(name, "")
        text = ("true" if value else "false") if isinstance(value, bool) else (value or "")
        item = f"{name}={text}"
        try:
            changes.update(policies.parse_assignments([item]))
        except PolicyError as exc:
            errors[name] = _message(exc, item)
    return changes, errors


def read_policy(form: PolicyForm, base: Policy) -> tuple[Policy | None, dict[str, str]]:
    """The policy the form describes (``base``'s read-only fields kept), or None and the messages."""
    changes, errors = read_fields({name: form[name].data for name in EDITABLE}, EDITABLE)
    if errors:
        return None, errors
    try:
        return base.with_changes(**changes), {}
    except PolicyError as exc:
        return None, {"": str(exc)}


def preview_options(args: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The engine options of a preview request (query arguments; one left out takes the default
    policy's value), checked like the form."""
    defaults = form_values(policies.DEFAULT)
    given = {name: args[name] if name in args else defaults[name] for name in ENGINE_FIELDS}
    changes, errors = read_fields(given, ENGINE_FIELDS)
    if errors:
        return {}, errors
    return policies.DEFAULT.with_changes(**changes).engine_options(), {}
