# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What ``haproxy_runtime_cert`` does, without Ansible: options in, result dictionary out.

The host renewal job calls ``run()`` with the same options as the module.
"""

from __future__ import annotations

import dataclasses
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._files import parse_mode
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.deploy import (
    ApiFactory,
    Options,
    Report,
    Request,
    deploy,
    diff,
    result,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import as_json, socket_list
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import RuntimeApi, timeout_option
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._module import MissingLibrary, RunResult
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
)

FactsSource = t.Tuple[str, t.Callable[[bytes], t.Optional[t.Dict[str, t.Any]]]]

# Fields of the single certificate's entry repeated at the top level of the result.
TOP_LEVEL = (
    "path",
    "action",
    "reason",
    "serial",
    "not_before",
    "not_after",
    "domains",
    "sha1_fingerprint",
    "status",
    "file_changed",
    "crt_list",
    "verified",
    "sockets",
)


def _pem_of(entry: t.Mapping[str, t.Any]) -> tuple[bytes | None, str | None]:
    """``(content, source file)``: ``pem_content``, else ``pem_src``, else the file at ``path`` itself."""
    if entry.get("state", "present") == "absent":
        return None, None
    if entry.get("pem_content"):
        return str(entry["pem_content"]).encode("utf-8"), None
    return None, str(entry.get("pem_src") or entry["path"])


def needs_cryptography(params: t.Mapping[str, t.Any]) -> bool:
    """Whether a certificate is asked to be present: its bundle is checked (parsed) before
    anything is written or sent, which takes the cryptography library. Removal does not."""
    entries: list[t.Mapping[str, t.Any]] = params.get("certificates") or [params]
    return any((entry.get("state") or "present") == "present" for entry in entries)


def missing_library(params: t.Mapping[str, t.Any]) -> MissingLibrary | None:
    """cryptography, when it is not installed and a bundle is to be checked."""
    if HAS_CRYPTOGRAPHY or not needs_cryptography(params):
        return None
    return MissingLibrary("cryptography", reason="to check each PEM bundle before it is written or sent",
                          traceback=CRYPTOGRAPHY_IMPORT_ERROR)


def requests_from_params(params: t.Mapping[str, t.Any]) -> list[Request]:
    entries: list[t.Mapping[str, t.Any]] = params.get("certificates") or [params]
    requests = []
    for index, entry in enumerate(entries):
        if not entry.get("path"):
            where = f"certificates[{index}]" if params.get("certificates") else "the certificate"
            raise ConfigError(f"{where} needs a path (the PEM bundle's file, which is also HAProxy's name for it)")
        pem, pem_src = _pem_of(entry)
        requests.append(
            Request(
                path=str(entry["path"]),
                state=entry.get("state") or "present",
                pem=pem,
                pem_src=pem_src,
                crt_list=entry.get("crt_list") or params.get("crt_list") or None,
                expected_domains=entry.get("expected_domains") or params.get("expected_domains") or None,
            )
        )
    return requests


def options_from_params(params: t.Mapping[str, t.Any], check_mode: bool) -> Options:
    sockets = socket_list(params.get("socket"))
    bufsize = int(params.get("bufsize") or _defaults.BUFSIZE)
    if bufsize < 1024:
        raise ConfigError(f"bufsize {bufsize} is too small: HAProxy's tune.bufsize is 16384 unless raised")
    return Options(
        sockets=sockets,
        write_file=bool(params.get("write_file", True)),
        mode=parse_mode(params.get("mode", _defaults.BUNDLE_MODE)),
        owner=params.get("owner") or None,
        group=params.get("group") or None,
        timeout=timeout_option(params.get("timeout")),
        wait=max(0.0, float(params.get("busy_timeout", _defaults.BUSY_TIMEOUT))),
        abort_foreign=bool(params.get("abort_foreign_transaction")),
        bufsize=bufsize,
        verify_address=params.get("verify_address") or None,
        check_mode=check_mode,
    )


def result_of(report: Report, single: bool) -> dict[str, t.Any]:
    certificates = [result(e) for e in report.entries]
    out: dict[str, t.Any] = {
        "changed": report.changed,
        "certificates": certificates,
        "aborted_transactions": report.aborted,
        # The process of the (first) socket, as haproxy_runtime_cert_info's RV(process) names it.
        "process": {"pid": report.pids[0]} if report.pids and report.pids[0] is not None else None,
    }
    diffs = [diff(e) for e in report.entries]
    out["diff"] = diffs[0] if single and diffs else diffs
    if single and certificates:
        out.update({k: certificates[0][k] for k in TOP_LEVEL if k in certificates[0]})
    return out


def failure_of(report: Report) -> str | None:
    failures = report.failures
    if not failures:
        return None
    if len(report.entries) == 1:
        return "; ".join(failures[0].errors)
    first = failures[0]
    return f"{len(failures)} of {len(report.entries)} certificates failed; first: {first.request.path}: {'; '.join(first.errors)}"


def run(params: t.Mapping[str, t.Any], check_mode: bool = False, api_factory: ApiFactory = RuntimeApi,
        facts_source: FactsSource | None = None) -> RunResult:
    """The result, failed when any certificate failed, and warnings. ConfigError for options wrong as a whole.

    ``facts_source``: facts to keep in the index for each bundle written (Options.facts_source)."""
    requests = requests_from_params(params)
    options = dataclasses.replace(options_from_params(params, check_mode), facts_source=facts_source)
    report = deploy(requests, options, api_factory)
    out = result_of(report, single=not params.get("certificates"))
    if params.get("as_json"):
        out["certificates_json"] = as_json(out.pop("certificates"))
    return RunResult(out, failure_of(report), report.warnings)
