# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host renewal job: renew what is due, then make HAProxy serve it, no reload.

What the ``renewal_timer`` role schedules on a standalone host. It runs the very
code behind ``acme_stateless_order`` and ``haproxy_runtime_cert`` with nothing but
Python 3, cryptography and requests (no Ansible on the host), reading the JSON
configuration the role writes::

    {"version": 1, "directory": "...", "ca_path": null, "validate_certs": true,
     "account_key_path": "...", "certificates": [{"name": ..., "domains": [...], "key_type": ...}],
     "remaining_days": null, "cert_dir": "...", "crt_list": "...", "socket": "...",
     "owner": "acme", "group": "haproxy", "mode": "0640", "metrics_path": null}

With ``metrics_path`` set, every run but a dry run ends by writing Prometheus metrics
there, for node_exporter's textfile collector (_metrics.py, docs/metrics.md): failed
runs and runs that found the CA down too.

One log line per certificate; exit status 0 when every certificate is valid and
served, 1 when any failed, 2 when the configuration itself is wrong.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults, _files, _lock, _metrics, _pem
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, HaproxyAcmeError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
_REQUIRED = ("directory", "account_key_path", "certificates", "cert_dir", "socket")
_PATH = "an absolute path"
# What each key of the configuration must hold, as the renewal_timer role writes it
# (renewal_timer_extra_config may add the optional ones): checked here, so that a
# hand-edited file fails with the key's name instead of deep inside a run.
_KINDS: dict[str, tuple[str, str]] = {
    "directory": ("text", "an ACME directory URL or alias"),
    "account_key_path": ("text", _PATH),
    "cert_dir": ("text", _PATH),
    "socket": ("text", "a unix socket path or host:port"),
    "ca_path": ("text?", "a path or null"),
    "crt_list": ("text?", "a crt-list path, or empty"),
    "email": ("text?", "an e-mail address or null"),
    "profile": ("text?", "an ACME profile name or null"),
    "owner": ("text?", "a user name or null"),
    "group": ("text?", "a group name or null"),
    "mode": ("mode", 'an octal string such as "0640"'),
    "validate_certs": ("bool", "true or false"),
    "terms_agreed": ("bool", "true or false"),
    "use_ari": ("bool", "true or false"),
    "remaining_days": ("number?", "a number of days, or null for the lifetime rule"),
    "concurrency": ("number", f"a whole number from 1 to {_defaults.MAX_CONCURRENCY}"),
    "request_timeout": ("number", "a number of seconds"),
    "socket_timeout": ("number", "a number of seconds"),
    "lock_timeout": ("number?", "a number of seconds, or null"),
    "metrics_path": ("text?", "a file path for node_exporter's textfile collector, or null"),
}


