"""The embedded default store: a directory with software-enforced retention.

Honest label: WORM-style, not WORM. Anyone with write access to the directory (root, the
archive's own OS user) can delete files behind edoc's back; what this store guarantees is that
*edoc* never overwrites or deletes an object before its retain-until or while it is on hold,
that every object is durable before ``put`` returns, and that tampering is detected by
``edoc verify`` (the digests are sealed and timestamped elsewhere). Use the S3 backend with
Object Lock in COMPLIANCE mode where the storage itself must refuse.

Layout under ``root``::

    objects/<key>          the bytes, mode 0444
    meta/<key>.json        retention, legal hold, digest, size (rewritten atomically)
    tmp/                   uploads in progress (removed on failure)

Write protocol (why this order): bytes go to ``tmp/``, are fsynced, checked against the
caller's SHA-256, made read-only and then hard-linked to their final name — ``link(2)``
fails if the name exists, so two writers can never both win a key. The metadata follows;
an object found without metadata (its writer died in between) is treated as retained
indefinitely (the conservative reading), reports the version id its bytes give, and is
completed by the next ``put`` of the same bytes (the interrupted run's retry, or edoc's
recovery of that run): the bytes are never rewritten, only their metadata written.

Deletes unlink object and metadata under the metadata lock, and an upload name a crash left
for the same bytes in ``tmp/``, then fsync the object's directory; ``delete_many`` unlinks
a whole batch first and fsyncs each directory once.

Reads (``open``, ``read``, ``stat``) are the hot path of period verification (一括検証), run
once per stored version: they build paths as strings and read metadata and small objects
with ``os.open``/``os.read`` (no ``pathlib`` objects, no buffered file objects), and ``stat``
takes one ``stat(2)`` of the object. Each call still reads the metadata afresh: nothing is
cached between calls, so every answer is the store as it is at that call. ``put`` is the
hot path of ingest, three times per version: it too works on str paths, and remembers the
directories it made (only which exist, never what is in them).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from edoc import clock as edoc_clock
from edoc.errors import ObjectExists, ObjectMissing, RetentionActive, StorageError
from edoc.evidence.hashing import hash_file, hash_stream, sha256_hex
from edoc.storage.base import DeleteOutcome, ObjectInfo

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_CHUNK = 1024 * 1024
#: metadata files are ~270 bytes: one read(2) of this size takes a whole one
_META_READ = 64 * 1024
#: what ``stat(2)`` of an absent object fails with (``Path.exists`` answers False to these)
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
#: directories ``_ensure_dir`` remembers before it starts again (a record's are reused
#: within moments; the set must not grow with the archive)
_DIRS_REMEMBERED = 4096


def _utcnow() -> datetime:
    return edoc_clock.now()


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stat_object(obj: str | Path, key: str, action: str) -> os.stat_result:
    """``stat(2)`` of the object of ``key``: ``ObjectMissing`` when it is not there, a
    storage error naming ``action`` for anything else."""
    try:
        return os.stat(obj)
    except OSError as exc:
        if exc.errno in _ABSENT:
            raise ObjectMissing(f"{key} is not in the store") from None
        raise _storage_error(exc, action, key) from exc


def _file_sha256(path: str | Path) -> str:
    return hash_file(Path(path)).sha256


def _read_fd(fd: int, size_hint: int) -> bytes:
    """Everything from ``fd`` to end of file, in reads of ``size_hint`` bytes: a file that
    grows while it is read is read to its end, never cut at the size it had."""
    chunks = []
    while chunk := os.read(fd, size_hint):
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _storage_error(exc: OSError, action: str, key: str) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"no space left on device while {action} {key}", code="STORAGE_FULL",
                            hint="free disk space, then run the same command again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"permission denied while {action} {key}",
                            code="STORAGE_ACCESS_DENIED",
                            hint="check that the archive directory is writable by this user")
    return StorageError(f"{exc.strerror or exc} while {action} {key}", code="STORAGE_IO_ERROR")


class LocalStore:
    """A directory store; see the module docstring for what it does and does not promise."""

    kind = "local"
    guarantee = "WORM-style (retention enforced by edoc in software), not WORM"

    def __init__(self, root: Path, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.root = root
        self._objects = root / "objects"
        self._meta = root / "meta"
        self._tmp = root / "tmp"
        self._clock = clock
        for d in (self._objects, self._meta, self._tmp):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        # str prefixes for the read path: a ``Path`` join costs more than the read it names
        self._objects_prefix = f"{self._objects}/"
        self._meta_prefix = f"{self._meta}/"
        self._tmp_prefix = f"{self._tmp}/"
        self._dirs: set[str] = set()  # see _ensure_dir

    # -- paths -----------------------------------------------------------------------------
    def _key_paths(self, key: str) -> tuple[str, str]:
        """The object's and its metadata's paths, as strings."""
        # Keys are made by edoc, never taken from users, but a key that could escape the
        # store (``..``, absolute, odd characters, a trailing newline) is refused all the
        # same. Every segment starts with a letter or digit, so none is ``.`` or ``..``.
        if _KEY.fullmatch(key) is None:
            raise StorageError(f"invalid object key {key!r}", code="STORAGE_BAD_KEY")
        return self._objects_prefix + key, f"{self._meta_prefix}{key}.json"

    def _paths(self, key: str) -> tuple[Path, Path]:
        obj, meta = self._key_paths(key)
        return Path(obj), Path(meta)

    # -- metadata --------------------------------------------------------------------------
    def _read_meta(self, key: str, meta_path: str | Path) -> dict[str, object] | None:
        """The metadata of ``key`` as stored now (None: there is none); read on every call."""
        try:
            fd = os.open(meta_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"unreadable metadata for {key}: {exc}",
                               code="STORAGE_META_CORRUPT") from exc
        try:
            loaded = json.loads(_read_fd(fd, _META_READ))
        except (OSError, ValueError) as exc:
            raise StorageError(f"unreadable metadata for {key}: {exc}",
                               code="STORAGE_META_CORRUPT") from exc
        finally:
            os.close(fd)
        if not isinstance(loaded, dict):
            raise StorageError(f"unreadable metadata for {key}: a JSON "
                               f"{type(loaded).__name__}, not an object",
                               code="STORAGE_META_CORRUPT")
        return loaded

    def _ensure_dir(self, directory: str) -> None:
        """``mkdir -p``, remembered for a while: the objects of a version share their two
        directories, and the ``mkdir`` that finds one there costs a syscall and an
        exception. Forgotten when a write fails, so a directory removed behind edoc's back
        is made again by the retry."""
        if directory in self._dirs:
            return
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if len(self._dirs) >= _DIRS_REMEMBERED:
            self._dirs.clear()
        self._dirs.add(directory)

    def _write_meta(self, meta_path: str | Path, meta: dict[str, object]) -> None:
        parent, name = os.path.split(os.fspath(meta_path))
        self._ensure_dir(parent)
        tmp = f"{parent}/.{name}.{secrets.token_hex(6)}"
        data = memoryview(json.dumps(meta, sort_keys=True).encode())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, meta_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            self._dirs.clear()
            raise
        _fsync_dir(parent)

    @contextlib.contextmanager
    def _meta_lock(self, meta_path: Path) -> Iterator[None]:
        lock_path = meta_path.with_name(f".{meta_path.name}.lock")
        if not lock_path.parent.is_dir():
            raise ObjectMissing(f"{meta_path.name.removesuffix('.json')} is not in the store")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _info(self, key: str, obj: str | Path, meta: dict[str, object] | None,
              st: os.stat_result | None = None) -> ObjectInfo:
        """``st``: the object's ``stat(2)``, when the caller took it already."""
        try:
            if st is None:
                st = os.stat(obj)
            # Without metadata, the version id is the one ``put`` derives from the bytes, so
            # a version pinned now still names the object once its metadata is completed.
            digest = None if meta else _file_sha256(obj)
        except FileNotFoundError:
            # unlinked since the caller found it (a delete or purge in between)
            raise ObjectMissing(f"{key} is not in the store") from None
        except OSError as exc:
            raise _storage_error(exc, "reading", key) from exc
        retain = meta.get("retain_until") if meta else None
        return ObjectInfo(
            key=key,
            version_id=str(meta.get("version_id", "unknown")) if meta else str(digest)[:32],
            size=st.st_size,
            sha256=str(meta["sha256"]) if meta and meta.get("sha256") else digest,
            retain_until=datetime.fromisoformat(str(retain)) if retain else None,
            lock_mode="LOCAL",
            legal_hold=bool(meta.get("legal_hold")) if meta else False,
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    # -- ObjectStore -----------------------------------------------------------------------
    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int,
        sha256: str,
        retain_until: datetime,
        legal_hold: bool = False,
    ) -> ObjectInfo:
        obj, meta_path = self._key_paths(key)
        if os.path.lexists(obj):
            finished = self._finish_interrupted_put(key, Path(obj), Path(meta_path), size=size,
                                                    sha256=sha256, retain_until=retain_until,
                                                    legal_hold=legal_hold)
            if finished is not None:
                return finished
            raise ObjectExists(f"{key} already exists; objects are written once",
                               hint="a correction is stored as a new version, never over the old")
        # str paths and os calls: pathlib's joins and parsing were a tenth of an e-invoice
        # ingest's interpreter time (BENCHMARKS.md, issue 15).
        tmp = f"{self._tmp_prefix}{secrets.token_hex(12)}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                got = hash_stream(stream, sink=out.write, chunk=_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            if got.size != size or got.sha256 != sha256:
                raise StorageError(
                    f"bytes received for {key} do not match: {got.size} bytes sha256 "
                    f"{got.sha256[:16]}…, expected {size} bytes sha256 {sha256[:16]}…",
                    code="STORAGE_CHECKSUM_MISMATCH",
                    hint="the source changed while it was read; run the command again")
            os.chmod(tmp, 0o444)
            directory = os.path.dirname(obj)
            self._ensure_dir(directory)
            try:
                os.link(tmp, obj)
            except FileExistsError:
                raise ObjectExists(f"{key} already exists; objects are written once") from None
            _fsync_dir(directory)
            meta = self._new_meta(sha256, size, retain_until, legal_hold)
            self._write_meta(meta_path, meta)
        except OSError as exc:
            self._dirs.clear()
            raise _storage_error(exc, "writing", key) from exc
        finally:
            # OSError, not only FileNotFoundError: on a read-only mount the unlink fails too,
            # and must not hide the refusal above behind an internal error
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return self._info(key, obj, meta)

    def _new_meta(self, sha256: str, size: int, retain_until: datetime,
                  legal_hold: bool) -> dict[str, object]:
        return {
            "version_id": sha256[:32],
            "sha256": sha256,
            "size": size,
            "retain_until": retain_until.astimezone(UTC).isoformat(),
            "legal_hold": legal_hold,
            "stored_at": self._clock().isoformat(),
        }

    def _finish_interrupted_put(self, key: str, obj: Path, meta_path: Path, *, size: int,
                                sha256: str, retain_until: datetime, legal_hold: bool
                                ) -> ObjectInfo | None:
        """A put that died between linking the object and writing its metadata: the same
        bytes put again complete it (write protocol, module docstring). None when the
        object has metadata (an ordinary second put) or other bytes."""
        try:
            meta_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self._meta_lock(meta_path):
                if self._read_meta(key, meta_path) is not None:
                    return None
                if obj.stat().st_size != size or _file_sha256(obj) != sha256:
                    return None
                meta = self._new_meta(sha256, size, retain_until, legal_hold)
                self._write_meta(meta_path, meta)
        except OSError as exc:
            raise _storage_error(exc, "writing", key) from exc
        return self._info(key, obj, meta)

    def put_bytes(self, key: str, data: bytes, *, retain_until: datetime) -> ObjectInfo:
        import io

        return self.put(key, io.BytesIO(data), size=len(data),
                        sha256=sha256_hex(data), retain_until=retain_until)

    def _check_pinned(self, key: str, meta_path: str, version_id: str) -> None:
        """The pinned-read check of ``open`` and ``read``: metadata naming another version
        (or none) refuses; an object without metadata (an interrupted put) is read."""
        meta = self._read_meta(key, meta_path)
        if meta is not None and meta.get("version_id") != version_id:
            raise ObjectMissing(f"{key} version {version_id} is not in the store")

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        obj, meta_path = self._key_paths(key)
        try:
            f = open(obj, "rb")  # noqa: SIM115 (the caller closes it)
        except FileNotFoundError:
            raise ObjectMissing(f"{key} is not in the store") from None
        except OSError as exc:
            raise _storage_error(exc, "reading", key) from exc
        if version_id is not None:
            try:
                self._check_pinned(key, meta_path, version_id)
            except BaseException:
                f.close()
                raise
        return f

    def read(self, key: str, version_id: str | None = None) -> bytes:
        # ``open`` + ``read`` without a buffered file object: manifests, seals and
        # checkpoints are a few KB, read whole, once per version verified.
        obj, meta_path = self._key_paths(key)
        try:
            fd = os.open(obj, os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectMissing(f"{key} is not in the store") from None
        except OSError as exc:
            raise _storage_error(exc, "reading", key) from exc
        try:
            if version_id is not None:
                self._check_pinned(key, meta_path, version_id)
            return _read_fd(fd, _CHUNK)
        except OSError as exc:
            raise _storage_error(exc, "reading", key) from exc
        finally:
            os.close(fd)

    def open_with_info(self, key: str, version_id: str | None = None
                       ) -> tuple[BinaryIO, ObjectInfo]:
        # One metadata read answers both the pin and the state; the pin is held to the
        # version id exactly (``stat`` lets metadata without one through as "unknown", a
        # pinned ``open`` never did).
        info = self.stat(key)
        if version_id is not None and info.version_id != version_id:
            raise ObjectMissing(f"{key} version {version_id} is not in the store")
        return self.open(key), info

    def stat(self, key: str, version_id: str | None = None) -> ObjectInfo:
        obj, meta_path = self._key_paths(key)
        st = _stat_object(obj, key, "reading the state of")
        meta = self._read_meta(key, meta_path)
        info = self._info(key, obj, meta, st)
        if version_id is not None and info.version_id not in (version_id, "unknown"):
            raise ObjectMissing(f"{key} version {version_id} is not in the store")
        return info

    def versions(self, key: str) -> list[ObjectInfo]:
        try:
            return [self.stat(key)]
        except ObjectMissing:
            return []

    def version_stamps(self, key: str) -> list[tuple[str, datetime]]:
        return [(v.version_id, v.last_modified) for v in self.versions(key)]

    @staticmethod
    def _check_version(key: str, meta: dict[str, object], version_id: str) -> None:
        # One version per key here, but a caller naming another version must not act on
        # this one (on S3 it would address a different object).
        if meta.get("version_id") != version_id:
            raise ObjectMissing(f"{key} version {version_id} is not in the store")

    @contextlib.contextmanager
    def _locked_meta(self, key: str, version_id: str) -> Iterator[tuple[Path, dict[str, object]]]:
        """The metadata of ``key`` at ``version_id``, locked against concurrent changes."""
        obj, meta_path = self._paths(key)
        with self._meta_lock(meta_path):
            meta = self._read_meta(key, meta_path)
            if meta is None or not obj.exists():
                raise ObjectMissing(f"{key} is not in the store")
            self._check_version(key, meta, version_id)
            yield meta_path, meta

    def extend_retention(self, key: str, version_id: str, retain_until: datetime) -> None:
        with self._locked_meta(key, version_id) as (meta_path, meta):
            current = datetime.fromisoformat(str(meta["retain_until"]))
            if retain_until < current:
                raise RetentionActive(
                    f"{key} is retained until {current.isoformat()}; retention can be "
                    f"extended, never shortened (asked {retain_until.isoformat()})")
            meta["retain_until"] = retain_until.astimezone(UTC).isoformat()
            self._write_meta(meta_path, meta)

    def set_legal_hold(self, key: str, version_id: str, on: bool) -> None:
        with self._locked_meta(key, version_id) as (meta_path, meta):
            meta["legal_hold"] = on
            self._write_meta(meta_path, meta)

    def delete(self, key: str, version_id: str) -> None:
        obj = self._unlink_version(key, version_id)
        try:
            _fsync_dir(obj.parent)
        except OSError as exc:
            raise _storage_error(exc, "deleting", key) from exc

    def delete_many(self, items: Sequence[tuple[str, str]]) -> list[DeleteOutcome]:
        """Unlink every version first, then fsync each affected directory once: on ext4 the
        first directory fsync commits the journal transaction holding all the unlinks, and
        the rest find their change committed already (an fsync per object cost a journal
        commit each)."""
        outcomes: list[DeleteOutcome] = []
        touched: dict[Path, list[int]] = {}
        for key, version_id in items:
            try:
                obj = self._unlink_version(key, version_id)
            except ObjectMissing:
                outcomes.append(DeleteOutcome(key, version_id))  # gone already: contract
                continue
            except StorageError as exc:
                if exc.code == "STORAGE_BAD_KEY":
                    raise
                outcomes.append(DeleteOutcome(key, version_id, exc))
                continue
            touched.setdefault(obj.parent, []).append(len(outcomes))
            outcomes.append(DeleteOutcome(key, version_id))
        for directory, positions in touched.items():
            try:
                _fsync_dir(directory)
            except OSError as exc:
                # The unlink may not survive a crash: say so for every version it holds.
                for i in positions:
                    done = outcomes[i]
                    outcomes[i] = DeleteOutcome(done.key, done.version_id,
                                                _storage_error(exc, "deleting", done.key))
        return outcomes

    def _sweep_uploads(self, inode: int) -> None:
        """Remove the upload names in ``tmp/`` of an object about to be deleted (its
        ``inode``, while the object still holds it, so the number is no other file's): a put
        killed between ``link(2)`` and the unlink of its upload name leaves a second name of
        the object's bytes there, which would outlive the object's deletion (disposal
        removes a record's content). Uploads in progress are other inodes, never touched."""
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                if entry.name.endswith(".part") and entry.inode() == inode:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        _fsync_dir(self._tmp)

    def _unlink_version(self, key: str, version_id: str) -> Path:
        """Check retention and hold, then unlink object and metadata (not yet durable: the
        caller fsyncs the object's directory). Returns the object's path."""
        obj, meta_path = self._paths(key)
        with self._meta_lock(meta_path):
            meta = self._read_meta(key, meta_path)
            st = _stat_object(obj, key, "deleting")
            if meta is None:
                raise RetentionActive(f"{key} has no retention metadata; kept until repaired",
                                      hint="run edoc doctor --repair")
            self._check_version(key, meta, version_id)
            if meta.get("legal_hold"):
                raise RetentionActive(f"{key} is under legal hold; delete refused")
            until = datetime.fromisoformat(str(meta["retain_until"]))
            now = self._clock()
            if now < until:
                raise RetentionActive(
                    f"{key} is retained until {until.isoformat()}; delete refused "
                    f"(now {now.isoformat(timespec='seconds')})")
            try:
                if st.st_nlink > 1:  # a second name of the bytes: a crash's upload name
                    self._sweep_uploads(st.st_ino)
                obj.unlink()
                meta_path.unlink()
            except OSError as exc:
                raise _storage_error(exc, "deleting", key) from exc
        return obj

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Only the directory the prefix names is walked; keys are yielded in key order
        # (as S3 lists them), which a plain directory walk does not give.
        base = self._objects
        top = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
        keys = []
        for dirpath, _dirnames, filenames in os.walk(top):
            for name in filenames:
                key = (Path(dirpath) / name).relative_to(base).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            path = base / key
            meta = self._read_meta(key, self._meta / (key + ".json"))
            yield self._info(key, path, meta)
