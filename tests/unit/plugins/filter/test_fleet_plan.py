# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a fleet run decides: fleet_nodes, fleet_plan, fleet_push and fleet_summary."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.filter import fleet_nodes as nodes_plugin
from ansible_collections.tlsops.haproxy_acme.plugins.filter import fleet_plan as plan_plugin
from ansible_collections.tlsops.haproxy_acme.plugins.filter import fleet_push as push_plugin
from ansible_collections.tlsops.haproxy_acme.plugins.filter import fleet_stale_nodes as stale_nodes_plugin
from ansible_collections.tlsops.haproxy_acme.plugins.filter import fleet_summary as summary_plugin
from ansible_collections.tlsops.haproxy_acme.plugins.filter.fleet_nodes import fleet_nodes
from ansible_collections.tlsops.haproxy_acme.plugins.filter.fleet_plan import fleet_plan
from ansible_collections.tlsops.haproxy_acme.plugins.filter.fleet_push import fleet_push
from ansible_collections.tlsops.haproxy_acme.plugins.filter.fleet_stale import fleet_stale
from ansible_collections.tlsops.haproxy_acme.plugins.filter.fleet_stale_nodes import fleet_stale_nodes
from ansible_collections.tlsops.haproxy_acme.plugins.filter.fleet_summary import fleet_summary
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet
from tests.unit.plugins.filter.fleet_data import CERT_DIR, NOW, cert, node, served

A = cert("a.test", "a.test", "www.a.test")

# ------------------------------------------------------------------ conflicts


@pytest.mark.parametrize(("first", "second", "differ"), [
    pytest.param(A, cert("a.test", "a.test", "www.a.test"), None, id="same"),
    pytest.param(A, cert("a.test", "WWW.a.test", "a.test"), None, id="same names in another order and case"),
    pytest.param(A, cert("a.test", "a.test"), ["domains"], id="other domains"),
    pytest.param(A, cert("a.test", "a.test", "www.a.test", key_type="rsa2048"), ["key_type"], id="other key type"),
    pytest.param(A, cert("a.test", "a.test", "www.a.test", key_type="ec256"), None, id="the default key type, named"),
    pytest.param(A, cert("a.test", "a.test", "www.a.test", profile="shortlived"), ["profile"], id="other profile"),
    pytest.param(cert("a.test", profile="classic"), cert("a.test", profile="shortlived"), ["profile"],
                 id="two profiles"),
    pytest.param(A, cert("a.test", "a.test", "www.a.test", profile=""), None, id="an empty profile is none"),
    pytest.param(A, cert("a.test", "a.test", key_type="rsa2048", profile="shortlived"),
                 ["domains", "key_type", "profile"], id="everything differs"),
])
def test_conflicts(first: dict[str, t.Any], second: dict[str, t.Any], differ: list[str] | None) -> None:
    plan = fleet_plan([node("web1", [first], []), node("web2", [second], [])], CERT_DIR)
    assert plan["certificates"] == [first]  # the first definition is the one ordered
    if differ is None:
        assert plan["conflicts"] == []
    else:
        [conflict] = plan["conflicts"]
        assert (conflict["name"], conflict["nodes"], conflict["differ"]) == ("a.test", ["web1", "web2"], differ)
        assert conflict["reason"].startswith("a.test (web1: domains a.test") and "; web2: domains" in conflict["reason"]


def test_a_conflict_names_each_variant_once_with_its_nodes() -> None:
    other = cert("a.test", "a.test")
    plan = fleet_plan([node("web1", [A], []), node("web2", [other], []), node("web3", [A], [])], CERT_DIR)
    assert plan["conflicts"][0]["reason"] == ("a.test (web1, web3: domains a.test, www.a.test, key type ec256, "
                                              "no profile; web2: domains a.test, key type ec256, no profile)")


def test_a_node_that_did_not_answer_neither_conflicts_nor_adds_certificates() -> None:
    plan = fleet_plan([node("web1", [A], []), node("web2", [cert("a.test"), cert("b.test")], None)], CERT_DIR)
    assert plan["conflicts"] == [] and plan["certificates"] == [A]


