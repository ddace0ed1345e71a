"""Evidence bundles end to end: written from a real archive, checked with nothing but the ZIP.

No mocks: a real embedded archive (local store, SQLite catalog, embedded TSA, pyHanko seals)
is built through the CLI, a bundle is written, the archive directory is deleted, and the
bundle is then checked three ways — ``verify_bundle``, every ``verify.sh`` under bash and
POSIX sh, and the commands VERIFY.md shows an auditor. Tampered copies (one member changed)
must fail with the documented codes, in the Python verifier and in the shell scripts alike.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from edoc.bundle import (
    BundleSummary,
    instructions,
    select_records,
    verify_bundle,
    write_bundle,
    writer,
)
from edoc.bundle import reader as reader_mod
from edoc.errors import InputError, NotFound
from edoc.evidence import merkle
from edoc.model import canonical
from edoc.model.verdict import Status
from edoc.services.archive import Archive, init_archive
from tests import samples
from tests.helpers import Edoc, jst_today_minus, writable

SEALED_PROFILE = ('id = "t-sealed"\nextends = "general"\ntitle = "sealed manifests (tests)"\n'
                  "[authenticity]\nseal_manifest = true\n")
SHORT = 3  # seconds a t-short record is kept
SHORT_PROFILE = ('id = "t-short"\nextends = "general"\ntitle = "expires fast (tests)"\n'
                 f'[retention]\nduration = "PT{SHORT}S"\n')


# ------------------------------------------------------------------------------ helpers


def _rmtree(path: Path) -> None:
    """Delete an archive directory; stored objects are read-only, as on a real store."""

    def onerror(func: Callable[..., Any], p: str, _exc: object) -> None:
        Path(p).parent.chmod(stat.S_IRWXU)
        Path(p).chmod(stat.S_IRWXU)
        func(p)

    shutil.rmtree(path, onerror=onerror)  # Python 3.11: onexc arrives in 3.12


def _ingest(edoc: Edoc, path: Path, profile: str, date: str, *extra: str) -> str:
    code, doc = edoc.json("ingest", str(path), "--profile", profile, "--date", date, *extra)
    assert code == 0, doc
    return str(doc["results"][0]["record_id"])


def _members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _index(bundle: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_members(bundle)["bundle.json"])
    return result


def _rewrite(src: Path, dst: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    """Copy a bundle with ``change`` applied to its members (name -> bytes), as an attacker
    with the ZIP in hand would."""
    members = _members(src)
    change(members)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zi.create_system = 3
            zi.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(zi, data)
    return dst


def _extract(bundle: Path, into: Path) -> Path:
    into.mkdir()
    with zipfile.ZipFile(bundle) as zf:  # our own bundle: safe to extract in a test
        zf.extractall(into)
    return into


def _sh(script: str, cwd: Path, shell: str = "sh", env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shell, script], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def _codes(report: Any, rid: str, version: int) -> dict[str, str]:
    """{check name: code} for one version of a BundleReport."""
    rep = next(r for r in report.reports if r.record_id == rid and r.version == version)
    return {c.name: c.code for c in rep.checks}


def _flip_hex(text: bytes, at: int) -> bytes:
    """Change one hex digit at ``at`` (so the JSON stays well formed)."""
    c = chr(text[at])
    new = "0" if c != "0" else "1"
    return text[:at] + new.encode() + text[at + 1:]


# ------------------------------------------------------------------------------ fixtures


@dataclass
class World:
    bundle: Path
    #: "corrected" (v1 + metadata-only v2), "deleted" (v1 + tombstone), "plain" (v1),
    #: "sealed" (v1, manifest sealed too)
    ids: dict[str, str]
    summary: BundleSummary
    #: certs/root-ca.pem as the auditor obtained it beforehand, from the organisation
    independent_root: Path
    archive_dir: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("bundle-world")
    pol = base / "policies"
    pol.mkdir()
    (pol / "t-sealed.toml").write_text(SEALED_PROFILE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDOC_POLICIES", str(pol))
        edoc = Edoc(base / "archive")
        assert edoc("init", str(edoc.archive)).exit_code == 0
        docs = base / "docs"
        docs.mkdir()
        scan = samples.scan_image(docs / "receipt.png", dpi=200, mode="RGB", fmt="PNG",
                                  paper="A6")
        invoice = samples.text_pdf(docs / "invoice.pdf", "Invoice 42", paper="A6")
        chart = samples.scan_pdf(docs / "chart.pdf", dpi_per_page=[200], paper="A6")
        note = samples.scan_image(docs / "note.png", dpi=240, mode="RGB", fmt="PNG",
                                  paper="A6")
        # Run 1: three records in one run, so one checkpoint covers them all and the first
        # ones' inclusion paths have siblings on the right as well as the left.
        code, doc = edoc.json("ingest", str(scan), str(invoice), str(note), "--profile",
                              "general", "--date", jst_today_minus(1), "--amount", "1000",
                              "--counterparty", "山田商店")
        assert code == 0, doc
        corrected, deleted, plain = (str(r["record_id"]) for r in doc["results"])
        code, doc = edoc.json("correct", corrected, "--reason", "amount mistyped",
                              "--amount", "1100")
        assert code == 0 and doc["version"] == 2, doc
        code, doc = edoc.json("delete", deleted, "--reason", "entered twice")
        assert code == 0, doc
        # Run 2: a record whose profile seals its manifest too.
        sealed = _ingest(edoc, chart, "t-sealed", jst_today_minus(3))
        assert len(edoc.checkpoints()) >= 2
        root = base / "auditor" / "archive-root.pem"
        root.parent.mkdir()
        shutil.copy(edoc.archive / "keys" / "root-ca.pem", root)
        a = Archive.open(str(edoc.archive))
        try:
            out_dir = base / "out"
            out_dir.mkdir()
            summary = write_bundle(a, [corrected, deleted, plain, sealed],
                                   out_dir / "evidence.zip", actor="test-auditor-request")
        finally:
            a.close()
        assert summary.problems == ()
        # Only the ZIP travels; the archive is gone.
        alone = base / "received"
        alone.mkdir()
        bundle = Path(shutil.copy(summary.path, alone / "evidence.zip"))
        _rmtree(edoc.archive)
        _rmtree(out_dir)
    yield World(bundle, {"corrected": corrected, "deleted": deleted, "plain": plain,
                         "sealed": sealed}, summary, root, edoc.archive)


@dataclass
class Foreign:
    """Another archive's development PKI and TSA: a valid signer nobody here trusts."""

    archive: Archive
    root: Path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Foreign]:
    d = tmp_path_factory.mktemp("foreign") / "archive"
    a = init_archive(d, organisation="Somebody Else KK")
    try:
        yield Foreign(a, d / "keys" / "root-ca.pem")
    finally:
        a.close()


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Edoc:
    pol = tmp_path / "policies"
    pol.mkdir()
    (pol / "t-short.toml").write_text(SHORT_PROFILE, encoding="utf-8")
    monkeypatch.setenv("EDOC_POLICIES", str(pol))
    edoc = Edoc(tmp_path / "archive")
    assert edoc("init", str(edoc.archive)).exit_code == 0
    return edoc


