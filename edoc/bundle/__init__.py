"""Offline evidence bundles: what ``edoc evidence`` writes and ``edoc verify-bundle`` checks.

An auditor must not have to trust the archive, its operator or its vendor. A bundle is one
ZIP file holding, for every version of the records asked for, exactly the bytes the archive
proved things about, plus the proofs, so that it can be checked with OpenSSL, ``sha256sum``
and a little arithmetic — or with :func:`verify_bundle`, which needs no archive, no
configuration and no network::

    bundle.json                      index: archive id, records, versions, SHA-256 of every file
    SHA256SUMS                       the same digests, for ``sha256sum -c``
    VERIFY.md                        how to check everything by hand, and the trust model
    certs/root-ca.pem, seal.pem, tsa.pem   the archive's certificates (tsa-ca.pem: external TSA)
    checkpoints/<size>.json|.p7s|.tsr       sealed (CAdES) and timestamped (RFC 3161) tree heads
    disposals/<run>.json|.p7s|.tsr          disposal certificates, for disposed versions
    records/<id>/history.json        the version chain (訂正削除履歴)
    records/<id>/v<n>/content        the document bytes (metadata-only corrections point at
                                     the earlier version's content instead of a copy)
    records/<id>/v<n>/manifest.json  the canonical manifest; manifest.p7s its seal, if any
    records/<id>/v<n>/ledger-entry.json    the ledger leaf's event JSON
    records/<id>/v<n>/inclusion-proof.json RFC 9162 §2.1.3 path to the checkpoint's root
    records/<id>/v<n>/verify.sh      POSIX sh: every check with openssl/sha256sum/sed/printf

The chain of evidence for one version: SHA-256(content) is in the manifest; SHA-256(manifest)
is in the ledger entry; the ledger entry is a leaf (RFC 9162 §2.1.1) of the Merkle tree whose
root the checkpoint states; the checkpoint is sealed (RFC 5652 / CAdES) and timestamped
(RFC 3161, imprint = SHA-256 of the checkpoint JSON). ``bundle.json`` and ``SHA256SUMS`` are
an unsigned index that catches damage; they prove nothing by themselves, so verification
never relies on them for a verdict about a record.

Writing streams content from the store into the ZIP in chunks (records can be gigabytes) and
is atomic: a temporary file next to the target, hard-linked into place so that an existing
file is never overwritten. Reading never extracts to disk: members are read in memory (small
ones, bounded) or hashed as streams, after the member list has been checked for names that
escape the bundle, symlinks, duplicates, overlapping entries and absurd sizes.
"""

from edoc.bundle.format import BUNDLE_SCHEMA, BundleReport, BundleSummary
from edoc.bundle.verify import verify_bundle
from edoc.bundle.writer import select_records, write_bundle

__all__ = [
    "BUNDLE_SCHEMA",
    "BundleReport",
    "BundleSummary",
    "select_records",
    "verify_bundle",
    "write_bundle",
]
