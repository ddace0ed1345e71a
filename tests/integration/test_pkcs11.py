"""Seal key in a PKCS#11 token: SoftHSM2 (Debian package softhsm2, installed by .ci/run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms

from tests import samples
from tests.helpers import Edoc, jst_today_minus

MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
           "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "246810"


def _module() -> str | None:
    return next((m for m in MODULES if Path(m).exists()), None)


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    module = _module()
    if module is None or shutil.which("softhsm2-util") is None:
        if os.environ.get("CI"):
            pytest.fail("softhsm2 must be installed in CI (.ci/run installs it)")
        pytest.skip("softhsm2 not installed (apt-get install softhsm2)")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "edoc-test",
                    "--pin", PIN, "--so-pin", "13579111"], check=True, capture_output=True)
    monkeypatch.setenv("EDOC_PKCS11_PIN", PIN)
    return module


def test_seal_key_in_softhsm(token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                             ) -> None:
    e = Edoc(tmp_path / "archive")
    res = e("init", str(e.archive), "--pkcs11-module", token, "--pkcs11-token", "edoc-test")
    assert res.exit_code == 0, res.output
    assert not (e.archive / "keys" / "seal.key").exists()  # the key never left the token
    text = (e.archive / "edoc.toml").read_text()
    assert 'seal_backend = "pkcs11"' in text and PIN not in text
    doc = tmp_path / "r.png"
    samples.scan_image(doc, dpi=300, mode="RGB", fmt="PNG")
    code, out = e.json("ingest", str(doc), "--date", jst_today_minus(1))
    assert code == 0, out
    assert e.json("verify", "--all")[0] == 0
    cp = e.checkpoints()[-1]
    keys = e.archive / "keys"
    res2 = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                           str(cp.with_suffix(".p7s")), "-content", str(cp), "-CAfile",
                           str(keys / "root-ca.pem"), "-purpose", "any", "-out", os.devnull],
                          capture_output=True, text=True)
    assert res2.returncode == 0, res2.stderr
    # The token's seal carries the attributes of a key-file seal (CAdES-BES).
    signed = cms.ContentInfo.load(cp.with_suffix(".p7s").read_bytes())["content"]
    attrs = {a["type"].native for a in signed["signer_infos"][0]["signed_attrs"]}
    assert attrs == {"content_type", "message_digest", "signing_time", "signing_certificate_v2"}
    # no PIN: a clear configuration error before anything is stored
    monkeypatch.delenv("EDOC_PKCS11_PIN")
    other = tmp_path / "s.png"
    samples.scan_image(other, dpi=301, mode="RGB", fmt="PNG")
    code, out = e.json("ingest", str(other), "--date", jst_today_minus(1))
    assert code == 2 and out["error"]["code"] == "PKCS11_PIN_REQUIRED"
    assert e.json("search")[1]["count"] == 1
    monkeypatch.setenv("EDOC_PKCS11_PIN", "000000")
    code, out = e.json("ingest", str(other), "--date", jst_today_minus(1))
    assert code == 2 and out["error"]["code"] == "PKCS11_UNAVAILABLE"
    assert "000000" not in str(out)
