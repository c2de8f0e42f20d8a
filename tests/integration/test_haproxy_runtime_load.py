# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Certificates rotated under HTTPS load: not one request may fail (a reload would drop some)."""

from __future__ import annotations

import os
import threading
import time
import typing as t

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run
from tests.integration.haproxy_runtime_helpers import (
    LoadResult,
    haproxy_pid,
    keepalive_client,
    new_connection_client,
    open_transaction,
    same_hex,
    served_serial,
)
from tests.lab.lab import Lab
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, serial_of

CERTS = 20
CLIENTS = 4  # of each kind
REQUESTS = 2000  # in total, half keep-alive, half new connections
ROUNDS = 4  # every certificate is replaced at least this many times during the load
MAX_ROUNDS = 50


@pytest.mark.slow
def test_rotation_under_load_drops_nothing(make_lab: t.Callable[..., Lab]) -> None:
    own = make_lab()
    assert own.info is not None
    lab = own.info
    hosts = [f"load{i:02d}.test" for i in range(CERTS)]
    paths = [os.path.join(lab.lab_cert_dir, f"{h}.pem") for h in hosts]

    def push(bundles: list[bytes]) -> dict[str, t.Any]:
        items = [{"path": p, "pem_content": b.decode()} for p, b in zip(paths, bundles)]
        outcome = cert_run.run({"socket": [lab.lab_socket], "certificates": items})
        result, failure = outcome.result, outcome.failure
        assert failure is None, failure
        return result

    push([bundle([h]) for h in hosts])
    pid = haproxy_pid(lab.lab_socket)
    per_client = REQUESTS // (2 * CLIENTS)
    result = LoadResult()
    threads = [
        threading.Thread(target=keepalive_client, args=(lab.lab_https_port, hosts[i::CLIENTS], per_client, result))
        for i in range(CLIENTS)
    ] + [
        threading.Thread(target=new_connection_client, args=(lab.lab_https_port, hosts[i::CLIENTS], per_client, result))
        for i in range(CLIENTS)
    ]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    rotations = 0
    last: list[bytes] = []
    # Rotate all certificates again and again while the clients run (bounded in count and time).
    while any(th.is_alive() for th in threads) and rotations < MAX_ROUNDS:
        last = [bundle([h]) for h in hosts]
        outcome = push(last)
        assert [c["action"] for c in outcome["certificates"]] == ["updated"] * CERTS
        rotations += 1
        assert time.monotonic() - start < 120, "load test exceeded its time bound"
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - start

    print(f"\n{result.ok + result.failed} requests in {elapsed:.2f} s, {rotations} rotations of {CERTS} certificates")
    assert result.ok + result.failed == REQUESTS
    assert result.failed == 0, result.errors
    assert rotations >= ROUNDS
    assert haproxy_pid(lab.lab_socket) == pid
    assert not open_transaction(lab.lab_socket)
    for host, pem in zip(hosts, last):
        assert same_hex(served_serial(lab.lab_https_port, host), serial_of(pem))
