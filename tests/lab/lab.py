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

The pebble build is the system one unless ``Lab(pebble=...)`` or ``$TLSOPS_LAB_PEBBLE``
names another: a version such as ``2.10`` (from the cache scripts/fetch-pebbles.sh
fills) or a path. The challtestsrv of the same build runs beside it.

CLI::

    python -m tests.lab.lab start --dir .lab/demo [--pebble 2.10] [--nonce-reject 0] [--point a.example=10.231.0.11] ...
    python -m tests.lab.lab stop --dir .lab/demo
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.lab.faultproxy import FaultProxy

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
    # The stateless ACME rule (docs/roles.md): only well-formed tokens get an answer.
    acl acme_token path_reg ^/\\.well-known/acme-challenge/[A-Za-z0-9_-]+$
    http-request return status 200 content-type text/plain lf-string "%[path,field(-1,/)].${{ACCOUNT_THUMBPRINT}}\\n" if acme_token
    http-request return status 404 content-type text/plain string "not found\\n"

frontend https
    bind {bind}:{https_port} ssl crt {cert_dir}/ strict-sni alpn h2,http/1.1
    http-request return status 200 content-type text/plain string "ok\\n"
"""


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports: every socket stays bound until all are picked.

    Picked one at a time, two ports of one lab could be the same one (the kernel may hand
    a port it just got back again); HAProxy binds with SO_REUSEPORT, so two of its
    frontends on one port would both start and share the connections at random."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


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
        # Python 3.13's default context checks X.509 strictly (VERIFY_X509_STRICT): a CA
        # needs key usage and a subject key identifier, a leaf its authority key identifier.
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
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
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
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


# ------------------------------------------------------------- pebble builds

PEBBLE_ENV = "TLSOPS_LAB_PEBBLE"
PEBBLES_CACHE = Path(os.environ.get("TLSOPS_PEBBLES_CACHE", "/var/cache/tlsops-haproxy-acme/pebbles"))
BUILD_STAMP = "pebble-build.json"  # written by scripts/fetch-pebbles.sh


@dataclass(frozen=True)
class PebbleBuild:
    """One pebble and the pebble-challtestsrv of the same build."""

    pebble: str
    challtestsrv: str
    version: tuple[int, ...]  # upstream version, (0,) when unknown
    release: str  # the Debian package version, or what the build says of itself
    challtestsrv_flags: frozenset[str] = frozenset()

    @property
    def dns_flag(self) -> str:
        """challtestsrv's DNS listener flag: ``-dns01`` until 2.9, ``-dnsserver`` from 2.10."""
        return "-dnsserver" if "dnsserver" in self.challtestsrv_flags else "-dns01"


def parse_version(text: str) -> tuple[int, ...]:
    """``2.10.0+ds1-2`` or ``1:2.6.0-1`` -> (2, 10, 0); (0,) when there is no version."""
    match = re.match(r"(?:\d+:)?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(part) for part in match.group(1).split(".")) if match else (0,)


def _stamp_of(binary: Path) -> dict[str, t.Any]:
    """pebble-build.json of a fetched build (``<build>/usr/bin/pebble``), if any."""
    for parent in list(binary.parents)[:3]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads((parent / BUILD_STAMP).read_text()))
    return {}


def _dpkg_version(binary: Path) -> str:
    """The version of the installed Debian package that owns ``binary``, or ''."""
    with contextlib.suppress(OSError):
        owner = subprocess.run(["dpkg-query", "-S", str(binary)], capture_output=True, text=True, check=False)
        if owner.returncode == 0 and ":" in owner.stdout:
            package = owner.stdout.split(":", 1)[0].strip()
            version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                                     capture_output=True, text=True, check=False)
            if version.returncode == 0:
                return version.stdout.strip()
    return ""


