"""Private keys at rest: passphrase-encrypted, 0600, never printed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc, jst_today_minus

SECRET = "correct horse battery staple"


def test_encrypted_keys_need_the_passphrase(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDOC_KEY_PASSPHRASE", SECRET)
    e = Edoc(tmp_path / "archive")
    res = e("init", str(e.archive), "--encrypt-keys")
    assert res.exit_code == 0, res.output
    for key in (e.archive / "keys").glob("*.key"):
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(e.archive.stat().st_mode) == 0o700
    doc = tmp_path / "r.png"
    samples.scan_image(doc, dpi=300, mode="RGB", fmt="PNG")
    res = e("ingest", str(doc), "--date", jst_today_minus(1))
    assert res.exit_code == 0, res.output
    assert SECRET not in res.output
    # without it: a clear one-line error, exit 2, nothing stored; reading still works
    monkeypatch.delenv("EDOC_KEY_PASSPHRASE")
    other = tmp_path / "s.png"
    samples.scan_image(other, dpi=301, mode="RGB", fmt="PNG")
    code, out = e.json("ingest", str(other), "--date", jst_today_minus(1))
    assert code == 2
    assert out["error"]["code"] == "KEY_PASSPHRASE_REQUIRED"
    assert e.json("search")[1]["count"] == 1
    assert e.json("verify", "--all")[0] == 0  # verification needs no private key
    monkeypatch.setenv("EDOC_KEY_PASSPHRASE", "wrong")
    code, out = e.json("ingest", str(other), "--date", jst_today_minus(1))
    assert code == 2
    assert out["error"]["code"] == "KEY_PASSPHRASE_WRONG"
    assert "wrong" not in str(out)


def test_init_encrypt_keys_without_passphrase_or_terminal(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.delenv("EDOC_KEY_PASSPHRASE", raising=False)
    e = Edoc(tmp_path / "archive")
    code, doc = e.json("init", str(e.archive), "--encrypt-keys")
    assert code == 2 and doc["error"]["code"] == "KEY_PASSPHRASE_REQUIRED"
    assert not (e.archive / "edoc.toml").exists()
