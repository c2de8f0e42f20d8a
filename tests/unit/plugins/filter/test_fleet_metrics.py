# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet_metrics: a fleet run as the Prometheus text the renew entry point writes on the controller."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleFilterError
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.tlsops.haproxy_acme.plugins.filter import fleet_metrics as plugin
from ansible_collections.tlsops.haproxy_acme.plugins.filter.fleet_metrics import fleet_metrics
from tests.unit.plugins.filter.fleet_data import CERT_DIR, NOW, cert, node, served

END = NOW.timestamp()
A, B = cert("a.test"), cert("b.test")


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    return {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
            for f in text_string_to_metric_families(text)}


def summary(**actions: str) -> dict[str, t.Any]:
    return {"orders": 0, "certificates": [{"name": n.replace("_", "."), "action": a, "reason": "", "serial": None}
                                          for n, a in actions.items()],
            "updated": {}, "not_answering": [], "worker_pids": {}}


def test_a_fleet_in_sync() -> None:
    nodes = [node("web1", [A, B], [served("a.test", "0A", 60), served("b.test", "0B", 10, lifetime=30)]),
             node("web2", [A, B], [served("a.test", "0A", 60), served("b.test", "0B", 10, lifetime=30)])]
    text = fleet_metrics(summary(a_test="unchanged", b_test="unchanged"), nodes, CERT_DIR, started=END - 12.5,
                         now=END)
    found = families(text)
    left = found["haproxy_acme_certificate_validity_remaining_seconds"]
    assert left == {(("name", n), ("node", w)): d * 86400 for n, d in (("a.test", 60.0), ("b.test", 10.0))
                    for w in ("web1", "web2")}
    before = found["haproxy_acme_certificate_not_before_timestamp_seconds"]
    assert before[(("name", "b.test"), ("node", "web1"))] == END - 20 * 86400
    assert set(found["haproxy_acme_certificate_in_sync"].values()) == {1.0}
    assert found["haproxy_acme_renewal_run_success"] == {(("topology", "fleet"),): 1.0}
    assert found["haproxy_acme_renewal_run_duration_seconds"] == {(("topology", "fleet"),): 12.5}
    assert found["haproxy_acme_renewal_run_start_timestamp_seconds"] == {(("topology", "fleet"),): END - 12.5}
    assert found["haproxy_acme_node_answered"] == {(("node", "web1"),): 1.0, (("node", "web2"),): 1.0}


def test_drift_a_dropped_node_and_a_failed_order() -> None:
    nodes = [node("web1", [A, B], [served("a.test", "0C", 89)]),
             node("web2", [A, B], [served("a.test", "0A", 5), served("b.test", "0B", 30)])]
    run = {**summary(a_test="renewed", b_test="failed"), "not_answering": ["web3"]}
    found = families(fleet_metrics(run, nodes, CERT_DIR, started=str(END - 60), now=END))
    assert found["haproxy_acme_certificate_in_sync"] == {
        (("name", "a.test"), ("node", "web1")): 1.0, (("name", "a.test"), ("node", "web2")): 0.0,
        (("name", "b.test"), ("node", "web1")): 0.0, (("name", "b.test"), ("node", "web2")): 1.0}
    assert found["haproxy_acme_node_answered"][(("node", "web3"),)] == 0.0
    assert found["haproxy_acme_renewal_run_success"] == {(("topology", "fleet"),): 0.0}
    results = found["haproxy_acme_certificate_last_result"]
    assert results[(("name", "a.test"), ("result", "renewed"))] == 1.0
    assert results[(("name", "b.test"), ("result", "failed"))] == 1.0
    # The copy this run put in place was renewed now; the older one on web2 when it was issued.
    last = found["haproxy_acme_certificate_last_renewal_timestamp_seconds"]
    assert last[(("name", "a.test"), ("node", "web1"))] == END
    assert last[(("name", "a.test"), ("node", "web2"))] == END + 5 * 86400 - 90 * 86400


@pytest.mark.parametrize(("arguments", "message"), [
    pytest.param(("not a summary", [], CERT_DIR), "the input must be fleet_summary's dictionary", id="summary"),
    pytest.param(({}, "web1", CERT_DIR), "a list of nodes", id="nodes"),
    pytest.param(({}, [], CERT_DIR), "started must be a time in Unix seconds, not None", id="no start"),
])
def test_wrong_input_says_what_is_wrong(arguments: tuple[t.Any, ...], message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        fleet_metrics(*arguments)


def test_a_start_that_is_no_time_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="started must be a time in Unix seconds, not 'soon'"):
        fleet_metrics({}, [], CERT_DIR, started="soon")


def test_the_filter_is_registered() -> None:
    assert plugin.FilterModule().filters() == {"fleet_metrics": fleet_metrics}