def test_groups_asking_for_different_sets_are_ordered_once_each() -> None:
    b, c = cert("b.test"), cert("c.test")
    plan = fleet_plan([node("web1", [A, b], []), node("web2", [b, c], []), node("web3", [c], [])], CERT_DIR)
    assert [x["name"] for x in plan["certificates"]] == ["a.test", "b.test", "c.test"]


# --------------------------------------------------------------------- seeds

B = cert("b.test")


@pytest.mark.parametrize(("nodes", "seed"), [
    pytest.param([node("web1", [B], [served("b.test", "01", 30)]), node("web2", [B], [served("b.test", "02", 60)])],
                 ("web2", "02"), id="the latest notAfter wins"),
    pytest.param([node("web1", [B], [served("b.test", "01", 30)]),
                  node("web2", [B], [served("b.test", "02", 60, status="Unused")])],
                 ("web1", "01"), id="only copies HAProxy serves (Used)"),
    pytest.param([node("web1", [B], [served("b.test", "01", 30)]), node("web2", [B], [served("b.test", "02", -1)])],
                 ("web1", "01"), id="an expired copy is no seed"),
    pytest.param([node("web1", [B], [served("b.test", "01", -3)])], None, id="only expired copies: no seed"),
    pytest.param([node("web1", [B], [served("b.test", "01", 30)]), node("web2", [B], None)],
                 ("web1", "01"), id="a node that did not answer is not asked"),
    pytest.param([node("web1", [B], [served("b.test", "01", 30)]),
                  node("web2", [A], [served("b.test", "02", 60)])],
                 ("web1", "01"), id="only nodes that ask for the certificate count"),
    pytest.param([node("web1", [B], [served("b.test", "01", 30)]),
                  node("web2", [B], [{**served("b.test", "02", 60), "path": "/srv/other/b.test.pem"}])],
                 ("web1", "01"), id="only the certificate directory counts"),
    pytest.param([node("web1", [B], [served("b.test", "01", 60)]), node("web2", [B], [served("b.test", "02", 60)])],
                 ("web1", "01"), id="same notAfter, another serial: the first holder"),
    pytest.param([node("web1", [B], []), node("web2", [B], [])], None, id="no node serves it: no seed"),
    pytest.param([node("web1", [B], [{**served("b.test", "01", 60), "not_after": None}])], None,
                 id="a copy without dates is no seed"),
])
def test_newest_copy(nodes: list[dict[str, t.Any]], seed: tuple[str, str] | None) -> None:
    seeds = fleet_plan(nodes, CERT_DIR)["seeds"]
    assert [(s["host"], s["serial"]) for s in seeds] == ([seed] if seed else [])
    if seed:
        assert seeds[0]["name"] == "b.test" and seeds[0]["not_after"].endswith("Z")


def test_certificates_served_alike_are_spread_over_their_holders() -> None:
    certs = [cert(f"c{i}.test") for i in range(5)]
    entries = [served(c["name"], f"0{i}", 60) for i, c in enumerate(certs)]
    nodes = [node("web1", certs, entries), node("web2", certs, entries), node("web3", certs[:4], entries),
             node("web4", certs, None)]
    seeds = fleet_plan(nodes, CERT_DIR)["seeds"]
    # The n-th certificate goes to holder n mod k; c4 has two holders (web3 does not ask for it).
    assert [(s["name"], s["host"]) for s in seeds] == [
        ("c0.test", "web1"), ("c1.test", "web2"), ("c2.test", "web3"), ("c3.test", "web1"), ("c4.test", "web1")]


def test_a_certificate_no_node_serves_is_ordered_without_a_seed() -> None:
    plan = fleet_plan([node("web1", [A, B], [served("b.test", "01", 50)])], CERT_DIR)
    assert [c["name"] for c in plan["certificates"]] == ["a.test", "b.test"]
    assert [s["name"] for s in plan["seeds"]] == ["b.test"]


