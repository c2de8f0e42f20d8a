# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deploy certificates to HAProxy: files on disk, then every Runtime API socket.

Order matters. Every bundle is checked first (nothing is touched for a bad one).
Then every socket is asked, read-only, what it holds and which crt-lists it has:
a socket path that is no socket, a socket below level admin, or a crt-list
HAProxy does not have fails the certificates before the disk is touched (a
socket nobody answers on does not: HAProxy may just be down). The file is
written next, atomically, so a restart serves the new certificate even if the
Runtime API push then fails (HAProxy down, lock held); the push comes last and
is read back. One certificate failing does not stop the others; each gets its
own result.

Two runs may deploy the same names at once (two fleet runs that ordered one
certificate each). A bundle never replaces a newer one for the same names
(``newer_copy``): a newer copy on disk is deployed instead of the one offered,
and a newer one HAProxy serves is kept. The look, the write and the push hold
the certificate directory's run lock (``_lock``), so the other run sees what
this one left.

A push holds for the process that answers at its end. A connection lost in the
middle (HAProxy restarted) is opened again within ``timeout``; a reload leaves
our connection with the old, stopping worker, so after the last certificate a
new connection checks the process. When another process answers, it started
from the files just written: every certificate is read again from it and
pushed where it differs, at most MAX_PASSES times in all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import os
import pwd
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults, _lock
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    ConfigError,
    HaproxyAcmeError,
    RuntimeApiConnectionError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._files import (
    atomic_write,
    file_matches,
    read_optional,
    remove_file,
    sync_directories,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.certs import (
    ABSENT,
    CREATED,
    FACTS_KIND,
    FAILED,
    PRESENT,
    REMOVED,
    UNCHANGED,
    UPDATED,
    CertSession,
    Desired,
    Plan,
    decide,
    deploy_facts,
    desired_absent,
    desired_known,
    desired_present,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.parse import RuntimeCert
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.tls import check_served
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import (
    RuntimeApi,
    parse_address,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import BundleIndex
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    CertInfo,
    ip_text,
    parse_bundle,
    same_serial,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._time import isoformat, utcnow

WRITE_THREADS = 8
MAX_PASSES = 3  # pushes to one socket whose process changed under us, before giving up
_RANK = {UNCHANGED: 0, REMOVED: 1, UPDATED: 2, CREATED: 3, FAILED: 4}
_CERT_END = b"-----END CERTIFICATE-----"


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
    mode: int = _defaults.BUNDLE_MODE
    owner: str | None = None
    group: str | None = None
    timeout: float = _defaults.SOCKET_TIMEOUT
    wait: float = _defaults.BUSY_TIMEOUT
    abort_foreign: bool = False
    bufsize: int = _defaults.BUFSIZE
    verify_address: str | None = None
    check_mode: bool = False
    # (kind, compute): facts to keep in the directory's index for each bundle written, so that
    # the next reader of that file (haproxy_runtime_cert_info's bundle_facts) need not parse it.
    facts_source: tuple[str, t.Callable[[bytes], dict[str, t.Any] | None]] | None = None


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
    note: str | None = None  # why another bundle than the one offered was deployed
    kept: Copy | None = None  # a newer certificate HAProxy serves: nothing written or sent

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
    # Per socket, in the order given: the PID of the process that answered at the end (after
    # a reload during the push, the new one), None without a connection.
    pids: list[int | None] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(result(e)["changed"] for e in self.entries)

    @property
    def failures(self) -> list[Entry]:
        return [e for e in self.entries if e.failed]


ApiFactory = t.Callable[[str, float], RuntimeApi]
Observed = t.Tuple[t.Optional[RuntimeCert], t.Optional[bool]]


@dataclass
class Link:
    """One socket after the read-only look before anything is written."""

    address: str
    api: RuntimeApi | None = None
    session: CertSession | None = None
    observed: dict[int, Observed] = field(default_factory=dict)  # by id() of the Entry
    error: HaproxyAcmeError | None = None  # unreachable: the files are written anyway


@dataclass
class SocketResult:
    """What happened to one certificate on one socket (the last pass counts)."""

    record: dict[str, t.Any]
    before: RuntimeCert | None
    after: RuntimeCert | None
    error: str | None = None


# ------------------------------------------------------------ newer copies


@dataclass(frozen=True)
class Copy:
    """A certificate already there under a name: served on a socket, or in the file on disk."""

    where: str  # "served on <socket>", "on disk at <path>"
    serial: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    names: tuple[str, ...]  # its DNS names (HAProxy prints no others)


def newer_copy(offered: CertInfo, copies: t.Iterable[Copy], now: dt.datetime, *,
               by_serial: bool = True) -> Copy | None:
    """The newest of ``copies`` when it is newer than ``offered`` for the same names, else None.

    Newer: a later notBefore; on a tie a later notAfter, then a higher serial, so that
    two runs that each offer their own certificate end on the same one wherever they
    meet. With ``by_serial=False`` a copy must be newer by its dates: two certificates
    issued in the same second (a CA's dates have whole seconds) are then no newer than
    each other. Only copies with the same set of DNS names count, and only while they are
    valid; a copy whose dates are unknown never wins. A certificate without DNS names
    (addresses only) has nothing to compare by: it is always deployed.
    """
    names = _dns_names(offered.domains)
    if not names:
        return None
    best: Copy | None = None
    for copy in copies:
        if copy.not_before is None or copy.not_after is None or copy.not_after <= now:
            continue
        if _dns_names(copy.names) != names:
            continue
        if best is None or _age(copy.not_before, copy.not_after, copy.serial) > _age(
            best.not_before, best.not_after, best.serial
        ):
            best = copy
    if best is None:
        return None
    newest, mine = (_age(best.not_before, best.not_after, best.serial),
                    _age(offered.not_before, offered.not_after, offered.serial))
    if (newest if by_serial else newest[:2]) <= (mine if by_serial else mine[:2]):
        return None
    return best


def _dns_names(domains: t.Iterable[str]) -> frozenset[str]:
    return frozenset(d.lower() for d in domains if ip_text(d) is None)


def _age(
    not_before: dt.datetime | None, not_after: dt.datetime | None, serial: str
) -> tuple[dt.datetime, dt.datetime, int]:
    """The sort key of a certificate's age (dates known: newer_copy skips the others)."""
    not_before, not_after = t.cast(dt.datetime, not_before), t.cast(dt.datetime, not_after)
    digits = serial.replace(":", "").strip()
    try:
        number = int(digits, 16) if digits else -1
    except ValueError:
        number = -1
    return not_before, not_after, number


def describe(copy: Copy, where: str | None = None) -> str:
    issued = isoformat(copy.not_before) if copy.not_before is not None else "at an unknown time"
    return f"a newer certificate (serial {copy.serial}, issued {issued}) is {where or copy.where}"


def served_copy(cert: RuntimeCert | None, address: str) -> Copy | None:
    """What HAProxy serves under a name as a Copy; None unless it serves one (status Used)."""
    if cert is None or cert.empty or not cert.used:
        return None
    return Copy(f"served on {address}", cert.serial, cert.not_before, cert.not_after, tuple(cert.domains))


# ------------------------------------------------------------------ deploy


def deploy(requests: t.Sequence[Request], options: Options, api_factory: ApiFactory = RuntimeApi) -> Report:
    """Check, write and push every certificate; never raises for one certificate's failure."""
    _refuse_duplicates(requests)
    report = Report([Entry(r) for r in requests])
    indexes: dict[str, BundleIndex] = {}  # by directory: facts of the bundles deployed from where they are
    for entry in report.entries:
        _prepare(entry, options, indexes)
    candidates = [e for e in report.entries if e.desired is not None and not e.failed]
    try:
        locks = _run_locks(candidates, options)
    except HaproxyAcmeError as exc:  # another run held the lock for longer than the timeout
        for entry in candidates:
            entry.fail(exc)
        return report
    links: list[Link] = []
    with locks:
        try:
            ready = _deploy_locked(candidates, links, options, api_factory)
            _index_written(candidates, options, indexes)
            for index in indexes.values():
                index.save()
        finally:
            for link in links:
                if link.api is not None:
                    link.api.close()
                report.pids.append(link.session.pid if link.session is not None and link.error is None else None)
                if link.session is not None:
                    report.warnings.extend(link.session.warnings)
                    report.aborted.extend(link.session.aborted)
    if options.verify_address and not options.check_mode:
        for entry in ready:
            _verify_served(entry, options)
    return report


def _deploy_locked(
    candidates: list[Entry], links: list[Link], options: Options, api_factory: ApiFactory
) -> list[Entry]:
    """Look, keep what is newer, write, push; ``links`` is filled as sockets are opened. The entries pushed."""
    for entry in candidates:
        _prefer_disk(entry, options)
    if candidates:
        links.extend(_look(candidates, address, options, api_factory) for address in options.sockets)
    _keep_newer(candidates, links)
    _load_known(candidates, links, options)
    _write_all([e for e in candidates if not e.failed and e.kept is None], options)
    ready = [e for e in candidates if not e.failed and e.kept is None]
    for link in links:
        _push(ready, link, options)
    return ready


def _index_written(entries: list[Entry], options: Options, indexes: dict[str, BundleIndex]) -> None:
    """Keep ``options.facts_source``'s facts of each bundle just written in its directory's index
    (saved with the others, under the run lock): the next read of those files finds them there."""
    if options.facts_source is None or options.check_mode or not options.write_file:
        return
    kind, compute = options.facts_source
    for entry in entries:
        desired = entry.desired
        if not entry.file_changed or entry.failed or desired is None or desired.state != PRESENT or desired.pem is None:
            continue
        directory = os.path.dirname(desired.path)
        index = indexes.get(directory)
        if index is None:
            index = indexes[directory] = BundleIndex(directory)
        facts = compute(desired.pem.encode("ascii"))
        if facts is not None:
            index.put(desired.path, kind, facts)


def _run_locks(entries: list[Entry], options: Options) -> contextlib.ExitStack:
    """The run lock of every certificate directory (in one order, so two runs never deadlock).

    Taken on entering the stack; a lock not had within the timeout raises FileError.
    """
    stack = contextlib.ExitStack()
    directories = sorted({os.path.dirname(t.cast(Desired, e.desired).path) for e in entries})
    try:
        for directory in directories:
            stack.enter_context(_lock.run_lock(directory, enabled=not options.check_mode))
    except BaseException:
        stack.close()
        raise
    return stack


def _prefer_disk(entry: Entry, options: Options) -> None:
    """Deploy the file at ``path`` instead of the bundle offered when the file is newer (another
    run wrote it); a file that cannot be read or checked is replaced as before."""
    desired, request = t.cast(Desired, entry.desired), entry.request
    if desired.state != PRESENT or desired.info is None:
        return
    if _offers_the_file(request):
        return  # the bundle offered is the file itself
    data = _quiet_read(request.path)
    if data is None:
        return
    try:
        info = parse_bundle(_leaf_only(data), require_key=False).info()
    except HaproxyAcmeError:
        return
    copy = Copy(f"on disk at {request.path}", info.serial, info.not_before, info.not_after, info.domains)
    if newer_copy(desired.info, [copy], utcnow()) is None:
        return
    try:
        on_disk = desired_present(request.path, data, request.crt_list, request.expected_domains, options.bufsize)
    except HaproxyAcmeError:
        return
    entry.note = f"{describe(copy)}: deployed it instead of the one offered (serial {desired.info.serial})"
    entry.desired = on_disk


def _offers_the_file(request: Request) -> bool:
    """Whether the bundle offered is the file at ``path`` itself (``pem_src`` = ``path``)."""
    return request.pem is None and (request.pem_src or request.path) == request.path


def _leaf_only(data: bytes) -> bytes:
    """The first certificate block of a bundle: all the age comparison reads, without
    parsing the chain and the key of every file on disk again."""
    end = data.find(_CERT_END)
    return data[: end + len(_CERT_END)] if end >= 0 else data


def _quiet_read(path: str) -> bytes | None:
    try:
        return read_optional(path)
    except HaproxyAcmeError:
        return None


def _keep_newer(entries: list[Entry], links: list[Link]) -> None:
    """Keep what a socket serves when it is newer than the bundle to deploy: nothing is written or sent.

    A newer file on disk that HAProxy already serves is kept too, and said so: the one
    offered is older than what is served.
    """
    now = utcnow()
    for entry in entries:
        desired = t.cast(Desired, entry.desired)
        if entry.failed or desired.state != PRESENT or desired.info is None:
            continue
        served = {link.address: link.observed[id(entry)][0] for link in links if id(entry) in link.observed}
        copies = [c for c in (served_copy(cert, address) for address, cert in served.items()) if c is not None]
        # The file at path itself (the host job, a renew on the host): what HAProxy must serve
        # once it restarts. A copy served is kept only when its dates are newer, not when it
        # was issued in the same second as the file and only its serial is higher.
        newer = newer_copy(desired.info, copies, now, by_serial=not _offers_the_file(entry.request))
        if newer is None and entry.note is not None:  # the file on disk, is it what HAProxy serves?
            newer = next((c for c in copies if same_serial(c.serial, desired.info.serial)), None)
        if newer is None:
            continue
        entry.kept, entry.note = newer, None
        entry.before = entry.after = next((c for c in served.values() if c is not None), None)
        reason = f"{describe(newer, 'already ' + newer.where)}; kept"
        for link in links:
            if link.address not in served:  # not reachable: no process answers for this name there
                _socket_failed(entry, link.address, link.error or ConfigError(f"no connection to {link.address}"))
                continue
            cert = served[link.address]
            entry.sockets.append(
                {
                    "socket": link.address,
                    "action": UNCHANGED,
                    "reason": reason,
                    "status": cert.status if cert is not None else "Absent",
                }
            )


def _refuse_duplicates(requests: t.Sequence[Request]) -> None:
    seen: set[str] = set()
    for request in requests:
        if request.path in seen:
            raise ConfigError(f"{request.path} is listed twice", path=request.path)
        seen.add(request.path)


def _prepare(entry: Entry, options: Options, indexes: dict[str, BundleIndex]) -> None:
    request = entry.request
    try:
        if request.state == ABSENT:
            entry.desired = desired_absent(request.path, request.crt_list)
        elif request.pem is None and (request.pem_src or request.path) == request.path:
            entry.desired = _desired_from_disk(request, options, indexes)
        else:
            entry.desired = desired_present(
                request.path, _bundle_bytes(request), request.crt_list, request.expected_domains, options.bufsize
            )
    except HaproxyAcmeError as exc:
        entry.fail(exc)


def _desired_from_disk(request: Request, options: Options, indexes: dict[str, BundleIndex]) -> Desired:
    """The file at ``path`` itself: from its directory's index while the file is unchanged
    (no parse; _load_known reads it if it must be sent), else checked in full and indexed."""
    directory = os.path.dirname(request.path)
    index = indexes.get(directory)
    if index is None:
        index = indexes[directory] = BundleIndex(directory, enabled=not options.check_mode)
    checked: list[Desired] = []

    def compute(data: bytes) -> dict[str, t.Any]:
        checked.append(desired_present(request.path, data, request.crt_list, request.expected_domains,
                                       options.bufsize))
        return deploy_facts(checked[0])

    exists, facts = index.get(request.path, FACTS_KIND, compute)
    if not exists:
        raise ConfigError(f"the PEM bundle {request.path} does not exist", path=request.path, pem_src=request.path)
    if checked:
        return checked[0]
    try:
        return desired_known(request.path, t.cast(t.Dict[str, t.Any], facts), request.crt_list,
                             request.expected_domains)
    except (KeyError, TypeError, ValueError):  # an entry of another shape: check the file itself
        return desired_present(request.path, _bundle_bytes(request), request.crt_list, request.expected_domains,
                               options.bufsize)


def _load_known(entries: list[Entry], links: list[Link], options: Options) -> None:
    """Read and check in full (desired_present, bufsize too) each bundle known from the index that
    is to be written or sent; one HAProxy serves already, and that is not written, stays unread."""
    for entry in entries:
        desired = t.cast(Desired, entry.desired)
        if entry.failed or entry.kept is not None or not desired.known:
            continue
        needed = options.write_file or any(
            id(entry) in link.observed and decide(desired, *link.observed[id(entry)]).action != UNCHANGED
            for link in links
        )
        if not needed:
            continue
        request = entry.request
        try:
            entry.desired = desired_present(request.path, _bundle_bytes(request), request.crt_list,
                                            request.expected_domains, options.bufsize)
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
    """Write the files, several at a time, then fsync each directory once.

    Each file waits for its own fsync; run side by side, those waits share the
    filesystem's journal commits instead of queueing. A directory's fsync (which makes
    the renames last) costs a journal commit of its own, about 3 ms here: once per
    directory, not once per file (10,000 updates: 29 s). Nothing is sent to HAProxy
    before it.
    """
    if len(entries) <= 1 or options.check_mode or not options.write_file:
        for entry in entries:
            _write(entry, options)
        return
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        list(pool.map(lambda entry: _write(entry, options, sync_dir=False), entries))
    sync_directories(os.path.dirname(os.path.abspath(e.desired.path)) for e in entries
                     if e.file_changed and e.desired is not None)


def _write(entry: Entry, options: Options, sync_dir: bool = True) -> None:
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
            entry.file_changed = atomic_write(desired.path, data, options.mode, owner, group, sync_dir=sync_dir)
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


def _look(entries: list[Entry], address: str, options: Options, api_factory: ApiFactory) -> Link:
    """Connect and read, before the disk is touched; fail what cannot work on this socket.

    Unreachable (missing socket, refused, timed out): noted, the files are still
    written. Anything else (not a socket, below level admin, an unknown crt-list)
    is a configuration to fix, and fails the certificates now.
    """
    link = Link(address)
    try:
        parse_address(address)
    except HaproxyAcmeError as exc:
        link.error = ConfigError(str(exc), socket=address)
        for entry in entries:
            _socket_failed(entry, address, link.error)
        return link
    try:
        link.api = api_factory(address, options.timeout)
        link.session = CertSession(link.api, options.wait, options.abort_foreign, options.bufsize)
        link.session.begin()
        observed = link.session.observe([t.cast(Desired, e.desired) for e in entries])
    except RuntimeApiConnectionError as exc:
        link.error = exc
        return link
    except HaproxyAcmeError as exc:
        link.error = exc
        for entry in entries:
            _socket_failed(entry, address, exc)
        return link
    for entry, seen in zip(entries, observed):
        link.observed[id(entry)] = seen
        desired = t.cast(Desired, entry.desired)
        problem = link.session.unknown_list(desired, decide(desired, *seen))
        if problem is not None:
            _socket_failed(entry, address, ConfigError(f"{problem}; nothing was written or sent", socket=address))
    return link


def _push(ready: list[Entry], link: Link, options: Options) -> None:
    """Push to one socket, again on the new process when HAProxy was restarted or reloaded meanwhile."""
    if not ready:
        return
    if link.session is None or link.error is not None:
        error = link.error or ConfigError(f"no connection to {link.address}", socket=link.address)
        for entry in ready:
            _socket_failed(entry, link.address, error)
        return
    results = _passes(ready, link, link.session, options)
    for i, entry in enumerate(ready):
        _record(entry, link.address, results[i], options)


def _passes(ready: list[Entry], link: Link, session: CertSession, options: Options) -> dict[int, SocketResult]:
    """Results by index in ``ready``: passes until one ends on the process it began with.

    When HAProxy does not come back, every certificate fails, those it had taken too:
    no process serves them now (their files are written, a start loads them).
    """
    results: dict[int, SocketResult] = {}
    todo = list(range(len(ready)))
    observed: dict[int, Observed] | None = {i: link.observed[id(ready[i])] for i in todo}
    for _pass in range(MAX_PASSES):
        try:
            todo = _one_pass(
                ready, todo, observed=observed, session=session, address=link.address, options=options, results=results
            )
        except RuntimeApiConnectionError as exc:  # HAProxy did not come back within the timeout
            for i in todo:
                results[i] = _failed_result(ready[i], link.address, exc, results.get(i))
            return results
        if not todo:
            return results
        observed = None
    error = RuntimeApiConnectionError(
        f"HAProxy behind {link.address} lost the connection or changed process in each of {MAX_PASSES} passes"
        " of this deploy; run it again once HAProxy is steady",
        socket=link.address,
    )
    for i in todo:
        results[i] = _failed_result(ready[i], link.address, error, results.get(i))
    return results


def _one_pass(
    ready: list[Entry],
    todo: list[int],
    *,
    observed: dict[int, Observed] | None,
    session: CertSession,
    address: str,
    options: Options,
    results: dict[int, SocketResult],
) -> list[int]:
    """Push ``todo``; what is left for another pass (empty when done on an unchanged process)."""
    if observed is None:
        observed = dict(zip(todo, session.observe([t.cast(Desired, ready[i].desired) for i in todo])))
    for n, i in enumerate(todo):
        try:
            result = _push_one(ready[i], session, address, observed[i], options)
        except RuntimeApiConnectionError:
            # Lost mid-way: the rest again on the same process, everything on a new one.
            return todo[n:] if session.recover(options.timeout) else list(range(len(ready)))
        results[i] = _merge(results.get(i), result)
    if options.check_mode or _still_same(session, options.timeout):
        return []
    return list(range(len(ready)))


def _still_same(session: CertSession, within: float) -> bool:
    """After a pass: does the socket still lead to the process the pass talked to?"""
    try:
        return session.same_process()
    except RuntimeApiConnectionError:
        return session.recover(within)


def _push_one(
    entry: Entry,
    session: CertSession,
    address: str,
    observed: Observed,
    options: Options,
) -> SocketResult:
    """Plan, apply and read back one certificate; RuntimeApiConnectionError is left to the caller."""
    desired = t.cast(Desired, entry.desired)
    current, listed = observed
    plan = decide(desired, current, listed)
    record: dict[str, t.Any] = {"socket": address, "action": plan.action, "reason": plan.reason}
    problem = session.unknown_list(desired, plan)  # again: a reload may have changed the lists
    if problem is not None:
        record.update(action=FAILED, reason=problem)
        return SocketResult(record, current, None, problem)
    after = current
    if plan.steps and not options.check_mode:
        try:
            session.apply(desired, plan)
            after = session.verify(desired)
        except RuntimeApiConnectionError:
            raise
        except HaproxyAcmeError as exc:
            record.update(action=FAILED, reason=str(exc))
            return SocketResult(record, current, None, str(exc))
    elif plan.steps:
        after = None  # check mode: predicted from the desired bundle
    record["status"] = _status(desired, after, plan, options.check_mode)
    return SocketResult(record, current, after)


def _merge(previous: SocketResult | None, new: SocketResult) -> SocketResult:
    """A later pass on a new process decides; one with nothing left to do keeps what the first did."""
    if previous is None or previous.error is not None or new.error is not None:
        return new
    if new.record["action"] != UNCHANGED:
        return new
    record = {**previous.record, "status": new.record.get("status")}
    return SocketResult(record, previous.before, new.after)


def _failed_result(entry: Entry, address: str, error: HaproxyAcmeError, previous: SocketResult | None) -> SocketResult:
    text = _with_file_note(entry, str(error))
    record = {"socket": address, "action": FAILED, "reason": text}
    return SocketResult(record, previous.before if previous else None, None, text)


def _record(entry: Entry, address: str, result: SocketResult, options: Options) -> None:
    if not entry.sockets:
        entry.before = result.before
    entry.sockets.append(result.record)
    if result.error is not None:
        entry.errors.append(f"{address}: {result.error}" if len(options.sockets) > 1 else result.error)
    elif entry.after is None:
        entry.after = result.after


def _status(desired: Desired, after: RuntimeCert | None, plan: Plan, check_mode: bool) -> str:
    if desired.state == ABSENT:
        return "Absent"
    if check_mode and plan.steps:
        return "Used"
    return after.status if after is not None else "Absent"


def _socket_failed(entry: Entry, address: str, error: HaproxyAcmeError) -> None:
    entry.sockets.append({"socket": address, "action": FAILED, "reason": str(error)})
    entry.errors.append(_with_file_note(entry, str(error)))


def _with_file_note(entry: Entry, text: str) -> str:
    if entry.file_changed and entry.desired is not None and entry.desired.state == PRESENT:
        text += f"; {entry.request.path} was written, so HAProxy loads it when it next starts"
    return text


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
    reason = reasons[0] if reasons else ("file written" if entry.file_changed else "nothing to do")
    return f"{entry.note}; {reason}" if entry.note else reason


def diff(entry: Entry) -> dict[str, t.Any]:
    """Before/after metadata (serial, notAfter, SANs, status); never key bytes."""
    desired = entry.desired
    header = entry.request.path
    after: dict[str, t.Any] = {}
    if entry.kept is not None:
        after = _runtime_view(entry.after)
    elif desired is not None and desired.state == PRESENT and desired.info is not None:
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
