"""Disposal certificates an auditor can fetch: ``edoc certificate list`` and ``get``.

What an auditor needs: every certificate listed with its key, run, trusted time and size;
one copied out with its seal and RFC 3161 token beside it, checkable with openssl alone;
``purge`` saying exactly how to fetch what it certified; and no way to read anything but a
certificate through ``certificate get``.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc, jst_today_minus, short_profile

SHORT = 2  # seconds a test-short record is kept


@pytest.fixture
def purged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Edoc, dict[str, object]]:
    """An archive with one purge run behind it (two records disposed, one kept)."""
    monkeypatch.setenv("EDOC_POLICIES", str(short_profile(tmp_path / "policies", SHORT)))
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    for n, profile in enumerate(("test-short", "test-short", "general")):
        p = tmp_path / f"scan-{n}.png"
        samples.scan_image(p, dpi=200 + 10 * n, mode="RGB", fmt="PNG")
        code, doc = e.json("ingest", str(p), "--profile", profile, "--date", jst_today_minus(1))
        assert code == 0, doc
    time.sleep(SHORT + 1)
    code, done = e.json("purge", "--yes")
    assert code == 0, done
    return e, done


def _openssl_accepts(e: Edoc, cert: Path, seal: Path, token: Path) -> None:
    keys = e.archive / "keys"
    ts = subprocess.run(["openssl", "ts", "-verify", "-in", str(token), "-data", str(cert),
                         "-CAfile", str(keys / "root-ca.pem"), "-untrusted",
                         str(keys / "tsa.pem")], capture_output=True, text=True, check=False)
    assert ts.returncode == 0, ts.stderr
    cms = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                          str(seal), "-content", str(cert), "-CAfile", str(keys / "root-ca.pem"),
                          "-purpose", "any", "-out", "/dev/null"],
                         capture_output=True, text=True, check=False)
    assert cms.returncode == 0, cms.stderr


def test_list_shows_each_certificate(purged: tuple[Edoc, dict[str, object]]) -> None:
    e, done = purged
    (key,) = done["certificates"]  # type: ignore[misc]
    code, doc = e.json("certificate", "list")
    assert code == 0, doc
    (entry,) = doc["certificates"]
    body = json.loads((e.objects / key).read_bytes())
    assert entry["key"] == key
    assert entry["run_id"] == body["run_id"]
    assert entry["time"] == body["time_source_gen_time"]
    assert entry["records"] == 2 and entry["versions"] == body["count"] == 2
    assert entry["seal_stored"] is True and entry["timestamp_stored"] is True
    table = e("certificate", "list")
    assert table.exit_code == 0
    assert key in table.stdout and "2 record(s)" in table.stdout


def test_get_writes_certificate_seal_and_token_openssl_accepts(
        purged: tuple[Edoc, dict[str, object]], tmp_path: Path) -> None:
    e, done = purged
    (key,) = done["certificates"]  # type: ignore[misc]
    out = tmp_path / "out" / "cert.json"
    out.parent.mkdir()
    code, doc = e.json("certificate", "get", key, "-o", str(out))
    assert code == 0, doc
    seal, token = out.with_name("cert.json.p7s"), out.with_name("cert.json.tsr")
    assert doc["key"] == key and doc["seal"] == str(seal) and doc["timestamp"] == str(token)
    stored = e.objects / key
    assert out.read_bytes() == stored.read_bytes()
    assert doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert seal.read_bytes() == stored.with_suffix(".p7s").read_bytes()
    assert token.read_bytes() == stored.with_suffix(".tsr").read_bytes()
    _openssl_accepts(e, out, seal, token)
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "cert.json", "cert.json.p7s", "cert.json.tsr"]  # no temporary file left
    # Not overwritten without --force, whichever of the three exists.
    out.unlink()
    code, doc = e.json("certificate", "get", key, "-o", str(out))
    assert code == 1 and doc["error"]["code"] == "OUTPUT_EXISTS"
    assert not out.exists()
    code, doc = e.json("certificate", "get", key, "-o", str(out), "--force")
    assert code == 0, doc
    _openssl_accepts(e, out, seal, token)


def test_purge_prints_the_key_and_the_command_that_fetches_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDOC_POLICIES", str(short_profile(tmp_path / "policies", SHORT)))
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    p = tmp_path / "scan.png"
    samples.scan_image(p, dpi=300, mode="RGB", fmt="PNG")
    code, doc = e.json("ingest", str(p), "--profile", "test-short", "--date", jst_today_minus(1))
    assert code == 0, doc
    time.sleep(SHORT + 1)
    res = e("purge", "--yes")
    assert res.exit_code == 0, res.output
    (key_line,) = [ln for ln in res.stdout.splitlines() if ln.startswith("certificate: ")]
    key = key_line.removeprefix("certificate: ")
    assert key.startswith("disposals/") and (e.objects / key).is_file()
    (command_line,) = [ln for ln in res.stdout.splitlines() if "certificate get" in ln]
    argv = shlex.split(command_line.split(":", 1)[1])
    assert argv[:3] == ["edoc", "--archive", str(e.archive.resolve())]
    assert argv[3:6] == ["certificate", "get", key] and argv[6] == "-o"
    # The printed command works as printed (from the directory it names its output in).
    monkeypatch.chdir(tmp_path)
    code, got = e.json(*argv[3:])
    assert code == 0, got
    assert (tmp_path / argv[7]).read_bytes() == (e.objects / key).read_bytes()


@pytest.mark.parametrize("key", [
    "records/{rid}/v1/content",              # a record's content: never through this door
    "disposals/../records/{rid}/v1/content",
    "disposals/{run}.p7s",                   # the seal is fetched with the certificate
    "disposals/{run}.json/../../edoc.toml",
    "/etc/passwd",
    "../keys/seal.key",
    "disposals/{run_lower}.json",
    "disposals/{run}.json\n",
    "",
])
def test_a_key_that_is_not_a_certificate_key_is_refused(
        purged: tuple[Edoc, dict[str, object]], tmp_path: Path, key: str) -> None:
    e, done = purged
    (cert_key,) = done["certificates"]  # type: ignore[misc]
    run = cert_key.removeprefix("disposals/").removesuffix(".json")
    rid = e.json("search", "--include-deleted")[1]["records"][0]["record_id"]
    out = tmp_path / "x.json"
    code, doc = e.json("certificate", "get", key.format(rid=rid, run=run, run_lower=run.lower()),
                       "-o", str(out))
    assert code == 1 and doc["error"]["code"] == "NOT_A_CERTIFICATE_KEY", doc
    assert not list(tmp_path.glob("x.json*"))


def test_a_well_formed_key_of_no_certified_run_is_not_found(
        purged: tuple[Edoc, dict[str, object]], tmp_path: Path) -> None:
    e, _done = purged
    code, doc = e.json("certificate", "get", "disposals/" + "0" * 26 + ".json",
                       "-o", str(tmp_path / "x.json"))
    assert code == 1 and doc["error"]["code"] == "CERTIFICATE_NOT_FOUND"
    assert not (tmp_path / "x.json").exists()


def test_an_archive_without_purges_lists_none(tmp_path: Path) -> None:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    assert e.json("certificate", "list") == (0, {"ok": True, "certificates": []})