@functools.lru_cache(maxsize=None)
def _describe(pebble: str, challtestsrv: str) -> PebbleBuild:
    release = str(_stamp_of(Path(pebble)).get("package_version") or "")
    if not release:
        # Debian's builds say "dev" here; upstream release binaries say their version.
        out = subprocess.run([pebble, "-version"], capture_output=True, text=True, check=False, timeout=10)
        said = re.search(r"version:?\s*v?(\d+\.\d+\S*)", out.stdout, re.IGNORECASE)
        release = said.group(1) if said else _dpkg_version(Path(pebble))
    usage = subprocess.run([challtestsrv, "-h"], capture_output=True, text=True, check=False, timeout=10)
    flags = frozenset(re.findall(r"^\s+-([A-Za-z0-9_-]+)", usage.stdout + usage.stderr, re.MULTILINE))
    if not flags:
        raise RuntimeError(f"{challtestsrv} -h printed no flags:\n{usage.stdout}{usage.stderr}")
    return PebbleBuild(pebble, challtestsrv, parse_version(release), release or "unknown", flags)


def _build_in(directory: Path) -> PebbleBuild | None:
    for bindir in (directory / "usr" / "bin", directory / "bin", directory):
        pebble, challtestsrv = bindir / "pebble", bindir / "pebble-challtestsrv"
        if pebble.is_file() and challtestsrv.is_file():
            return _describe(str(pebble), str(challtestsrv))
    return None


def system_pebble() -> PebbleBuild:
    pebble, challtestsrv = shutil.which("pebble"), shutil.which("pebble-challtestsrv")
    if not pebble or not challtestsrv:
        raise RuntimeError("pebble and pebble-challtestsrv are not on PATH (scripts/bootstrap.sh installs them)")
    return _describe(pebble, challtestsrv)


def find_pebble(spec: str | os.PathLike[str] | None = None) -> PebbleBuild:
    """The pebble build to run.

    ``spec``: ``None`` (then ``$TLSOPS_LAB_PEBBLE``, then the system pebble), ``"system"``,
    a version or series such as ``"2.10"`` (the highest build of it in the cache that
    scripts/fetch-pebbles.sh fills, or the system pebble when that is the one), or a path:
    a build directory (``usr/bin/``, ``bin/`` or the binaries themselves) or the pebble
    binary, with pebble-challtestsrv beside it.
    """
    if spec is None:
        spec = os.environ.get(PEBBLE_ENV, "")
    text = os.fspath(spec).strip()
    if text in ("", "system"):
        return system_pebble()
    path = Path(text).expanduser()
    if path.is_file():
        challtestsrv = path.parent / "pebble-challtestsrv"
        if not challtestsrv.is_file():
            raise RuntimeError(f"no pebble-challtestsrv beside {path}")
        return _describe(str(path), str(challtestsrv))
    if path.is_dir():
        build = _build_in(path)
        if build is None:
            raise RuntimeError(f"no pebble and pebble-challtestsrv in {path} (nor in its usr/bin/ or bin/)")
        return build
    if re.fullmatch(r"\d+(\.\d+)*", text):
        want = parse_version(text)
        found = []
        for candidate in PEBBLES_CACHE.glob("*") if PEBBLES_CACHE.is_dir() else []:
            build = _build_in(candidate)
            if build is not None and build.version[: len(want)] == want:
                found.append(build)
        with contextlib.suppress(RuntimeError):
            system = system_pebble()
            if system.version[: len(want)] == want:
                found.append(system)
        if found:
            return max(found, key=lambda build: build.version)
        raise RuntimeError(
            f"no pebble {text} in {PEBBLES_CACHE} nor on PATH: run scripts/fetch-pebbles.sh "
            f"(it fetches Debian trixie's 2.6 and sid's 2.10)"
        )
    raise RuntimeError(f"{PEBBLE_ENV} / pebble={text!r}: neither 'system', a version such as 2.10, nor a path")


