"""Reading a bundle safely: the member list is checked before any member is read.

Reading never extracts to disk: members are read in memory (small ones, bounded) or hashed as
streams, after the member list has been checked for names that escape the bundle, symlinks,
duplicates, overlapping entries and absurd sizes (a hostile bundle must not be able to make
the auditor's machine write outside the directory, or do unbounded work).
"""

from __future__ import annotations

import itertools
import stat
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from edoc.bundle.format import MAX_SMALL_MEMBER, SAFE_NAME
from edoc.errors import InputError
from edoc.evidence.hashing import Digest, hash_stream

_LOCAL_HEADER_MIN = 30  # fixed part of a ZIP local file header (APPNOTE 4.3.7)


class MemberError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _unsafe(path: Path, why: str) -> InputError:
    return InputError(f"{path.name}: {why}; refusing to read the bundle", code="BUNDLE_UNSAFE",
                      hint="ask the archive for a fresh bundle; do not unzip this one")


class BundleReader:
    """A ZIP whose member list was checked before any member is read."""

    def __init__(self, path: Path, *, max_total_bytes: int, max_entries: int) -> None:
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise InputError(f"{path} is not a readable ZIP file ({exc})",
                             code="BUNDLE_MALFORMED") from None
        except OSError as exc:
            raise InputError(f"{path} cannot be read: {exc.strerror or exc}",
                             code="BUNDLE_UNREADABLE") from None
        try:
            self.members = self._check(max_total_bytes, max_entries)
        except BaseException:
            self.zf.close()
            raise
        self._digests: dict[str, tuple[str, int] | MemberError] = {}

    def close(self) -> None:
        self.zf.close()

    def _check(self, max_total: int, max_entries: int) -> dict[str, zipfile.ZipInfo]:
        infos = self.zf.infolist()
        if len(infos) > max_entries:
            raise _unsafe(self.path, f"{len(infos)} members, at most {max_entries} allowed")
        members: dict[str, zipfile.ZipInfo] = {}
        seen: set[str] = set()
        total = 0
        for info in infos:
            name = info.orig_filename
            if name in seen:
                raise _unsafe(self.path, f"member name {name!r} occurs twice")
            seen.add(name)
            parts = name.rstrip("/").split("/")
            if (name != info.filename or not SAFE_NAME.fullmatch(name)
                    or any(p in ("", ".", "..") for p in parts)):
                # Absolute names, "..", backslashes, drive letters, control characters: a
                # name that could land outside the directory an auditor unzips into.
                raise _unsafe(self.path, f"member name {name!r} is not a plain relative path")
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_ISLNK(mode):
                raise _unsafe(self.path, f"member {name} is a symbolic link")
            if info.flag_bits & 0x1:
                raise _unsafe(self.path, f"member {name} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _unsafe(self.path, f"member {name} uses compression method "
                                         f"{info.compress_type}; only stored or deflated")
            total += info.file_size
            if total > max_total:
                raise _unsafe(self.path, f"members expand to more than {max_total} bytes "
                                         "(the limit); a zip bomb?")
            if not info.is_dir():
                members[name] = info
        # Entries whose data overlap (one local record shared by many central entries) are
        # how the densest zip bombs work; a ZIP edoc writes never has them.
        ordered = sorted(infos, key=lambda i: i.header_offset)
        for a, b in itertools.pairwise(ordered):
            end = a.header_offset + _LOCAL_HEADER_MIN + len(a.orig_filename.encode()) \
                + a.compress_size
            if end > b.header_offset:
                raise _unsafe(self.path, f"members {a.orig_filename} and {b.orig_filename} "
                                         "overlap")
        return members

    def has(self, name: str) -> bool:
        return name in self.members

    def names(self) -> list[str]:
        return list(self.members)

    def read(self, name: str, limit: int = MAX_SMALL_MEMBER) -> bytes:
        info = self.members.get(name)
        if info is None:
            raise MemberError("BUNDLE_MALFORMED", f"{name} is missing from the bundle")
        if info.file_size > limit:
            raise MemberError("BUNDLE_MALFORMED",
                               f"{name} is {info.file_size} bytes, at most {limit} expected")
        try:
            with self.zf.open(info) as f:
                return f.read()
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise MemberError("BUNDLE_FILE_ALTERED", f"{name} is damaged ({exc})") from None

    def digest(self, name: str) -> tuple[str, int]:
        """SHA-256 and size of a member, hashed as a stream (content can be gigabytes)."""
        cached = self._digests.get(name)
        if cached is None:
            cached = self._hash(name)
            self._digests[name] = cached
        if isinstance(cached, MemberError):
            raise cached
        return cached

    def _hash(self, name: str) -> tuple[str, int] | MemberError:
        info = self.members.get(name)
        if info is None:
            return MemberError("BUNDLE_MALFORMED", f"{name} is missing from the bundle")
        try:
            with self.zf.open(info) as f:
                found: Digest = hash_stream(f)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            return MemberError("BUNDLE_FILE_ALTERED", f"{name} is damaged ({exc})")
        return found.sha256, found.size


def load_certs(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ValueError(f"{what} holds no readable certificate ({exc})") from None


def load_trust(trust: Sequence[Path]) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for p in trust:
        try:
            roots.extend(load_certs(Path(p).read_bytes(), str(p)))
        except OSError as exc:
            raise InputError(f"trust root file {p} cannot be read: {exc.strerror or exc}",
                             code="TRUST_UNREADABLE") from None
        except ValueError as exc:
            raise InputError(str(exc), code="TRUST_UNREADABLE",
                             hint="give PEM (or DER) CA certificates") from None
    return roots


def subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()

