"""A worker: claims a batch of jobs, anonymizes their photos in one batched inference call,
publishes each public copy and records it in the transaction that marks its job done.

A copy is written (atomically) before its record: a crash in between leaves
a file whose job runs again and rewrites the same bytes, so each photo ends
up published once. A face that could not be anonymized (a stage failed, or
verification found it still too close after the last step of its ladder) is
covered, or its photo held back, as the album's policy says; never published
visible. Each face's row keeps the steps it went through and its final scores.
An original deleted, or its album unshared, while it was rendered is never
published: the record's transaction sees it and takes the copy back. A batch
whose inference fails is run again one photo at a time, so that one bad photo
cannot fail the others.

The local backend runs ``Worker.run`` on threads of the daemon, claiming any
due job; the celery backend runs ``Worker.run_photos`` for the photo ids of
each broker message (``jobs/remote.py``). Publishing is keyed on (photo,
source sha256, policy version): a job that runs again for the same content
under the same policy finds its output in force and publishes nothing twice.

A photo of an Immich album is read from Immich (its original downloaded to a
temporary file, removed once read) and its copy goes to the public Immich
user (``connectors/immich/target.py``); the rendering is the same. Where a
copy goes is chosen in one place, ``_write``, by the album's source.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .. import __version__, publish
from ..errors import ImmichError, InputError, OutputError, UnreadableError
from ..imageio import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS, Encoded, Picture, encode, read_picture
from ..inference import batch, registry
from ..inference.records import Result
from ..metadata import MODES
from ..policies import Policy, engine_config
from ..store import queries
from ..store.db import session_scope
from ..store.tables import Album, Face, Job, Output, Photo
from . import queue
from .presence import Presence

if TYPE_CHECKING:
    from ..config import ImmichSettings
    from ..connectors.immich.client import ImmichClient

log = logging.getLogger("anon_plugin.worker")
IDLE_WAIT = (0.2, 2.0)  # seconds between empty claims: from the first to the longest
ERROR_WAIT = 5.0  # seconds before claiming again after the store failed (locked past busy_timeout, unreachable)
PAUSED = "waiting: publishing is off in the album's policy"
NO_IMMICH = "a photo of an Immich album, but the settings have no [immich] section"
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "HEIF": ".heic"}


@dataclass(frozen=True)
class InForce:
    """The photo's output in force: its public copy, or its record of being held back."""

    source_sha256: str
    policy_version_id: int
    status: str  # "published" or "held"
    public_path: str
    reason: str | None  # why it was held

    def covers(self, picture: Picture, policy_version_id: int) -> bool:
        """Does it stand for this content under this policy version (a published copy still on disk, or on the
        public Immich user as far as the store knows)?"""
        return ((self.source_sha256, self.policy_version_id) == (picture.sha256, policy_version_id)
                and (self.status == "held" or publish.immich_asset(self.public_path) is not None
                     or Path(self.public_path).is_file()))


@dataclass(frozen=True)
class Task:
    """One claimed publish job with what the store knows of it, read in one go."""

    job: queue.Claimed
    album_id: int
    album: str
    source: Path  # the original (of a folder album)
    relative: str  # its path in the album, or its Immich asset id
    policy_version_id: int
    policy: Policy
    in_force: InForce | None
    seen_as: tuple[int | None, float | None, str | None]  # the original's size, mtime and checksum when claimed
    immich: bool = False  # a photo of an Immich album: read from Immich, published to the public user


@dataclass(frozen=True)
class Rendered:
    """What rendering a photo produced, to be recorded: its public copy written, or the photo held back."""

    picture: Picture  # the original, as read
    result: Result
    target: str  # its public copy's path (where it would be, when held back), or immich:<asset id>
    public_sha256: str | None  # of the copy written; None when held back
    removed: tuple[str, ...]  # metadata left out of the copy
    notes: tuple[str, ...]  # what the copy could not keep, the faces covered, why it was held back
    seconds: float  # its share of the batch's inference
    held: bool


