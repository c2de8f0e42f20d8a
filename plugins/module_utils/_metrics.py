# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A renewal run as Prometheus metrics, in the text exposition format (version 0.0.4).

The host renewal job writes them for node_exporter's textfile collector after every
run; the fleet ``renew`` writes the same families on the controller, with a ``node``
label where each node has its own copy (docs/metrics.md). Pure functions: the callers
hand over plain data (timestamps as Unix seconds) and write the text atomically.

No sample carries a timestamp (the textfile collector refuses them), and nothing
secret is ever a label: certificate names, node names, results and the version.
"""

from __future__ import annotations

import datetime as dt
import math
import typing as t

#: The collection's version, as ``haproxy_acme_build_info`` gives it (galaxy.yml's, checked by a unit test).
VERSION = "0.2.0"
PREFIX = "haproxy_acme"
#: Each certificate's last result: one sample per value, 1 for the one that holds.
RESULTS = ("issued", "renewed", "unchanged", "failed")

Labels = t.Dict[str, str]
Sample = t.Tuple[Labels, float]


class Family(t.NamedTuple):
    """One metric family: its HELP text and its samples."""

    name: str
    help: str
    samples: t.List[Sample]
    kind: str = "gauge"


# ------------------------------------------------------------------ the text format


def escape_label(value: t.Any) -> str:
    r"""A label value between double quotes: ``\``, ``"`` and line feeds escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    r"""HELP text: ``\`` and line feeds escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: whole numbers without a fraction, NaN and infinities as Prometheus spells them."""
    if isinstance(value, bool):
        return "1" if value else "0"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def _sample_line(name: str, labels: Labels, value: float) -> str:
    if not labels:
        return f"{name} {format_value(value)}"
    inner = ",".join(f'{key}="{escape_label(text)}"' for key, text in labels.items())
    return f"{name}{{{inner}}} {format_value(value)}"


def render(families: t.Iterable[Family]) -> str:
    """The exposition text: HELP and TYPE before each family, samples sorted by their labels.

    A family without samples is left out (a TYPE line with nothing after it tells nothing).
    """
    lines: list[str] = []
    for family in families:
        if not family.samples:
            continue
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in sorted(family.samples, key=lambda s: sorted(s[0].items())):
            lines.append(_sample_line(family.name, labels, value))
    return "\n".join(lines) + "\n" if lines else ""


# ------------------------------------------------------------------ values


def timestamp(value: t.Any) -> float | None:
    """Unix seconds from a number, an aware datetime or an RFC 3339 UTC text such as
    ``2026-03-01T12:00:00Z`` (what the modules return); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return value.timestamp() if value.tzinfo is not None else None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed.timestamp() if parsed.tzinfo is not None else None
    return None


def result_of(action: t.Any) -> str:
    """A certificate's result as RESULTS name it; anything unknown counts as failed."""
    return action if action in RESULTS else "failed"


# ------------------------------------------------------------------ families


def _name(suffix: str) -> str:
    return f"{PREFIX}_{suffix}"


def certificate_families(copies: t.Sequence[t.Mapping[str, t.Any]], now: float,
                         label_keys: t.Sequence[str] = ("name",)) -> list[Family]:
    """Expiry, lifetime start, time left and last renewal of each copy of a certificate.

    A copy is ``{name[, node], not_before, not_after, last_renewal}``, times as anything
    ``timestamp()`` reads; a missing time leaves that sample out (a certificate that was
    never issued has no expiry).
    """
    not_after: list[Sample] = []
    not_before: list[Sample] = []
    left: list[Sample] = []
    renewed: list[Sample] = []
    for copy in copies:
        labels = {key: str(copy.get(key, "")) for key in label_keys}
        after, before, last = (timestamp(copy.get(k)) for k in ("not_after", "not_before", "last_renewal"))
        if after is not None:
            not_after.append((labels, after))
            left.append((labels, round(after - now, 3)))
        if before is not None:
            not_before.append((labels, before))
        if last is not None:
            renewed.append((labels, last))
    return [
        Family(_name("certificate_not_after_timestamp_seconds"),
               "When the certificate in use expires (its notAfter), in Unix seconds.", not_after),
        Family(_name("certificate_not_before_timestamp_seconds"),
               "When the certificate in use became valid (its notBefore), in Unix seconds.", not_before),
        Family(_name("certificate_validity_remaining_seconds"),
               "Seconds until the certificate in use expires, when the run ended (negative: expired).", left),
        Family(_name("certificate_last_renewal_timestamp_seconds"),
               "When the certificate in use was put in place (docs/metrics.md), in Unix seconds.", renewed),
    ]


def result_family(certificates: t.Sequence[t.Mapping[str, t.Any]]) -> Family:
    """``certificate_last_result``: per certificate one sample per RESULTS value, 1 for its ``result``."""
    samples: list[Sample] = []
    for cert in certificates:
        result = result_of(cert.get("result"))
        samples.extend(({"name": str(cert.get("name", "")), "result": value}, 1.0 if value == result else 0.0)
                       for value in RESULTS)
    return Family(_name("certificate_last_result"),
                  "Result of the last run for the certificate: 1 for the result that holds (issued, renewed, "
                  "unchanged, failed), 0 for the others.", samples)