def facts(serial: str, **extra: t.Any) -> str:
    """bundle_facts as haproxy_runtime_cert_info reports them (only what the plan reads matters here)."""
    return json.dumps({"info": {"serial": serial}, "problem": None, "profile": None, "cert_id": None, **extra})


def with_facts(entry: dict[str, t.Any], text: str | None) -> dict[str, t.Any]:
    return {**entry, "bundle_facts": text}


# (nodes, whether the seed must be copied to the controller). Two nodes that ask for
# b.test unless a row says otherwise; the holder of the newest copy is web1.
@pytest.mark.parametrize(("nodes", "copy"), [
    pytest.param([node("web1", [B], [with_facts(served("b.test", "01", 30), facts("01"))]),
                  node("web2", [B], [with_facts(served("b.test", "01", 30), facts("01"))])],
                 False, id="every node serves the holder's file: decided from its facts"),
    pytest.param([node("web1", [B], [with_facts(served("b.test", "01", 30), None)]),
                  node("web2", [B], [served("b.test", "01", 30)])],
                 True, id="the holder reported no facts"),
    pytest.param([node("web1", [B], [with_facts(served("b.test", "02", 60), facts("02"))]),
                  node("web2", [B], [served("b.test", "01", 30)])],
                 True, id="a node serves an older copy: it must be sent the newest"),
    pytest.param([node("web1", [B], [with_facts(served("b.test", "01", 30), facts("01"))]), node("web2", [B], [])],
                 True, id="a node that asks for it serves none"),
    pytest.param([node("web1", [B], [with_facts(served("b.test", "01", 30), facts("03"))]),
                  node("web2", [B], [served("b.test", "01", 30)])],
                 True, id="the holder's file is not what it serves"),
    pytest.param([node("web1", [B], [with_facts(served("b.test", "01", 30), json.dumps({"unusable": "no PEM"}))])],
                 True, id="the holder's file is unusable"),
    pytest.param([node("web1", [B], [with_facts(served("b.test", "01", 30), "not json")])],
                 True, id="facts of another shape"),
    pytest.param([node("web1", [B], [with_facts(served("b.test", "01", 30), facts("01"))]),
                  node("web2", [A], [served("b.test", "00", 10)])],
                 False, id="a node that does not ask for it does not count"),
    pytest.param([node("web1", [B], [with_facts(served("b.test", "01", 30), facts("01"))]), node("web2", [B], None)],
                 False, id="a node that did not answer does not count"),
    pytest.param([node("web1", [B], [with_facts(served("b.test", "0A1B", 30), facts("00:0a:1b"))]),
                  node("web2", [B], [served("b.test", "a1b", 30)])],
                 False, id="serials spelt differently are the same"),
])
def test_a_seed_is_copied_only_where_it_must_be(nodes: list[dict[str, t.Any]], copy: bool) -> None:
    plan = fleet_plan(nodes, CERT_DIR)
    [seed] = plan["seeds"]
    assert (seed["host"], seed["copy"]) == ("web1", copy)
    [asked] = [c for c in plan["certificates"] if c["name"] == "b.test"]
    assert asked.get("bundle_facts") == (None if copy else seed["facts"])


@pytest.mark.parametrize("bad", ["web1", [{"answered": True}], [{"name": "web1", "certificates": [{"domains": []}]}],
                                 [{"name": "web1", "certificates": "a.test"}], [{"name": "web1", "served": "x"}]])
def test_plan_refuses_what_is_not_nodes(bad: t.Any) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^fleet_plan: "):
        fleet_plan(bad, CERT_DIR)


# ---------------------------------------------------------------------- push


