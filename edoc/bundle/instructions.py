"""What an auditor runs by hand: each version's ``verify.sh`` and the bundle's ``VERIFY.md``.

The scripts need only a POSIX shell, openssl, sha256sum, sed, grep, printf and mktemp; the
guide walks through every step of the chain of evidence (RFC 9162 §2.1.1 leaf hash, §2.1.3.2
inclusion path, RFC 5652 seal, RFC 3161 timestamp) with commands that can be pasted as is.
Their text is part of the bundle format: it changes only with care.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from edoc.bundle.plan import RecordPlan, VersionPlan
from edoc.storage import layout


def _octal(data: bytes) -> str:
    """Bytes as printf octal escapes: POSIX printf has \\ddd, not \\xHH (dash lacks it)."""
    return "".join(f"\\{b:03o}" for b in data)

# =============================================================================================
# verify.sh — one POSIX sh script per version
# =============================================================================================


_SH_FUNCS = r"""ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; failed=1; }
# hex SHA-256 of standard input
sha() { sha256sum | sed 's/ .*//'; }
# the last "KEY":"<64 hex digits>" in FILE (canonical JSON: one line, sorted keys)
hexfield() { sed -n "s/.*\"$1\":\"\([0-9a-f]\{64\}\)\".*/\1/p" "$2"; }
# the last "KEY":<integer> in FILE
intfield() { sed -n "s/.*\"$1\":\([0-9]\{1,\}\).*/\1/p" "$2"; }
# hex digits to bytes, with printf octal escapes only (POSIX printf has no \x)
unhex() {
  for b in $(printf '%s' "$1" | sed 's/../& /g'); do printf "\\$(printf '%03o' "0x$b")"; done
}
# the first line openssl printed that says something (for FAIL messages)
why() { grep -v '^Using configuration' "$1" | sed -n '1p'; }

