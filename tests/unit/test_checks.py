"""The one checkpoint verifier (edoc.evidence.checkpoint) and the shared record checks
(edoc.services.checks), on their own: bytes and values in, ``Check``s out."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import pytest
from cryptography import x509

from edoc.evidence import merkle
from edoc.evidence.checkpoint import verify_checkpoint, verify_stamp
from edoc.evidence.hashing import Digest, hash_stream
from edoc.model import canonical
from edoc.model.verdict import Status
from edoc.services import checks
from edoc.services.archive import init_archive

ENTRIES = [canonical.dumps({"event": "ingest", "record_id": f"R{i}", "version": 1})
           for i in range(5)]
LEAVES = [merkle.leaf_hash(e) for e in ENTRIES]
ROOT = merkle.root(LEAVES)


@dataclass
class Stamped:
    data: bytes
    seal: bytes
    tsr: bytes
    roots: list[x509.Certificate]


@pytest.fixture(scope="module")
def stamped(tmp_path_factory: pytest.TempPathFactory) -> Stamped:
    archive = init_archive(tmp_path_factory.mktemp("checks") / "a", organisation="Checks KK")
    data = canonical.dumps({"root_hash": ROOT.hex(), "tree_size": len(LEAVES)})
    stamp = archive.notary.stamp(data)
    return Stamped(data, stamp.seal, stamp.tsr, archive.notary.trust_roots)


# -- the checkpoint verifier --------------------------------------------------------------------

def test_a_sound_checkpoint_passes_and_states_its_tree_head(stamped: Stamped) -> None:
    for at_gen_time in (True, False):
        v = verify_checkpoint(stamped.data, stamped.seal, stamped.tsr,
                              trust_roots=stamped.roots, seal_at_gen_time=at_gen_time)
        assert (v.seal.status, v.timestamp.status) == (Status.PASS, Status.PASS)
        assert v.gen_time is not None
        assert (v.tree_size, v.root_hash, v.root) == (len(LEAVES), ROOT.hex(), ROOT)
        assert v.malformed is None and v.root_problem is None


def test_a_token_over_other_bytes_is_an_imprint_mismatch(stamped: Stamped) -> None:
    # Same tree head, re-serialised: the token's imprint is SHA-256 of the original bytes.
    other = canonical.dumps({"tree_size": len(LEAVES), "root_hash": ROOT.hex(), "x": 1})
    stamp = verify_stamp(other, stamped.seal, stamped.tsr, trust_roots=stamped.roots)
    assert stamp.timestamp.status is Status.FAIL
    assert stamp.timestamp.code == "TSA_IMPRINT_MISMATCH"
    assert stamp.seal.status is Status.FAIL  # and the seal is over the original bytes too


def test_a_tampered_root_fails_the_seal_and_the_timestamp(stamped: Stamped) -> None:
    tampered = stamped.data.replace(ROOT.hex().encode(), b"00" * 32)
    v = verify_checkpoint(tampered, stamped.seal, stamped.tsr, trust_roots=stamped.roots)
    assert v.seal.status is Status.FAIL
    assert v.timestamp.code == "TSA_IMPRINT_MISMATCH"
    assert v.root == bytes(32)  # what it states, for the inclusion check to refuse


def test_untrusted_roots_fail_both(stamped: Stamped) -> None:
    v = verify_checkpoint(stamped.data, stamped.seal, stamped.tsr, trust_roots=[])
    assert v.seal.status is not Status.PASS and v.timestamp.status is not Status.PASS


@pytest.mark.parametrize(("body", "malformed", "root_problem"), [
    (b"not json", "Expecting value", "checkpoint JSON unreadable (Expecting value"),
    (canonical.dumps({"tree_size": 5}), "'root_hash'", "checkpoint JSON unreadable ('root_hash')"),
    (canonical.dumps({"root_hash": "ab", "tree_size": 5}), None, "root_hash is not 32 bytes"),
])
def test_unreadable_tree_heads_say_why(stamped: Stamped, body: bytes, malformed: str | None,
                                       root_problem: str) -> None:
    v = verify_checkpoint(body, stamped.seal, stamped.tsr, trust_roots=stamped.roots)
    assert v.root is None
    assert (v.malformed or "").startswith(malformed or "") and (malformed is None) == (
        v.malformed is None)
    assert (v.root_problem or "").startswith(root_problem)


# -- the shared record checks -------------------------------------------------------------------

def test_content_digest_matches_and_mismatches() -> None:
    data = b"a scanned invoice"
    found = hash_stream(io.BytesIO(data))
    want = hashlib.sha256(data).hexdigest()
    assert checks.content_digest(found, want, len(data)).detail == f"sha256 {want}"
    wrong = Digest("0" * 64, len(data))
    bad = checks.content_digest(wrong, want, len(data))
    assert (bad.name, bad.status, bad.code) == ("content", Status.FAIL, "DIGEST_MISMATCH")
    assert (bad.expected, bad.found) == (want, "0" * 64)
    short = checks.content_digest(Digest("0" * 64, 3), want, len(data))
    assert short.code == "CONTENT_TRUNCATED"
    in_bundle = checks.content_digest(Digest("0" * 64, 3), want, len(data), member="m/content")
    assert in_bundle.code == "DIGEST_MISMATCH"  # a bundle never says truncated
    assert in_bundle.detail.startswith("m/content (3 bytes)")


def test_manifest_digest_against_ledger_and_catalog() -> None:
    ok = checks.manifest_digest("a" * 64, "a" * 64, catalogued="a" * 64)
    assert ok.status is Status.PASS
    ledger = checks.manifest_digest("a" * 64, "b" * 64, catalogued="a" * 64)
    assert (ledger.code, ledger.detail) == ("MANIFEST_ALTERED",
                                            "stored manifest differs from the one in the ledger")
    cat = checks.manifest_digest("a" * 64, None, catalogued="c" * 64)
    assert cat.detail == "stored manifest differs from the catalog's digest"
    none = checks.manifest_digest("a" * 64, None, in_bundle=True)
    assert none.code == "LEDGER_ENTRY_MISMATCH"


def test_ledger_entry_names_the_version() -> None:
    entry = {"record_id": "R1", "version": 2, "event": "correct", "at": "t"}
    assert checks.ledger_entry(entry, "R1", 2, index=7).detail == "entry 7"
    assert checks.ledger_entry(entry, "R1", 2).detail == "correct entry of t"
    bad = checks.ledger_entry(entry, "R1", 3)
    assert (bad.code, bad.expected, bad.found) == ("LEDGER_ENTRY_MISMATCH", "R1 v3", "R1 v2")


@pytest.mark.parametrize("batch", [False, True])
def test_inclusion_in_tree_and_a_tampered_root(batch: bool) -> None:
    computed = ROOT if batch else None
    ok = checks.inclusion_in_tree(LEAVES, LEAVES[3], 3, 5, ROOT.hex(), computed_root=computed)
    assert ok.status is Status.PASS and ok.detail == "leaf 3 is in checkpoint 5"
    bad = checks.inclusion_in_tree(LEAVES, LEAVES[3], 3, 5, "00" * 32, computed_root=computed)
    assert (bad.code, bad.expected, bad.found) == ("INCLUSION_FAILED", "00" * 32, ROOT.hex())


def test_inclusion_by_path_and_its_failures() -> None:
    proof = merkle.MerkleTree(LEAVES).inclusion_proof(2)
    name = "checkpoints/000000000005.json"
    ok = checks.inclusion_by_path(ENTRIES[2], proof, ROOT, 5, name)
    assert ok.status is Status.PASS
    assert checks.inclusion_by_path(ENTRIES[2], proof, bytes(32), 5, name).code == \
        "INCLUSION_FAILED"
    other_leaf = checks.inclusion_by_path(ENTRIES[1], proof, ROOT, 5, name)
    assert other_leaf.detail == "the proof is for another leaf than this ledger entry"
    other_size = checks.inclusion_by_path(ENTRIES[2], proof, ROOT, 6, name)
    assert other_size.expected == "5" and other_size.found == "6"


def test_manifest_seal_and_certificate_stamp(stamped: Stamped) -> None:
    assert checks.manifest_seal(stamped.data, stamped.seal, stamped.roots).name == \
        "manifest_seal"
    assert checks.certificate_stamp(stamped.data, stamped.seal, stamped.tsr,
                                    stamped.roots) is None
    refused = checks.certificate_stamp(stamped.data + b" ", stamped.seal, stamped.tsr,
                                       stamped.roots)
    assert refused is not None and refused.name == "seal" and refused.status is Status.FAIL