# ------------------------------------------------------------------- lab


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
    # The pebble build and what its directory offers (read from the running CA).
    pebble_version: tuple[int, ...] = (0,)
    pebble_release: str = "unknown"
    pebble_bin: str = "pebble"
    challtestsrv_bin: str = "pebble-challtestsrv"
    acme_ari: bool = False
    acme_profiles: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def supports_ari(self) -> bool:
        """The directory names ``renewalInfo`` (pebble 2.6+), and orders take ``replaces``."""
        return self.acme_ari

    @property
    def supports_profiles(self) -> bool:
        """The directory's ``meta.profiles`` lists profiles (pebble 2.7+)."""
        return bool(self.acme_profiles)

    @property
    def supports_set_renewal_info(self) -> bool:
        """pebble's management API has ``POST /set-renewal-info/`` (2.8+)."""
        return self.acme_ari and self.pebble_version >= (2, 8)

    def extra_vars(self) -> dict[str, t.Any]:
        data = asdict(self)
        data.pop("pids")
        # A string, for Ansible's version test: pebble_version is version('2.10', '>=')
        data["pebble_version"] = ".".join(str(part) for part in self.pebble_version)
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
        profiles: dict[str, int] | None = None,
        pebble: str | os.PathLike[str] | None = None,
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
        self.profiles = dict(profiles or {})
        self.build = find_pebble(pebble)
        self.listen = listen
        self.dns_answer = dns_answer
        self.validation_port = validation_port
        self.with_haproxy = haproxy
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.info: LabInfo | None = None
        self.proxies: list[FaultProxy] = []
        self._pebble_command: tuple[list[str], dict[str, str]] | None = None
        self._tls_port = 0

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
        acme_port, mgmt_port, dns_port, dns_mgmt_port, http_port, https_port, self._tls_port = free_ports(7)
        http_port = self.validation_port or http_port
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
            pebble_version=self.build.version,
            pebble_release=self.build.release,
            pebble_bin=self.build.pebble,
            challtestsrv_bin=self.build.challtestsrv,
        )
        try:
            self._start_challtestsrv(dns_port, dns_mgmt_port)
            self._start_pebble(acme_port, mgmt_port, http_port, dns_port, cert_path, key_path)
            self._read_directory()
            self._fetch_root()
            if self.with_haproxy:
                self.start_haproxy()
        except BaseException:
            self.stop()
            raise
        self._save()
        return self.info

    def stop(self) -> None:
        while self.proxies:
            self.proxies.pop().stop()
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
        argv = [
            self.build.challtestsrv,
            "-defaultIPv4", self.dns_answer,
            "-defaultIPv6", "",
            self.build.dns_flag, f"127.0.0.1:{dns_port}",
            "-management", f"127.0.0.1:{mgmt_port}",
            "-http01", "",
            "-https01", "",
            "-tlsalpn01", "",
        ]
        if "doh" in self.build.challtestsrv_flags:
            argv += ["-doh", ""]  # 2.5+ would listen on :8443 for DNS over HTTPS
        self._spawn("challtestsrv", argv)
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
            "tlsPort": self._tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(self.eab_keys),
        }
        if self.eab_keys:
            config["externalAccountMACKeys"] = self.eab_keys
        if self.validity_seconds:
            config["certificateValidityPeriod"] = self.validity_seconds  # until 2.9
        if self.profiles or self.validity_seconds:
            config["profiles"] = self.profile_config()  # 2.7+; unknown keys are ignored before
        (self.dir / "pebble.json").write_text(json.dumps({"pebble": config}, indent=2))
        env = {
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": str(self.nonce_reject),
            "PEBBLE_AUTHZREUSE": str(self.authz_reuse),
        }
        if self.chain_length is not None:
            env["PEBBLE_CHAIN_LENGTH"] = str(self.chain_length)
        argv = [self.build.pebble, "-config", str(self.dir / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns_port}"]
        self._pebble_command = (argv, env)
        self._spawn("pebble", argv, env)
        assert self.info is not None
        _wait_https(self.info.acme_directory, self.info.acme_ca_path, self.procs["pebble"])

    def stop_pebble(self) -> None:
        """Stop pebble alone, as a CA outage: its port refuses connections until :meth:`start_pebble`."""
        proc = self.procs.pop("pebble", None)
        if proc is not None:
            _terminate(proc.pid)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start_pebble(self) -> None:
        """Start pebble again, same configuration and ports. It keeps nothing across a restart:
        accounts and orders start afresh, and it issues from a new root (``pebble_root_path``)."""
        assert self.info is not None and self._pebble_command is not None
        argv, env = self._pebble_command
        self._spawn("pebble", argv, env)
        _wait_https(self.info.acme_directory, self.info.acme_ca_path, self.procs["pebble"])
        self._fetch_root()
        self._save()

    def fault_proxy(self, **faults: t.Any) -> FaultProxy:
        """A started fault proxy (tests/lab/faultproxy.py) in front of pebble, stopped with the lab.

        ``proxy.directory`` is pebble's directory through it; ``acme_ca_path`` verifies it too.
        """
        assert self.info is not None
        proxy = FaultProxy(self.info.acme_directory, self.dir / "listener.pem", self.dir / "listener.key",
                           self.info.acme_ca_path, listen=self.listen,
                           directory_path=urllib.parse.urlsplit(self.info.acme_directory).path, **faults)
        self.proxies.append(proxy.start())
        return proxy

    def profile_config(self) -> dict[str, dict[str, t.Any]]:
        """pebble's ``profiles``: each named profile with its validity (a profile given 0,
        and the lone ``default`` when none is named, get ``validity_seconds``; pebble's own
        default is 90 days)."""
        names = self.profiles or {"default": 0}
        return {
            name: {
                "description": f"lab profile {name}",
                "validityPeriod": int(seconds or self.validity_seconds or 0),
            }
            for name, seconds in names.items()
        }

    def _read_directory(self) -> None:
        assert self.info is not None
        ctx = ssl.create_default_context(cafile=self.info.acme_ca_path)
        with urllib.request.urlopen(self.info.acme_directory, context=ctx, timeout=10) as resp:
            directory = json.load(resp)
        self.info.acme_ari = "renewalInfo" in directory
        profiles = (directory.get("meta") or {}).get("profiles") or {}
        self.info.acme_profiles = {str(name): str(text) for name, text in profiles.items()}
        if self.profiles and set(self.info.acme_profiles) != set(self.profiles):
            raise RuntimeError(
                f"pebble {self.info.pebble_release} offers profiles {sorted(self.info.acme_profiles)}, "
                f"not {sorted(self.profiles)} (profiles need pebble 2.7+; see lab.supports_profiles)"
            )

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

    @property
    def pebble_version(self) -> tuple[int, ...]:
        return self.build.version

    @property
    def supports_ari(self) -> bool:
        assert self.info is not None
        return self.info.supports_ari

    @property
    def supports_profiles(self) -> bool:
        assert self.info is not None
        return self.info.supports_profiles

    def set_renewal_info(
        self, cert_pem: str, start: dt.datetime, end: dt.datetime, explanation_url: str | None = None
    ) -> None:
        """Make pebble's renewalInfo answer this window for the certificate (pebble 2.8+).

        ``cert_pem`` may be a whole bundle: its first certificate is the one meant. Naive
        datetimes are taken as UTC. pebble answers the override for every later GET.
        """
        assert self.info is not None
        if not self.info.supports_set_renewal_info:
            raise RuntimeError(
                f"pebble {self.info.pebble_release} has no POST /set-renewal-info/ (ARI overrides need 2.8+)"
            )
        match = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", cert_pem, re.DOTALL)
        if match is None:
            raise ValueError("no PEM certificate in cert_pem")
        window = {"start": _rfc3339(start), "end": _rfc3339(end)}
        ari: dict[str, t.Any] = {"suggestedWindow": window}
        if explanation_url:
            ari["explanationURL"] = explanation_url
        body = json.dumps({"certificate": match.group(0) + "\n", "ariResponse": json.dumps(ari)}).encode()
        req = urllib.request.Request(
            f"{self.info.pebble_management}/set-renewal-info/", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )
        ctx = ssl.create_default_context(cafile=self.info.acme_ca_path)
        try:
            urllib.request.urlopen(req, context=ctx, timeout=10).read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"pebble refused set-renewal-info: {exc.code} {exc.read().decode(errors='replace')}") from exc


def _rfc3339(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


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
        pebble=args.pebble,
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
    start.add_argument("--pebble", help=f"pebble build: system, a version such as 2.10, or a path (default: ${PEBBLE_ENV})")
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