@pytest.mark.parametrize(("bundles", "pushed"), [
    pytest.param({"/tmp/s/a.test.pem": "A", "/tmp/s/b.test.pem": "B"}, ["a.test", "b.test"], id="both bundles"),
    pytest.param({"/tmp/s/b.test.pem": "B"}, ["b.test"], id="an order failed and no node served it"),
    pytest.param({"/tmp/s/a.test.pem": "A", "/tmp/s/c.test.pem": "C"}, ["a.test"], id="another node's certificate"),
    pytest.param({}, [], id="nothing"),
])
def test_push(bundles: dict[str, str], pushed: list[str]) -> None:
    result = fleet_push([A, B], CERT_DIR, bundles)
    assert [p["path"] for p in result] == [f"{CERT_DIR}/{name}.pem" for name in pushed]
    contents = {"a.test": "A", "b.test": "B"}
    domains = {"a.test": ["a.test", "www.a.test"], "b.test": ["b.test"]}
    assert all(p["pem_content"] == contents[n] and p["expected_domains"] == domains[n] for p, n in zip(result, pushed))


def test_push_takes_the_certificates_as_json_text() -> None:
    bundles = {"/tmp/s/a.test.pem": "A", "/tmp/s/b.test.pem": "B"}
    assert fleet_push(json.dumps([A, B]), CERT_DIR, bundles) == fleet_push([A, B], CERT_DIR, bundles)


@pytest.mark.parametrize(("certificates", "bundles"), [("a.test", {}), ([A], ["/tmp/a.test.pem"]), ([{}], {}),
                                                       ('{"name": "a.test"}', {})])
def test_push_refuses_bad_input(certificates: t.Any, bundles: t.Any) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^fleet_push: "):
        fleet_push(certificates, CERT_DIR, bundles)


# --------------------------------------------------------------------- stale

FILES = ["/tmp/s/a.test.pem", "/tmp/s/b.test.pem"]


def _info(*entries: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"changed": False, "certificates": list(entries), "process": {"pid": 100}}


def _ended(**serials: str | None) -> list[dict[str, t.Any]]:
    return [{"name": f"{n}.test", "action": "unchanged", "serial": s} for n, s in serials.items()]


@pytest.mark.parametrize(("files", "info", "issued", "sent"), [
    pytest.param(FILES, _info(served("a.test", "0A", 60), served("b.test", "0B", 60)), _ended(a="0A", b="0B"), [],
                 id="serves both already"),
    pytest.param(FILES, _info(served("a.test", "0A", 60), served("b.test", "0B", 60)), _ended(a="0a", b="0B"), [],
                 id="serial case does not matter"),
    pytest.param(FILES, _info(served("a.test", "0A", 60), served("b.test", "0B", 60)), _ended(a="00:0A", b="0B"), [],
                 id="nor separators"),
    pytest.param(FILES, _info(served("a.test", "0A", 60), served("b.test", "09", 60)), _ended(a="0A", b="0B"),
                 ["b.test"], id="an older copy (drift, or just renewed)"),
    pytest.param(FILES, _info(served("a.test", "0A", 60)), _ended(a="0A", b="0B"), ["b.test"], id="one it lacks"),
    pytest.param(FILES, _info(served("a.test", "0A", 60), served("b.test", "0B", 60, status="Unused")),
                 _ended(a="0A", b="0B"), ["b.test"], id="loaded but not in service"),
    pytest.param(FILES, _info(served("a.test", "0A", 60), served("b.test", "0B", 60)), _ended(a="0A", b=None),
                 ["b.test"], id="the order step names no serial"),
    pytest.param(FILES, _info(served("a.test", "0A", 60), served("b.test", "0B", 60)), _ended(a="0A"),
                 ["b.test"], id="the order step says nothing of it"),
    pytest.param(FILES, _info(served("a.test", "0A", 60), served("b.test", "0B", 60)), [], ["a.test", "b.test"],
                 id="the order step failed as a whole"),
    pytest.param(FILES, {"failed": True, "msg": "no socket"}, _ended(a="0A", b="0B"), ["a.test", "b.test"],
                 id="the node's read failed"),
    pytest.param(FILES[1:], _info(served("a.test", "09", 60)), _ended(a="0A", b="0B"), ["b.test"],
                 id="no bundle: nothing to send"),
    pytest.param(["/tmp/s/a.test.pem", "/tmp/s/c.test.pem"], _info(), _ended(a="0A", c="0C"), ["a.test"],
                 id="another node's certificate"),
    pytest.param(FILES, _info({**served("a.test", "0A", 60), "path": "/elsewhere/a.test.pem"}),
                 _ended(a="0A", b="0B"), ["a.test", "b.test"], id="served from another directory"),
])
def test_stale(files: list[str], info: t.Any, issued: t.Any, sent: list[str]) -> None:
    assert fleet_stale([A, B], CERT_DIR, files, info, issued) == [f"/tmp/s/{n}.pem" for n in sent]