"""

_SH_HEAD = r"""#!/bin/sh
# edoc evidence bundle: independent check of record @RID@ version @N@.
#
# Needs only a POSIX shell, openssl, sha256sum, sed, grep, printf and mktemp: no edoc and no
# python. Run it from anywhere, e.g.   sh @R@/verify.sh
# Exit status 0 means every check below passed. VERIFY.md explains each step.
#
# Trust: by default seals and timestamps are checked against certs/root-ca.pem, which came in
# this bundle from the archive itself. To check against roots you obtained independently
# (your accredited TSA's CA, the organisation's published root), run
#     EDOC_TRUST=/path/to/roots.pem sh @R@/verify.sh
# (or EDOC_SEAL_CA / EDOC_TSA_CA to set the two separately).
set -u
# Paths you give are taken relative to where you are; the bundle's own, to its top directory.
abs() { case "$1" in ""|/*) printf '%s' "$1" ;; *) printf '%s/%s' "$(pwd)" "$1" ;; esac; }
TRUST=$(abs "${EDOC_TRUST:-}")
SEAL_IN=$(abs "${EDOC_SEAL_CA:-}")
TSA_IN=$(abs "${EDOC_TSA_CA:-}")
cd "$(dirname "$0")/../../.." || exit 2
R=@R@
SEAL_CA=${SEAL_IN:-${TRUST:-certs/root-ca.pem}}
TSA_CA=${TSA_IN:-${TRUST:-@TSA_CA@}}
T=$(mktemp -d) || exit 2
trap 'rm -rf "$T"' EXIT
failed=0
@FUNCS@echo "record @RID@ v@N@"
# 1. The ledger entry is this version's.
if grep -q '"record_id":"@RID@"' "$R/ledger-entry.json" \
    && [ "$(intfield version "$R/ledger-entry.json")" = @N@ ]; then
  ok "ledger entry names record @RID@ version @N@"
else
  bad "ledger entry does not name record @RID@ version @N@"
fi
"""

_SH_MANIFEST = r"""# 2. The manifest is the one the ledger logged:
#    SHA-256(manifest.json) = manifest_sha256 of the ledger entry.
want=$(hexfield manifest_sha256 "$R/ledger-entry.json")
got=$(sha < "$R/manifest.json")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
  ok "manifest sha256 $got is the one in the ledger entry"
else
  bad "manifest sha256 is $got, the ledger entry says ${want:-nothing}"
fi
"""

_SH_CONTENT = r"""# 3. The content is the one the manifest describes:
#    SHA-256(content) = content.sha256 of the manifest.
CONTENT=@CONTENT@
want=$(hexfield sha256 "$R/manifest.json")
got=$(sha < "$CONTENT")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
  ok "content sha256 $got is the one in the manifest ($CONTENT)"
else
  bad "content $CONTENT hashes to $got, the manifest says ${want:-nothing}"
fi
"""

_SH_TOMBSTONE = r"""# 3. A deletion record (tombstone) has no content: the manifest must say so.
if grep -q '"content":null' "$R/manifest.json"; then
  ok "no content: this version records a deletion (tombstone)"
else
  bad "manifest of a tombstone names content"
fi
"""

_SH_MANIFEST_SEAL = r"""# 3b. The manifest's own seal (CAdES detached signature,
#     RFC 5652 SignedData).
if openssl cms -verify -binary -inform DER -in "$R/manifest.p7s" -content "$R/manifest.json" \
    -CAfile "$SEAL_CA" -purpose any -out /dev/null 2>"$T/err"; then
  ok "manifest seal verifies and chains to $SEAL_CA"
else
  bad "manifest seal: $(why "$T/err")"
fi
"""

_SH_INCLUSION = r"""# 4. The ledger entry is a leaf of the sealed tree:
#    leaf hash SHA-256(0x00 || entry) (RFC 9162 section 2.1.1), then the path of
#    section 2.1.3.2 up to the checkpoint's root.
P=$R/inclusion-proof.json
index=$(intfield leaf_index "$P"); index=${index:-0}
size=$(intfield tree_size "$P"); size=${size:-0}
CP=checkpoints/$(printf '%012d' "$size")
{ printf '\000'; cat "$R/ledger-entry.json"; } > "$T/in"
openssl dgst -sha256 -binary < "$T/in" > "$T/h"
cur=$(sha < "$T/in")
if [ "$cur" = "$(hexfield leaf_hash "$P")" ]; then
  ok "leaf hash $cur (leaf $index of $size)"
else
  bad "leaf hash $cur is not the proof's leaf_hash $(hexfield leaf_hash "$P")"
fi
fn=$index; sn=$((size - 1)); walk=ok
for p in $(sed -n 's/.*"path":\[\([^]]*\)\].*/\1/p' "$P" | sed 's/[",]/ /g'); do
  if [ "$sn" -eq 0 ]; then walk=bad; break; fi
  if [ $((fn % 2)) -eq 1 ] || [ "$fn" -eq "$sn" ]; then
    { printf '\001'; unhex "$p"; cat "$T/h"; } > "$T/in"; side="left "
    if [ $((fn % 2)) -eq 0 ]; then
      while [ $((fn % 2)) -eq 0 ] && [ "$fn" -ne 0 ]; do fn=$((fn / 2)); sn=$((sn / 2)); done
    fi
  else
    { printf '\001'; cat "$T/h"; unhex "$p"; } > "$T/in"; side="right"
  fi
  openssl dgst -sha256 -binary < "$T/in" > "$T/h"
  cur=$(sha < "$T/in")
  printf '        sibling %s on the %s -> %s\n' "$p" "$side" "$cur"
  fn=$((fn / 2)); sn=$((sn / 2))
done
root=$(hexfield root_hash "$CP.json")
if [ "$walk" = ok ] && [ "$sn" -eq 0 ] && [ -n "$root" ] && [ "$cur" = "$root" ] \
    && [ "$(intfield tree_size "$CP.json")" = "$size" ]; then
  ok "inclusion: the path reaches root $root of $CP.json (tree size $size)"
else
  bad "inclusion: the path ends at $cur, $CP.json states root ${root:-nothing}"
fi
"""

_SH_CHECKPOINT = r"""# 5. The checkpoint is sealed (CAdES detached signature, RFC 5652 SignedData).
if openssl cms -verify -binary -inform DER -in "$CP.p7s" -content "$CP.json" \
    -CAfile "$SEAL_CA" -purpose any -out /dev/null 2>"$T/err"; then
  ok "checkpoint seal verifies and chains to $SEAL_CA"
else
  bad "checkpoint seal: $(why "$T/err")"
fi
# 6. The checkpoint is timestamped (RFC 3161): the token's imprint is SHA-256 of the JSON.
if openssl ts -verify -in "$CP.tsr" -data "$CP.json" -CAfile "$TSA_CA" \
    -untrusted certs/tsa.pem > "$T/err" 2>&1; then
  ok "checkpoint timestamp verifies and chains to $TSA_CA" \
     "($(openssl ts -reply -in "$CP.tsr" -text 2>/dev/null | sed -n 's/^Time stamp: //p'))"
else
  bad "checkpoint timestamp: $(why "$T/err")"
fi
"""

_SH_HISTORY_FIRST = r"""# 7. History: the first version has no predecessor.
if grep -q '"previous_version_sha256":null' "$R/ledger-entry.json"; then
  ok "history: first version"
else
  bad "history: version 1 names a predecessor"
fi
"""

_SH_HISTORY_NEXT = r"""# 7. History (訂正削除履歴): this version names the previous
#    version's manifest digest.
want=$(hexfield manifest_sha256 "@PREV@/ledger-entry.json")
got=$(hexfield previous_version_sha256 "$R/ledger-entry.json")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
  ok "history: follows version @PN@ (manifest $want)"
else
  bad "history: previous_version_sha256 is ${got:-missing}, version @PN@ logged ${want:-nothing}"
fi
"""

_SH_DISPOSAL = r"""# 8. Disposal: a sealed, timestamped disposal certificate lists
#    this version's manifest digest.
D=@D@
want=$(hexfield manifest_sha256 "$R/ledger-entry.json")
if openssl cms -verify -binary -inform DER -in "$D.p7s" -content "$D.json" \
    -CAfile "$SEAL_CA" -purpose any -out /dev/null 2>"$T/err"; then
  ok "disposal certificate seal verifies"
else
  bad "disposal certificate seal: $(why "$T/err")"
fi
if openssl ts -verify -in "$D.tsr" -data "$D.json" -CAfile "$TSA_CA" \
    -untrusted certs/tsa.pem > "$T/err" 2>&1; then
  ok "disposal certificate timestamp verifies"
else
  bad "disposal certificate timestamp: $(why "$T/err")"
fi
if [ -n "$want" ] && grep -q "\"manifest_sha256\":\"$want\"" "$D.json"; then
  ok "DISPOSED: $D.json lists manifest $want"
else
  bad "$D.json does not list manifest ${want:-?}"
fi
"""

_SH_NO_CERT = r"""# 8. Disposal: this version was disposed, but the archive holds
#    no certificate for it.
bad "disposed without a disposal certificate"
"""

_SH_TAIL = r"""if [ "$failed" -eq 0 ]; then
  echo "ALL CHECKS PASSED: record @RID@ v@N@"
else
  echo "CHECKS FAILED: record @RID@ v@N@"
fi
exit "$failed"
"""


def _fill(template: str, values: Mapping[str, str]) -> str:
    for k, v in values.items():
        template = template.replace(f"@{k}@", v)
    return template


def verify_sh(v: VersionPlan, tsa_ca: str) -> str:
    prev = f"records/{v.rid}/v{v.version - 1}"
    values = {"RID": v.rid, "N": str(v.version), "R": v.prefix, "TSA_CA": tsa_ca,
              "CONTENT": v.content_path or "", "PREV": prev, "PN": str(v.version - 1),
              "D": (v.disposal or "").removesuffix(".json")}
    parts = [_SH_HEAD]
    if not v.disposed:
        parts.append(_SH_MANIFEST)
        parts.append(_SH_CONTENT if v.content_path else _SH_TOMBSTONE)
        if v.manifest_seal is not None:
            parts.append(_SH_MANIFEST_SEAL)
    parts.append(_SH_INCLUSION)
    parts.append(_SH_CHECKPOINT)
    parts.append(_SH_HISTORY_FIRST if v.version == 1 else _SH_HISTORY_NEXT)
    if v.disposed:
        parts.append(_SH_DISPOSAL if v.disposal else _SH_NO_CERT)
    parts.append(_SH_TAIL)
    return _fill("".join(parts).replace("@FUNCS@", _SH_FUNCS), values)


# =============================================================================================
# VERIFY.md
# =============================================================================================


_SED_CONTENT = r"""sed -n 's/.*"sha256":"\([0-9a-f]\{64\}\)".*/\1/p'"""
_SED_MANIFEST = r"""sed -n 's/.*"manifest_sha256":"\([0-9a-f]\{64\}\)".*/\1/p'"""
_SED_PREVIOUS = r"""sed -n 's/.*"previous_version_sha256":"\([0-9a-f]\{64\}\)".*/\1/p'"""
_SED_LEAF = r"""sed -n 's/.*"leaf_hash":"\([0-9a-f]\{64\}\)".*/\1/p'"""
_SED_ROOT = r"""sed -n 's/.*"root_hash":"\([0-9a-f]\{64\}\)".*/\1/p'"""


def _compare(a: str, b: str) -> str:
    return f'[ "{a}" = "{b}" ] && echo MATCH || echo MISMATCH\n'


def verify_md(index: dict[str, Any], plans: list[RecordPlan], root_ca: x509.Certificate,
               tsa_ca: str) -> str:
    versions = [v for p in plans for v in p.versions]
    kept = [v for v in versions if not v.disposed]
    example = next((v for v in kept if v.content_path and v.proof and v.proof.path),
                   next((v for v in kept if v.content_path), kept[0] if kept else None))
    fingerprint = root_ca.fingerprint(hashes.SHA256()).hex(":").upper()
    accredited = index["tsa"]["accredited"]
    o: list[str] = []
    add = o.append
    add("# Evidence bundle — how to check it without edoc\n\n")
    add(f"Archive `{index['archive_id']}` ({index['organisation'] or 'no organisation set'}), "
        f"bundle written {index['created']} by `{index['created_by']}` with edoc "
        f"{index['tool']['version']}: {len(plans)} record(s), {len(versions)} version(s), "
        f"checkpoint(s) {', '.join(str(s) for s in index['checkpoints'])}.\n\n")
    add("Everything here can be checked with a POSIX shell, `openssl` (1.1.1 or 3.x), "
        "`sha256sum`, `sed`, `grep` and `printf`; no edoc, no network. Unzip the bundle and run "
        "every command from its top directory. Each block marked `sh` can be pasted as is, "
        "in order.\n\n")
    add("## What is proved, and the chain that proves it\n\n"
        "For every version of a record:\n\n"
        "1. **Content** — SHA-256 of `content` equals `content.sha256` in the version's "
        "`manifest.json`. Fails if one byte of the document changed.\n"
        "2. **Manifest** — SHA-256 of `manifest.json` equals `manifest_sha256` in "
        "`ledger-entry.json`. Fails if the metadata (date, amount, counterparty, retention…) "
        "was edited after it was logged.\n"
        "3. **Leaf** — the ledger entry is a leaf of the archive's Merkle tree: its leaf hash "
        "is SHA-256(0x00 ‖ entry bytes) (RFC 9162 §2.1.1).\n"
        "4. **Inclusion** — `inclusion-proof.json` lists the sibling hashes from that leaf up "
        "to the root; hashing pairwise as SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.3.2) "
        "must end at `root_hash` of `checkpoints/<tree_size>.json`. Fails if any ledger entry "
        "or the proof was altered, or the entry was never in that tree.\n"
        "5. **Seal** — `checkpoints/<size>.p7s` is a CAdES detached signature (RFC 5652 "
        "SignedData, ETSI EN 319 122-1) over the checkpoint JSON. Fails if the checkpoint was "
        "altered or re-signed with a key that does not chain to the root you trust.\n"
        "6. **Timestamp** — `checkpoints/<size>.tsr` is an RFC 3161 time-stamp response whose "
        "message imprint is SHA-256 of the checkpoint JSON. It proves the checkpoint — and "
        "so, through steps 1-4, the content — existed unaltered at the token's genTime "
        "(hash-tree stamping, NTA 一問一答 問47: each file verifies on its own). Fails if the "
        "JSON changed (imprint mismatch) or the token does not chain to the TSA root you "
        "trust.\n"
        "7. **History** (訂正削除履歴) — every version after the first names the previous "
        "version's manifest digest (`previous_version_sha256`), so corrections and deletions "
        "form a chain and none can be left out unnoticed.\n"
        "8. **Manifest seal** — where the profile requires it (e.g. records needing "
        "記名押印), `manifest.p7s` seals the manifest itself.\n\n"
        "Disposed versions (retention ended, `edoc purge`) no longer have content or "
        "manifest. Their ledger entry is still proved by steps 3-6, and a sealed, timestamped "
        "disposal certificate (`disposals/<run>.json|.p7s|.tsr`, 廃棄証明) lists the manifest "
        "digest of every version that was destroyed.\n\n")
    add("## Trust: what these checks can and cannot tell you\n\n")
    add("- `certs/root-ca.pem` came **from the archive**, inside this bundle. Checking against "
        "it proves that the files are exactly what the archive's own keys sealed and "
        "timestamped — nothing more: whoever controls the archive controls those keys. The "
        "point of independent roots (`EDOC_TRUST=FILE` for the scripts, "
        "`edoc verify-bundle --trust FILE`, `-CAfile FILE` for openssl) is to check against "
        "roots **you obtained yourself**, through a channel the archive's operator does not "
        "control. With `--trust` the bundle's `certs/root-ca.pem` is ignored.\n")
    add(f"- The archive's root certificate fingerprint is `SHA256 {fingerprint}` "
        "(`openssl x509 -in certs/root-ca.pem -noout -fingerprint -sha256`). Compare it with "
        "the fingerprint the organisation gave you separately, not with this line.\n")
    if accredited:
        add(f"- Timestamps come from an external RFC 3161 TSA (`{index['tsa']['kind']}`); "
            f"its CA as configured in the archive is `{tsa_ca}`. Use the CA certificate you "
            "obtain from that TSA (a 総務大臣認定 time-stamping service publishes it) instead "
            "of the copy in this bundle.\n")
    else:
        add("- **The seal and timestamp certificates in this bundle are edoc's embedded "
            "development PKI and TSA: NOT ACCREDITED.** Their names say so. The evidence is "
            "cryptographically sound, but the time comes from the archive's own clock and "
            "the TSA is not a 総務大臣認定 time-stamping service. With an accredited TSA, use "
            "that TSA's CA certificate in place of `certs/root-ca.pem` for the timestamp "
            "checks.\n")
    add("- `bundle.json` and `SHA256SUMS` are an unsigned index. They catch accidental damage "
        "in transit; anyone who alters a record can also rewrite them. The proof rests on "
        "steps 1-8 above, which end in a seal and a timestamp.\n"
        "- A bundle proves what it contains. It cannot prove that no later version of a "
        "record exists (a correction or deletion made after it was written, or left out): "
        "each record's `history.json` lists the versions known when the bundle was written, "
        "and the archive's `edoc show --history` or a newer bundle shows any since.\n"
        "- openssl checks certificates as of today. Seal and TSA certificates last about ten "
        "years; evidence older than that needs renewal timestamps, which this bundle version "
        "does not carry.\n\n")
    add("## Quick check\n\n"
        "The files arrived intact (this reads every byte):\n\n"
        "```sh\nsha256sum -c SHA256SUMS\n```\n\n"
        "Every version, all steps (each script prints `ok`/`FAIL` per step and ends with "
        "`ALL CHECKS PASSED` or `CHECKS FAILED`; its exit status is 0 only if all passed):\n\n"
        "```sh\nfor s in records/*/v*/verify.sh; do sh \"$s\"; done\n```\n\n"
        "To check against roots you obtained yourself: "
        "`EDOC_TRUST=/path/to/roots.pem sh records/<id>/v<n>/verify.sh`.\n\n")
    add("## Versions in this bundle\n\n| record | version | kind | state | script |\n"
        "|---|---|---|---|---|\n")
    for v in versions:
        add(f"| `{v.rid}` | {v.version} | {v.kind} | "
            f"{'disposed ' + (v.disposed_at or '') if v.disposed else 'kept'} | "
            f"`{v.prefix}/verify.sh` |\n")
    add("\n")
    if example is not None:
        _md_worked_example(o, example, plans, tsa_ca)
    disposed = [v for v in versions if v.disposed and v.disposal]
    if disposed:
        d = disposed[0]
        base = (d.disposal or "").removesuffix(".json")
        add("## Disposed versions, by hand\n\n"
            f"Example: record `{d.rid}` version {d.version}. Steps 3-6 work exactly as "
            "above on its `ledger-entry.json` and `inclusion-proof.json`. Then check the "
            "disposal certificate and that it lists the manifest digest the ledger logged:\n\n"
            "```sh\n"
            f"D={base}\nR={d.prefix}\n"
            "openssl cms -verify -binary -inform DER -in \"$D.p7s\" -content \"$D.json\" "
            "-CAfile certs/root-ca.pem -purpose any -out /dev/null\n"
            f"openssl ts -verify -in \"$D.tsr\" -data \"$D.json\" -CAfile {tsa_ca} "
            "-untrusted certs/tsa.pem\n"
            f"m=$({_SED_MANIFEST} \"$R/ledger-entry.json\"); echo \"manifest $m\"\n"
            "grep -q \"\\\"manifest_sha256\\\":\\\"$m\\\"\" \"$D.json\" && echo MATCH "
            "|| echo MISMATCH\n```\n\n")
    add("## What a failure means\n\n"
        "| step | what it means |\n|---|---|\n"
        "| content | the document bytes are not the ones the archive recorded |\n"
        "| manifest | the metadata was changed after it was logged |\n"
        "| leaf / inclusion | the ledger entry or its proof was altered, or it is not in the "
        "sealed tree |\n"
        "| seal | the checkpoint (or manifest) was altered, or signed by a key outside the "
        "roots you trust |\n"
        "| timestamp | the checkpoint was altered after it was stamped, or the token comes from "
        "a TSA outside the roots you trust |\n"
        "| history | a version is missing or the chain of corrections was rewritten |\n"
        "| `sha256sum -c` | a file was damaged or replaced in transit (check the steps above to "
        "see whether the evidence itself is affected) |\n")
    return "".join(o)


def _md_worked_example(o: list[str], v: VersionPlan, plans: list[RecordPlan],
                       tsa_ca: str) -> None:
    add = o.append
    assert v.proof is not None
    cp = layout.checkpoint_key(v.checkpoint, "json").removesuffix(".json")
    add("## Step by step, by hand\n\n"
        f"Worked example: record `{v.rid}` version {v.version} ({v.kind}). The same commands "
        "work for any version: set `R` to its directory, `C` to its content (the `content` "
        "field of its entry in `bundle.json`) and `CP` to `checkpoints/` followed by its "
        "proof's `tree_size` as 12 digits.\n\n"
        f"```sh\nR={v.prefix}\nC={v.content_path or ''}\nCP={cp}\n```\n\n")
    add("**1. Content.** Canonical JSON is one line with sorted keys, and the only key named "
        "exactly `sha256` in a manifest is the content digest, so `sed` can pick it out:\n\n"
        "```sh\n"
        "a=$(sha256sum < \"$C\" | sed 's/ .*//'); echo \"content  $a\"\n"
        f"b=$({_SED_CONTENT} \"$R/manifest.json\"); echo \"manifest $b\"\n"
        + _compare("$a", "$b") + "```\n\n")
    add("**2. Manifest.**\n\n```sh\n"
        "a=$(sha256sum < \"$R/manifest.json\" | sed 's/ .*//'); echo \"manifest     $a\"\n"
        f"b=$({_SED_MANIFEST} \"$R/ledger-entry.json\"); echo \"ledger entry $b\"\n"
        + _compare("$a", "$b") + "```\n\n")
    leaf = v.proof.leaf_hash
    add("**3. Leaf hash** (RFC 9162 §2.1.1: a 0x00 byte, then the entry's bytes):\n\n"
        "```sh\n(printf '\\000'; cat \"$R/ledger-entry.json\") | openssl dgst -sha256\n```\n\n"
        f"It prints `{leaf.hex()}`, which must be the `leaf_hash` in `inclusion-proof.json`:"
        "\n\n```sh\n"
        "a=$( (printf '\\000'; cat \"$R/ledger-entry.json\") | openssl dgst -sha256 -r "
        "| sed 's/ .*//'); echo \"leaf  $a\"\n"
        f"b=$({_SED_LEAF} \"$R/inclusion-proof.json\"); echo \"proof $b\"\n"
        + _compare("$a", "$b") + "```\n\n")
    steps = v.proof.walk()
    add(f"**4. Inclusion path.** The entry is leaf `leaf_index` = {v.proof.index} of a tree of "
        f"`tree_size` = {v.proof.tree_size} leaves. RFC 9162 §2.1.3.2 says on which side each "
        "sibling in `path` goes: start with fn = leaf_index and sn = tree_size − 1; for each "
        "sibling, if fn is odd or fn = sn, the sibling is on the **left** (and then, if fn is "
        "even, halve fn and sn until fn is odd or 0); otherwise it is on the **right**; then "
        "halve fn and sn (dropping remainders). At the end sn must be 0. Each step hashes a "
        "0x01 byte, the left hash and the right hash; `printf` writes the 32-byte hashes as "
        "octal escapes (`\\ddd`), which every POSIX `printf` understands. The hash each line "
        "prints is the one spelled out in the next line.\n\n")
    last = "(printf '\\000'; cat \"$R/ledger-entry.json\")"
    if not steps:
        add("This tree has a single leaf: the leaf hash is itself the root.\n\n")
    else:
        add("```sh\n")
        prev = leaf
        for i, ((side, h), sib) in enumerate(zip(steps, v.proof.path, strict=True), 1):
            left, right = (sib, prev) if side == "left" else (prev, sib)
            last = f"(printf '\\001'; printf '{_octal(left)}'; printf '{_octal(right)}')"
            add(f"# step {i}: sibling on the {side}; prints {h.hex()}\n{last} "
                "| openssl dgst -sha256\n")
            prev = h
        add("```\n\n")
    add("The last hash must be the checkpoint's root (the last step once more, compared):"
        "\n\n```sh\n"
        f"r=$({_SED_ROOT} \"$CP.json\"); echo \"root     $r\"\n"
        f"h=$( {last} | openssl dgst -sha256 -r | sed 's/ .*//'); echo \"computed $h\"\n"
        + _compare("$h", "$r") + "```\n\n"
        "(`root_hash` appears twice in a checkpoint that names its predecessor, inside "
        "`previous`; the greedy `sed` picks the last one, the checkpoint's own, because keys "
        "are sorted.)\n\n")
    add("**5. Checkpoint seal** (prints `CMS Verification successful`):\n\n```sh\n"
        "openssl cms -verify -binary -inform DER -in \"$CP.p7s\" -content \"$CP.json\" "
        "-CAfile certs/root-ca.pem -purpose any -out /dev/null\n```\n\n")
    add("**6. Checkpoint timestamp** (prints `Verification: OK`), then its contents "
        "(genTime, policy, serial, TSA):\n\n```sh\n"
        f"openssl ts -verify -in \"$CP.tsr\" -data \"$CP.json\" -CAfile {tsa_ca} "
        "-untrusted certs/tsa.pem\n"
        "openssl ts -reply -in \"$CP.tsr\" -text\n```\n\n")
    rec = next(p for p in plans if p.rid == v.rid)
    later = [x for x in rec.versions if x.version > 1]
    if later:
        x = later[0]
        prev_dir = f"records/{x.rid}/v{x.version - 1}"
        add(f"**7. History.** Version {x.version} of this record names version "
            f"{x.version - 1}'s manifest digest:\n\n```sh\n"
            f"a=$({_SED_MANIFEST} {prev_dir}/ledger-entry.json); "
            f"echo \"v{x.version - 1} manifest      $a\"\n"
            f"b=$({_SED_PREVIOUS} {x.prefix}/ledger-entry.json); "
            f"echo \"v{x.version} names previous $b\"\n"
            + _compare("$a", "$b") + "```\n\n")
    else:
        add("**7. History.** A first version's ledger entry has "
            "`\"previous_version_sha256\":null`; each later version's names the manifest "
            "digest of the one before (see `history.json`).\n\n")
    sealed = next((x for p in plans for x in p.versions if x.manifest_seal is not None), None)
    if sealed is not None:
        add(f"**8. Manifest seal** (record `{sealed.rid}` version {sealed.version}):\n\n"
            "```sh\n"
            f"openssl cms -verify -binary -inform DER -in {sealed.prefix}/manifest.p7s "
            f"-content {sealed.prefix}/manifest.json -CAfile certs/root-ca.pem -purpose any "
            "-out /dev/null\n```\n\n")
    else:
        add("**8. Manifest seal.** No version in this bundle has one (their profiles seal "
            "checkpoints only).\n\n")