def _scan(tmp_path: Path, name: str, dpi: int) -> Path:
    return samples.scan_image(tmp_path / name, dpi=dpi, mode="RGB", fmt="PNG", paper="A6")


# ------------------------------------------------------------------------------ the happy path


def test_bundle_verifies_with_nothing_but_the_zip(world: World) -> None:
    assert not world.archive_dir.exists()
    report = verify_bundle(world.bundle)
    assert report.ok, json.dumps(report.as_dict(), indent=1, ensure_ascii=False)
    c, d, s = world.ids["corrected"], world.ids["deleted"], world.ids["sealed"]
    assert {(r.record_id, r.version) for r in report.reports} == {
        (c, 1), (c, 2), (d, 1), (d, 2), (world.ids["plain"], 1), (s, 1)}
    for r in report.reports:
        names = {ch.name for ch in r.checks}
        assert {"files", "ledger", "manifest", "content", "inclusion", "seal", "timestamp",
                "history"} <= names
        assert all(ch.status is Status.PASS for ch in r.checks), r.as_dict()
    # Only the sealed profile's record carries (and checks) a manifest seal.
    assert "manifest_seal" in _codes(report, s, 1)
    assert "manifest_seal" not in _codes(report, c, 1)
    doc = json.loads(json.dumps(report.as_dict()))
    assert doc["ok"] is True and doc["schema_version"] >= 1
    assert doc["trust"]["source"] == "bundle"
    assert doc["summary"] == {"versions": 6, "pass": 6, "fail": 0, "indeterminate": 0}


