"""Evidence renewal: a TSA certificate that expires before retention ends (short-lived
certificates issued in the test stand in for the ~10-year real ones)."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from tests import samples
from tests.helpers import Edoc, jst_today_minus

LIFETIME = 4  # seconds the test TSA certificate lives


def _codes(report: dict[str, object], name: str) -> list[str]:
    return [c["code"] for r in report["reports"] for c in r["checks"]  # type: ignore[index,union-attr]
            if c["name"] == name]


def test_expired_tsa_certificate_is_renewed(tmp_path: Path) -> None:
    from edoc.evidence import pki

    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    paths = pki.PkiPaths.under(e.archive / "keys")
    pki.issue_tsa_certificate(paths, validity=timedelta(seconds=LIFETIME), passphrase=None)
    doc_path = tmp_path / "r.png"
    samples.scan_image(doc_path, dpi=200, mode="RGB", fmt="PNG")
    code, doc = e.json("ingest", str(doc_path), "--date", jst_today_minus(1))
    assert code == 0, doc
    rid = doc["results"][0]["record_id"]

    code, doctor = e.json("doctor")
    assert code == 1
    assert "EVIDENCE_EXPIRES_BEFORE_RETENTION" in {
        c["code"] for c in doctor["checks"] if c["status"] == "fail"}

    time.sleep(LIFETIME + 1)
    code, report = e.json("verify", rid)
    assert code == 1
    assert _codes(report, "timestamp") == ["EVIDENCE_EXPIRED"]

    code, renewed = e.json("renew")
    assert code == 0, renewed
    assert renewed["tsa_certificate_reissued"] is True
    assert renewed["renewed_checkpoints"] == [int(e.checkpoints()[0].stem)]
    code, report = e.json("verify", rid)
    assert code == 0, report
    assert _codes(report, "timestamp") == ["RENEWED"]
    assert e.json("ledger", "verify")[0] == 0
    # nothing left to renew; the renewal checkpoint's token passes openssl on its own
    code, again = e.json("renew")
    assert code == 0 and again["renewed_checkpoints"] == []
    newest = e.checkpoints()[-1]
    assert json.loads(newest.read_bytes())["tree_size"] == renewed["checkpoint"]
    keys = e.archive / "keys"
    res = subprocess.run(["openssl", "ts", "-verify", "-in", str(newest.with_suffix(".tsr")),
                          "-data", str(newest), "-CAfile", str(keys / "root-ca.pem"),
                          "-untrusted", str(keys / "tsa.pem")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
