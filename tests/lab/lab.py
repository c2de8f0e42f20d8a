# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The test lab: a real pebble, pebble-challtestsrv and HAProxy on loopback.

Used by the integration tests, the benchmarks and ``make demo``. Everything lives
in one directory and on free loopback ports, so several labs can run at once.

* pebble-challtestsrv answers DNS for every name with 127.0.0.1 (or the address
  given), its own HTTP responders switched off;
* pebble validates HTTP-01 for real against HAProxy's HTTP port (its ``httpPort``);
* HAProxy answers the challenge statelessly from ``setenv ACCOUNT_THUMBPRINT`` and
  serves certificates from ``<dir>/certs/`` with ``strict-sni``.

Validation is never switched off.

CLI::

    python -m tests.lab.lab start --dir .lab/demo [--nonce-reject 0] [--point a.example=10.231.0.11] ...
    python -m tests.lab.lab stop --dir .lab/demo
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import typing as t
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HAPROXY_CFG = """\
global
    log stderr format short local0 notice
    stats socket {socket} level admin mode 660
    stats timeout 30s
    pidfile {pidfile}
    setenv ACCOUNT_THUMBPRINT '{thumbprint}'
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s

frontend http
    bind {bind}:{http_port}
    # The stateless ACME rule (DESIGN.md): only well-formed tokens get an answer.
    acl acme_token path_reg ^/\\.well-known/acme-challenge/[A-Za-z0-9_-]+$
    http-request return status 200 content-type text/plain lf-string "%[path,field(-1,/)].${{ACCOUNT_THUMBPRINT}}\\n" if acme_token
    http-request return status 404 content-type text/plain string "not found\\n"

frontend https
    bind {bind}:{https_port} ssl crt {cert_dir}/ strict-sni alpn h2,http/1.1
    http-request return status 200 content-type text/plain string "ok\\n"
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ec_thumbprint(key: ec.EllipticCurvePrivateKey) -> str:
    """RFC 7638 thumbprint, written here independently of the collection's code."""
    numbers = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    crv = {256: "P-256", 384: "P-384"}[key.curve.key_size]
    jwk = (
        f'{{"crv":"{crv}","kty":"EC","x":"{b64url(numbers.x.to_bytes(size, "big"))}",'
        f'"y":"{b64url(numbers.y.to_bytes(size, "big"))}"}}'
    )
    return b64url(hashlib.sha256(jwk.encode()).digest())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_listener_certs(directory: Path, addresses: t.Sequence[str]) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for pebble's HTTPS listener."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("tlsops lab listener CA"))
        .issuer_name(_name("tlsops lab listener CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "listener-ca.pem", directory / "listener.pem", directory / "listener.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(key_path, 0o600)
    return ca_path, cert_path, key_path


@dataclass
class LabInfo:
    """What a test or a playbook needs to know about a running lab (lab.json)."""

    dir: str
    acme_directory: str
    acme_ca_path: str
    pebble_management: str
    pebble_root_path: str
    challtestsrv_management: str
    dns_port: int
    lab_account_key_path: str
    lab_thumbprint: str
    lab_cert_dir: str
    lab_socket: str
    lab_http_port: int
    lab_https_port: int
    lab_haproxy_pid_file: str
    lab_haproxy_cfg: str
    pids: dict[str, int] = field(default_factory=dict)

    def extra_vars(self) -> dict[str, t.Any]:
        data = asdict(self)
        data.pop("pids")
        return data


class Lab:
    """Start, use and stop one lab. Use as a context manager or via the CLI."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        nonce_reject: int = 0,
        authz_reuse: int = 0,
        chain_length: int | None = None,
        eab_keys: dict[str, str] | None = None,
        validity_seconds: int | None = None,
        listen: str = "127.0.0.1",
        dns_answer: str = "127.0.0.1",
        validation_port: int | None = None,
        haproxy: bool = True,
    ) -> None:
        self.dir = Path(directory).resolve()
        self.nonce_reject = nonce_reject
        self.authz_reuse = authz_reuse
        self.chain_length = chain_length
        self.eab_keys = eab_keys or {}
        self.validity_seconds = validity_seconds
        self.listen = listen
        self.dns_answer = dns_answer
        self.validation_port = validation_port
        self.with_haproxy = haproxy
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.info: LabInfo | None = None

    # ----------------------------------------------------------- lifecycle

    def __enter__(self) -> LabInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LabInfo:
        self.dir.mkdir(parents=True, exist_ok=True)
        cert_dir = self.dir / "certs"
        cert_dir.mkdir(exist_ok=True)
        ca_path, cert_path, key_path = make_listener_certs(self.dir, sorted({"127.0.0.1", self.listen}))
        acme_port, mgmt_port = free_port(), free_port()
        dns_port, dns_mgmt_port = free_port(), free_port()
        http_port = self.validation_port or free_port()
        https_port = free_port()
        account_key = ec.generate_private_key(ec.SECP256R1())
        account_key_path = self.dir / "account.key"
        account_key_path.write_bytes(
            account_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        os.chmod(account_key_path, 0o600)
        host = self.listen
        self.info = LabInfo(
            dir=str(self.dir),
            acme_directory=f"https://{host}:{acme_port}/dir",
            acme_ca_path=str(ca_path),
            pebble_management=f"https://{host}:{mgmt_port}",
            pebble_root_path=str(self.dir / "pebble-root.pem"),
            challtestsrv_management=f"http://127.0.0.1:{dns_mgmt_port}",
            dns_port=dns_port,
            lab_account_key_path=str(account_key_path),
            lab_thumbprint=ec_thumbprint(account_key),
            lab_cert_dir=str(cert_dir),
            lab_socket=str(self.dir / "admin.sock"),
            lab_http_port=http_port,
            lab_https_port=https_port,
            lab_haproxy_pid_file=str(self.dir / "haproxy.pid"),
            lab_haproxy_cfg=str(self.dir / "haproxy.cfg"),
        )
        try:
            self._start_challtestsrv(dns_port, dns_mgmt_port)
            self._start_pebble(acme_port, mgmt_port, http_port, dns_port, cert_path, key_path)
            self._fetch_root()
            if self.with_haproxy:
                self.start_haproxy()
        except BaseException:
            self.stop()
            raise
        self._save()
        return self.info

    def stop(self) -> None:
        for name in ("haproxy", "pebble", "challtestsrv"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                _terminate(proc.pid)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    # ------------------------------------------------------------- pieces

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        assert self.info is not None
        self.info.pids[name] = proc.pid

    def _start_challtestsrv(self, dns_port: int, mgmt_port: int) -> None:
        self._spawn(
            "challtestsrv",
            [
                "pebble-challtestsrv",
                "-defaultIPv4", self.dns_answer,
                "-defaultIPv6", "",
                "-dns01", f"127.0.0.1:{dns_port}",
                "-management", f"127.0.0.1:{mgmt_port}",
                "-http01", "",
                "-https01", "",
                "-tlsalpn01", "",
            ],
        )
        _wait_tcp("127.0.0.1", mgmt_port, "pebble-challtestsrv", self.procs["challtestsrv"])

    def _start_pebble(
        self, acme_port: int, mgmt_port: int, http_port: int, dns_port: int, cert: Path, key: Path
    ) -> None:
        config: dict[str, t.Any] = {
            "listenAddress": f"{self.listen}:{acme_port}",
            "managementListenAddress": f"{self.listen}:{mgmt_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(self.eab_keys),
        }
        if self.eab_keys:
            config["externalAccountMACKeys"] = self.eab_keys
        if self.validity_seconds:
            config["certificateValidityPeriod"] = self.validity_seconds
        (self.dir / "pebble.json").write_text(json.dumps({"pebble": config}, indent=2))
        env = {
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": str(self.nonce_reject),
            "PEBBLE_AUTHZREUSE": str(self.authz_reuse),
        }
        if self.chain_length is not None:
            env["PEBBLE_CHAIN_LENGTH"] = str(self.chain_length)
        self._spawn(
            "pebble",
            ["pebble", "-config", str(self.dir / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns_port}"],
            env,
        )
        assert self.info is not None
        _wait_https(self.info.acme_directory, self.info.acme_ca_path, self.procs["pebble"])

    def _fetch_root(self) -> None:
        assert self.info is not None
        ctx = ssl.create_default_context(cafile=self.info.acme_ca_path)
        with urllib.request.urlopen(f"{self.info.pebble_management}/roots/0", context=ctx, timeout=10) as resp:
            Path(self.info.pebble_root_path).write_bytes(resp.read())

    def haproxy_config(self, thumbprint: str | None = None) -> str:
        assert self.info is not None
        return HAPROXY_CFG.format(
            socket=self.info.lab_socket,
            pidfile=self.info.lab_haproxy_pid_file,
            thumbprint=thumbprint or self.info.lab_thumbprint,
            bind=self.listen,
            http_port=self.info.lab_http_port,
            https_port=self.info.lab_https_port,
            cert_dir=self.info.lab_cert_dir,
        )

    def start_haproxy(self, thumbprint: str | None = None) -> int:
        """(Re)start HAProxy from scratch; returns its PID. Lab set-up only, never a cert deploy."""
        assert self.info is not None
        old = self.procs.pop("haproxy", None)
        if old is not None:
            _terminate(old.pid)
            old.wait(timeout=10)
        if thumbprint:
            self.info.lab_thumbprint = thumbprint
        cfg = Path(self.info.lab_haproxy_cfg)
        cfg.write_text(self.haproxy_config())
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c failed:\n{check.stdout}{check.stderr}")
        self._spawn("haproxy", ["haproxy", "-db", "-f", str(cfg)])
        _wait_tcp(self.listen, self.info.lab_http_port, "haproxy", self.procs["haproxy"])
        deadline = time.monotonic() + 10
        while not os.path.exists(self.info.lab_socket) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._save()
        return self.procs["haproxy"].pid

    def haproxy_pid(self) -> int:
        return self.procs["haproxy"].pid

    def _save(self) -> None:
        assert self.info is not None
        (self.dir / "lab.json").write_text(json.dumps(asdict(self.info), indent=2))

    # ------------------------------------------------------------ helpers

    def point_dns(self, host: str, address: str) -> None:
        """Make challtestsrv answer ``address`` for ``host`` (A record)."""
        assert self.info is not None
        body = json.dumps({"host": host, "addresses": [address]}).encode()
        req = urllib.request.Request(f"{self.info.challtestsrv_management}/add-a", data=body, method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def pebble_log(self) -> str:
        return (self.dir / "pebble.log").read_text(errors="replace")


def count_orders(pebble_log: str) -> int:
    """Orders pebble created, counted from its own log (not from our client)."""
    return sum(1 for line in pebble_log.splitlines() if 'Added order "' in line)


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _wait_tcp(host: str, port: int, what: str, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see its log in the lab directory")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout} s")


def _wait_https(url: str, cafile: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    ctx = ssl.create_default_context(cafile=cafile)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pebble exited with {proc.returncode}; see pebble.log in the lab directory")
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=1) as resp:
                json.load(resp)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"pebble did not answer {url} within {timeout} s")


# ------------------------------------------------------------------ CLI


def _cli_start(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if (directory / "lab.json").exists():
        _cli_stop(args)
    if directory.exists() and args.clean:
        shutil.rmtree(directory)
    lab = Lab(
        directory,
        nonce_reject=args.nonce_reject,
        authz_reuse=args.authz_reuse,
        chain_length=args.chain_length,
        listen=args.listen,
        dns_answer=args.dns_answer,
        validation_port=args.validation_port,
        haproxy=not args.no_haproxy,
    )
    info = lab.start()
    for point in args.point:
        host, _, address = point.partition("=")
        if not host or not address:
            lab.stop()
            raise SystemExit(f"--point takes HOST=IP, got {point!r}")
        lab.point_dns(host, address)
    # The processes outlive this command (own sessions); `stop` ends them by PID.
    print(json.dumps(info.extra_vars(), indent=2) if args.json else f"lab started in {info.dir}")
    return 0


def _cli_stop(args: argparse.Namespace) -> int:
    path = Path(args.dir) / "lab.json"
    if not path.exists():
        return 0
    pids = json.loads(path.read_text()).get("pids", {})
    for pid in pids.values():
        _terminate(int(pid))
    deadline = time.monotonic() + 10
    for pid in pids.values():
        while time.monotonic() < deadline:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    path.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.lab.lab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start")
    start.add_argument("--dir", required=True)
    start.add_argument("--nonce-reject", type=int, default=0)
    start.add_argument("--authz-reuse", type=int, default=0)
    start.add_argument("--chain-length", type=int)
    start.add_argument("--listen", default="127.0.0.1")
    start.add_argument("--dns-answer", default="127.0.0.1")
    start.add_argument("--validation-port", type=int)
    start.add_argument("--no-haproxy", action="store_true")
    start.add_argument("--point", action="append", default=[], metavar="HOST=IP",
                       help="answer IP for HOST in challtestsrv's DNS (repeatable; others get --dns-answer)")
    start.add_argument("--clean", action="store_true", help="remove the directory first")
    start.add_argument("--json", action="store_true", help="print lab.json's variables")
    start.set_defaults(func=_cli_start)
    stop = sub.add_parser("stop")
    stop.add_argument("--dir", required=True)
    stop.set_defaults(func=_cli_stop)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
