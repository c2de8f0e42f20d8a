# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""IP address certificates (RFC 8738) served to clients that send no SNI.

The haproxy role renders the configuration (its binds per address, placeholders for
certificates not issued yet); a real HAProxy runs it in the lab; pebble validates
127.0.0.1 for real over HTTP-01 (it connects to the address itself, RFC 8738 section
4); a TLS client connects by address without SNI (RFC 6066 section 3) and must get
the certificate the file holds - before and after a forced renewal hot-loaded over
the Runtime API, with the same HAProxy process throughout.

Nothing here depends on the pebble build: not the CN (pebble 2.4 copies the address
into it, later builds leave it out), not the validity, not the chain.
"""

from __future__ import annotations

import grp
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.haproxy_runtime_helpers import haproxy_pid, same_hex, served_serial
from tests.integration.test_acme_modules import acme_args, run_module, verify_chain
from tests.lab.lab import Lab
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, serial_of

ROOT = Path(__file__).resolve().parents[2]
PLAY = """\
- name: The haproxy role on this host, with test paths
  hosts: localhost
  connection: local
  gather_facts: true
  gather_subset: ["!all", "network"]
  roles:
    - role: tlsops.haproxy_acme.haproxy
"""
THUMBPRINT = "t" * 43
PLACEHOLDER = "placeholder.invalid"


# ------------------------------------------------------------------ helpers


def role_vars(base: Path, **extra: t.Any) -> dict[str, t.Any]:
    """The role's variables for a HAProxy that lives in ``base``; no package, no service."""
    (base / "chroot").mkdir(parents=True, exist_ok=True)
    return {
        "haproxy_acme_thumbprint": THUMBPRINT,
        "haproxy_manage_package": False,
        "haproxy_manage_service": False,
        "haproxy_config_path": str(base / "haproxy.cfg"),
        "haproxy_cert_dir": str(base / "certs"),
        "haproxy_maps_dir": str(base / "maps"),
        "haproxy_chroot": str(base / "chroot"),
        "haproxy_stats_socket": str(base / "admin.sock"),
        "haproxy_log": ["stderr format short local0 notice"],
        "haproxy_http_port": 18080,
        "haproxy_https_port": 18443,
        "ansible_python_interpreter": sys.executable,
        **extra,
    }


def run_role(base: Path, variables: dict[str, t.Any]) -> subprocess.CompletedProcess[str]:
    """ansible-playbook with the role on localhost; its output, whatever the outcome."""
    play, extra = base / "play.yml", base / f"vars-{time.monotonic_ns()}.json"
    play.write_text(PLAY)
    extra.write_text(json.dumps(variables))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "false"}
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(play),
                           "-e", f"@{extra}"], capture_output=True, text=True, env=env, timeout=300, check=False)


def changed(run: subprocess.CompletedProcess[str]) -> int:
    recap = run.stdout.rsplit("PLAY RECAP", 1)[-1]
    return int(recap.split("changed=", 1)[1].split()[0])


