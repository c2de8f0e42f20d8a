# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``make demo``: the main job, ``ansible-playbook tlsops.haproxy_acme.site``, on a fresh host.

1. boots a fresh Debian host with real systemd (a systemd-nspawn node on a private
   bridge, tests/lab/nodes);
2. starts a local ACME CA (pebble) whose DNS points the demo names at that host;
3. runs the ``site`` playbook against it, exactly as a user would with an inventory;
4. proves the result from outside: the host serves the issued certificate (TLS
   handshake with SNI, serial compared with the file), the renewal timer is
   scheduled, and a forced renewal by the timer's own service makes HAProxy serve a
   new serial while its PIDs stay the same (no reload, no restart).

``--keep`` leaves the host and the CA running (``--down`` stops them later).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509

from tests.lab.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".lab" / "demo"
NODES = [sys.executable, str(ROOT / "tests" / "lab" / "nodes" / "nodes.py")]
DOMAINS = ["demo.example", "www.demo.example"]


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, check=True, **kw)  # type: ignore[call-overload]


def run_streamed(argv: list[str], env: dict[str, str]) -> str:
    """Run a command, showing its output as it comes; its whole output. Fails on a non-zero exit."""
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv)
    return "".join(lines)


def node_exec(command: str) -> str:
    proc = subprocess.run([*NODES, "exec", "--state-dir", str(STATE / "nodes"), "demo1", "--", "sh", "-c", command],
                          text=True, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"on the node: {command}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def served(address: str, name: str, root_ca: str) -> x509.Certificate:
    """The certificate the host serves for ``name``, verified against pebble's root."""
    ctx = ssl.create_default_context(cafile=root_ca)
    ctx.check_hostname = True
    with socket.create_connection((address, 443), timeout=5) as sock, ctx.wrap_socket(sock, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def serial(cert: x509.Certificate) -> str:
    """Upper-case hex of even length, as openssl and HAProxy print it."""
    text = format(cert.serial_number, "X")
    return text if len(text) % 2 == 0 else "0" + text


def haproxy_pids() -> tuple[str, str]:
    """(systemd MainPID = the master, the worker's Pid from `show info`)."""
    main = node_exec("systemctl show --property MainPID --value haproxy")
    worker = node_exec(
        "python3 -c \"import socket;s=socket.socket(socket.AF_UNIX);s.connect('/run/haproxy/admin.sock');"
        "s.sendall(b'show info\\n');d=b''\nwhile True:\n b=s.recv(65536)\n if not b: break\n d+=b\n"
        "print([l.split(':',1)[1].strip() for l in d.decode().splitlines() if l.startswith('Pid:')][0])\""
    )
    return main, worker


def write_inventory(lab: Lab, address: str) -> Path:
    assert lab.info is not None
    group_vars = {
        "haproxy_acme_directory": lab.info.acme_directory,
        "haproxy_acme_ca_path": lab.info.acme_ca_path,
        "haproxy_acme_email": "ops@demo.example",
        "haproxy_acme_terms_agreed": True,
        "haproxy_acme_certificates": [{"name": "demo.example", "domains": DOMAINS}],
        "haproxy_sites": [{"name": "demo", "hosts": DOMAINS, "backend": "be_demo"}],
        "haproxy_backends": [{"name": "be_demo", "servers": [{"name": "app1", "address": "127.0.0.1:8080"}]}],
        # The demo CA's test DNS sends every name to this host; no real resolver needed.
        "haproxy_hsts": {"enabled": True, "max_age": 300, "include_subdomains": False},
    }
    path = STATE / "group_vars.yml"
    path.write_text(json.dumps({"all": {"children": {"haproxy": {"vars": group_vars}}}}, indent=2))
    return path


def down(lab: Lab | None = None) -> None:
    subprocess.run([*NODES, "down", "--state-dir", str(STATE / "nodes")], check=False, capture_output=True)
    if lab is not None:
        lab.stop()
    else:
        subprocess.run([sys.executable, "-m", "tests.lab.lab", "stop", "--dir", str(STATE / "ca")], check=False, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the host and the CA running")
    parser.add_argument("--down", action="store_true", help="stop what an earlier --keep left running")
    args = parser.parse_args()
    if args.down:
        down()
        return 0
    down()  # whatever an interrupted earlier demo left
    STATE.mkdir(parents=True, exist_ok=True)

    say("Building (or reusing) the Debian root filesystem of the demo host")
    sh([*NODES, "rootfs"])
    say("Booting a fresh host with real systemd (systemd-nspawn)")
    sh([*NODES, "up", "--name", "demo", "--hosts", "demo1", "--group", "haproxy", "--state-dir", str(STATE / "nodes")],
       stdout=subprocess.DEVNULL)
    nodes = json.loads((STATE / "nodes" / "nodes.json").read_text())
    address, host_address = nodes["nodes"][0]["address"], nodes["host_address"]
    print(f"host demo1 at {address}")

    say("Starting the local ACME CA (pebble); its DNS sends the demo names to the host")
    lab = Lab(STATE / "ca", listen=host_address, dns_answer=address, validation_port=80, haproxy=False)
    lab.start()
    try:
        assert lab.info is not None
        inventory = write_inventory(lab, address)
        env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
               "ANSIBLE_HOST_KEY_CHECKING": "false", "ANSIBLE_NOCOLOR": "1"}
        say("ansible-playbook -i inventory tlsops.haproxy_acme.site")
        started = time.monotonic()
        output = run_streamed([str(Path(sys.executable).parent / "ansible-playbook"),
                               "-i", str(STATE / "nodes" / "inventory.yml"), "-i", str(inventory),
                               "tlsops.haproxy_acme.site"], env)
        print(f"site took {time.monotonic() - started:.1f} s")

        say("Proof")
        cert = served(address, "www.demo.example", lab.info.pebble_root_path)
        on_disk = node_exec("openssl x509 -noout -serial -in /etc/haproxy/certs/demo.example.pem").split("=", 1)[1]
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        print(f"served for www.demo.example : serial {serial(cert)}, names {', '.join(names)}, "
              f"not after {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, issuer {cert.issuer.rfc4514_string()}")
        print(f"file on the host             : /etc/haproxy/certs/demo.example.pem, serial {on_disk}, "
              f"{node_exec('stat -c %a:%U:%G /etc/haproxy/certs/demo.example.pem')}")
        assert on_disk == serial(cert), "the served certificate is not the one on disk"
        print("timer                        : " + node_exec(
            "systemctl list-timers haproxy-acme-renew.timer --no-pager --no-legend | head -1"))
        pids_before = haproxy_pids()
        print(f"HAProxy PIDs (master, worker): {pids_before[0]}, {pids_before[1]}")
        # Role tasks print as "TASK [<role> : <name>]".
        banner = "Check that HAProxy was not restarted or reloaded for a certificate]"
        checked = banner in output and output.split(banner, 1)[1].split("\n\n", 1)[0].count("ok: [demo1]") == 1
        print("during site                  : " + ("HAProxy's worker PID was the same before the certificate was issued "
                                                   "and after it was loaded (the playbook's own check)" if checked
                                                   else "the playbook's PID check did not run"))

        say("Forced renewal by the timer's own service (as the acme user): new serial, same HAProxy")
        node_exec("echo 'HAPROXY_ACME_RENEW_ARGS=--force' > /etc/default/haproxy-acme-renew"
                  " && systemctl start haproxy-acme-renew.service; rc=$?;"
                  " rm -f /etc/default/haproxy-acme-renew; exit $rc")
        print(node_exec("journalctl -u haproxy-acme-renew.service --no-pager -o cat | grep -E '^demo.example: |^1 certificates' | tail -2"))
        renewed = served(address, "demo.example", lab.info.pebble_root_path)
        pids_after = haproxy_pids()
        print(f"served now                   : serial {serial(renewed)} (was {serial(cert)})")
        print(f"HAProxy PIDs (master, worker): {pids_after[0]}, {pids_after[1]}")
        assert serial(renewed) != serial(cert), "the renewal did not change the served certificate"
        assert pids_after == pids_before, "HAProxy was reloaded or restarted"
        say("Done: HAProxy serves the new certificate and was not reloaded.")
    finally:
        if not args.keep:
            down(lab)
        else:
            print(f"\nleft running: host {address} (ssh -i {STATE}/nodes/id_ed25519 root@{address}); "
                  f"stop with: .venv/bin/python -m tests.lab.demo --down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
