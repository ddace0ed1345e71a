"""Verifying a bundle offline: every version's evidence, with no archive, config or network.

Members are read through the safe reader (edoc.bundle.reader); each link of the chain of
evidence is judged by the checks the archive's own verifier uses (edoc.services.checks) and
each checkpoint by the one checkpoint verifier (edoc.evidence.checkpoint), verified once per
run. ``bundle.json`` and ``SHA256SUMS`` are an unsigned index that catches damage; they prove
nothing by themselves, so no verdict about a record relies on them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography import x509

from edoc.bundle.format import (
    BUNDLE_SCHEMA,
    DISPOSAL_PATH,
    MAX_ENTRIES,
    MAX_TOTAL_BYTES,
    BundleReport,
    index_problem,
)
from edoc.bundle.reader import BundleReader, MemberError, load_certs, load_trust, subject
from edoc.errors import InputError
from edoc.evidence import merkle
from edoc.evidence.checkpoint import verify_checkpoint
from edoc.evidence.hashing import Digest, sha256_hex
from edoc.model.manifest import Manifest
from edoc.model.verdict import Check, RecordReport, Status
from edoc.services import checks as shared
from edoc.storage import layout


def verify_bundle(path: Path, *, trust: Sequence[Path] = (),
                  max_total_bytes: int = MAX_TOTAL_BYTES,
                  max_entries: int = MAX_ENTRIES) -> BundleReport:
    """Check every version in the bundle at ``path``: no archive, no config, no network.

    Trust roots are the bundle's ``certs/root-ca.pem`` (and ``certs/tsa-ca.pem``) unless
    ``trust`` names PEM/DER files, in which case those are the only roots. Raises
    ``InputError`` (``BUNDLE_UNSAFE``, ``BUNDLE_MALFORMED``, ``TRUST_UNREADABLE``) only when
    the bundle cannot be checked at all; every finding about a record is a check in the
    returned report.
    """
    path = Path(path)
    given = load_trust(trust) if trust else None
    reader = BundleReader(path, max_total_bytes=max_total_bytes, max_entries=max_entries)
    try:
        return _Verifier(reader, given, [str(p) for p in trust]).run()
    finally:
        reader.close()


@dataclass(frozen=True)
class _Checkpoint:
    """A checkpoint's verdict as the bundle reports it (``problem``: why ``root`` is None)."""

    seal: Check
    timestamp: Check
    root: bytes | None
    tree_size: int | None
    problem: str | None