def test_layout_index_and_history(world: World) -> None:
    members = _members(world.bundle)
    index = json.loads(members["bundle.json"])
    c, d, s = world.ids["corrected"], world.ids["deleted"], world.ids["sealed"]
    # bundle.json lists the SHA-256 of every other member, and SHA256SUMS agrees.
    assert set(index["files"]) == set(members) - {"bundle.json"}
    for name, digest in index["files"].items():
        assert hashlib.sha256(members[name]).hexdigest() == digest, name
    sums = dict(line.split("  ")[::-1] for line in members["SHA256SUMS"].decode().splitlines())
    assert sums == {n: h for n, h in index["files"].items() if n != "SHA256SUMS"}
    # A metadata-only correction points at v1's content instead of a second copy.
    versions = {(r["record_id"], v["version"]): v for r in index["records"]
                for v in r["versions"]}
    assert versions[(c, 2)]["content"] == f"records/{c}/v1/content"
    assert f"records/{c}/v2/content" not in members
    assert versions[(d, 2)]["content"] is None  # tombstone
    assert versions[(s, 1)]["manifest_seal"] is True
    assert f"records/{s}/v1/manifest.p7s" in members
    assert {"certs/root-ca.pem", "certs/seal.pem", "certs/tsa.pem", "VERIFY.md"} <= set(members)
    assert len({v["checkpoint"] for v in versions.values()}) >= 2
    for size in index["checkpoints"]:
        for ext in ("json", "p7s", "tsr"):
            assert f"checkpoints/{size:012d}.{ext}" in members
    # history.json: kinds, reasons and the previous_version_sha256 chain.
    hist = json.loads(members[f"records/{c}/history.json"])
    assert [v["kind"] for v in hist["versions"]] == ["original", "correction"]
    assert hist["versions"][1]["reason"] == "amount mistyped"
    v1_manifest = members[f"records/{c}/v1/manifest.json"]
    assert hist["versions"][1]["previous_version_sha256"] == \
        hashlib.sha256(v1_manifest).hexdigest()
    dhist = json.loads(members[f"records/{d}/history.json"])
    assert [v["kind"] for v in dhist["versions"]] == ["original", "tombstone"]
    if shutil.which("unzip"):  # an ordinary unzip reads it (and tests every CRC)
        res = subprocess.run(["unzip", "-tq", str(world.bundle)], capture_output=True,
                             text=True, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
    # verify.sh is executable when unzipped.
    with zipfile.ZipFile(world.bundle) as zf:
        mode = zf.getinfo(f"records/{c}/v1/verify.sh").external_attr >> 16
    assert mode & 0o111


def test_every_verify_sh_passes_in_bash_and_posix_sh(world: World, tmp_path: Path) -> None:
    root = _extract(world.bundle, tmp_path / "x")
    scripts = sorted(str(p.relative_to(root)) for p in root.glob("records/*/v*/verify.sh"))
    assert len(scripts) == 6
    for script in scripts:
        for shell in ("bash", "sh"):
            res = _sh(script, root, shell)
            assert res.returncode == 0, (shell, script, res.stdout, res.stderr)
            assert "ALL CHECKS PASSED" in res.stdout and "FAIL " not in res.stdout
    sealed = _sh(f"records/{world.ids['sealed']}/v1/verify.sh", root).stdout
    assert "manifest seal verifies" in sealed
    # Runs from any working directory, too.
    res = _sh(str(root / scripts[0]), tmp_path)
    assert res.returncode == 0, res.stdout


def _sh_blocks(markdown: str) -> str:
    return "\n".join(re.findall(r"```sh\n(.*?)```", markdown, flags=re.S))


def test_verify_md_commands_succeed_and_detect_a_change(world: World, tmp_path: Path) -> None:
    root = _extract(world.bundle, tmp_path / "x")
    doc = (root / "VERIFY.md").read_text(encoding="utf-8")
    assert "NOT ACCREDITED" in doc and "RFC 3161" in doc and "RFC 9162" in doc
    assert "--trust" in doc and "RFC 5652" in doc
    script = root / "walk.sh"
    script.write_text("set -e\n" + _sh_blocks(doc), encoding="utf-8")
    res = subprocess.run(["sh", str(script)], cwd=root, capture_output=True, text=True,
                         timeout=120, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "MISMATCH" not in out and out.count("MATCH") >= 4, out
    assert "Verification: OK" in out and "CMS Verification successful" in out
    assert "ALL CHECKS PASSED" in out and "CHECKS FAILED" not in out
    # The by-hand commands are not decoration: flip one byte of the worked example's
    # content and the very same blocks report it.
    example = re.search(r"^C=(\S+)$", doc, flags=re.M)
    assert example is not None
    target = root / example.group(1)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    script.write_text(_sh_blocks(doc), encoding="utf-8")  # no set -e: run every block
    res = subprocess.run(["sh", str(script)], cwd=root, capture_output=True, text=True,
                         timeout=120, check=False)
    out = res.stdout + res.stderr
    assert "MISMATCH" in out and "CHECKS FAILED" in out and "FAILED open or read" not in out
    assert f"{example.group(1)}: FAILED" in out  # sha256sum -c names the damaged file


def test_independently_obtained_root_is_the_only_trust(world: World, tmp_path: Path) -> None:
    report = verify_bundle(world.bundle, trust=[world.independent_root])
    assert report.ok
    assert report.as_dict()["trust"]["source"] == "given"
    # The scripts take the auditor's root too, relative to where the auditor stands.
    root = _extract(world.bundle, tmp_path / "x")
    rel = os.path.relpath(world.independent_root, tmp_path)
    script = root / "records" / world.ids["sealed"] / "v1" / "verify.sh"
    res = _sh(str(script), tmp_path, env={"PATH": "/usr/bin:/bin", "EDOC_TRUST": rel})
    assert res.returncode == 0, res.stdout
    assert f"chains to {tmp_path.resolve()}/{rel}" in res.stdout


def test_ledger_entry_of_another_version(world: World, tmp_path: Path) -> None:
    c, p = world.ids["corrected"], world.ids["plain"]

    def swap(m: dict[str, bytes]) -> None:
        m[f"records/{c}/v1/ledger-entry.json"] = m[f"records/{p}/v1/ledger-entry.json"]

    report = verify_bundle(_rewrite(world.bundle, tmp_path / "bad.zip", swap))
    codes = _codes(report, c, 1)
    assert codes["ledger"] == "LEDGER_ENTRY_MISMATCH"
    assert codes["manifest"] == "MANIFEST_ALTERED"


def test_foreign_root_fails_seals_and_tokens(world: World, foreign: Foreign,
                                             tmp_path: Path) -> None:
    # --trust replaces the bundle's own root: the bundle's seals and tokens do not chain to
    # another organisation's root, however valid they are.
    report = verify_bundle(world.bundle, trust=[foreign.root])
    assert not report.ok
    for r in report.reports:
        codes = {c.name: c.code for c in r.checks}
        assert codes["seal"] == "SEAL_CHAIN_UNTRUSTED"
        assert codes["timestamp"] == "TSA_CHAIN_UNTRUSTED"
    assert _codes(report, world.ids["sealed"], 1)["manifest_seal"] == "SEAL_CHAIN_UNTRUSTED"
    root = _extract(world.bundle, tmp_path / "x")
    env = {"PATH": "/usr/bin:/bin", "EDOC_TRUST": str(foreign.root)}
    res = _sh(f"records/{world.ids['corrected']}/v1/verify.sh", root, env=env)
    assert res.returncode != 0
    assert "FAIL  checkpoint seal" in res.stdout and "FAIL  checkpoint timestamp" in res.stdout


def test_unreadable_trust_file_is_an_input_error(world: World, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello", encoding="utf-8")
    with pytest.raises(InputError) as err:
        verify_bundle(world.bundle, trust=[bad])
    assert err.value.code == "TRUST_UNREADABLE"


def test_shell_inclusion_walk_follows_rfc9162(tmp_path: Path) -> None:
    """verify.sh's RFC 9162 §2.1.3.2 walk (POSIX sh arithmetic, octal printf) takes the same
    sides and reaches the same root as edoc.evidence.merkle in trees of many shapes; a wrong index,
    path hash or root fails."""
    cases: list[tuple[int, int, str | None]] = [
        (size, index, None) for size in (1, 2, 3, 5, 6, 7, 8, 11)
        for index in sorted({0, size // 2, max(size - 2, 0), size - 1})]
    cases += [(7, 2, "index"), (8, 5, "path"), (6, 4, "root")]
    script = ["set -u", "T=$(mktemp -d)", "trap 'rm -rf \"$T\"' EXIT", "failed=0",
              instructions._SH_FUNCS]
    expected_sides: list[list[tuple[str, str]]] = []
    for i, (size, index, tamper) in enumerate(cases):
        case = tmp_path / f"case{i}"
        (case / "r").mkdir(parents=True)
        (case / "checkpoints").mkdir()
        entries = [canonical.dumps({"event": "test", "i": k}) for k in range(size)]
        tree = merkle.MerkleTree([merkle.leaf_hash(e) for e in entries])
        proof = tree.inclusion_proof(index).to_json()
        root = tree.root().hex()
        expected_sides.append([(h.hex(), side) for (side, _), h in zip(
            tree.inclusion_proof(index).walk(), tree.inclusion_proof(index).path, strict=True)])
        if tamper == "index":
            proof["leaf_index"] = index + 1
        elif tamper == "path":
            proof["path"][1] = _flip_hex(proof["path"][1].encode(), 7).decode()
        elif tamper == "root":
            root = _flip_hex(root.encode(), 0).decode()
        (case / "r" / "ledger-entry.json").write_bytes(entries[index])
        (case / "r" / "inclusion-proof.json").write_bytes(canonical.dumps(proof))
        (case / "checkpoints" / f"{size:012d}.json").write_bytes(
            canonical.dumps({"root_hash": root, "tree_size": size}))
        script += [f"cd case{i}", f"echo 'CASE {i}'", "R=r", instructions._SH_INCLUSION, "cd .."]
    (tmp_path / "walk.sh").write_text("\n".join(script), encoding="utf-8")
    res = subprocess.run(["sh", "walk.sh"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=False)
    outputs = re.split(r"^CASE \d+\n", res.stdout, flags=re.M)[1:]
    assert len(outputs) == len(cases), res.stdout + res.stderr
    for (size, index, tamper), out, sides in zip(cases, outputs, expected_sides, strict=True):
        if tamper is None:
            assert "ok    inclusion" in out, (size, index, out)
            walked = re.findall(r"sibling ([0-9a-f]{64}) on the (left|right)", out)
            assert walked == sides, (size, index, out)
        else:
            assert "FAIL  inclusion" in out, (size, index, tamper, out)


# ------------------------------------------------------------------------------ tampering


def test_content_byte_flipped(world: World, tmp_path: Path) -> None:
    c = world.ids["corrected"]
    name = f"records/{c}/v1/content"

    def flip(m: dict[str, bytes]) -> None:
        data = bytearray(m[name])
        data[100] ^= 0x80
        m[name] = bytes(data)

    bad = _rewrite(world.bundle, tmp_path / "bad.zip", flip)
    report = verify_bundle(bad)
    assert not report.ok
    for version in (1, 2):  # v2 is a metadata-only correction over the same content
        codes = _codes(report, c, version)
        assert codes["content"] == "DIGEST_MISMATCH"
        assert codes["files"] == "BUNDLE_FILE_ALTERED"
        assert codes["manifest"] == "OK"
    assert all(ch.code == "OK" for ch in report.reports[-1].checks)  # the sealed record
    root = _extract(bad, tmp_path / "x")
    res = _sh(f"records/{c}/v1/verify.sh", root)
    assert res.returncode != 0 and "FAIL  content" in res.stdout
    assert _sh(f"records/{world.ids['sealed']}/v1/verify.sh", root).returncode == 0


def test_manifest_edited(world: World, tmp_path: Path) -> None:
    c = world.ids["corrected"]
    name = f"records/{c}/v2/manifest.json"

    def edit(m: dict[str, bytes]) -> None:
        assert b'"amount":1100' in m[name]
        m[name] = m[name].replace(b'"amount":1100', b'"amount":9100')

    bad = _rewrite(world.bundle, tmp_path / "bad.zip", edit)
    report = verify_bundle(bad)
    codes = _codes(report, c, 2)
    assert codes["manifest"] == "MANIFEST_ALTERED"
    assert codes["content"] == "OK"  # the document itself is untouched
    assert _codes(report, c, 1)["manifest"] == "OK"
    root = _extract(bad, tmp_path / "x")
    res = _sh(f"records/{c}/v2/verify.sh", root)
    assert res.returncode != 0 and "FAIL  manifest" in res.stdout


def test_inclusion_proof_hash_changed(world: World, tmp_path: Path) -> None:
    members = _members(world.bundle)
    name = next(n for n in sorted(members) if n.endswith("/inclusion-proof.json")
                and json.loads(members[n])["path"])
    proof = members[name]
    at = proof.index(b'"path":["') + len(b'"path":["') + 10

    bad = _rewrite(world.bundle, tmp_path / "bad.zip",
                   lambda m: m.__setitem__(name, _flip_hex(proof, at)))
    report = verify_bundle(bad)
    rid, version = name.split("/")[1], int(name.split("/")[2][1:])
    codes = _codes(report, rid, version)
    assert codes["inclusion"] == "INCLUSION_FAILED"
    assert codes["seal"] == "OK" and codes["timestamp"] == "OK"
    root = _extract(bad, tmp_path / "x")
    res = _sh(f"records/{rid}/v{version}/verify.sh", root)
    assert res.returncode != 0 and "FAIL  inclusion" in res.stdout


def test_checkpoint_json_changed(world: World, tmp_path: Path) -> None:
    c = world.ids["corrected"]
    proof = json.loads(_members(world.bundle)[f"records/{c}/v1/inclusion-proof.json"])
    name = f"checkpoints/{proof['tree_size']:012d}.json"

    def edit(m: dict[str, bytes]) -> None:
        body = m[name]
        at = body.index(b'"created_at":"') + len(b'"created_at":"') + 3  # a year digit
        m[name] = body[:at] + (b"8" if body[at:at + 1] != b"8" else b"7") + body[at + 1:]

    bad = _rewrite(world.bundle, tmp_path / "bad.zip", edit)
    report = verify_bundle(bad)
    codes = _codes(report, c, 1)
    assert codes["seal"] == "SEAL_SIGNATURE_INVALID"
    assert codes["timestamp"] == "TSA_IMPRINT_MISMATCH"
    root = _extract(bad, tmp_path / "x")
    res = _sh(f"records/{c}/v1/verify.sh", root)
    assert res.returncode != 0
    assert "FAIL  checkpoint seal" in res.stdout and "FAIL  checkpoint timestamp" in res.stdout


def test_token_from_another_tsa(world: World, foreign: Foreign, tmp_path: Path) -> None:
    c = world.ids["corrected"]
    members = _members(world.bundle)
    proof = json.loads(members[f"records/{c}/v1/inclusion-proof.json"])
    base = f"checkpoints/{proof['tree_size']:012d}"
    # A perfectly valid token over the very same checkpoint, from a TSA the bundle's root
    # never certified.
    token = foreign.archive.notary.stamp(members[f"{base}.json"]).tsr
    bad = _rewrite(world.bundle, tmp_path / "bad.zip",
                   lambda m: m.__setitem__(f"{base}.tsr", token))
    report = verify_bundle(bad)
    codes = _codes(report, c, 1)
    assert codes["timestamp"] == "TSA_CHAIN_UNTRUSTED"
    assert codes["seal"] == "OK"
    root = _extract(bad, tmp_path / "x")
    res = _sh(f"records/{c}/v1/verify.sh", root)
    assert res.returncode != 0 and "FAIL  checkpoint timestamp" in res.stdout


def test_left_out_version_breaks_history(world: World, tmp_path: Path) -> None:
    c = world.ids["corrected"]

    def drop_v1(m: dict[str, bytes]) -> None:
        for n in [n for n in m if n.startswith(f"records/{c}/v1/") and not n.endswith("content")]:
            del m[n]
        index = json.loads(m["bundle.json"])
        for rec in index["records"]:
            if rec["record_id"] == c:
                rec["versions"] = [v for v in rec["versions"] if v["version"] != 1]
        index["files"] = {n: d for n, d in index["files"].items() if n in m}
        m["bundle.json"] = json.dumps(index).encode()

    report = verify_bundle(_rewrite(world.bundle, tmp_path / "bad.zip", drop_v1))
    codes = _codes(report, c, 2)
    assert codes["history"] == "HISTORY_BROKEN"
    assert codes["content"] == "OK" and codes["inclusion"] == "OK"


def test_left_out_deletion_is_reported(world: World, tmp_path: Path) -> None:
    """Hiding a deletion (dropping the tombstone version) contradicts history.json."""
    d = world.ids["deleted"]

    def drop_tombstone(m: dict[str, bytes]) -> None:
        for n in [n for n in m if n.startswith(f"records/{d}/v2/")]:
            del m[n]
        index = json.loads(m["bundle.json"])
        for rec in index["records"]:
            if rec["record_id"] == d:
                rec["versions"] = [v for v in rec["versions"] if v["version"] != 2]
        index["files"] = {n: h for n, h in index["files"].items() if n in m}
        m["bundle.json"] = json.dumps(index).encode()

    report = verify_bundle(_rewrite(world.bundle, tmp_path / "bad.zip", drop_tombstone))
    assert _codes(report, d, 1)["history"] == "HISTORY_BROKEN"
    assert not report.ok


def test_added_or_changed_side_files_are_reported(world: World, tmp_path: Path) -> None:
    def edit(m: dict[str, bytes]) -> None:
        m["VERIFY.md"] = m["VERIFY.md"].replace(b"NOT ACCREDITED", b"accredited", 1)
        m["certs/extra.pem"] = m["certs/root-ca.pem"]

    report = verify_bundle(_rewrite(world.bundle, tmp_path / "bad.zip", edit))
    assert not report.ok
    files = next(c for c in report.checks if c.name == "files")
    assert files.code == "BUNDLE_FILE_ALTERED"
    assert "VERIFY.md" in files.detail and "certs/extra.pem" in files.detail
    assert all(r.status is Status.PASS for r in report.reports)  # the evidence still holds


# ------------------------------------------------------------------------------ unsafe ZIPs


def _zip_with(dst: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data, mode in entries:
            zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zi.create_system = 3
            zi.external_attr = mode << 16
            zf.writestr(zi, data)
    return dst


_REG = stat.S_IFREG | 0o644


@pytest.mark.parametrize("entries", [
    [("../evil", b"x", _REG)],
    [("/etc/evil", b"x", _REG)],
    [("records/../../evil", b"x", _REG)],
    [("records\\..\\evil", b"x", _REG)],
    [("certs/link.pem", b"/etc/passwd", stat.S_IFLNK | 0o777)],
    [("VERIFY.md", b"a", _REG), ("VERIFY.md", b"b", _REG)],
], ids=["dotdot", "absolute", "nested-dotdot", "backslash", "symlink", "duplicate"])
def test_unsafe_members_are_refused(world: World, tmp_path: Path,
                                    entries: list[tuple[str, bytes, int]]) -> None:
    good = [(n, d, _REG) for n, d in _members(world.bundle).items()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns when asked to write a duplicate
        bad = _zip_with(tmp_path / "bad.zip", good + entries)
    with pytest.raises(InputError) as err:
        verify_bundle(bad)
    assert err.value.code == "BUNDLE_UNSAFE"


def test_size_bound_and_entry_bound(world: World) -> None:
    with pytest.raises(InputError) as err:
        verify_bundle(world.bundle, max_total_bytes=10_000)
    assert err.value.code == "BUNDLE_UNSAFE"
    with pytest.raises(InputError) as err:
        verify_bundle(world.bundle, max_entries=5)
    assert err.value.code == "BUNDLE_UNSAFE"


def test_overlapping_entries_are_refused(tmp_path: Path) -> None:
    """Two central-directory entries sharing one local record: the densest zip bombs."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a", b"\0" * 100_000)
    raw = buf.getvalue()
    eocd = raw.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", raw[eocd + 12:eocd + 20])
    central = raw[cd_offset:cd_offset + cd_size]
    name_at = 46  # the file name follows the 46-byte fixed central header
    assert central[name_at:name_at + 1] == b"a"
    twin = central[:name_at] + b"b" + central[name_at + 1:]
    new_cd = central + twin
    eocd_rec = bytearray(raw[eocd:])
    struct.pack_into("<HHII", eocd_rec, 8, 2, 2, len(new_cd), cd_offset)
    bomb = tmp_path / "overlap.zip"
    bomb.write_bytes(raw[:cd_offset] + new_cd + bytes(eocd_rec))
    with zipfile.ZipFile(bomb) as zf:
        assert zf.namelist() == ["a", "b"]
    with pytest.raises(InputError) as err:
        verify_bundle(bomb)
    assert err.value.code == "BUNDLE_UNSAFE"


def test_not_a_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip file at all")
    with pytest.raises(InputError) as err:
        verify_bundle(junk)
    assert err.value.code == "BUNDLE_MALFORMED"
    empty = _zip_with(tmp_path / "empty.zip", [("README", b"hi", _REG)])
    with pytest.raises(InputError) as err:
        verify_bundle(empty)
    assert err.value.code == "BUNDLE_MALFORMED"


class _Pattern(io.RawIOBase):
    """``size`` bytes of a repeating pattern, produced on demand (a stand-in for a big scan)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.left)
        buf[:n] = (b"edoc-streaming-" * (n // 15 + 1))[:n]
        self.left -= n
        return n


def test_content_is_streamed_not_held_in_memory(tmp_path: Path) -> None:
    import tracemalloc

    size = 48 << 20
    path = tmp_path / "big.zip"
    tracemalloc.start()
    try:
        with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
            w = writer._ZipWriter(zf, datetime.now(UTC))
            digest, written = w.add_stream("records/x/v1/content", io.BufferedReader(
                _Pattern(size)), None)
        _, peak_write = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        reader = reader_mod.BundleReader(path, max_total_bytes=1 << 30, max_entries=10)
        try:
            assert reader.digest("records/x/v1/content") == (digest, size)
        finally:
            reader.close()
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == size
    assert peak_write < 8 << 20 and peak_read < 8 << 20, (peak_write, peak_read)
    if shutil.which("unzip"):  # the ZIP64 member is readable by Info-ZIP as well
        res = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True,
                             check=False)
        assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------------------ on a live archive


def test_select_write_refuse_overwrite_and_log(live: Edoc, tmp_path: Path) -> None:
    recent = _ingest(live, _scan(tmp_path, "a.png", 200), "general", jst_today_minus(1))
    old = _ingest(live, _scan(tmp_path, "b.png", 201), "general", jst_today_minus(30))
    a = Archive.open(str(live.archive))
    try:
        d1, d30 = date.fromisoformat(jst_today_minus(1)), date.fromisoformat(jst_today_minus(30))
        assert select_records(a, d1, None) == [recent]
        assert select_records(a, None, d30) == [old]
        assert sorted(select_records(a, d30, d1)) == sorted([recent, old])
        assert sorted(select_records(a, None, None)) == sorted([recent, old])
        with pytest.raises(InputError) as err:
            select_records(a, d1, d30)
        assert err.value.code == "DATE_RANGE_INVALID"

        out_dir = tmp_path / "out"
        out_dir.mkdir()
        out = out_dir / "e.zip"
        summary = write_bundle(a, [recent, old, recent], out, actor="auditor-x")
        assert summary.records == 2 and summary.versions == 2
        assert summary.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
        assert [p.name for p in out_dir.iterdir()] == ["e.zip"]  # no temp files left
        before = out.read_bytes()
        with pytest.raises(InputError) as err:
            write_bundle(a, [recent], out, actor="auditor-x")
        assert err.value.code == "OUTPUT_EXISTS"
        assert out.read_bytes() == before
        with pytest.raises(NotFound):
            write_bundle(a, ["0" * 26], out_dir / "f.zip", actor="auditor-x")
        with pytest.raises(InputError) as err:
            write_bundle(a, [], out_dir / "g.zip", actor="auditor-x")
        assert err.value.code == "NOTHING_TO_EXPORT"
        assert sorted(p.name for p in out_dir.iterdir()) == ["e.zip"]
    finally:
        a.close()
    assert verify_bundle(out).ok
    with live.db() as db:
        rows = db.execute("SELECT actor, record_ids FROM access_log WHERE action='evidence'"
                          ).fetchall()
    assert [(actor, sorted(json.loads(ids))) for actor, ids in rows] == [
        ("auditor-x", sorted([recent, old]))]


def test_damage_in_the_store_is_exported_as_found(live: Edoc, tmp_path: Path) -> None:
    """Export copies evidence faithfully and says what did not check out; the auditor's
    verification then shows the damage instead of the archive hiding it."""
    rid = _ingest(live, _scan(tmp_path, "c.png", 200), "general", jst_today_minus(1))
    stored = writable(live.objects / "records" / rid / "v1" / "content")
    data = bytearray(stored.read_bytes())
    data[-10] ^= 0xFF
    stored.write_bytes(bytes(data))
    a = Archive.open(str(live.archive))
    try:
        summary = write_bundle(a, [rid], tmp_path / "e.zip", actor="auditor-z")
    finally:
        a.close()
    assert any("stored content hashes to" in p for p in summary.problems), summary.problems
    report = verify_bundle(summary.path)
    codes = _codes(report, rid, 1)
    assert codes["content"] == "DIGEST_MISMATCH"
    assert codes["files"] == "OK"  # bundle.json honestly lists what was exported
    assert codes["manifest"] == "OK" and codes["inclusion"] == "OK"


def test_disposed_record_carries_its_certificate(live: Edoc, tmp_path: Path) -> None:
    rid = _ingest(live, _scan(tmp_path, "short.png", 200), "t-short", jst_today_minus(1))
    time.sleep(SHORT + 1)
    code, done = live.json("purge", "--yes")
    assert code == 0 and done["certificates"], done
    a = Archive.open(str(live.archive))
    try:
        summary = write_bundle(a, [rid], tmp_path / "d.zip", actor="auditor-y")
    finally:
        a.close()
    assert summary.disposed == 1
    members = _members(summary.path)
    assert f"records/{rid}/v1/content" not in members
    assert f"records/{rid}/v1/manifest.json" not in members
    assert any(n.startswith("disposals/") and n.endswith(".tsr") for n in members)
    report = verify_bundle(summary.path)
    assert report.ok, report.as_dict()
    codes = _codes(report, rid, 1)
    assert codes["disposal"] == "DISPOSED"
    assert codes["inclusion"] == "OK" and "content" not in codes
    root = _extract(summary.path, tmp_path / "x")
    res = _sh(f"records/{rid}/v1/verify.sh", root)
    assert res.returncode == 0 and "DISPOSED" in res.stdout, res.stdout

    cert = next(n for n in members if n.startswith("disposals/") and n.endswith(".json"))

    def unlist(m: dict[str, bytes]) -> None:
        body = json.loads(m[cert])
        body["count"] = 0
        m[cert] = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    report = verify_bundle(_rewrite(summary.path, tmp_path / "bad.zip", unlist))
    assert _codes(report, rid, 1)["disposal"] == "SEAL_SIGNATURE_INVALID"

