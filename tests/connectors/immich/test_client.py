"""The Immich client against the fake Immich, over real HTTP, every call checked against Immich's spec."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest
from fake import FakeImmich, Served

from anon_plugin.connectors.immich.client import ImmichClient, Retry, neutral_name, read_key, sha1_base64
from anon_plugin.errors import ImmichError, ImmichKeyError, ImmichPermissionError, ImmichUnavailable

PHOTO = Path(__file__).resolve().parents[3] / "examples" / "astronaut.png"
FAST = Retry(attempts=3, first_delay=0.001, factor=2.0, max_delay=0.01)


def source(immich: Served, **kw) -> ImmichClient:
    return ImmichClient(immich.url, immich.source_key, name="source", retry=FAST, **kw)


def public(immich: Served, **kw) -> ImmichClient:
    return ImmichClient(immich.url, immich.public_key, name="public", retry=FAST, **kw)


# ---- reading with the source key ----

def test_albums_are_listed_with_what_polling_compares(immich: Served):
    photo = immich.fake.add_asset(immich.owner, PHOTO.read_bytes())
    full = immich.fake.add_album(immich.owner, "Holidays", [photo])
    empty = immich.fake.add_album(immich.owner, "Empty")
    immich.fake.add_album(immich.public, "Not the owner's")
    albums = {a.name: a for a in source(immich).albums()}
    assert set(albums) == {"Holidays", "Empty"}
    assert albums["Holidays"].id == full.id and albums["Holidays"].asset_count == 1
    assert albums["Holidays"].last_modified == full.modified and albums["Empty"].last_modified is None
    assert albums["Empty"].id == empty.id and not albums["Empty"].has_shared_link


def test_album_assets_follow_every_page(immich: Served, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("anon_plugin.connectors.immich.client.PAGE_SIZE", 2)
    assets = [immich.fake.add_asset(immich.owner, bytes([i]) * 10) for i in range(5)]
    video = immich.fake.add_asset(immich.owner, b"a video", name="clip.mp4", type="VIDEO")
    album = immich.fake.add_album(immich.owner, "Many", [*assets, video])
    immich.fake.add_asset(immich.owner, b"outside the album")
    found = source(immich).album_assets(album.id)
    assert [a.id for a in found] == [*(a.id for a in assets), video.id]
    assert [a.checksum for a in found[:5]] == [a.checksum for a in assets]
    assert [a.is_image for a in found] == [True] * 5 + [False]
    assert immich.fake.calls.count("POST /api/search/metadata") == 3
    assert [b["page"] for b in immich.fake.bodies] == [1, 2, 3]


def test_download_streams_the_original_into_a_file(immich: Served, tmp_path: Path):
    photo = immich.fake.add_asset(immich.owner, PHOTO.read_bytes())
    dest = tmp_path / "originals" / "a.png"
    source(immich).download(photo.id, dest)
    assert dest.read_bytes() == PHOTO.read_bytes()
    assert sha1_base64(dest) == photo.checksum
    assert [p.name for p in dest.parent.iterdir()] == ["a.png"]  # no part file left


# ---- writing with the public key ----

def test_upload_sends_the_checksum_and_a_neutral_name(immich: Served, tmp_path: Path):
    photo = tmp_path / "IMG_20240601_101500.PNG"
    photo.write_bytes(PHOTO.read_bytes())
    uploaded = public(immich).upload(photo)
    assert not uploaded.duplicate
    asset = immich.fake.assets[uploaded.id]
    assert asset.owner is immich.public and asset.data == PHOTO.read_bytes()
    assert asset.name == neutral_name(asset.checksum, ".png") and "2024" not in asset.name
    form = immich.fake.bodies[-1]
    assert form["filename"] == asset.name and "2024" not in form["fileCreatedAt"]


def test_a_duplicate_upload_is_recognised(immich: Served, tmp_path: Path):
    photo = tmp_path / "a.png"
    photo.write_bytes(PHOTO.read_bytes())
    client = public(immich)
    first = client.upload(photo)
    again = client.upload(photo)
    assert again.duplicate and again.id == first.id
    assert len(immich.fake.assets) == 1


def test_mirror_album_with_a_link_that_shows_no_metadata(immich: Served, tmp_path: Path):
    client = public(immich)
    photo = tmp_path / "a.png"
    photo.write_bytes(PHOTO.read_bytes())
    asset = client.upload(photo)
    album_id = client.create_album("Holidays", "anonymized copies")
    client.add_to_album(album_id, [asset.id])
    client.add_to_album(album_id, [asset.id])  # already there: fine
    assert immich.fake.albums[album_id].assets == [asset.id]
    link = client.create_link(album_id, allow_download=False)
    stored = immich.fake.links[link.id]
    assert not link.show_metadata and not stored.show_metadata and not stored.allow_download
    assert link.key == stored.key and stored.album_id == album_id
    stored.show_metadata = True  # someone changed it in Immich's web page
    updated = client.update_link(link.id, allow_download=True)
    assert not updated.show_metadata and updated.allow_download and not stored.show_metadata


def test_adding_an_asset_of_someone_else_is_refused(immich: Served):
    client = public(immich)
    album_id = client.create_album("Holidays")
    theirs = immich.fake.add_asset(immich.owner, b"not the public user's")
    with pytest.raises(ImmichError, match=f"{theirs.id}: no_permission"):
        client.add_to_album(album_id, [theirs.id])


def test_delete_assets_for_good(immich: Served, tmp_path: Path):
    client = public(immich)
    photo = tmp_path / "a.png"
    photo.write_bytes(PHOTO.read_bytes())
    asset = client.upload(photo)
    album_id = client.create_album("Holidays")
    client.add_to_album(album_id, [asset.id])
    client.delete_assets([asset.id])
    assert immich.fake.assets == {} and immich.fake.albums[album_id].assets == []
    assert immich.fake.bodies[-1] == {"ids": [asset.id], "force": True}


def test_delete_a_shared_link(immich: Served):
    client = public(immich)
    link = client.create_link(client.create_album("Holidays"), allow_download=False)
    client.delete_link(link.id)
    assert immich.fake.links == {}


# ---- faults ----

def test_a_key_the_server_does_not_know_gives_401_naming_the_permission(immich: Served):
    client = ImmichClient(immich.url, "not-a-key", name="source", retry=FAST)
    with pytest.raises(ImmichPermissionError, match=r"does not accept the source key \(401\); make a key with "
                                                    r"album\.read") as caught:
        client.albums()
    assert caught.value.permission == "album.read"


@pytest.mark.parametrize("call, permission", [
    (lambda c, tmp: c.albums(), "album.read"),
    (lambda c, tmp: c.album_assets("7f6c9c39-4a4b-4c8e-9a51-0a7c7e1b0a11"), "asset.read"),
    (lambda c, tmp: c.download("7f6c9c39-4a4b-4c8e-9a51-0a7c7e1b0a11", tmp / "x"), "asset.download"),
])
def test_the_public_key_cannot_read_the_source(immich: Served, tmp_path: Path, call, permission):
    with pytest.raises(ImmichPermissionError, match=f"public key lacks the permission {permission} \\(403\\)"):
        call(public(immich), tmp_path)


@pytest.mark.parametrize("call, permission", [
    (lambda c, tmp: c.upload(PHOTO), "asset.upload"),
    (lambda c, tmp: c.create_album("x"), "album.create"),
    (lambda c, tmp: c.add_to_album("7f6c9c39-4a4b-4c8e-9a51-0a7c7e1b0a11", ["7f6c9c39-4a4b-4c8e-9a51-0a7c7e1b0a11"]),
     "albumAsset.create"),
    (lambda c, tmp: c.create_link("7f6c9c39-4a4b-4c8e-9a51-0a7c7e1b0a11", False), "sharedLink.create"),
    (lambda c, tmp: c.update_link("7f6c9c39-4a4b-4c8e-9a51-0a7c7e1b0a11", False), "sharedLink.update"),
    (lambda c, tmp: c.delete_assets(["7f6c9c39-4a4b-4c8e-9a51-0a7c7e1b0a11"]), "asset.delete"),
    (lambda c, tmp: c.delete_link("7f6c9c39-4a4b-4c8e-9a51-0a7c7e1b0a11"), "sharedLink.delete"),
])
def test_the_source_key_can_write_nothing(immich: Served, tmp_path: Path, call, permission):
    message = f"source key lacks the permission {permission} \\(403\\)"
    with pytest.raises(ImmichPermissionError, match=message) as caught:
        call(source(immich), tmp_path)
    assert caught.value.permission == permission


def test_5xx_then_success_is_retried_with_backoff(immich: Served, tmp_path: Path):
    waits: list[float] = []
    immich.fake.fail_next += [503, 500]
    photo = immich.fake.add_asset(immich.owner, PHOTO.read_bytes())
    client = ImmichClient(immich.url, immich.source_key, name="source", sleep=waits.append,
                          retry=Retry(attempts=3, first_delay=0.5, factor=2.0, max_delay=30.0))
    assert [a.name for a in client.albums()] == []
    assert waits == [0.5, 1.0] and immich.fake.calls == ["GET /api/albums"] * 3
    immich.fake.fail_next += [502]
    client.download(photo.id, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes() == photo.data and waits == [0.5, 1.0, 0.5]


def test_a_server_that_keeps_failing_is_unavailable(immich: Served):
    immich.fake.fail_next += [503] * 3
    with pytest.raises(ImmichUnavailable, match=r"GET /api/albums: .* answered 503 through 3 attempts"):
        source(immich).albums()


def test_a_server_that_is_down_is_unavailable(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    client = ImmichClient(f"http://127.0.0.1:{port}", "k", retry=Retry(attempts=4, first_delay=1, factor=3),
                          sleep=waits.append)
    with pytest.raises(ImmichUnavailable, match=r"cannot reach http://127\.0\.0\.1:\d+ \(ConnectError\) "
                                                r"through 4 attempts"):
        client.albums()
    assert waits == [1, 3, 9]
    with pytest.raises(ImmichUnavailable):
        client.download("x", tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_the_key_is_never_logged_nor_in_an_error(immich: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    immich.fake.fail_next += [503]
    client = source(immich)
    client.albums()
    messages = []
    for call in (lambda: public(immich).albums(), lambda: ImmichClient(immich.url, immich.source_key,
                                                                       retry=FAST).create_album("x")):
        with pytest.raises(ImmichPermissionError) as caught:
            call()
        messages.append(str(caught.value))
    immich.fake.fail_next += [503] * 3
    with pytest.raises(ImmichUnavailable) as down:
        client.albums()
    text = caplog.text + "".join(messages) + str(down.value) + repr(client)
    assert "GET /api/albums" in caplog.text
    assert immich.source_key not in text and immich.public_key not in text


# ---- key files ----

def test_a_key_file_readable_by_others_is_refused(tmp_path: Path):
    key = tmp_path / "source.key"
    key.write_text("s3cr3t-key\n")
    key.chmod(0o644)
    with pytest.raises(ImmichKeyError, match=r"source\.key: mode 0644, readable by others than its owner; "
                                             r"run chmod 600 ") as caught:
        read_key(key)
    assert "s3cr3t" not in str(caught.value) and "\n" not in str(caught.value)
    key.chmod(0o640)
    with pytest.raises(ImmichKeyError):
        read_key(key)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_key_file_is_read(tmp_path: Path, mode: int):
    key = tmp_path / "source.key"
    key.write_text("  s3cr3t-key\n")
    key.chmod(mode)
    assert read_key(key) == "s3cr3t-key"


def test_a_missing_or_empty_key_file_is_refused(tmp_path: Path):
    with pytest.raises(ImmichKeyError, match="key file not found"):
        read_key(tmp_path / "none.key")
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(ImmichKeyError, match="does not hold one API key"):
        read_key(empty)


# ---- the fake holds both sides to the spec ----

def test_the_fake_refuses_a_field_the_spec_does_not_declare(immich: Served):
    answer = httpx.post(f"{immich.url}/api/albums", headers={"x-api-key": immich.public_key},
                        json={"albumName": "x", "albumColour": "red"})
    assert answer.status_code == 500 and immich.fake.errors == [
        "POST /api/albums: request: fields the spec does not declare: .albumColour"]
    immich.fake.errors.clear()


def test_the_fake_refuses_a_request_the_spec_refuses(immich: Served):
    answer = httpx.post(f"{immich.url}/api/shared-links", headers={"x-api-key": immich.public_key},
                        json={"type": "PUBLIC"})
    assert answer.status_code == 500 and "request: " in immich.fake.errors[0]
    immich.fake.errors.clear()


def test_the_fake_refuses_its_own_answer_when_the_spec_does(immich: Served, monkeypatch: pytest.MonkeyPatch):
    dto = FakeImmich._album_dto
    monkeypatch.setattr(FakeImmich, "_album_dto", lambda self, album: {**dto(self, album), "ownerName": "Ann"})
    immich.fake.add_album(immich.owner, "Holidays")
    with pytest.raises(ImmichUnavailable):
        source(immich).albums()
    assert immich.fake.errors[0] == "GET /api/albums: response: fields the spec does not declare: [0].ownerName"
    monkeypatch.setattr(FakeImmich, "_album_dto", lambda self, album: {**dto(self, album), "assetCount": -1})
    immich.fake.errors.clear()
    with pytest.raises(ImmichUnavailable):
        source(immich).albums()
    assert "response: " in immich.fake.errors[0] and "-1" in immich.fake.errors[0]
    immich.fake.errors.clear()