def no_sni_certificate(port: int, host: str = "127.0.0.1") -> x509.Certificate | None:
    """What a client of https://<host>/ gets: Python's ssl sends no SNI with server_hostname=None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=None) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return x509.load_der_x509_certificate(der) if der else None


def file_serial(path: str) -> str:
    return format(x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number, "X")


def ip_sans(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(a) for a in san.get_values_for_type(x509.IPAddress)]


class RoleLab(Lab):
    """The lab with the haproxy role's own configuration: strict-sni on every address, and
    127.0.0.1 bound on its own with the certificate ``127.0.0.1`` as default."""

    def haproxy_config(self, thumbprint: str | None = None) -> str:
        assert self.info is not None
        base = self.dir / "role"
        run = run_role(base, role_vars(
            base,
            haproxy_acme_thumbprint=thumbprint or self.info.lab_thumbprint,
            haproxy_cert_dir=self.info.lab_cert_dir,
            haproxy_stats_socket=self.info.lab_socket,
            haproxy_http_port=self.info.lab_http_port,
            haproxy_https_port=self.info.lab_https_port,
            haproxy_ip_certificates=[{"address": "127.0.0.1"}],
        ))
        assert run.returncode == 0, run.stdout + run.stderr
        return (base / "haproxy.cfg").read_text()


# ------------------------------------------------------------------ the role


def test_role_binds_each_address_and_writes_placeholders(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    real = bundle(["kept.example"])
    (certs / "127.0.0.2.pem").write_bytes(real)  # already issued: never touched
    ips = [{"address": "127.0.0.1"}, {"address": "[::1]", "name": "loopback6"},
           {"address": "127.0.0.3", "name": "127.0.0.1"}, {"address": "127.0.0.2"}]
    variables = role_vars(tmp_path, haproxy_ip_certificates=ips)
    first = run_role(tmp_path, variables)
    assert first.returncode == 0, first.stdout + first.stderr

    config = (tmp_path / "haproxy.cfg").read_text()
    binds = [line.strip() for line in config.splitlines() if line.strip().startswith("bind ")]
    assert binds == [
        "bind :18080",
        "bind 127.0.0.1:18080", "bind ::1:18080", "bind 127.0.0.3:18080", "bind 127.0.0.2:18080",
        f"bind :18443 ssl crt {certs}/ strict-sni alpn h2,http/1.1",
        f"bind 127.0.0.1:18443 ssl crt {certs}/127.0.0.1.pem crt {certs}/ alpn h2,http/1.1",
        f"bind ::1:18443 ssl crt {certs}/loopback6.pem crt {certs}/ alpn h2,http/1.1",
        f"bind 127.0.0.3:18443 ssl crt {certs}/127.0.0.1.pem crt {certs}/ alpn h2,http/1.1",
        f"bind 127.0.0.2:18443 ssl crt {certs}/127.0.0.2.pem crt {certs}/ alpn h2,http/1.1",
    ]
    assert (certs / "127.0.0.2.pem").read_bytes() == real
    haproxy_gid = grp.getgrnam("haproxy").gr_gid
    for name in ("127.0.0.1", "loopback6"):
        path = certs / f"{name}.pem"
        st = path.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, haproxy_gid)
        data = path.read_bytes()
        assert b"PRIVATE KEY" in data
        cert = x509.load_pem_x509_certificate(data)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [PLACEHOLDER]
    assert sorted(p.name for p in certs.iterdir()) == ["127.0.0.1.pem", "127.0.0.2.pem", "loopback6.pem"]

    placeholder = (certs / "127.0.0.1.pem").read_bytes()
    again = run_role(tmp_path, variables)
    assert again.returncode == 0 and changed(again) == 0, again.stdout
    assert (certs / "127.0.0.1.pem").read_bytes() == placeholder


def test_role_without_ip_certificates_has_one_bind_per_frontend(tmp_path: Path) -> None:
    run = run_role(tmp_path, role_vars(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    config = (tmp_path / "haproxy.cfg").read_text()
    assert [line.strip() for line in config.splitlines() if line.strip().startswith("bind ")] == [
        "bind :18080", f"bind :18443 ssl crt {tmp_path}/certs/ strict-sni alpn h2,http/1.1"]
    assert "RFC 6066" not in config and list((tmp_path / "certs").iterdir()) == []


@pytest.mark.parametrize(("extra", "message"), [
    ({"haproxy_ip_certificates": [{"address": "0.0.0.0"}]}, "0.0.0.0 is not an IPv4 or IPv6 address of this host"),
    ({"haproxy_ip_certificates": [{"address": "::", "name": "any"}]}, "not a wildcard such as 0.0.0.0 or ::"),
    ({"haproxy_ip_certificates": [{"address": "fe80::1%lo", "name": "x"}]}, "no %zone"),
    ({"haproxy_ip_certificates": [{"address": "192.0.2.300"}]}, "192.0.2.300 is not an IPv4 or IPv6 address"),
    ({"haproxy_ip_certificates": [{"address": "::1"}]}, "An IPv6 address needs a name of its own"),
    ({"haproxy_ip_certificates": [{"address": "127.0.0.1", "name": "ip.pem"}]}, "without .pem"),
    ({"haproxy_ip_certificates": [{"address": "127.0.0.1"}, {"address": "127.0.0.1", "name": "b"}]},
     "each address once"),
    ({"haproxy_bind_address": "127.0.0.1", "haproxy_ip_certificates": [{"address": "127.0.0.1"}]},
     "and not haproxy_bind_address ('127.0.0.1') itself"),
    ({"haproxy_ip_certificates": [{"address": "198.51.100.7"}]}, "198.51.100.7 is not an address of localhost"),
    ({"haproxy_ip_certificates": [{"name": "x"}]}, "address"),
    ({"haproxy_ip_certificates": ["127.0.0.1"]}, "haproxy_ip_certificates"),
])
def test_role_refuses_what_cannot_work(tmp_path: Path, extra: dict[str, t.Any], message: str) -> None:
    run = run_role(tmp_path, role_vars(tmp_path, **extra))
    assert run.returncode != 0
    assert message in " ".join(run.stdout.split()), run.stdout
    assert not (tmp_path / "haproxy.cfg").exists()


def test_role_binds_an_address_the_host_lacks_with_transparent(tmp_path: Path) -> None:
    run = run_role(tmp_path, role_vars(tmp_path, haproxy_bind_params=["transparent"],
                                       haproxy_ip_certificates=[{"address": "198.51.100.7"}]))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"bind 198.51.100.7:18443 ssl crt {tmp_path}/certs/198.51.100.7.pem crt {tmp_path}/certs/ " \
           "alpn h2,http/1.1 transparent" in (tmp_path / "haproxy.cfg").read_text()


# ------------------------------------------------------------------ issued, served, renewed


@pytest.fixture
def role_lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Lab]:
    lab = RoleLab(tmp_path_factory.mktemp("iplab"))
    lab.start()
    yield lab
    lab.stop()


def deploy(lab: Lab, tmp_path: Path, path: str, domains: list[str]) -> dict[str, t.Any]:
    """Hot-load the file at ``path`` with haproxy_runtime_cert, checked by a handshake by address."""
    assert lab.info is not None
    result = run_module("haproxy_runtime_cert", {
        "socket": [lab.info.lab_socket], "path": path, "write_file": False, "expected_domains": domains,
        "verify_address": f"127.0.0.1:{lab.info.lab_https_port}", "timeout": 10}, tmp_path)
    assert not result.get("failed"), result
    return result


def test_ip_certificate_served_without_sni_then_renewed_without_reload(role_lab: Lab, tmp_path: Path) -> None:
    info = role_lab.info
    assert info is not None
    port, cert_dir = info.lab_https_port, Path(info.lab_cert_dir)
    path = str(cert_dir / "127.0.0.1.pem")
    pid = haproxy_pid(info.lab_socket)

    # Before the first order HAProxy runs on the role's placeholder, and serves it by address.
    first_seen = no_sni_certificate(port)
    assert first_seen is not None
    assert same_hex(format(first_seen.serial_number, "X"), file_serial(path))
    assert first_seen.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == [PLACEHOLDER]
    # strict-sni still holds on every other address (127.0.0.2 reaches the wildcard bind)
    assert no_sni_certificate(port, host="127.0.0.2") is None

    # The order: an "ip" identifier, validated by pebble on 127.0.0.1 itself.
    order = run_module("acme_stateless_order", acme_args(info, cert_dir, name="127.0.0.1", domains=["127.0.0.1"]),
                       tmp_path)
    assert order["action"] == "renewed" and order["reason"].startswith("the domains differ"), order
    assert order["domains"] == ["127.0.0.1"]
    verify_chain(info, Path(path))
    issued = x509.load_pem_x509_certificate(Path(path).read_bytes())
    assert ip_sans(issued) == ["127.0.0.1"]
    assert issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == []

    loaded = deploy(role_lab, tmp_path, path, ["127.0.0.1"])
    assert loaded["action"] == "updated" and loaded["verified"] is True, loaded
    served = no_sni_certificate(port)
    assert served is not None and same_hex(format(served.serial_number, "X"), file_serial(path))
    assert same_hex(format(served.serial_number, "X"), order["serial"])

    # A name's certificate, added at run time, is served by SNI on that address too.
    host = "named.example.net"
    named = run_module("acme_stateless_order", acme_args(info, cert_dir, name=host, domains=[host]), tmp_path)
    assert named["action"] == "issued", named
    run_module("haproxy_runtime_cert", {"socket": [info.lab_socket], "path": str(cert_dir / f"{host}.pem"),
                                        "write_file": False, "timeout": 10}, tmp_path)
    for address in ("127.0.0.1", "127.0.0.2"):
        assert same_hex(served_serial(port, host, host=address), named["serial"])
    assert same_hex(format(t.cast(x509.Certificate, no_sni_certificate(port)).serial_number, "X"), order["serial"])

    # A forced renewal, hot-loaded: the client by address sees the new serial, from the same process.
    renewed = run_module("acme_stateless_order", acme_args(info, cert_dir, name="127.0.0.1", domains=["127.0.0.1"],
                                                           force=True), tmp_path)
    assert renewed["action"] == "renewed", renewed
    assert not same_hex(renewed["serial"], order["serial"])
    assert same_hex(format(t.cast(x509.Certificate, no_sni_certificate(port)).serial_number, "X"), order["serial"])
    loaded = deploy(role_lab, tmp_path, path, ["127.0.0.1"])
    assert loaded["action"] == "updated" and loaded["verified"] is True, loaded
    served = no_sni_certificate(port)
    assert served is not None and same_hex(format(served.serial_number, "X"), renewed["serial"])
    assert same_hex(renewed["serial"], file_serial(path))
    assert haproxy_pid(info.lab_socket) == pid == role_lab.haproxy_pid()

    # The renewal rule reads the address back from the certificate: nothing due now.
    calm = run_module("acme_stateless_order", acme_args(info, cert_dir, name="127.0.0.1", domains=["127.0.0.1"],
                                                        use_ari=False), tmp_path)
    assert calm["action"] == "unchanged" and not calm["changed"], calm


def test_openssl_client_without_servername_gets_the_ip_certificate(role_lab: Lab, tmp_path: Path) -> None:
    """The same check with OpenSSL's own client, as an operator would run it."""
    info = role_lab.info
    assert info is not None
    path = str(Path(info.lab_cert_dir) / "127.0.0.1.pem")
    order = run_module("acme_stateless_order", acme_args(info, Path(info.lab_cert_dir), name="127.0.0.1",
                                                         domains=["127.0.0.1"]), tmp_path)
    assert not order.get("failed"), order
    deploy(role_lab, tmp_path, path, ["127.0.0.1"])
    shown = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{info.lab_https_port}", "-noservername"],
                           input="", capture_output=True, text=True, timeout=30, check=False)
    block = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", shown.stdout, re.DOTALL)
    assert block is not None, shown.stdout + shown.stderr
    cert = x509.load_pem_x509_certificate(block.group(0).encode())
    assert same_hex(format(cert.serial_number, "X"), serial_of(Path(path).read_bytes()))
    assert ip_sans(cert) == ["127.0.0.1"]