@pytest.mark.parametrize(("certificates", "files"), [("a.test", []), ([A], "/tmp/a.test.pem"), ([{}], [])])
def test_stale_refuses_bad_input(certificates: t.Any, files: t.Any) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^fleet_stale: "):
        fleet_stale(certificates, CERT_DIR, files, _info(), [])


# ------------------------------------------------------------------- summary


def _deployed(*changed: str, unchanged: t.Sequence[str] = ()) -> list[dict[str, t.Any]]:
    return ([{"path": f"{CERT_DIR}/{n}.pem", "changed": True} for n in changed]
            + [{"path": f"{CERT_DIR}/{n}.pem", "changed": False} for n in unchanged])


ISSUED = {"changed": True, "certificates": [
    {"name": "a.test", "action": "renewed", "reason": "10.0 days left of 90.0; mode/owner/group fixed",
     "serial": "0A"},
    {"name": "b.test", "action": "unchanged", "reason": "valid, 60.0 days left; mode/owner/group differ from what is asked",
     "serial": "0B"},
    {"name": "c.test", "action": "issued", "reason": "no certificate yet", "serial": "0C"},
    {"name": "d.test", "action": "failed", "msg": "the CA said no"},
]}


@pytest.mark.parametrize(("issued", "orders"), [
    pytest.param(ISSUED, 2, id="issued and renewed count"),
    pytest.param({"failed": True, "msg": "no CA"}, 0, id="the order step failed as a whole"),
    pytest.param({}, 0, id="the order step never ran"),
    pytest.param(None, 0, id="nothing registered"),
])
def test_summary_orders(issued: t.Any, orders: int) -> None:
    summary = fleet_summary(issued, [node("web1", [A], [])], ["web1"])
    assert summary["orders"] == orders
    assert len(summary["certificates"]) == (4 if issued is ISSUED else 0)


def test_summary() -> None:
    web1, web2 = node("web1", [A], [], pid=11), node("web2", [A], [], pid=22)
    web1.update(deployed=_deployed("a.test", unchanged=["b.test"]), process_after={"pid": 11})
    web2.update(deployed=_deployed(unchanged=["a.test"]), process_after={"pid": 23})
    summary = fleet_summary(ISSUED, [web1, web2], ["web1", "web2", "web3"])
    assert summary["updated"] == {"web1": ["a.test"]}
    assert summary["not_answering"] == ["web3"]
    assert summary["worker_pids"] == {"web1": [11, 11], "web2": [22, 23]}
    assert summary["certificates"][:2] == [
        {"name": "a.test", "action": "renewed", "reason": "10.0 days left of 90.0", "serial": "0A"},
        {"name": "b.test", "action": "unchanged", "reason": "valid, 60.0 days left", "serial": "0B"}]
    assert summary["certificates"][3] == {"name": "d.test", "action": "failed", "reason": "", "serial": None}


def test_summary_of_a_node_whose_push_was_skipped() -> None:
    summary = fleet_summary(ISSUED, [node("web1", [A], [])], ["web1"])
    assert summary["updated"] == {} and summary["worker_pids"] == {"web1": [100, None]}


# --------------------------------------------------------------------- nodes

CERT_INFO = {"changed": False, "certificates": [served("a.test", "01", 30)], "process": {"pid": 7, "version": "3.0"}}