class Heartbeat:
    """Renews the leases of the jobs in hand every quarter lease while a batch runs."""

    def __init__(self, engine: Engine, worker: str, job_ids: list[int], lease: dt.timedelta = queue.LEASE):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(engine, worker, job_ids, lease), daemon=True,
                                         name=f"{worker}-heartbeat")

    def _beat(self, engine: Engine, worker: str, job_ids: list[int], lease: dt.timedelta) -> None:
        while not self._stop.wait(lease.total_seconds() / 4):
            try:
                with session_scope(engine) as session:
                    queue.heartbeat(session, worker, job_ids, lease)
            except Exception:  # the next beat tries again; a lease runs out LEASE after the last beat that landed
                log.warning("%s: could not renew the leases of its jobs", worker, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Worker:
    """Runs publish jobs; models load once per process, at the first batch. ``presence`` is its row of
    ``workers``, entered by whoever runs it (``run`` does)."""

    def __init__(self, engine: Engine, public_root: Path, name: str, device: str = "cpu", max_batch: int = 8,
                 max_pixels: int = DEFAULT_MAX_PIXELS, immich: ImmichSettings | None = None,
                 data_dir: Path | None = None, lease: dt.timedelta = queue.LEASE,
                 max_attempts: int = queue.MAX_ATTEMPTS, backend: str = "local"):
        self.engine, self.public_root, self.name = engine, public_root, name
        self.device, self.max_batch, self.max_pixels = device, max_batch, max_pixels
        self.immich, self.data_dir = immich, data_dir  # data_dir: where originals from Immich are downloaded
        self.lease, self.max_attempts = lease, max_attempts
        self.presence = Presence(engine, name, device, backend)
        self._clients: tuple[ImmichClient, ImmichClient] | None = None

    def load_models(self) -> float:
        """Load the default policy's models on the device now (another policy's load when it first asks);
        returns the seconds it took."""
        from ..inference.records import AnonymizerConfig
        from ..policies import DEFAULT

        start = time.perf_counter()
        for model in batch.models_for(AnonymizerConfig(**DEFAULT.engine_options())):
            registry.load(model, self.device)
        return time.perf_counter() - start

    def _immich(self) -> tuple[ImmichClient, ImmichClient]:
        """The source and public Immich clients, built at the first Immich photo."""
        if self._clients is None:
            if self.immich is None:
                raise ImmichError(NO_IMMICH)
            from ..connectors.immich.client import connect

            self._clients = connect(self.immich)
        return self._clients

    def run(self, stop: threading.Event, wake: threading.Event) -> None:
        """Work until ``stop`` is set; the batch in hand is finished first. When idle, wait
        (longer each time) for ``wake``, which the daemon sets as soon as it queues a job."""
        with self.presence:
            self._loop(stop, wake)

    def _loop(self, stop: threading.Event, wake: threading.Event) -> None:
        wait = IDLE_WAIT[0]
        while not stop.is_set():
            try:
                claimed = self.run_once()
            except Exception:  # never the end of the worker: its jobs are retried, or reclaimed when their lease ends
                log.exception("%s: the store failed; claiming again in %g s", self.name, ERROR_WAIT)
                stop.wait(ERROR_WAIT)
                continue
            if claimed:
                wait = IDLE_WAIT[0]
            else:
                if wake.wait(wait):
                    wake.clear()
                wait = min(wait * 2, IDLE_WAIT[1])

    def run_once(self) -> int:
        """Claim up to max_batch due jobs and run them; returns how many were claimed."""
        with session_scope(self.engine) as session:
            fail_dead_jobs(session, self.max_attempts)
            claimed = queue.claim(session, self.name, self.max_batch, lease=self.lease)
        return self._run_claimed(claimed)

    def run_photos(self, photo_ids: list[int]) -> int:
        """Run the due jobs of these photos (a broker message); returns how many were claimed. A message of
        several photos claims only those never tried: a photo tried before (its worker died, its batch
        failed) is sent again alone, so that it cannot take a batch down with it once more."""
        with session_scope(self.engine) as session:
            fail_dead_jobs(session, self.max_attempts, photo_ids)
            claimed = queue.claim(session, self.name, len(photo_ids), lease=self.lease, photo_ids=photo_ids,
                                  fresh_only=len(photo_ids) > 1)
        return self._run_claimed(claimed)

    def _run_claimed(self, claimed: list[queue.Claimed]) -> int:
        if claimed:
            with Heartbeat(self.engine, self.name, [c.job_id for c in claimed], self.lease):
                try:
                    self._run(claimed)
                except Exception as exc:  # the jobs still held are failed, to be retried after their backoff
                    log.exception("%s: a batch of %d job(s) failed", self.name, len(claimed))
                    reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    with session_scope(self.engine) as session:
                        for job in claimed:
                            _fail_job(session, job, self.name, reason, max_attempts=self.max_attempts)
            self.presence.done(len(claimed))
        return len(claimed)

    def _run(self, claimed: list[queue.Claimed]) -> None:
        tasks = self._tasks(claimed)
        work: list[tuple[Task, Picture]] = []
        for task in tasks:
            try:
                picture = self._read(task)
            except InputError as exc:  # a file that cannot be read now (a share down) is tried again
                self._failed(task, str(exc), permanent=not isinstance(exc, UnreadableError))
                continue
            except ImmichError as exc:  # Immich down or refusing: tried again after the backoff
                self._failed(task, str(exc), permanent=str(exc) == NO_IMMICH)
                continue
            if task.in_force is not None and task.in_force.covers(picture, task.policy_version_id):
                self._unchanged(task, task.in_force, picture.sha256)
                continue
            work.append((task, picture))
        published: dict[str, Task] = {}
        for task in self._render(work):
            published[task.album] = task
        for task in published.values():
            if task.immich:
                self._share(task)
            self._after_publish(task)

    def _render(self, work: list[tuple[Task, Picture]]) -> list[Task]:
        """Anonymize the photos in one batched call and publish each; returns the tasks published. A batch
        that fails is rendered again one photo at a time, so that one bad photo cannot fail the others."""
        if not work:
            return []
        configs = [engine_config(t.policy, p.sha256) for t, p in work]
        start = time.perf_counter()
        try:
            results = batch.anonymize_batch([p.rgb for _, p in work], configs, self.device, self.max_batch)
        except Exception as exc:  # e.g. out of GPU memory, or one photo the engine chokes on
            if len(work) > 1:
                log.warning("inference failed for a batch of %d photos (%s: %s); one photo at a time now",
                            len(work), type(exc).__name__, exc)
                return [task for item in work for task in self._render([item])]
            log.exception("inference failed for %s/%s", work[0][0].album, work[0][0].relative)
            self._failed(work[0][0], f"inference: {type(exc).__name__}: {exc}".splitlines()[0])
            return []
        seconds = (time.perf_counter() - start) / len(work)
        return [task for (task, picture), result in zip(work, results, strict=True)
                if self._publish(task, picture, result, seconds)]

    def _tasks(self, claimed: list[queue.Claimed]) -> list[Task]:
        from .. import policies

        tasks = []
        with session_scope(self.engine) as session:
            for job in claimed:
                photo = session.get_one(Photo, job.photo_id)
                album = session.get_one(Album, photo.album_id)
                if not album.shared or photo.state == "removed":
                    queue.finish(session, job.job_id, self.name)
                    continue
                version, policy = policies.current(session, album.id)
                if not policy.enabled:  # the admin paused this album's publishing: albums.set_policy resumes it
                    queue.finish(session, job.job_id, self.name)
                    photo.reason = PAUSED
                    continue
                version_id = queries.policy_version_id(session, album.id, version)
                copy = next(iter(queries.live_outputs(session, photo.id)), None)
                in_force = None if copy is None else InForce(
                    copy.source_sha256, copy.policy_version_id, copy.status, copy.public_path,
                    copy.notes[-1] if copy.status == "held" and copy.notes else None)
                tasks.append(Task(job, album.id, album.name, Path(album.root) / album.name / photo.relative_path,
                                  photo.relative_path, version_id, policy, in_force,
                                  (photo.size, photo.mtime, photo.checksum), immich=album.source == "immich"))
        return tasks

    def _read(self, task: Task) -> Picture:
        """The original: the file of a folder album, or an Immich asset downloaded to a temporary file."""
        if not task.immich:
            return read_picture(task.source, self.max_pixels)
        source, _ = self._immich()
        with tempfile.TemporaryDirectory(dir=self.data_dir, prefix=".immich-") as folder:
            original = Path(folder) / "original"
            source.download(task.relative, original)
            return read_picture(original, self.max_pixels)

    def _write(self, task: Task, target: str, encoded: Encoded) -> tuple[str, str]:
        """Publish the encoded copy where the album's source says: the file ``target`` of the public root, or an
        asset of the album's mirror album on the public Immich user. Returns its public path and sha256."""
        if not task.immich:
            return target, publish.publish(Path(target), encoded.data)
        from ..connectors.immich import target as immich_target

        _, public = self._immich()
        with session_scope(self.engine) as session:  # made once, under the album's lock
            mirror_id = immich_target.mirror(public, session.get_one(Album, task.album_id, with_for_update=True))
        with tempfile.TemporaryDirectory(dir=self.data_dir, prefix=".immich-") as folder:
            rendered = Path(folder) / f"copy{SUFFIXES.get(encoded.format, '')}"
            rendered.write_bytes(encoded.data)
            published = immich_target.publish(public, mirror_id, rendered)
        return published.public_path, hashlib.sha256(encoded.data).hexdigest()

    def _unchanged(self, task: Task, in_force: InForce, sha256: str) -> None:
        """The file was touched, not changed: the photo is again what its output in force says."""
        with session_scope(self.engine) as session:
            photo = session.get_one(Photo, task.job.photo_id)
            if queue.finish(session, task.job.job_id, self.name) and photo.state == "pending":  # not deleted meanwhile
                photo.sha256, photo.state, photo.reason = sha256, in_force.status, in_force.reason
        log.info("%s/%s: already %s: same content under the same policy", task.album, task.relative, in_force.status)

    def _failed(self, task: Task, reason: str, permanent: bool = False) -> None:
        with session_scope(self.engine) as session:
            state = _fail_job(session, task.job, self.name, reason, permanent, self.max_attempts)
        log.warning("%s/%s: failed (%s): %s", task.album, task.relative,
                    "for good" if state == "failed" else "will retry", reason)

    def _publish(self, task: Task, picture: Picture, result: Result, seconds: float) -> bool:
        """Write the public copy (or hold the photo back) and record it; True when a copy was published."""
        policy = task.policy
        covered = [f for f in result.faces if f.covered]
        hold = bool(covered) and policy.on_face_failure == "hold"
        suffix = ".jpg" if policy.output_format == "jpeg" and picture.format != "JPEG" else None
        target = (publish.IMMICH if task.immich  # its asset id comes with the upload
                  else str(publish.public_path(self.public_root, task.album, task.relative, suffix)))
        if not task.immich and (taken_by := self._copy_of_another(task, target)):  # x.png and x.jpg, both x.jpg
            self._failed(task, f"its public copy {Path(target).name} is that of {taken_by} already", permanent=True)
            return False
        removed, notes, public_sha = [], list(picture.notes), None
        if hold:
            notes.append(f"held back: {len(covered)} face(s) could not be anonymized ({covered[0].error})")
        else:
            metadata, output_format = policy.metadata, policy.output_format
            assert metadata in MODES and output_format in OUTPUT_FORMATS, "the policy's rules admit no other value"
            try:
                encoded = encode(picture, result.image, metadata, output_format=output_format,
                                 jpeg_quality=policy.jpeg_quality)
                target, public_sha = self._write(task, target, encoded)
            except (OutputError, ImmichError) as exc:  # tried again after the backoff
                self._failed(task, str(exc))
                return False
            removed, notes = list(encoded.removed), list(encoded.notes)
            notes += [f"face {f_index} covered: {f.error}" for f_index, f in enumerate(result.faces) if f.covered]
        rendered = Rendered(picture, result, target, public_sha, tuple(removed), tuple(notes), seconds, hold)
        try:
            dropped = self._record(task, rendered)
        except _LeaseLost:
            log.warning("%s/%s: lease lost while working; the job's new holder records it", task.album, task.relative)
            return False
        except OutputError as exc:  # the copy could not be taken back or moved: tried again
            self._failed(task, str(exc))
            return False
        if dropped:
            log.warning("%s/%s: not published: %s while it was rendered", task.album, task.relative, dropped)
            return False
        if hold:
            log.warning("%s/%s: held back: %s", task.album, task.relative, notes[-1])
        else:
            log.info("%s/%s: published %s (%d faces, %d covered, %.2f s)", task.album, task.relative, rendered.target,
                     len(result.faces), len(covered), seconds)
        return not hold

    def _copy_of_another(self, task: Task, target: str) -> str | None:
        """The original of another photo whose public copy in force is at ``target``, if any."""
        with session_scope(self.engine, read_only=True) as session:
            other = queries.live_output_at(session, target)
            if other is None or other.photo_id == task.job.photo_id:
                return None
            return session.get_one(Photo, other.photo_id).relative_path

    def _record(self, task: Task, rendered: Rendered) -> str | None:
        """The output, its faces, the superseded copies, the photo's state and the job's end, in one transaction.

        When the original was deleted or its album unshared while it was rendered, the copy just
        written is taken back and nothing is recorded but the job's end: returns which of the two.
        When the original was moved, the copy moves with it. A copy on the public Immich user is
        recorded even then, owed a withdrawal, and deleted here with the copies it supersedes
        (``target.withdraw``; what Immich refuses stays owed to the next poll).
        """
        policy, picture, target, hold = task.policy, rendered.picture, rendered.target, rendered.held
        with session_scope(self.engine) as session:
            if not queue.finish(session, task.job.job_id, self.name):
                raise _LeaseLost()  # rolls this transaction back
            # Locked, the album first as an unshare does (on PostgreSQL; SQLite writes one at a time):
            # an unshare or a deletion that comes now waits for this record, and then takes it back.
            album = session.get_one(Album, task.album_id, with_for_update=True)
            photo = session.get_one(Photo, task.job.photo_id, with_for_update=True)
            gone = "original deleted" if photo.state == "removed" else None if album.shared else "album unshared"
            if gone and not task.immich:
                if rendered.public_sha256 is not None and queries.live_output_at(session, target) is None:
                    publish.remove(Path(target), self.public_root)
                return gone
            if photo.relative_path != task.relative:  # moved while it was rendered: its copy follows it
                moved_to = publish.public_path(self.public_root, task.album, photo.relative_path,
                                               Path(target).suffix)
                if rendered.public_sha256 is not None:
                    publish.move(Path(target), moved_to, self.public_root)
                log.info("%s/%s: moved to %s while it was rendered; its copy follows", task.album, task.relative,
                         photo.relative_path)
                target = str(moved_to)
            models = batch.models_for(engine_config(policy, picture.sha256))
            output = Output(
                photo_id=task.job.photo_id, source_sha256=picture.sha256, public_path=target,
                public_sha256=rendered.public_sha256, policy_version_id=task.policy_version_id,
                engine_version=__version__, model_sha256s={n: registry.spec(n).sha256 for n in models},
                device=self.device, seconds=round(rendered.seconds, 4), removed_tags=list(rendered.removed),
                notes=list(rendered.notes), status="held" if hold else "published",
            )
            session.add(output)
            session.flush()
            session.add_all(_faces(output.id, rendered.result))
            if gone:  # an Immich copy: owed a withdrawal now, deleted below
                self._withdraw(session, task)
                return gone
            for old in queries.live_outputs(session, task.job.photo_id):
                if old.id != output.id:
                    old.superseded_by = output.id
                    if old.status == "published" and publish.immich_asset(old.public_path):
                        continue  # superseded once deleted from the public Immich user, below
                    old.status = "superseded"
                    if old.public_path != target or hold:
                        publish.remove(Path(old.public_path), self.public_root)
            latest = queries.latest_policy_version(session, album.id)
            assert latest is not None, "the task's policy version is one of the album's"
            stale = ("the original changed" if (photo.size, photo.mtime, photo.checksum) != task.seen_as else
                     "the album's policy changed" if latest.id != task.policy_version_id else None)
            photo.sha256 = picture.sha256
            if not task.immich:  # an Immich photo's change is told by its checksum
                photo.size = picture.size
            photo.state, photo.reason = ("held", rendered.notes[-1]) if hold else ("published", None)
            if stale:  # its share or republish found this job running and queued nothing: queued now
                queue.enqueue(session, photo.id)
                log.info("%s/%s: %s while it was rendered; queued again", task.album, task.relative, stale)
            if task.immich:
                self._withdraw(session, task)
        return None

    def _withdraw(self, session: Session, task: Task) -> None:
        """Delete the album's Immich copies owed a withdrawal (see ``target.withdraw``)."""
        from ..connectors.immich import target as immich_target

        session.flush()
        immich_target.withdraw(session, self._immich()[1], task.album_id)

    def _share(self, task: Task) -> None:
        """The mirror album's one shared link, made or set again as the policy says (never showing metadata)."""
        from ..connectors.immich import target as immich_target

        try:
            with session_scope(self.engine) as session:
                album = session.get_one(Album, task.album_id, with_for_update=True)
                if album.shared and album.mirror_album_id is not None:
                    immich_target.share(self._immich()[1], album, task.policy.allow_download)
        except ImmichError as exc:  # the next batch of the album tries again
            log.warning("%s: its shared link not made or set: %s", task.album, exc)

    def _after_publish(self, task: Task) -> None:
        """The album's after-publish command (e.g. the gallery's rescan); its failure never blocks publishing."""
        command = task.policy.after_publish
        if not command:
            return
        env = {**os.environ, "ANON_ALBUM": task.album, "ANON_PUBLIC_DIR": str(self.public_root / task.album)}
        # Its own session, so that a timeout ends the command and its children, not only the shell.
        hook = subprocess.Popen(command, shell=True, env=env, start_new_session=True, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = hook.communicate(timeout=task.policy.after_publish_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(hook.pid, signal.SIGKILL)
            hook.communicate()
            log.warning("%s: after_publish timed out after %g s: %s", task.album,
                        task.policy.after_publish_timeout, command)
            return
        if hook.returncode:
            tail = (err or out).strip().splitlines()[-1:] or [""]
            log.warning("%s: after_publish exited %d: %s", task.album, hook.returncode, tail[0])


def fail_dead_jobs(session: Session, max_attempts: int, photo_ids: list[int] | None = None) -> None:
    """Fail the jobs, and their photos, whose worker died during each of their attempts (``queue.give_up_dead``)."""
    for job in queue.give_up_dead(session, max_attempts, photo_ids=photo_ids):
        _fail_photo(session, job.photo_id, session.get_one(Job, job.job_id).last_error or "")
        log.warning("photo %d: failed for good: its worker stopped during each of its %d attempts",
                    job.photo_id, job.attempt)


def _fail_job(session: Session, job: queue.Claimed, worker: str, reason: str, permanent: bool = False,
              max_attempts: int = queue.MAX_ATTEMPTS) -> str:
    """Fail the job (see ``queue.fail``); a job failed for good fails its photo too, unless it was deleted."""
    state = queue.fail(session, job.job_id, worker, reason, permanent=permanent, max_attempts=max_attempts)
    if state == "failed":
        _fail_photo(session, job.photo_id, reason)
    return state


def _fail_photo(session: Session, photo_id: int, reason: str) -> None:
    """A photo whose job failed for good is failed with its reason, unless it was deleted meanwhile."""
    photo = session.get_one(Photo, photo_id)
    if photo.state != "removed":
        photo.state, photo.reason = "failed", reason


class _LeaseLost(Exception):
    """Our lease ran out while we worked: another worker holds the job now."""


def _faces(output_id: int, result: Result) -> list[Face]:
    return [
        Face(output_id=output_id, index=i, box=[round(float(v), 1) for v in f.box], score=f.detection_score,
             threshold=f.threshold, mask_area=f.mask_area, method=f.method or "", seed=f.seed or 0,
             similarity=f.similarity, steps=list(f.steps), quality=f.quality_json(), covered=f.covered,
             error=f.error)
        for i, f in enumerate(result.faces)
    ]
