"""The fake Immich, served for one test; the test fails if either side broke Immich's spec."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake import PUBLIC_PERMISSIONS, SOURCE_PERMISSIONS, FakeImmich, Served


@pytest.fixture
def immich() -> Iterator[Served]:
    fake = FakeImmich()
    owner, public = fake.add_user("Owner"), fake.add_user("Public")
    source_key = fake.add_key(owner, SOURCE_PERMISSIONS)
    public_key = fake.add_key(public, PUBLIC_PERMISSIONS)
    with fake.serve() as url:
        yield Served(fake, url, owner, public, source_key, public_key)
    assert not fake.errors, "Immich's spec broken:\n" + "\n".join(fake.errors)
