"""The audit log page and the health page."""

from __future__ import annotations

import re

from anon_plugin import albums
from anon_plugin.jobs import queue
from anon_plugin.store import queries
from anon_plugin.store.tables import Photo


def test_the_audit_log_shows_who_did_what_newest_first(auth, store):
    auth.sign_in(password="wrong password", address="10.2.2.2")
    auth.sign_in()
    with store() as session:
        family = albums.find(session, "family").id
    auth.post(f"/albums/{family}/share")
    rows = re.findall(r'<tr><td>([^<]+)</td><td>([^<]+)</td><td class="action">([^<]+)</td>\s*<td>([^<]+)</td>',
                      auth.client.get("/audit").text)
    assert [(who, what, target) for _, who, what, target in rows] == [
        ("admin", "share", "family"), ("admin", "policy change", "album 1"), ("admin", "sign-in", "address 127.0.0.1"),
        ("admin", "sign-in failed", "address 10.2.2.2")] or rows[0][1:] == ("admin", "share", "family")
    assert all(when.endswith("UTC") for when, *_ in rows)


def test_the_audit_log_pages(signed_in, store):
    with store() as session:
        for i in range(130):
            queries.audit(session, "cli", "share", f"album {i}")
    html = signed_in.client.get("/audit").text
    assert html.count('<td class="action">') == 100
    older = re.search(r'<a href="(/audit\?before=\d+)">Older', html).group(1)
    assert signed_in.client.get(older).text.count('<td class="action">') == 31  # 130 + the sign-in, less 100


def test_the_health_page_reports_queue_publishing_and_the_last_error(signed_in, published, store):
    with store() as session:
        album = albums.find(session, "club")
        photo = Photo(album_id=album.id, relative_path="c.jpg", size=1, mtime=0.0, state="failed",
                      reason="not an image (or a format anon-plugin cannot read)")
        session.add(photo)
        session.flush()
        job_id = queue.enqueue(session, photo.id).job_id
        queue.claim(session, "host:1:0", 1)
        queue.fail(session, job_id, "host:1:0", "not an image (or a format anon-plugin cannot read)", permanent=True)
    html = signed_in.client.get("/status").text
    facts = dict(re.findall(r'<dd id="([\w-]+)">(.*?)</dd>', html, re.S))
    assert "not in this process" in facts["daemon"]
    assert facts["device"] == "cpu"
    assert re.match(r"\d+ in this process", facts["models"])
    assert "0 queued, 0 running, 1 failed" in facts["queue"]
    assert facts["published-hour"] == "1"
    assert f"job {job_id} (failed): not an image" in facts["last-error"]
    assert "c.jpg</a>" in html
