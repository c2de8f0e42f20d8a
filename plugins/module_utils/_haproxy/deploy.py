# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deploy certificates to HAProxy: files on disk, then every Runtime API socket.

Order matters. Every bundle is checked first (nothing is touched for a bad one).
The file is written next, atomically, so a restart serves the new certificate
even if the Runtime API push then fails (HAProxy down, lock held); the push
comes last and is read back. One certificate failing does not stop the others;
each gets its own result.
"""

from __future__ import annotations

import grp
import os
import pwd
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError, HaproxyAcmeError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import commands as cmd
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.certs import (
    ABSENT,
    CREATED,
    FAILED,
    PRESENT,
    REMOVED,
    UNCHANGED,
    UPDATED,
    CertSession,
    Desired,
    Plan,
    decide,
    desired_absent,
    desired_present,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.module_args import DEFAULT_BUSY_TIMEOUT
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.parse import RuntimeCert
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.tls import check_served
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import DEFAULT_TIMEOUT, RuntimeApi
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    atomic_write,
    file_matches,
    isoformat,
    read_optional,
    remove_file,
)

WRITE_THREADS = 8
_RANK = {UNCHANGED: 0, REMOVED: 1, UPDATED: 2, CREATED: 3, FAILED: 4}


@dataclass
class Request:
    """One certificate as the module was asked for it."""

    path: str
    state: str = PRESENT
    pem: bytes | None = field(default=None, repr=False)
    pem_src: str | None = None  # read when ``pem`` is not given
    crt_list: str | None = None
    expected_domains: list[str] | None = None


@dataclass
class Options:
    sockets: list[str]
    write_file: bool = True
    mode: int = 0o640
    owner: str | None = None
    group: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    wait: float = DEFAULT_BUSY_TIMEOUT
    abort_foreign: bool = False
    bufsize: int = cmd.DEFAULT_BUFSIZE
    verify_address: str | None = None
    check_mode: bool = False


@dataclass
class Entry:
    """The running result of one certificate."""

    request: Request
    desired: Desired | None = None
    file_changed: bool = False
    before: RuntimeCert | None = None
    after: RuntimeCert | None = None
    sockets: list[dict[str, t.Any]] = field(default_factory=list)
    verified: bool | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def fail(self, error: BaseException, where: str | None = None) -> None:
        text = str(error)
        self.errors.append(f"{where}: {text}" if where else text)


@dataclass
class Report:
    entries: list[Entry]
    warnings: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(result(e)["changed"] for e in self.entries)

    @property
    def failures(self) -> list[Entry]:
        return [e for e in self.entries if e.failed]


ApiFactory = t.Callable[[str, float], RuntimeApi]


def deploy(requests: t.Sequence[Request], options: Options, api_factory: ApiFactory = RuntimeApi) -> Report:
    """Check, write and push every certificate; never raises for one certificate's failure."""
    _refuse_duplicates(requests)
    report = Report([Entry(r) for r in requests])
    for entry in report.entries:
        _prepare(entry, options)
    _write_all([e for e in report.entries if e.desired is not None and not e.failed], options)
    ready = [e for e in report.entries if e.desired is not None and not e.failed]
    for address in options.sockets:
        _push(ready, address, options, report, api_factory)
    if options.verify_address and not options.check_mode:
        for entry in ready:
            _verify_served(entry, options)
    return report


def _refuse_duplicates(requests: t.Sequence[Request]) -> None:
    seen: set[str] = set()
    for request in requests:
        if request.path in seen:
            raise ConfigError(f"{request.path} is listed twice", path=request.path)
        seen.add(request.path)


def _prepare(entry: Entry, options: Options) -> None:
    request = entry.request
    try:
        if request.state == ABSENT:
            entry.desired = desired_absent(request.path, request.crt_list)
        else:
            entry.desired = desired_present(
                request.path, _bundle_bytes(request), request.crt_list, request.expected_domains, options.bufsize
            )
    except HaproxyAcmeError as exc:
        entry.fail(exc)


def _bundle_bytes(request: Request) -> bytes:
    if request.pem is not None:
        return request.pem
    source = request.pem_src or request.path
    data = read_optional(source)
    if data is None:
        raise ConfigError(f"the PEM bundle {source} does not exist", path=request.path, pem_src=source)
    return data


# ------------------------------------------------------------------ files


def _write_all(entries: list[Entry], options: Options) -> None:
    """Write the files, several at a time.

    Each atomic write waits for its own fsync (file, then directory); run side by
    side, those waits share the filesystem's journal commits instead of queueing.
    """
    if len(entries) <= 1 or options.check_mode or not options.write_file:
        for entry in entries:
            _write(entry, options)
        return
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        list(pool.map(lambda entry: _write(entry, options), entries))


def _write(entry: Entry, options: Options) -> None:
    desired = entry.desired
    if not options.write_file or desired is None:
        return
    try:
        if desired.state == ABSENT:
            entry.file_changed = os.path.lexists(desired.path) if options.check_mode else remove_file(desired.path)
            return
        data = desired.payload.encode("ascii")
        owner, group = _ownership(desired.path, options.owner, options.group)
        if options.check_mode:
            entry.file_changed = not file_matches(desired.path, data, options.mode, owner, group)
        else:
            entry.file_changed = atomic_write(desired.path, data, options.mode, owner, group)
    except HaproxyAcmeError as exc:
        entry.fail(exc)


def _ownership(path: str, owner: str | None, group: str | None) -> tuple[str | None, str | None]:
    """Owner and group to write with: as asked, else those of the file being replaced.

    A rename would otherwise hand an ``acme:haproxy`` bundle to whoever runs us.
    """
    if owner and group:
        return owner, group
    try:
        st = os.stat(path)
    except OSError:
        return owner, group
    if os.geteuid() != 0:
        return owner, group
    try:
        owner = owner or pwd.getpwuid(st.st_uid).pw_name
        group = group or grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        pass
    return owner, group