def run_families(success: bool, started: float, duration: float, topology: str) -> list[Family]:
    """The run's outcome, start and duration, and the collection's version.

    ``topology`` (standalone, fleet) labels them all, so that a host job's file and a fleet
    controller's file can share one textfile directory.
    """
    labels = {"topology": topology}
    return [
        Family(_name("renewal_run_success"),
               "1 when the last run renewed or kept every certificate and HAProxy serves them, else 0.",
               [(labels, 1.0 if success else 0.0)]),
        Family(_name("renewal_run_start_timestamp_seconds"), "When the last run started, in Unix seconds.",
               [(labels, started)]),
        Family(_name("renewal_run_duration_seconds"), "How long the last run took, in seconds.",
               [(labels, round(max(duration, 0.0), 6))]),
        Family(_name("build_info"), "The collection that wrote these metrics: always 1.",
               [({"version": VERSION, **labels}, 1.0)]),
    ]


# ------------------------------------------------------------------ the host job


def host(certificates: t.Sequence[t.Mapping[str, t.Any]], success: bool, started: float, duration: float) -> str:
    """The host renewal job's file.

    ``certificates``: per certificate ``{name, result, not_before, not_after, last_renewal}``;
    ``result`` is the run's action for it (issued, renewed, unchanged, failed).
    """
    now = started + max(duration, 0.0)
    return render([
        *certificate_families(certificates, now),
        result_family(certificates),
        *run_families(success, started, duration, "standalone"),
    ])


# ------------------------------------------------------------------ the fleet


def _served_dates(nodes: t.Sequence[t.Mapping[str, t.Any]]) -> dict[tuple[str, str], t.Any]:
    """(path, serial) -> notBefore of that copy, as the nodes serving it report it (the report's
    rows carry no notBefore)."""
    dates: dict[tuple[str, str], t.Any] = {}
    for member in nodes:
        for entry in member.get("served") or []:
            if isinstance(entry, t.Mapping) and entry.get("serial") and entry.get("not_before"):
                dates[(str(entry.get("path")), str(entry["serial"]))] = entry["not_before"]
    return dates


def fleet_success(summary: t.Mapping[str, t.Any], rows: t.Sequence[t.Mapping[str, t.Any]]) -> bool:
    """Whether a fleet run succeeded: every certificate the nodes ask for went through the
    order step (none is missing from it: the step itself did not fail) and none failed there,
    every host of the play answered, and every node serves a valid newest copy of each
    certificate it asks for (report states "in sync" or "due")."""
    orders = {str(c.get("name")): c.get("action") for c in summary.get("certificates") or []
              if isinstance(c, t.Mapping)}
    return (all(result_of(action) != "failed" for action in orders.values())
            and all(str(row.get("certificate")) in orders for row in rows)
            and not summary.get("not_answering")
            and all(row.get("state") in ("in sync", "due") for row in rows))


def fleet(summary: t.Mapping[str, t.Any], report: t.Mapping[str, t.Any], nodes: t.Sequence[t.Mapping[str, t.Any]],
          started: float, now: float) -> str:
    """The fleet ``renew``'s file on the controller.

    ``summary`` is fleet_summary's (the order step per certificate, who did not answer),
    ``report`` is _fleet.report()'s of the nodes after the push (a row per certificate and
    node), ``nodes`` those nodes (for the notBefore of what each serves). The last renewal
    of a copy is the end of this run when the run ordered it and the node serves it, else
    the copy's notBefore (the controller keeps no state).
    """
    rows = [r for r in report.get("rows") or [] if isinstance(r, t.Mapping)]
    orders = [c for c in summary.get("certificates") or [] if isinstance(c, t.Mapping)]
    ordered_now = {str(c.get("name")) for c in orders if c.get("action") in ("issued", "renewed")}
    dates = _served_dates(nodes)
    copies = []
    in_sync: list[Sample] = []
    for row in rows:
        if row.get("state") == "unreachable":
            continue
        labels = {"name": str(row.get("certificate")), "node": str(row.get("node"))}
        before = dates.get((str(row.get("path")), str(row.get("serial"))))
        fresh = labels["name"] in ordered_now and not row.get("drift")
        copies.append({**labels, "not_after": row.get("not_after"), "not_before": before,
                       "last_renewal": now if fresh else before})
        in_sync.append((labels, 0.0 if row.get("drift") else 1.0))
    answered = {str(m.get("name")): bool(m.get("answered")) for m in nodes}
    answered.update({str(host): False for host in summary.get("not_answering") or []})
    return render([
        *certificate_families(copies, now, ("name", "node")),
        Family(_name("certificate_in_sync"),
               "1 when the node serves the newest copy of the certificate (the serial the fleet agrees on), "
               "0 when it serves an older one or none.", in_sync),
        result_family([{"name": c.get("name"), "result": c.get("action")} for c in orders]),
        Family(_name("node_answered"), "1 when the node answered the run, 0 when it dropped out.",
               [({"node": name}, 1.0 if ok else 0.0) for name, ok in answered.items()]),
        *run_families(fleet_success(summary, rows), started, now - started, "fleet"),
    ])
