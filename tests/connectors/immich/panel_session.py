"""Signing in to the admin panel from the Immich tests (Flask's test client): the password and the form token."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def signed_in(client: FlaskClient) -> FlaskClient:
    page = client.get("/sign-in")
    token = TOKEN.search(page.text)
    assert token is not None
    answer = client.post("/sign-in", data={"username": "admin", "password": PASSWORD, "csrf_token": token.group(1)})
    assert answer.status_code == 302, answer.text
    return client
