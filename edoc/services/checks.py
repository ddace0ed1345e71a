"""The record-level checks both verifiers run: pure functions from bytes and values to ``Check``s.

The archive's ``Verifier`` (edoc.services.verification) reads a version's objects from the
store and its ledger entry from the catalog; the offline bundle verifier (edoc.bundle.verify)
reads the same evidence from ZIP members. Both then judge it here, so the two cannot drift
apart on what counts as a match. Each link of the chain of evidence (DESIGN.md "The record"):

- ``content_digest``: SHA-256 of the content is the manifest's ``content.sha256``;
- ``manifest_digest``: SHA-256 of the manifest is the ``manifest_sha256`` its ledger entry
  logged;
- ``ledger_entry``: the ledger entry names this record and version;
- ``inclusion_in_tree`` / ``inclusion_by_path``: the entry's leaf (RFC 9162 §2.1.1) is in the
  tree whose root a checkpoint sealed (RFC 9162 §2.1.3);
- ``manifest_seal``: the manifest's own CAdES seal, where the profile asks for one;
- ``certificate_stamp``: a disposal certificate's seal and timestamp (廃棄証明).

Names, codes and details are what scripts match on: where the archive and the bundle have
always worded a finding differently (a stored object vs a bundle member), the function takes
the member's name and keeps both wordings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cryptography import x509

from edoc.evidence import merkle
from edoc.evidence.checkpoint import verify_stamp
from edoc.evidence.hashing import Digest
from edoc.evidence.sealing import verify_seal
from edoc.model.manifest import Manifest, ManifestError
from edoc.model.verdict import Check, Status


def content_digest(found: Digest, expected: str, stated_size: Any, *,
                   member: str | None = None) -> Check:
    """The content's digest against the manifest's. ``member``: the bundle member hashed
    (None: the archive's stored object, where a shorter object is ``CONTENT_TRUNCATED``)."""
    if member is not None:
        if found.sha256 != expected:
            return Check.fail("content", "DIGEST_MISMATCH",
                              f"{member} ({found.size} bytes) hashes differently than the "
                              f"manifest states ({stated_size} bytes)",
                              expected=expected, found=found.sha256)
        return Check.ok("content", f"sha256 {found.sha256} ({found.size} bytes)")
    if found.sha256 != expected:
        code = "CONTENT_TRUNCATED" if found.size < int(stated_size) else "DIGEST_MISMATCH"
        return Check.fail("content", code,
                          f"stored content hashes differently ({found.size} bytes, "
                          f"manifest says {stated_size})", expected=expected, found=found.sha256)
    return Check.ok("content", f"sha256 {found.sha256}")


def manifest_digest(found: str, logged: str | None, *, catalogued: str | None = None,
                    in_bundle: bool = False) -> Check:
    """The manifest's SHA-256 (``found``) against the one its ledger entry ``logged``.

    In the archive (``in_bundle`` False) a version whose entry is unreadable is still judged
    by the catalog's digest (``catalogued``); in a bundle there is no catalog, so an entry
    naming no digest is itself the finding."""
    if in_bundle:
        if logged is None:
            return Check.fail("manifest", "LEDGER_ENTRY_MISMATCH",
                              "no ledger entry names a manifest digest", found=found)
        if found != logged:
            return Check.fail("manifest", "MANIFEST_ALTERED",
                              "manifest.json differs from the one the ledger logged",
                              expected=str(logged), found=found)
        return Check.ok("manifest", f"sha256 {found}")
    if logged is not None and found != logged:
        return Check.fail("manifest", "MANIFEST_ALTERED",
                          "stored manifest differs from the one in the ledger",
                          expected=logged, found=found)
    if catalogued != found:
        return Check.fail("manifest", "MANIFEST_ALTERED",
                          "stored manifest differs from the catalog's digest",
                          expected=catalogued, found=found)
    return Check.ok("manifest", f"sha256 {found}")


def ledger_entry(entry: Mapping[str, Any], record_id: str, version: int, *,
                 index: int | None = None) -> Check:
    """The ledger entry names this record and version. ``index``: its position in the
    archive's ledger (None: an entry read from a bundle, which is judged by its fields)."""
    matches = entry.get("record_id") == record_id and entry.get("version") == version
    if index is not None:
        if not matches:
            return Check.fail("ledger", "LEDGER_ENTRY_MISMATCH",
                              f"ledger entry {index} is not this version's")
        return Check.ok("ledger", f"entry {index}")
    if not matches:
        return Check.fail("ledger", "LEDGER_ENTRY_MISMATCH",
                          "the ledger entry is not this version's",
                          expected=f"{record_id} v{version}",
                          found=f"{entry.get('record_id')} v{entry.get('version')}")
    return Check.ok("ledger", f"{entry.get('event')} entry of {entry.get('at')}")


def inclusion_in_tree(leaves: Sequence[bytes], leaf: bytes, index: int, size: int,
                      root_hash: str, *, computed_root: bytes | None = None) -> Check:
    """Leaf ``index`` of ``leaves`` is ``leaf`` and is in the tree of the first ``size``
    leaves whose root a checkpoint sealed (``root_hash``, hex).

    With ``computed_root`` (period verification: the root of ``leaves[:size]``, computed once
    per checkpoint) equal roots prove every leaf below them included (collision resistance of
    SHA-256); without it the RFC 9162 §2.1.3 path is computed and checked."""
    sealed_root = bytes.fromhex(root_hash)
    if computed_root is not None:
        ok = index < size and computed_root == sealed_root and leaves[index] == leaf
    else:
        proof = merkle.inclusion_proof(leaves[:size], index)
        ok = merkle.verify_inclusion(leaf, index, size, proof, sealed_root)
    if ok:
        return Check.ok("inclusion", f"leaf {index} is in checkpoint {size}")
    return Check.fail("inclusion", "INCLUSION_FAILED",
                      f"leaf {index} does not lead to checkpoint {size}'s sealed "
                      "root: the ledger was altered", expected=root_hash,
                      found=merkle.root(leaves[:size]).hex())


def inclusion_by_path(entry: bytes, proof: merkle.InclusionProof, root: bytes,
                      stated_size: int | None, name: str) -> Check:
    """A shipped inclusion proof (RFC 9162 §2.1.3.2) leads from ``entry``'s leaf to ``root``,
    the root checkpoint ``name`` states for tree size ``stated_size``."""
    leaf = merkle.leaf_hash(entry)
    if stated_size != proof.tree_size:
        return Check.fail("inclusion", "INCLUSION_FAILED",
                          f"the proof is for tree size {proof.tree_size}, {name} states "
                          f"{stated_size}", expected=str(proof.tree_size),
                          found=str(stated_size))
    if proof.leaf_hash != leaf:
        return Check.fail("inclusion", "INCLUSION_FAILED",
                          "the proof is for another leaf than this ledger entry",
                          expected=leaf.hex(), found=proof.leaf_hash.hex())
    if merkle.verify_inclusion(leaf, proof.index, proof.tree_size, proof.path, root):
        return Check.ok("inclusion", f"leaf {proof.index} is in {name} (root {root.hex()})")
    try:
        steps = proof.walk()
        end: str | None = (steps[-1][1] if steps else leaf).hex()
    except ValueError:
        end = None
    return Check.fail("inclusion", "INCLUSION_FAILED",
                      f"leaf {proof.index}'s path does not lead to the root {name} "
                      "states (RFC 9162 §2.1.3.2)", expected=root.hex(), found=end)


def manifest_seal(manifest: bytes, seal: bytes, trust_roots: Sequence[x509.Certificate]
                  ) -> Check:
    """The manifest's own detached CAdES seal (RFC 5652), judged as of now."""
    return replace(verify_seal(manifest, seal, trust_roots=trust_roots), name="manifest_seal")


def certificate_stamp(data: bytes, seal: bytes, tsr: bytes,
                      trust_roots: Sequence[x509.Certificate]) -> Check | None:
    """The first of a disposal certificate's seal and timestamp that does not pass, or None
    when both do (its seal judged as of now, as ``openssl cms -verify`` would)."""
    stamp = verify_stamp(data, seal, tsr, trust_roots=trust_roots, seal_at_gen_time=False)
    for check in (stamp.seal, stamp.timestamp):
        if check.status is not Status.PASS:
            return check
    return None


def manifest_shape(doc: object) -> tuple[Manifest | None, Check | None]:
    """The typed manifest of parsed JSON, or the failed ``manifest`` check saying why it is
    not one this release reads (never an exception: a bad record is data). Both verifiers
    parse the stored bytes once and check their shape here."""
    try:
        return Manifest.from_json(doc), None
    except ManifestError as exc:
        return None, Check.fail("manifest", exc.code, str(exc))