@pytest.mark.parametrize(("result", "answered"), [
    pytest.param(CERT_INFO, True, id="answered"),
    pytest.param({**CERT_INFO, "certificates": []}, True, id="answered, serves nothing"),
    pytest.param({"unreachable": True, "msg": "ssh: connect to host"}, False, id="unreachable"),
    pytest.param({"failed": True, "msg": "no socket"}, False, id="failed"),
    pytest.param({"skipped": True}, False, id="skipped"),
    pytest.param(None, False, id="dropped out before the read"),
])
def test_nodes(result: t.Any, answered: bool) -> None:
    hostvars: dict[str, dict[str, t.Any]] = {"web1": {"wanted": [A], "cert_info": result, "pushed": {
        "certificates": _deployed("a.test")}}}
    if result is None:
        del hostvars["web1"]["cert_info"]
    [web1] = fleet_nodes(["web1"], hostvars, certificates="wanted", served="cert_info", deployed="pushed")
    assert web1["name"] == "web1" and web1["answered"] is answered and web1["certificates"] == [A]
    assert web1["served"] == (result["certificates"] if answered else [])
    assert web1["process"] == ({"pid": 7, "version": "3.0"} if answered else None)
    assert web1["deployed"] == _deployed("a.test") and web1["process_after"] is None


class Lazy(dict):  # type: ignore[type-arg]
    """Counts the values read through it, as ansible-core 2.19's lazy containers render each one."""

    reads: t.ClassVar[list[str]] = []

    def __getitem__(self, key: t.Any) -> t.Any:
        Lazy.reads.append(key)
        return dict.__getitem__(self, key)


def test_nodes_read_only_what_the_rules_use_of_a_result() -> None:
    Lazy.reads = []
    result = Lazy({**CERT_INFO, "sockets": [{"certificates": CERT_INFO["certificates"]}], "invocation": {"x": 1}})
    [web1] = fleet_nodes(["web1"], {"web1": {"cert_info": result}}, served="cert_info")
    assert web1["served"] == CERT_INFO["certificates"] and "sockets" not in Lazy.reads and "invocation" not in Lazy.reads


@pytest.mark.parametrize(("after", "pid_after", "entries"), [
    pytest.param({**CERT_INFO, "process": {"pid": 8}}, 8, "after", id="read after the push"),
    pytest.param({"skipped": True, "changed": False}, None, "before", id="nothing pushed: the read before"),
    pytest.param(None, None, "before", id="no read after at all"),
])
def test_a_result_named_by_a_list_is_the_first_not_skipped(after: t.Any, pid_after: int | None, entries: str) -> None:
    later = [served("a.test", "02", 60)]
    host: dict[str, t.Any] = {"before": CERT_INFO}
    if after is not None:
        host["after"] = {**after, "certificates": later} if "certificates" in after else after
    [web1] = fleet_nodes(["web1"], {"web1": host}, served=["after", "before"], served_after="after")
    assert web1["answered"] and web1["served"] == (later if entries == "after" else CERT_INFO["certificates"])
    assert web1["process_after"] == (None if pid_after is None else {"pid": pid_after})


def test_nodes_of_hosts_without_variables_did_not_answer() -> None:
    assert fleet_nodes(["web9"], {}, served="cert_info") == [
        {"name": "web9", "answered": False, "certificates": None, "served": [], "process": None,
         "deployed": None, "process_after": None}]


@pytest.mark.parametrize(("hosts", "hostvars"), [("web1", {}), (["web1"], ["web1"])])
def test_nodes_refuse_bad_input(hosts: t.Any, hostvars: t.Any) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^fleet_nodes expects"):
        fleet_nodes(hosts, hostvars)


def test_registered() -> None:
    assert nodes_plugin.FilterModule().filters() == {"fleet_nodes": fleet_nodes}
    assert plan_plugin.FilterModule().filters() == {"fleet_plan": fleet_plan}
    assert push_plugin.FilterModule().filters() == {"fleet_push": fleet_push}
    assert summary_plugin.FilterModule().filters() == {"fleet_summary": fleet_summary}


# ------------------------------------------------ results read as JSON (as_json)