def _is_number(value: t.Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _fits(kind: str, value: t.Any) -> bool:
    if kind.endswith("?") and value is None:
        return True
    kind = kind.rstrip("?")
    if kind == "text":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "mode":
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    return _is_number(value)


def check_config(config: t.Mapping[str, t.Any], path: str) -> None:
    """ConfigError naming ``path`` and the key whose value cannot be what the job expects."""
    missing = [key for key in _REQUIRED if config.get(key) in (None, "")]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)}", path=path)
    for key, (kind, what) in _KINDS.items():
        if key in config and not _fits(kind, config[key]):
            raise ConfigError(f"{path}: {key} must be {what}, not {json.dumps(config[key])}", path=path, key=key)
    certificates = config["certificates"]
    if not isinstance(certificates, list):
        raise ConfigError(f"{path}: certificates must be a list of {{\"name\", \"domains\"}}, "
                          f"not {json.dumps(certificates)}", path=path)
    if not certificates:
        raise ConfigError(f"{path}: certificates is empty: give at least one {{\"name\", \"domains\"}}", path=path)
    for index, entry in enumerate(certificates):
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: certificates[{index}] must be an object {{\"name\", \"domains\"}}, "
                              f"not {json.dumps(entry)}", path=path)


def load_config(path: str) -> dict[str, t.Any]:
    """The job's configuration; ConfigError naming the file and the problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", path=path) from exc
    except ValueError as exc:  # UnicodeDecodeError too
        raise ConfigError(f"{path} is not valid JSON: {exc}", path=path) from exc
    if not isinstance(config, dict) or config.get("version") != 1:
        raise ConfigError(f"{path}: expected a JSON object with \"version\": 1", path=path)
    check_config(config, path)
    return config


def order_params(config: t.Mapping[str, t.Any], force: bool) -> dict[str, t.Any]:
    """The options of acme_stateless_order for this host."""
    return {
        "directory": config["directory"],
        "ca_path": config.get("ca_path") or None,
        "validate_certs": config.get("validate_certs", True),
        "account_key_path": config["account_key_path"],
        "email": config.get("email"),
        "terms_agreed": bool(config.get("terms_agreed", False)),
        "request_timeout": config.get("request_timeout", _defaults.REQUEST_TIMEOUT),
        "certificates": config["certificates"],
        "cert_dir": config["cert_dir"],
        "remaining_days": config.get("remaining_days"),
        "profile": config.get("profile"),
        "force": force,
        "use_ari": config.get("use_ari", _defaults.USE_ARI),
        "concurrency": config.get("concurrency", _defaults.CONCURRENCY),
        "owner": config.get("owner"),
        "group": config.get("group"),
        "mode": config.get("mode", _defaults.mode_text(_defaults.BUNDLE_MODE)),
        "lock_timeout": config.get("lock_timeout"),
    }


def deploy_params(config: t.Mapping[str, t.Any], names: t.Sequence[str]) -> dict[str, t.Any]:
    """The options of haproxy_runtime_cert: serve each bundle the order left on disk.

    Every certificate is checked, not only the renewed ones: a push that failed on
    an earlier run (HAProxy was down) converges now, and an unchanged one costs a
    single ``show ssl cert``.
    """
    cert_dir = str(config["cert_dir"]).rstrip("/")
    domains = {c.get("name"): c.get("domains") for c in config["certificates"]}
    return {
        "socket": [config["socket"]],
        "certificates": [
            {
                "path": f"{cert_dir}/{name}.pem",
                "pem_src": f"{cert_dir}/{name}.pem",
                "crt_list": config.get("crt_list") or None,
                "expected_domains": domains.get(name),
            }
            for name in names
        ],
        "write_file": False,
        "timeout": config.get("socket_timeout", _defaults.SOCKET_TIMEOUT),
    }


def _line(order: t.Mapping[str, t.Any], served: t.Mapping[str, t.Any] | None) -> str:
    text = f"{order['name']}: {order['action']}"
    # A failure's reason is most often its error, which the message already says.
    if order.get("reason") and not (order.get("action") == "failed" and order["reason"] in str(order.get("msg"))):
        text += f" ({order['reason']})"
    if order.get("serial"):
        text += f" serial={order['serial']} not_after={order['not_after']}"
    if order.get("action") == "failed":
        text += f": {order.get('msg', '')}"
    if served is not None:
        text += f"; haproxy: {served.get('action')}"
        if served.get("msg"):
            text += f": {served['msg']}"
    return text


def run(config: t.Mapping[str, t.Any], force: bool = False, dry_run: bool = False,
        out: t.TextIO | None = None, outcome: list[dict[str, t.Any]] | None = None) -> int:
    """Renew, deploy, log (one line per certificate to ``out``, standard output by default); the exit status.

    ``outcome``, when given, receives what the metrics say of each certificate (metric_entry).
    """
    out = out or sys.stdout
    # Imported here so that a missing cryptography/requests is reported, not a traceback.
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import order_run  # noqa: PLC0415
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import cert_run  # noqa: PLC0415

    # One run at a time per certificate directory, across ordering and deploying: a
    # playbook run on this host waits for the job, and the other way round (_lock.py).
    with _lock.run_lock(str(config["cert_dir"]), config.get("lock_timeout"), enabled=not dry_run):
        ordered = order_run.run(order_params(config, force), check_mode=dry_run)
        certificates, order_failure = ordered.result["certificates"], ordered.failure
        # A dry run orders nothing, so only the bundles already on disk can be checked.
        skip = ("failed", "issued", "renewed") if dry_run else ("failed",)
        ready = [c["name"] for c in certificates if c["action"] not in skip]
        served_by_path: dict[str, dict[str, t.Any]] = {}
        deploy_failure = None
        if ready:
            deployed = cert_run.run(deploy_params(config, ready), check_mode=dry_run)
            served_by_path = {entry["path"]: entry for entry in deployed.result["certificates"]}
            deploy_failure = deployed.failure
            for warning in deployed.warnings:
                out.write(f"warning: {warning}\n")
    for cert in certificates:
        served = served_by_path.get(cert["path"])
        out.write(_line(cert, served) + "\n")
        if outcome is not None:
            failed_push = served is not None and served.get("action") == "failed"
            outcome.append(metric_entry(cert["name"], cert["path"], "failed" if failed_push else cert["action"], cert))
    failed = order_failure is not None or deploy_failure is not None
    summary = "dry run: " if dry_run else ""
    summary += f"{len(certificates)} certificates, {sum(c['action'] in ('issued', 'renewed') for c in certificates)} renewed"
    if failed:
        summary += f", FAILED: {'; '.join(m for m in (order_failure, deploy_failure) if m)}"
    out.write(summary + "\n")
    return EXIT_FAILED if failed else EXIT_OK


def metric_entry(name: str, path: str, result: str, dates: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """One certificate for _metrics.host(): its result, dates, and when its bundle was last
    replaced (the file's mtime: the job and the playbooks write a bundle only when it changes)."""
    try:
        replaced: float | None = os.stat(path).st_mtime
    except OSError:
        replaced = None
    return {"name": name, "result": result, "not_before": dates.get("not_before"),
            "not_after": dates.get("not_after"), "last_renewal": replaced}


def _on_disk(config: t.Mapping[str, t.Any]) -> list[dict[str, t.Any]]:
    """Each certificate as failed, with the dates of the bundle on disk: for a run that broke off
    before it reached the certificates (the lock was held, the libraries are missing)."""
    cert_dir = str(config.get("cert_dir") or "").rstrip("/")
    entries = []
    for cert in config.get("certificates") or []:
        name = str(cert.get("name") or (cert.get("domains") or ["?"])[0])
        path = f"{cert_dir}/{name}.pem"
        dates: dict[str, t.Any] = {}
        try:
            data = _files.read_optional(path)
            if data is not None:
                info = _pem.parse_bundle(data, require_key=False).info()
                dates = {"not_before": info.not_before, "not_after": info.not_after}
        except HaproxyAcmeError:  # no cryptography, or no bundle to read: no dates, and the run failed anyway
            pass
        entries.append(metric_entry(name, path, "failed", dates))
    return entries


def write_metrics(config: t.Mapping[str, t.Any], outcome: t.Sequence[t.Mapping[str, t.Any]], success: bool,
                  started: float, duration: float) -> None:
    """The run's metrics to ``metrics_path`` (0644, atomically: node_exporter never reads half
    a file); a warning, never a failed run, when they cannot be written."""
    path = config.get("metrics_path")
    if not path:
        return
    text = _metrics.host(outcome or _on_disk(config), success, started, duration)
    try:
        _files.atomic_write(str(path), text.encode("utf-8"), mode=0o644)
    except HaproxyAcmeError as exc:
        sys.stderr.write(f"warning: metrics not written: {exc}\n")


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="haproxy-acme-renew",
        description="Renew due ACME certificates and hot-load them into HAProxy (tlsops.haproxy_acme).",
    )
    parser.add_argument("--config", default="/etc/haproxy-acme/renew.json", help="the job's JSON configuration")
    parser.add_argument("--force", action="store_true", help="renew every certificate now")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done; no order, no push")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:  # its message names the file
        sys.stderr.write(f"configuration error: {exc}\n")
        return EXIT_CONFIG
    started, clock = time.time(), time.monotonic()
    outcome: list[dict[str, t.Any]] = []
    status = EXIT_FAILED
    try:
        status = run(config, force=args.force, dry_run=args.dry_run, outcome=outcome)
    except ConfigError as exc:  # options the run refuses as a whole (concurrency, directory...)
        sys.stderr.write(f"configuration error in {args.config}: {exc}\n")
        status = EXIT_CONFIG
    except HaproxyAcmeError as exc:
        sys.stderr.write(f"error: {exc}\n")
    except ImportError as exc:
        sys.stderr.write(f"error: this job needs Python's cryptography and requests packages ({exc})\n")
    finally:
        if not args.dry_run:
            write_metrics(config, outcome, status == EXIT_OK, started, time.monotonic() - clock)
    return status
