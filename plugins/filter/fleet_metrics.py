# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_metrics
short_description: A fleet run as Prometheus metrics, for node_exporter's textfile collector
version_added: 0.2.0
description:
  - Renders what a fleet C(renew) run did in Prometheus' text format, the metric families the host renewal
    job writes (docs/metrics.md), with a C(node) label on what each node serves.
  - Per certificate and node, the expiry, notBefore, time left and last renewal of the copy the node serves,
    and C(haproxy_acme_certificate_in_sync) (1 when it serves the newest copy, the serial the fleet agrees on).
  - Per certificate, the order step's result; per node, whether it answered; per run, success, start and
    duration, and the collection's version.
  - The run succeeded when every certificate went through the order step and none failed there, every host
    of the play answered, and every node serves a valid newest copy of what it asks for.
  - The C(renew) entry point of role C(tlsops.haproxy_acme.haproxy_acme) writes it to
    C(haproxy_acme_metrics_path) on the controller.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
positional: nodes, cert_dir
options:
  _input:
    description: The run's summary, as P(tlsops.haproxy_acme.fleet_summary#filter) returns it.
    type: dict
    required: true
  nodes:
    description:
      - The nodes still in the play (C(ansible_play_hosts)), as P(tlsops.haproxy_acme.fleet_nodes#filter) returns
        them with its C(certificates) option, as C(served) the read before the push and as C(deployed) the push.
        What a node's push reports of a certificate (its status and serial after it) stands for what the node
        serves of it now. Nodes read again after the push may be given that read as C(served) instead.
    type: list
    elements: dict
    required: true
  cert_dir:
    description: HAProxy's certificate directory on the nodes.
    type: str
    required: true
  started:
    description: When the run started, in Unix seconds (C(now().timestamp())).
    type: float
    required: true
  now:
    description: When the run ended, in Unix seconds; default now.
    type: float
"""

EXAMPLES = r"""
- name: Write the run's metrics for node_exporter's textfile collector
  ansible.builtin.copy:
    content: >-
      {{ summary | tlsops.haproxy_acme.fleet_metrics(nodes, '/etc/haproxy/certs', started=started) }}
    dest: /var/lib/prometheus/node-exporter/haproxy_acme.prom
    mode: "0644"
  delegate_to: localhost
  run_once: true
  vars:
    nodes: >-
      {{ ansible_play_hosts | tlsops.haproxy_acme.fleet_nodes(hostvars, certificates='wanted',
                                                               served='served', deployed='pushed') }}
"""

RETURN = r"""
_value:
  description: The metrics, in Prometheus' text exposition format (version 0.0.4), one family after another.
  type: str
"""

import datetime as dt
import time
import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _fleet, _metrics


def _seconds(value: t.Any, what: str) -> float:
    number = _metrics.timestamp(value)
    if number is None and isinstance(value, str):
        try:
            number = _metrics.timestamp(float(value))
        except ValueError:
            number = None
    if number is None:
        raise AnsibleFilterError(f"fleet_metrics: {what} must be a time in Unix seconds, not {value!r}")
    return number


def fleet_metrics(summary: t.Any, nodes: t.Any, cert_dir: str, started: t.Any = None, now: t.Any = None) -> str:
    summary = _fleet.plain(summary)
    if not isinstance(summary, dict):
        raise AnsibleFilterError("fleet_metrics: the input must be fleet_summary's dictionary")
    try:
        fleet = _fleet.as_nodes(nodes)
    except ValueError as exc:
        raise AnsibleFilterError(f"fleet_metrics: {exc}") from None
    end = time.time() if now in (None, "") else _seconds(now, "now")
    begin = _seconds(started, "started")
    at = dt.datetime.fromtimestamp(end, dt.timezone.utc)
    fleet = [{**member, "served": _fleet.served_now(member, at)} for member in fleet]
    report = _fleet.report(fleet, str(cert_dir), is_fleet=True, now=dt.datetime.fromtimestamp(end, dt.timezone.utc))
    return _metrics.fleet(summary, report, fleet, begin, end)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"fleet_metrics": fleet_metrics}