def _as_json(result: dict[str, t.Any]) -> dict[str, t.Any]:
    """A result as the modules return it with as_json: certificates as one JSON text."""
    return {**{k: v for k, v in result.items() if k != "certificates"},
            "certificates_json": json.dumps(result["certificates"])}


def test_results_read_as_json_plan_as_lists_do() -> None:
    listed = {"web1": {"wanted": [A, B], "cert_info": CERT_INFO},
              "web2": {"wanted": [A], "cert_info": {**CERT_INFO, "certificates": [served("a.test", "02", 60)]}}}
    as_text = {host: {"wanted": json.dumps(v["wanted"]), "cert_info": _as_json(v["cert_info"])}
               for host, v in listed.items()}
    by_list = fleet_nodes(["web1", "web2"], listed, certificates="wanted", served="cert_info")
    by_text = fleet_nodes(["web1", "web2"], as_text, certificates="wanted", served="cert_info")
    assert all(isinstance(n["served"], str) and isinstance(n["certificates"], str) for n in by_text)
    assert fleet_plan(by_text, CERT_DIR) == fleet_plan(by_list, CERT_DIR)
    assert fleet_summary(ISSUED, by_text, ["web1", "web2"]) == fleet_summary(ISSUED, by_list, ["web1", "web2"])


def test_a_push_read_as_json_counts_in_the_summary() -> None:
    pushed = {"changed": True, "certificates_json": json.dumps(_deployed("a.test", unchanged=["b.test"]))}
    [web1] = fleet_nodes(["web1"], {"web1": {"cert_info": CERT_INFO, "pushed": pushed}}, served="cert_info",
                         deployed="pushed")
    assert fleet_summary(ISSUED, [web1], ["web1"])["updated"] == {"web1": ["a.test"]}


@pytest.mark.parametrize("text", ["{", '{"a": 1}', "null"])
def test_a_json_text_that_is_no_list_is_refused(text: str) -> None:
    [web1] = fleet_nodes(["web1"], {"web1": {"cert_info": CERT_INFO, "wanted": text}}, certificates="wanted",
                         served="cert_info")
    with pytest.raises(AnsibleFilterError, match=r"^fleet_plan: node web1: certificates is a text that is not a JSON list"):
        fleet_plan([web1], CERT_DIR)


def test_a_read_whose_json_is_broken_is_refused() -> None:
    broken = {**CERT_INFO, "certificates": None, "certificates_json": "[{"}
    [web1] = fleet_nodes(["web1"], {"web1": {"cert_info": broken}}, served="cert_info")
    with pytest.raises(AnsibleFilterError, match=r"served is a text that is not a JSON list"):
        fleet_plan([web1], CERT_DIR)


# --------------------------------------------------- seed files and stale nodes


def test_the_plan_lists_each_nodes_seed_files() -> None:
    # web2 serves a.test newer than web1, and web1 must be sent it: web2 hands it over.
    web1 = node("web1", [A, B], [served("a.test", "01", 30), served("b.test", "0B", 60)])
    web2 = node("web2", [A], [served("a.test", "02", 60)])
    plan = fleet_plan([web1, web2], CERT_DIR)
    copied = [(s["name"], s["host"]) for s in plan["seeds"] if s["copy"]]
    expected: dict[str, list[str]] = {}
    for name, host in copied:
        expected.setdefault(host, []).append(f"{name}.pem")
    assert plan["seed_files"] == expected and ("a.test", "web2") in copied