# ---------------------------------------------------------------- runtime


def _push(ready: list[Entry], address: str, options: Options, report: Report, api_factory: ApiFactory) -> None:
    if not ready:
        return
    try:
        api = api_factory(address, options.timeout)
    except HaproxyAcmeError as exc:
        for entry in ready:
            _socket_failed(entry, address, exc)
        return
    session = CertSession(api, options.wait, options.abort_foreign, options.bufsize)
    try:
        try:
            observed = session.observe([t.cast(Desired, e.desired) for e in ready])
        except HaproxyAcmeError as exc:
            for entry in ready:
                _socket_failed(entry, address, exc)
            return
        for entry, seen in zip(ready, observed):
            _push_one(entry, session, address, seen, options)
    finally:
        api.close()
        report.warnings.extend(session.warnings)
        report.aborted.extend(session.aborted)


def _push_one(
    entry: Entry,
    session: CertSession,
    address: str,
    observed: tuple[RuntimeCert | None, bool | None],
    options: Options,
) -> None:
    desired = t.cast(Desired, entry.desired)
    current, listed = observed
    plan = decide(desired, current, listed)
    if not entry.sockets:
        entry.before = current
    record: dict[str, t.Any] = {"socket": address, "action": plan.action, "reason": plan.reason}
    entry.sockets.append(record)
    after = current
    if plan.steps and not options.check_mode:
        try:
            session.apply(desired, plan)
            after = session.verify(desired)
        except HaproxyAcmeError as exc:
            record.update(action=FAILED, reason=str(exc))
            entry.fail(exc, address if len(options.sockets) > 1 else None)
            return
    elif plan.steps:
        after = None  # check mode: predicted from the desired bundle
    record["status"] = _status(desired, after, plan, options.check_mode)
    if entry.after is None:
        entry.after = after


def _status(desired: Desired, after: RuntimeCert | None, plan: Plan, check_mode: bool) -> str:
    if desired.state == ABSENT:
        return "Absent"
    if check_mode and plan.steps:
        return "Used"
    return after.status if after is not None else "Absent"


def _socket_failed(entry: Entry, address: str, error: HaproxyAcmeError) -> None:
    entry.sockets.append({"socket": address, "action": FAILED, "reason": str(error)})
    text = str(error)
    if entry.file_changed and entry.desired is not None and entry.desired.state == PRESENT:
        text += f"; {entry.request.path} was written, so HAProxy loads it when it next starts"
    entry.errors.append(text)


def _verify_served(entry: Entry, options: Options) -> None:
    desired = t.cast(Desired, entry.desired)
    if entry.failed or desired.state != PRESENT or desired.info is None:
        return
    try:
        check_served(t.cast(str, options.verify_address), desired.info.domains, desired.info.serial, options.timeout)
        entry.verified = True
    except HaproxyAcmeError as exc:
        entry.verified = False
        entry.fail(exc)


# ---------------------------------------------------------------- results


def action_of(entry: Entry) -> str:
    if entry.failed:
        return FAILED
    actions = [s["action"] for s in entry.sockets] or [UNCHANGED]
    return max(actions, key=lambda a: _RANK.get(a, 0))


def result(entry: Entry) -> dict[str, t.Any]:
    """One certificate's result: what the module returns in ``certificates``."""
    desired = entry.desired
    action = action_of(entry)
    out: dict[str, t.Any] = {
        "path": entry.request.path,
        "state": entry.request.state,
        "action": action,
        "reason": _reason(entry, action),
        "changed": action in (CREATED, UPDATED, REMOVED) or entry.file_changed,
        "file_changed": entry.file_changed,
        "crt_list": desired.target_list if desired is not None else entry.request.crt_list,
        "status": entry.sockets[0].get("status") if entry.sockets else None,
        "sockets": entry.sockets,
    }
    if desired is not None and desired.info is not None:
        info = desired.info
        out.update(
            serial=info.serial,
            not_before=isoformat(info.not_before),
            not_after=isoformat(info.not_after),
            domains=list(info.domains),
            sha1_fingerprint=info.sha1_fingerprint,
            key_type=info.key_type,
        )
    if entry.verified is not None:
        out["verified"] = entry.verified
    if entry.failed:
        out["msg"] = "; ".join(entry.errors)
    return out


def _reason(entry: Entry, action: str) -> str:
    if entry.failed:
        return "; ".join(entry.errors)
    reasons = [s["reason"] for s in entry.sockets if s["action"] == action]
    if reasons:
        return reasons[0]
    return "file written" if entry.file_changed else "nothing to do"


def diff(entry: Entry) -> dict[str, t.Any]:
    """Before/after metadata (serial, notAfter, SANs, status); never key bytes."""
    desired = entry.desired
    header = entry.request.path
    after: dict[str, t.Any] = {}
    if desired is not None and desired.state == PRESENT and desired.info is not None:
        after = {
            "serial": desired.info.serial,
            "not_after": isoformat(desired.info.not_after),
            "domains": list(desired.info.domains),
            "status": "Used",
        }
    return {"before": _runtime_view(entry.before), "after": after, "before_header": header, "after_header": header}


def _runtime_view(cert: RuntimeCert | None) -> dict[str, t.Any]:
    if cert is None:
        return {}
    return {
        "serial": cert.serial,
        "not_after": isoformat(cert.not_after) if cert.not_after else None,
        "domains": cert.domains,
        "status": cert.status,
    }