class _Verifier:
    def __init__(self, b: BundleReader, given: list[x509.Certificate] | None,
                 given_names: list[str]) -> None:
        self.b = b
        self.bundle_checks: list[Check] = []
        self.index = self._index()
        if given is not None:
            self.roots, self.trust_source, self.trust_names = given, "given", given_names
        else:
            self.roots = self._bundle_roots()
            self.trust_source = "bundle"
            self.trust_names = [subject(c) for c in self.roots]
        self._checkpoints: dict[int, _Checkpoint] = {}
        self._entries: dict[tuple[str, int], tuple[bytes, dict[str, Any]] | None] = {}
        self._histories: dict[str, dict[str, Any] | None] = {}
        self._disposals: dict[str, tuple[Check, dict[str, Any] | None]] = {}
        #: Members already compared with bundle.json by some version's ``files`` check.
        self._covered: set[str] = {"bundle.json"}

    # -- the index -------------------------------------------------------------------------
    def _index(self) -> dict[str, Any]:
        try:
            data = json.loads(self.b.read("bundle.json"))
        except MemberError as exc:
            raise InputError(exc.detail, code="BUNDLE_MALFORMED",
                             hint="is this an edoc evidence bundle?") from None
        except ValueError as exc:
            raise InputError(f"bundle.json is not JSON ({exc})", code="BUNDLE_MALFORMED") \
                from None
        problem = index_problem(data)
        if problem:
            raise InputError(f"bundle.json {problem}", code="BUNDLE_MALFORMED",
                             hint=f"required an {BUNDLE_SCHEMA} index")
        result: dict[str, Any] = data
        return result

    def _bundle_roots(self) -> list[x509.Certificate]:
        roots: list[x509.Certificate] = []
        for name in ("certs/root-ca.pem", "certs/tsa-ca.pem"):
            if name == "certs/tsa-ca.pem" and not self.b.has(name):
                continue
            try:
                roots.extend(load_certs(self.b.read(name), name))
            except MemberError as exc:
                self.bundle_checks.append(Check.fail("trust", exc.code, exc.detail))
            except ValueError as exc:
                self.bundle_checks.append(Check.fail("trust", "BUNDLE_MALFORMED", str(exc)))
        return roots

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> BundleReport:
        reports: list[RecordReport] = []
        for rec in self.index["records"]:
            rid = rec["record_id"]
            listed = {int(v["version"]): v for v in rec["versions"]}
            for v in rec["versions"]:
                reports.append(self._version(rid, v, listed))
        self.bundle_checks.append(self._bundle_files())
        return BundleReport(path=self.b.path, archive_id=self.index.get("archive_id"),
                            created=self.index.get("created"),
                            trust_source=self.trust_source, trust_roots=self.trust_names,
                            checks=self.bundle_checks, reports=reports)

    def _version(self, rid: str, v: dict[str, Any], listed: dict[int, dict[str, Any]]
                 ) -> RecordReport:
        n = int(v["version"])
        prefix = layout.record_prefix(rid, n).rstrip("/")
        report = RecordReport(rid, n)
        checks = report.checks
        disposed = v.get("state") == "disposed"
        checks.append(self._files(rid, v, prefix))
        entry = self._entry(rid, n)
        checks.append(self._ledger(rid, n, entry))
        if not disposed:
            manifest, body = self._manifest(prefix, entry, checks)
            checks.append(self._content(v, body))
            seal = self._manifest_seal(prefix, manifest, body)
            if seal is not None:
                checks.append(seal)
        checks.extend(self._inclusion(prefix, entry))
        checks.append(self._history(rid, n, entry, listed))
        if disposed:
            checks.append(self._disposal(rid, n, v, entry))
        return report

    # -- per-version checks ----------------------------------------------------------------
    def _files(self, rid: str, v: dict[str, Any], prefix: str) -> Check:
        """The members this version's evidence uses against the digests in bundle.json."""
        files: dict[str, str] = self.index["files"]
        names = {n for n in files if n.startswith(prefix + "/")}
        names |= {n for n in self.b.names() if n.startswith(prefix + "/")}
        names.add(f"records/{rid}/history.json")
        if isinstance(v.get("content"), str):
            names.add(v["content"])
        if isinstance(v.get("disposal"), str):
            base = v["disposal"].removesuffix(".json")
            names |= {f"{base}.{e}" for e in ("json", "p7s", "tsr")}
        proof_size = self._proof_size(prefix)
        if proof_size is not None:
            base = layout.checkpoint_key(proof_size, "json").removesuffix(".json")
            names |= {f"{base}.{e}" for e in ("json", "p7s", "tsr")}
        self._covered |= names
        return self._compare_files(sorted(names), files, "files")

    def _compare_files(self, names: list[str], files: Mapping[str, str], check: str) -> Check:
        altered: list[str] = []
        missing: list[str] = []
        unlisted: list[str] = []
        damaged: list[str] = []
        for name in names:
            want = files.get(name)
            if not self.b.has(name):
                if want is not None:
                    missing.append(name)
                continue
            if want is None:
                unlisted.append(name)
                continue
            try:
                got, _size = self.b.digest(name)
            except MemberError:
                damaged.append(name)
                continue
            if got != want:
                altered.append(name)
        if altered or unlisted or damaged:
            bad = altered + damaged + unlisted
            what = [f"{', '.join(altered)} differ from bundle.json" if altered else "",
                    f"{', '.join(damaged)} are damaged" if damaged else "",
                    f"{', '.join(unlisted)} are not listed in bundle.json" if unlisted else ""]
            return Check.fail(check, "BUNDLE_FILE_ALTERED",
                              "; ".join(w for w in what if w),
                              expected=json.dumps({n: files.get(n) for n in bad}),
                              found=json.dumps({n: self._digest_or_none(n) for n in bad}))
        if missing:
            return Check.fail(check, "BUNDLE_MALFORMED",
                              f"listed in bundle.json but missing: {', '.join(missing)}")
        return Check.ok(check, f"{len(names)} file(s) match bundle.json")

    def _digest_or_none(self, name: str) -> str | None:
        try:
            return self.b.digest(name)[0]
        except MemberError:
            return None

    def _entry(self, rid: str, n: int) -> tuple[bytes, dict[str, Any]] | None:
        key = (rid, n)
        if key not in self._entries:
            result: tuple[bytes, dict[str, Any]] | None = None
            try:
                data = self.b.read(f"{layout.record_prefix(rid, n)}ledger-entry.json")
                obj = json.loads(data)
                if isinstance(obj, dict):
                    result = (data, obj)
            except (MemberError, ValueError):
                result = None
            self._entries[key] = result
        return self._entries[key]

    @staticmethod
    def _ledger(rid: str, n: int, entry: tuple[bytes, dict[str, Any]] | None) -> Check:
        if entry is None:
            return Check.fail("ledger", "BUNDLE_MALFORMED",
                              "ledger-entry.json is missing or not a JSON object")
        return shared.ledger_entry(entry[1], rid, n)

    def _manifest(self, prefix: str, entry: tuple[bytes, dict[str, Any]] | None,
                  checks: list[Check]) -> tuple[bytes | None, Manifest | None]:
        try:
            data = self.b.read(f"{prefix}/manifest.json")
        except MemberError as exc:
            checks.append(Check.fail("manifest", exc.code, exc.detail))
            return None, None
        logged = entry[1].get("manifest_sha256") if entry else None
        checks.append(shared.manifest_digest(sha256_hex(data), logged, in_bundle=True))
        try:
            doc = json.loads(data)
        except ValueError:
            return data, None  # the content check says so: no readable manifest
        if not isinstance(doc, dict):
            return data, None
        manifest, failed = shared.manifest_shape(doc)
        if failed is not None:
            checks.append(failed)
        return data, manifest

    def _content(self, v: dict[str, Any], body: Manifest | None) -> Check:
        if body is None:
            return Check.fail("content", "BUNDLE_MALFORMED",
                              "no readable manifest states the content digest")
        content = body.content
        if content is None:
            # A tombstone, or a later version of a deleted record: the manifest (bound to
            # the ledger) says there is no content, so there is nothing to hash.
            return Check.ok("content", f"{body.kind} version: no content")
        expected = content.sha256
        path = v.get("content")
        if not isinstance(path, str):
            return Check.fail("content", "BUNDLE_MALFORMED",
                              "bundle.json or the manifest does not name the content")
        try:
            found, size = self.b.digest(path)
        except MemberError as exc:
            return Check.fail("content", exc.code, exc.detail)
        return shared.content_digest(Digest(found, size), expected, content.size,
                                     member=path)

    def _manifest_seal(self, prefix: str, manifest: bytes | None,
                       body: Manifest | None) -> Check | None:
        name = f"{prefix}/manifest.p7s"
        required = bool(((body.evidence if body else None) or {}).get("seal_manifest"))
        if not self.b.has(name):
            if required:
                return Check.fail("manifest_seal", "SEAL_MISSING",
                                  "the manifest requires its own seal; manifest.p7s is missing")
            return None
        if manifest is None:
            return Check.fail("manifest_seal", "BUNDLE_MALFORMED", "no manifest to check")
        try:
            seal = self.b.read(name)
        except MemberError as exc:
            return Check.fail("manifest_seal", exc.code, exc.detail)
        return shared.manifest_seal(manifest, seal, self.roots)

    def _proof_size(self, prefix: str) -> int | None:
        try:
            return merkle.InclusionProof.from_json(
                self.b.read(f"{prefix}/inclusion-proof.json")).tree_size
        except (MemberError, ValueError):
            return None

    def _inclusion(self, prefix: str, entry: tuple[bytes, dict[str, Any]] | None
                   ) -> list[Check]:
        try:
            proof = merkle.InclusionProof.from_json(self.b.read(f"{prefix}/inclusion-proof.json"))
        except MemberError as exc:
            return [Check.fail("inclusion", exc.code, exc.detail)]
        except ValueError as exc:
            return [Check.fail("inclusion", "BUNDLE_MALFORMED",
                               f"inclusion-proof.json: {exc}")]
        cp = self._checkpoint(proof.tree_size)
        name = layout.checkpoint_key(proof.tree_size, "json")
        checks = [replace(cp.seal, detail=f"{name}: {cp.seal.detail}"),
                  replace(cp.timestamp, detail=f"{name}: {cp.timestamp.detail}")]
        if entry is None:
            checks.insert(0, Check.fail("inclusion", "BUNDLE_MALFORMED", "no ledger entry"))
            return checks
        if cp.root is None:
            inc = Check.fail("inclusion", "BUNDLE_MALFORMED", f"{name}: {cp.problem}")
        else:
            inc = shared.inclusion_by_path(entry[0], proof, cp.root, cp.tree_size, name)
        return [inc, *checks]

    def _checkpoint(self, size: int) -> _Checkpoint:
        cached = self._checkpoints.get(size)
        if cached is not None:
            return cached
        base = layout.checkpoint_key(size, "json").removesuffix(".json")
        try:
            data = self.b.read(f"{base}.json")
            seal = self.b.read(f"{base}.p7s")
            tsr = self.b.read(f"{base}.tsr")
        except MemberError as exc:
            cp = _Checkpoint(Check.fail("seal", exc.code, exc.detail),
                             Check.fail("timestamp", exc.code, exc.detail), None, None,
                             exc.detail)
            self._checkpoints[size] = cp
            return cp
        # The seal is judged as of now, as ``openssl cms -verify`` in verify.sh judges it.
        v = verify_checkpoint(data, seal, tsr, trust_roots=self.roots, seal_at_gen_time=False)
        cp = _Checkpoint(v.seal, v.timestamp, v.root, v.tree_size, v.root_problem)
        self._checkpoints[size] = cp
        return cp

    def _history_doc(self, rid: str) -> dict[str, Any] | None:
        if rid not in self._histories:
            doc: dict[str, Any] | None = None
            try:
                obj = json.loads(self.b.read(f"records/{rid}/history.json"))
                doc = obj if isinstance(obj, dict) else None
            except (MemberError, ValueError):
                doc = None
            self._histories[rid] = doc
        return self._histories[rid]

    def _history(self, rid: str, n: int, entry: tuple[bytes, dict[str, Any]] | None,
                 listed: dict[int, dict[str, Any]]) -> Check:
        """訂正削除履歴: each version names its predecessor's manifest digest (in its ledger
        entry, which the inclusion proof binds), so a left-out version shows."""
        if entry is None:
            return Check.fail("history", "BUNDLE_MALFORMED", "no ledger entry")
        named = entry[1].get("previous_version_sha256")
        if n == 1:
            if named is not None:
                return Check.fail("history", "HISTORY_BROKEN",
                                  "version 1 names a predecessor", expected="null",
                                  found=str(named))
        else:
            prev = self._entry(rid, n - 1) if n - 1 in listed else None
            if prev is None:
                return Check.fail("history", "HISTORY_BROKEN",
                                  f"version {n - 1} is missing from the bundle")
            want = prev[1].get("manifest_sha256")
            if named != want:
                return Check.fail("history", "HISTORY_BROKEN",
                                  f"previous_version_sha256 is not version {n - 1}'s manifest",
                                  expected=str(want), found=str(named))
        doc = self._history_doc(rid)
        known = [x.get("version") for x in (doc or {}).get("versions", [])
                 if isinstance(x, dict)]
        later = sorted(k for k in known if isinstance(k, int) and k > max(listed))
        if n == max(listed) and later:
            return Check.fail("history", "HISTORY_BROKEN",
                              f"history.json lists later version(s) {later} the bundle "
                              "leaves out", expected=str(later[-1]), found=str(n))
        row = next((x for x in (doc or {}).get("versions", [])
                    if isinstance(x, dict) and x.get("version") == n), None)
        if row is None:
            return Check.fail("history", "HISTORY_BROKEN",
                              f"history.json does not list version {n}")
        if row.get("manifest_sha256") != entry[1].get("manifest_sha256") or \
                row.get("previous_version_sha256") != named:
            return Check.fail("history", "HISTORY_BROKEN",
                              "history.json disagrees with the ledger entry",
                              expected=str(entry[1].get("manifest_sha256")),
                              found=str(row.get("manifest_sha256")))
        return Check.ok("history", "first version" if n == 1
                        else f"follows version {n - 1} (manifest {named})")

    def _disposal(self, rid: str, n: int, v: dict[str, Any],
                  entry: tuple[bytes, dict[str, Any]] | None) -> Check:
        cert = v.get("disposal")
        if not isinstance(cert, str) or not DISPOSAL_PATH.fullmatch(cert):
            return Check.fail("disposal", "DISPOSAL_UNCERTIFIED",
                              "disposed, but the bundle names no disposal certificate")
        if cert not in self._disposals:
            self._disposals[cert] = self._certificate(cert)
        verdict, body = self._disposals[cert]
        if verdict.status is not Status.PASS or body is None:
            return verdict
        logged = entry[1].get("manifest_sha256") if entry else None
        listed = any(isinstance(e, dict) and e.get("record_id") == rid
                     and e.get("version") == n and logged is not None
                     and e.get("manifest_sha256") == logged
                     for e in body.get("disposed", []))
        if not listed:
            return Check.fail("disposal", "DISPOSAL_UNCERTIFIED",
                              f"{cert} does not list this version's manifest",
                              expected=str(logged))
        return Check(name="disposal", status=Status.PASS, code="DISPOSED",
                     detail=f"disposed; {cert} lists manifest {logged} "
                     f"({verdict.detail})")

    def _certificate(self, cert: str) -> tuple[Check, dict[str, Any] | None]:
        base = cert.removesuffix(".json")
        try:
            data = self.b.read(cert)
            seal = self.b.read(f"{base}.p7s")
            tsr = self.b.read(f"{base}.tsr")
        except MemberError as exc:
            return Check.fail("disposal", exc.code, exc.detail), None
        c = shared.certificate_stamp(data, seal, tsr, self.roots)
        if c is not None:
            return replace(c, name="disposal", detail=f"{cert}: {c.detail}"), None
        try:
            body = json.loads(data)
        except ValueError:
            return Check.fail("disposal", "BUNDLE_MALFORMED", f"{cert} is not JSON"), None
        if not isinstance(body, dict):
            return Check.fail("disposal", "BUNDLE_MALFORMED", f"{cert} is not an object"), None
        return Check.ok("disposal", "certificate seal and timestamp verified"), body

    # -- bundle-wide -----------------------------------------------------------------------
    def _bundle_files(self) -> Check:
        """Every member not checked with a version, and SHA256SUMS against bundle.json."""
        files: dict[str, str] = self.index["files"]
        rest = sorted((set(files) | set(self.b.names())) - self._covered)
        check = self._compare_files(rest, files, "files")
        if check.status is not Status.PASS:
            return check
        listed: dict[str, str] = {}
        try:
            for line in self.b.read("SHA256SUMS").decode("ascii").splitlines():
                digest, name = line.split("  ", 1)
                listed[name] = digest
        except (MemberError, UnicodeDecodeError, ValueError):
            return Check.fail("files", "BUNDLE_MALFORMED", "SHA256SUMS is unreadable")
        expected = {n: d for n, d in files.items() if n != "SHA256SUMS"}
        if listed != expected:
            return Check.fail("files", "BUNDLE_FILE_ALTERED",
                              "SHA256SUMS and bundle.json list different digests")
        return Check.ok("files", f"{len(files)} file(s) listed; bundle-wide files match "
                        "bundle.json and SHA256SUMS")