@pytest.mark.parametrize(("web1", "web2", "issued", "sent"), [
    pytest.param([served("a.test", "0A", 60), served("b.test", "0B", 60)], [served("a.test", "0A", 60)],
                 _ended(a="0A", b="0B"), {}, id="all in sync: nobody is called"),
    pytest.param([served("a.test", "09", 60), served("b.test", "0B", 60)], [served("a.test", "0A", 60)],
                 _ended(a="0A", b="0B"), {"web1": ["a.test"]}, id="one node drifted"),
    pytest.param([served("a.test", "0A", 60), served("b.test", "0B", 60)], [], _ended(a="0A", b="0B"),
                 {"web2": ["a.test"]}, id="one node lacks it"),
    pytest.param([served("a.test", "0A", 60), served("b.test", "0B", 60)], [served("a.test", "0A", 60)],
                 _ended(a="0C", b="0B"), {"web1": ["a.test"], "web2": ["a.test"]}, id="just renewed: everyone"),
    pytest.param([served("a.test", "0A", 60), served("b.test", "0B", 60)], None, _ended(a="0C", b="0B"),
                 {"web1": ["a.test"]}, id="a node that did not answer is not sent anything"),
])
def test_stale_nodes(web1: list[dict[str, t.Any]], web2: list[dict[str, t.Any]] | None, issued: t.Any,
                     sent: dict[str, list[str]]) -> None:
    fleet = [node("web1", [A, B], web1), node("web2", [A], web2 or [])]
    if web2 is None:
        fleet[1]["answered"] = False
    assert fleet_stale_nodes(fleet, CERT_DIR, FILES, issued) == {
        host: [f"/tmp/s/{n}.pem" for n in names] for host, names in sent.items()}


def test_stale_nodes_is_stale_for_each_node() -> None:
    info = _info(served("a.test", "09", 60), served("b.test", "0B", 60))
    [web1] = fleet_nodes(["web1"], {"web1": {"wanted": [A, B], "cert_info": _as_json(info)}},
                         certificates="wanted", served="cert_info")
    assert fleet_stale_nodes([web1], CERT_DIR, FILES, _ended(a="0A", b="0B")) == {
        "web1": fleet_stale([A, B], CERT_DIR, FILES, info, _ended(a="0A", b="0B"))}


@pytest.mark.parametrize(("nodes", "files"), [("web1", FILES), ([{"name": "web1"}], "/tmp/s/a.test.pem")])
def test_stale_nodes_refuses_bad_input(nodes: t.Any, files: t.Any) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^fleet_stale_nodes: "):
        fleet_stale_nodes(nodes, CERT_DIR, files, [])


def test_stale_nodes_registered() -> None:
    assert stale_nodes_plugin.FilterModule().filters() == {"fleet_stale_nodes": fleet_stale_nodes}


# ------------------------------------------------------ what a node serves now


def _pushed(name: str, serial: str, left: float, action: str = "updated", status: str | None = "Used") -> dict[str, t.Any]:
    entry = {k: v for k, v in served(name, serial, left).items() if k in ("path", "serial", "not_before", "not_after")}
    return {**entry, "action": action, "status": status, "changed": action != "unchanged"}


@pytest.mark.parametrize(("deployed", "now_serials"), [
    pytest.param(None, {"a.test": "01", "b.test": "0B"}, id="not pushed to: the read before"),
    pytest.param([_pushed("a.test", "02", 60)], {"a.test": "02", "b.test": "0B"}, id="a renewed copy replaces the old"),
    pytest.param([_pushed("c.test", "0C", 60, action="created")], {"a.test": "01", "b.test": "0B", "c.test": "0C"},
                 id="a new certificate is added"),
    pytest.param([_pushed("a.test", "02", 60, action="failed", status=None)], {"a.test": "01", "b.test": "0B"},
                 id="a failed push leaves what was served"),
    pytest.param([{"path": f"{CERT_DIR}/a.test.pem", "action": "updated", "status": "Used"}],
                 {"a.test": "01", "b.test": "0B"}, id="no serial: nothing known"),
])
def test_served_now(deployed: list[dict[str, t.Any]] | None, now_serials: dict[str, str]) -> None:
    member = node("web1", [A, B], [served("a.test", "01", 5), served("b.test", "0B", 60)])
    member["deployed"] = deployed
    now = _fleet.served_now(member, NOW)
    assert {e["path"].rsplit("/", 1)[1][:-4]: e["serial"] for e in now} == now_serials
    for entry in now:
        assert entry["days_left"] == pytest.approx(60 if entry["serial"] in ("02", "0B", "0C") else 5, abs=0.1)
