# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A deploy of the files where they are (``pem_src`` = ``path``, the host job): bundles that HAProxy
already serves are compared from the directory's index and not read; any that must be sent are
read and checked in full first."""

from __future__ import annotations

import json
import os
import typing as t
from pathlib import Path

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import renewal
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run, certs, info
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.commands import pem_payload
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import INDEX_NAME, RENEWAL_KIND
from tests.unit.plugins.module_utils._haproxy.fake_haproxy import FakeHaproxy
from tests.unit.plugins.module_utils._haproxy.testcerts import bundle, expired_bundle, serial_of
from tests.unit.plugins.module_utils.counting import count_calls

# certdir and fake: conftest.py beside this file.


def _files(certdir: Path, names: t.Sequence[str]) -> list[dict[str, t.Any]]:
    items = []
    for name in names:
        path = certdir / f"{name}.pem"
        if not path.exists():
            path.write_bytes(pem_payload(bundle([f"{name}.test"])).encode())
            os.chmod(path, 0o640)
        items.append({"path": str(path), "pem_src": str(path), "expected_domains": [f"{name}.test"]})
    return items


def run(fake: FakeHaproxy, items: list[dict[str, t.Any]], **params: t.Any) -> tuple[dict[str, t.Any], str | None]:
    outcome = cert_run.run({"socket": [fake.socket], "timeout": 2.0, "busy_timeout": 0.5, "write_file": False,
                            "certificates": items, **params})
    return outcome.result, outcome.failure


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return count_calls(monkeypatch, certs, "parse_bundle")


def _actions(result: dict[str, t.Any]) -> list[str]:
    return [c["action"] for c in result["certificates"]]


def test_served_bundles_are_not_read_again(fake: FakeHaproxy, certdir: Path, parses: list[int]) -> None:
    items = _files(certdir, ["a", "b", "c"])
    result, failure = run(fake, items)
    assert failure is None and _actions(result) == ["created"] * 3 and len(parses) == 3
    assert (certdir / INDEX_NAME).exists()
    parses.clear()
    fake.state.log.clear()
    result, failure = run(fake, items)
    assert failure is None and _actions(result) == ["unchanged"] * 3 and parses == []
    assert [c["serial"] for c in result["certificates"]] == [
        serial_of((certdir / f"{n}.pem").read_bytes()) for n in "abc"]
    assert not [line for line in fake.state.log if not line.startswith("show")]


def test_a_known_bundle_haproxy_lost_is_read_and_sent(fake: FakeHaproxy, certdir: Path, parses: list[int]) -> None:
    items = _files(certdir, ["a", "b"])
    run(fake, items)
    del fake.state.stores[str(certdir / "b.pem")]  # a restart from another directory, a 'del ssl cert'...
    fake.state.lists[str(certdir)].remove(str(certdir / "b.pem"))
    parses.clear()
    result, failure = run(fake, items)
    assert failure is None and _actions(result) == ["unchanged", "created"] and len(parses) == 1
    assert fake.state.stores[str(certdir / "b.pem")].pem == (certdir / "b.pem").read_text()


def test_a_bundle_replaced_behind_the_index_is_read(fake: FakeHaproxy, certdir: Path, parses: list[int]) -> None:
    items = _files(certdir, ["a"])
    run(fake, items)
    newer = pem_payload(bundle(["a.test"])).encode()
    (certdir / "a.pem").write_bytes(newer)
    parses.clear()
    result, failure = run(fake, items)
    assert failure is None and _actions(result) == ["updated"] and result["certificates"][0]["serial"] == serial_of(newer)
    assert len(parses) == 1


def test_a_known_bundle_is_still_checked_for_time_and_names(fake: FakeHaproxy, certdir: Path) -> None:
    items = _files(certdir, ["a"])
    run(fake, items)
    result, failure = run(fake, [{**items[0], "expected_domains": ["other.test"]}])
    assert failure is not None and "does not cover other.test" in failure and _actions(result) == ["failed"]


def test_an_expired_bundle_fails_the_same_with_or_without_an_index(fake: FakeHaproxy, certdir: Path) -> None:
    path = certdir / "old.pem"
    path.write_bytes(pem_payload(expired_bundle(["old.test"])).encode())
    item = {"path": str(path), "pem_src": str(path)}
    messages = []
    for _ in range(2):
        result, failure = run(fake, [item])
        messages.append(result["certificates"][0]["msg"])
        assert failure is not None and "expired" in failure
    assert messages[0] == messages[1]


def test_a_known_bundle_too_big_for_the_buffer_is_refused_before_it_is_sent(fake: FakeHaproxy, certdir: Path) -> None:
    items = _files(certdir, ["a"])
    run(fake, items)
    del fake.state.stores[str(certdir / "a.pem")]
    fake.state.lists[str(certdir)].remove(str(certdir / "a.pem"))
    fake.state.log.clear()
    result, failure = run(fake, items, bufsize=1024)
    assert failure is not None and "tune.bufsize" in failure and _actions(result) == ["failed"]
    assert not [line for line in fake.state.log if line.startswith(("new", "set"))]


def test_check_mode_writes_no_index(fake: FakeHaproxy, certdir: Path) -> None:
    items = _files(certdir, ["a"])
    outcome = cert_run.run({"socket": [fake.socket], "timeout": 2.0, "write_file": False, "certificates": items},
                           check_mode=True)
    assert outcome.failure is None and not (certdir / INDEX_NAME).exists()


# ------------------------------------- facts of the bundles a push writes, for the next read


def test_a_push_keeps_the_renewal_facts_of_what_it_writes(fake: FakeHaproxy, certdir: Path) -> None:
    pems = {name: pem_payload(bundle([f"{name}.test"])) for name in ("a", "b")}
    items = [{"path": str(certdir / f"{name}.pem"), "pem_content": pem, "expected_domains": [f"{name}.test"]}
             for name, pem in pems.items()]
    outcome = cert_run.run({"socket": [fake.socket], "timeout": 2.0, "busy_timeout": 0.5, "certificates": items},
                           facts_source=(RENEWAL_KIND, renewal.facts_of_checked))
    assert outcome.failure is None
    # The next read finds every file's facts in the index, the same a full parse gives.
    entries = [{"path": item["path"]} for item in items]
    computed: list[bytes] = []

    def compute(data: bytes) -> dict[str, t.Any]:
        computed.append(data)
        return renewal.facts_of(data)

    info.add_bundle_facts(entries, (RENEWAL_KIND, compute), save=False)
    assert computed == []
    for entry, pem in zip(entries, pems.values()):
        assert entry["bundle_facts"] == json.dumps(renewal.facts_of(pem.encode()), sort_keys=True, separators=(",", ":"))


def test_a_push_without_a_facts_source_leaves_the_index_alone(fake: FakeHaproxy, certdir: Path) -> None:
    items = [{"path": str(certdir / "a.pem"), "pem_content": pem_payload(bundle(["a.test"])),
              "expected_domains": ["a.test"]}]
    outcome = cert_run.run({"socket": [fake.socket], "timeout": 2.0, "busy_timeout": 0.5, "certificates": items})
    assert outcome.failure is None and not (certdir / INDEX_NAME).exists()
