"""Disposal certificates (廃棄証明) for an auditor: list them, and copy one out with its seal
and timestamp token (``edoc certificate list`` / ``edoc certificate get``).

A certificate is written once by ``edoc purge`` (``edoc.services.disposal``) as three
objects beside each other (``edoc.storage.layout.disposal_key``): ``disposals/<run>.json``,
the canonical JSON of what was destroyed; ``.p7s``, its detached CAdES seal (RFC 5652
SignedData, checked with ``openssl cms -verify``); and ``.tsr``, an RFC 3161 TimeStampResp
over the same bytes (``openssl ts -verify``). Copying them out lets an auditor check the
disposal with openssl alone, without edoc or access to the archive.

Only a key of that exact form, naming a run the catalog knows as certified, is read: the
key comes from the command line, and must never reach another object (a record's content)
or a path outside the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edoc.catalog.certificates import CertifiedRun, certified_run, certified_runs
from edoc.errors import InputError, NotFound, ObjectMissing
from edoc.evidence.hashing import hash_stream
from edoc.files import atomic_output
from edoc.services.archive import Archive
from edoc.storage import layout

#: ``disposals/<run id>.json``: run ids are record-style ids (ULIDs, Crockford base 32)
CERTIFICATE_KEY = re.compile(r"^disposals/([0-9A-HJKMNP-TV-Z]{26})\.json$")
#: The companions of a certificate, by the extension of their key and of the copied file.
SEAL_EXT = "p7s"
TIMESTAMP_EXT = "tsr"


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """A certified run's certificate, and whether its seal and token are in the store."""

    run: CertifiedRun
    seal_stored: bool
    timestamp_stored: bool

    @property
    def key(self) -> str:
        return self.run.certificate_key


@dataclass(frozen=True, slots=True)
class FetchedCertificate:
    """What ``fetch_certificate`` wrote: the certificate file, and its seal and token files
    (None when the store lacks one)."""

    key: str
    run_id: str
    certificate: Path
    sha256: str
    seal: Path | None
    timestamp: Path | None

    @property
    def complete(self) -> bool:
        return self.seal is not None and self.timestamp is not None


def run_id_of(key: str) -> str:
    """The run id a certificate key names; any other key is refused (``NOT_A_CERTIFICATE_KEY``)."""
    m = CERTIFICATE_KEY.fullmatch(key)
    if m is None or layout.disposal_key(m.group(1), "json") != key:
        raise InputError(f"{key!r} is not a disposal certificate key",
                         code="NOT_A_CERTIFICATE_KEY",
                         hint="keys look like disposals/<run id>.json; see "
                              "'edoc certificate list'")
    return m.group(1)


def companion_key(run_id: str, ext: str) -> str:
    return layout.disposal_key(run_id, ext)


def _stored(archive: Archive, key: str) -> bool:
    try:
        archive.store.stat(key)
    except ObjectMissing:
        return False
    return True


def list_certificates(archive: Archive) -> list[CertificateInfo]:
    """Every certified run's certificate, oldest first, with a look at the store for its
    seal and token (one stat each)."""
    return [CertificateInfo(run,
                            _stored(archive, companion_key(run.run_id, SEAL_EXT)),
                            _stored(archive, companion_key(run.run_id, TIMESTAMP_EXT)))
            for run in certified_runs(archive.catalog)]


def companion_path(out: Path, ext: str) -> Path:
    """``FILE.p7s`` / ``FILE.tsr`` beside ``FILE``."""
    return out.with_name(f"{out.name}.{ext}")


def fetch_certificate(archive: Archive, key: str, out: Path, *,
                      force: bool = False) -> FetchedCertificate:
    """Write the certificate under ``key`` to ``out``, its seal to ``out.p7s`` and its
    timestamp token to ``out.tsr``, each all or nothing; existing files are replaced only
    with ``force`` (checked for all three before anything is written)."""
    run_id = run_id_of(key)
    run = certified_run(archive.catalog, key)
    if run is None:
        raise NotFound(f"no certified disposal run has the certificate {key}",
                       code="CERTIFICATE_NOT_FOUND", hint="see 'edoc certificate list'")
    targets = {"json": out, SEAL_EXT: companion_path(out, SEAL_EXT),
               TIMESTAMP_EXT: companion_path(out, TIMESTAMP_EXT)}
    if not out.parent.is_dir():
        raise InputError(f"directory {out.parent} does not exist", code="OUTPUT_DIR_MISSING")
    if not force:
        for path in targets.values():
            if path.exists():
                raise InputError(f"{path} exists", code="OUTPUT_EXISTS",
                                 hint="use --force to replace it")
    written: dict[str, Path | None] = {}
    sha256 = ""
    try:
        for ext, path in targets.items():
            try:
                src = archive.store.open(companion_key(run_id, ext))
            except ObjectMissing:
                if ext == "json":
                    raise
                written[ext] = None
                continue
            with src, atomic_output(path, replace=force) as o:
                digest = hash_stream(src, sink=o.write)
            if ext == "json":
                sha256 = digest.sha256
            written[ext] = path
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}", code="OUTPUT_UNWRITABLE"
                         ) from None
    return FetchedCertificate(key=key, run_id=run_id, certificate=out, sha256=sha256,
                              seal=written[SEAL_EXT], timestamp=written[TIMESTAMP_EXT])
