# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Certificate transactions on one Runtime API connection.

management.txt, "set ssl cert" and "add ssl crt-list": a new certificate needs
``new ssl cert`` + ``set ssl cert`` + ``commit ssl cert`` + ``add ssl crt-list``;
an existing one ``set`` + ``commit``. HAProxy allows one certificate transaction
per process, so before ``set`` we wait (within a bound) until no other one is
open (asked with a probe whose reply stays short however many certificates
HAProxy holds: ``commands.transaction_probe``), and we never leave ours open: any failure after ``set`` sends
``abort ssl cert``.

HAProxy 2.6 has a trap here: ``set ssl cert B`` while a transaction on A is open
does not fail, it writes B's payload into A's transaction ("Transaction updated
for certificate A!"). The reply names the transaction, so we check it; if it is
not ours, that transaction now holds our certificate under another name and
must never be committed: we abort it and try again.

A certificate that is committed but in no crt-list is ``Unused``: loaded, never
served. After every change we read ``show ssl cert <name>`` back and require the
new serial and ``Status: Used``.

A session knows the process it talks to (``show info`` Pid) and the crt-lists
that process has (``show ssl crt-list``), read by ``begin()`` before anything is
written. A connection lost in the middle (HAProxy restarted, or stopped) leaves
what was open in that process to ``recover()``: it connects again within a bound
and cleans up only if the same process answers; a new process started from the
configuration and the files on disk, so nothing of ours is open in it.
"""

from __future__ import annotations

import os
import time
import typing as t
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    ConfigError,
    HaproxyAcmeError,
    RuntimeApiBusy,
    RuntimeApiConnectionError,
    RuntimeApiError,
    RuntimeApiVerifyError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import commands as cmd
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.compare import (
    ChainNames,
    chain_names,
    same_chain,
    same_leaf,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.parse import (
    RuntimeCert,
    is_not_found,
    parse_cert_detail,
    parse_crt_list,
    parse_crt_lists,
    parse_pid,
    probed_transaction,
    raise_for_reply,
    transaction_of,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy.transport import RuntimeApi
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    CertInfo,
    check_bundle,
    check_facts,
    parse_bundle,
)

PRESENT = "present"
ABSENT = "absent"
CREATED, UPDATED, UNCHANGED, REMOVED, FAILED = "created", "updated", "unchanged", "removed", "failed"
CLEANUP_WAIT = 5.0
_LOCKED = "Operations on certificates are currently locked!"
POLL = 0.05
RECONNECT_POLL = 0.1


# ----------------------------------------------------------- what we want


@dataclass
class Desired:
    """One certificate as asked: its name in HAProxy (= its file) and, if present, its bundle."""

    path: str
    state: str = PRESENT
    crt_list: str | None = None
    pem: str | None = field(default=None, repr=False)  # None: absent, or known from the index (desired_known)
    info: CertInfo | None = None
    chain: ChainNames = field(default_factory=lambda: ChainNames(0))

    @property
    def known(self) -> bool:
        """Present, with facts from the directory's index and no payload read yet."""
        return self.state == PRESENT and self.pem is None

    @property
    def leaf(self) -> CertInfo:
        """The leaf's facts; only a present certificate has them."""
        if self.info is None:
            raise ConfigError(f"no certificate for {self.path}", name=self.path)
        return self.info

    @property
    def payload(self) -> str:
        if self.pem is None:
            raise ConfigError(f"no PEM bundle for {self.path}", name=self.path)
        return self.pem

    @property
    def target_list(self) -> str:
        """The crt-list to attach to: given, else the certificate's directory (a ``crt <dir>/`` bind)."""
        return self.crt_list or os.path.dirname(self.path)


def desired_present(
    path: str,
    pem: bytes,
    crt_list: str | None = None,
    expected_domains: t.Iterable[str] | None = None,
    bufsize: int = _defaults.BUFSIZE,
) -> Desired:
    """Check everything before HAProxy is touched: name, bundle, key, expiry, chain, size."""
    crt_list = normal_crt_list(crt_list)
    check_path(path, crt_list)
    bundle = parse_bundle(pem)
    check_bundle(bundle, expected_domains)
    payload = cmd.pem_payload(pem)
    cmd.set_cert(path, payload, bufsize)  # refuses what cannot fit HAProxy's buffer
    return Desired(path, PRESENT, crt_list, payload, bundle.info(), chain_names(bundle.chain))


#: The index's name for the facts below (_index.BundleIndex.get).
FACTS_KIND = "deploy"


def deploy_facts(desired: Desired) -> dict[str, t.Any]:
    """What a deploy compares with HAProxy, from a bundle desired_present accepted, as JSON
    for the index: the leaf's facts and the chain's names."""
    chain, info = desired.chain, desired.leaf
    return {"info": info.to_json(), "chain": [chain.count, list(chain.subjects), list(chain.issuers), chain.exact]}


def desired_known(
    path: str,
    facts: t.Mapping[str, t.Any],
    crt_list: str | None = None,
    expected_domains: t.Iterable[str] | None = None,
) -> Desired:
    """:func:`desired_present` from the facts of an unchanged file (deploy_facts): what a
    comparison with HAProxy needs, and no payload. Before anything is sent, the deploy
    replaces it with desired_present over the file's bytes (all checks, bufsize too).
    KeyError, TypeError or ValueError for facts of another shape."""
    crt_list = normal_crt_list(crt_list)
    check_path(path, crt_list)
    info = CertInfo.from_json(facts["info"])
    count, subjects, issuers, exact = facts["chain"]
    chain = ChainNames(int(count), tuple(str(x) for x in subjects), tuple(str(x) for x in issuers), bool(exact))
    check_facts(info, expected_domains)
    return Desired(path, PRESENT, crt_list, None, info, chain)


def desired_absent(path: str, crt_list: str | None = None) -> Desired:
    crt_list = normal_crt_list(crt_list)
    check_path(path, crt_list)
    return Desired(path, ABSENT, crt_list)


def normal_crt_list(crt_list: str | None) -> str | None:
    """A crt directory as HAProxy names it: ``show ssl crt-list`` lists ``crt /dir/`` as ``/dir``."""
    if not crt_list:
        return None
    return crt_list.rstrip("/") or "/"


def check_path(path: str, crt_list: str | None) -> None:
    cmd.check_name(path, "certificate path")
    if not os.path.isabs(path):
        raise ConfigError(
            f"the certificate path {path!r} must be absolute: HAProxy names certificates by their full path", name=path
        )
    if crt_list is not None:
        cmd.check_name(crt_list, "crt-list")


# ------------------------------------------------------------------ plans


@dataclass(frozen=True)
class Plan:
    """What to send for one certificate; ``steps`` in order, empty when nothing to do."""

    action: str
    reason: str
    steps: tuple[str, ...] = ()


def decide(want: Desired, current: RuntimeCert | None, listed: bool | None = None) -> Plan:
    """The plan from what HAProxy holds; ``listed`` is False when an explicit crt-list lacks it."""
    if want.state == ABSENT:
        return _decide_absent(current)
    if current is None:
        return Plan(CREATED, "new certificate", ("new", "set", "commit", "add"))
    if current.empty:
        return Plan(CREATED, "filled the empty store a bare 'new ssl cert' left", ("set", "commit", "add"))
    same = same_leaf(want.leaf, current) and same_chain(want.chain, current)
    attach = ("add",) if (not current.used or listed is False) else ()
    if same and not attach:
        return Plan(UNCHANGED, "HAProxy already serves this certificate")
    if same:
        why = (
            "attached: HAProxy held it Unused, loaded but not served"
            if not current.used
            else f"added to crt-list {want.target_list}"
        )
        return Plan(UPDATED, why, attach)
    why = "new serial" if not same_leaf(want.leaf, current) else "new chain"
    if attach:
        why += ", attached to " + want.target_list
    return Plan(UPDATED, why, ("set", "commit", *attach))


def _decide_absent(current: RuntimeCert | None) -> Plan:
    if current is None:
        return Plan(UNCHANGED, "HAProxy does not hold this certificate")
    if current.used:
        return Plan(REMOVED, "removed from its crt-list and from HAProxy", ("del_list", "del"))
    return Plan(REMOVED, "removed from HAProxy", ("del",))


# --------------------------------------------------------------- sessions


class CertSession:
    """Certificate work over one connection: observe, then apply plans one by one."""

    def __init__(
        self,
        api: RuntimeApi,
        wait: float = _defaults.BUSY_TIMEOUT,
        abort_foreign: bool = False,
        bufsize: int = _defaults.BUFSIZE,
        *,
        sleep: t.Callable[[float], None] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.wait = wait
        self.abort_foreign = abort_foreign
        self.bufsize = bufsize
        self._sleep = sleep
        self._clock = clock
        self._open: str | None = None
        # Set once another client shows up in this session: from then on the open
        # transaction is read back before every commit (a round trip saved otherwise).
        self._contended = False
        self._confirmed: RuntimeCert | None = None  # read back after the last commit
        # What a lost connection left in HAProxy: (our open transaction, a store we created).
        self._lost: tuple[str | None, str | None] | None = None
        self.pid: int | None = None  # the process behind the socket, from begin()
        self.crt_lists: set[str] | None = None  # its crt-lists and crt directories, from begin()
        self.aborted: list[str] = []
        self.warnings: list[str] = []

    # ------------------------------------------------------------ reading

    def begin(self) -> None:
        """Learn the process behind the socket and its crt-lists: one pipeline, read-only.

        ``show ssl crt-list`` needs level admin, as every change does: a socket below it
        fails here, before anything is written.
        """
        info_reply, lists_reply = self.api.run_many([cmd.show_info(), cmd.show_crt_lists()])
        if "currently locked" in lists_reply:
            lists_reply = self._run(cmd.show_crt_lists(), None, check=False)
        raise_for_reply("show ssl crt-list", lists_reply)
        self.pid = parse_pid(info_reply)
        self.crt_lists = set(parse_crt_lists(lists_reply))

    def unknown_list(self, want: Desired, plan: Plan) -> str | None:
        """Why ``want`` cannot be served by this process's crt-lists, or None.

        An explicit ``crt_list`` must be one HAProxy has; a certificate that must be
        attached (new, empty or ``Unused``) needs its target list, by default the
        directory of its path (a ``crt <dir>/`` bind).
        """
        if self.crt_lists is None or want.state != PRESENT:
            return None
        if want.crt_list is None and "add" not in plan.steps:
            return None
        target = want.target_list
        if target in self.crt_lists:
            return None
        known = ", ".join(sorted(self.crt_lists)) or "none"
        if want.crt_list is None:
            what = (
                f"{want.path} is not in a directory HAProxy loads ('crt {target}/' on a bind line),"
                " and no crt_list was given"
            )
        else:
            what = f"HAProxy has no crt-list {target}"
        return (
            f"{what}: 'show ssl crt-list' lists {known}. Set crt_list to one of them (a crt-list file,"
            " or the directory of a 'crt <dir>/' bind line)"
        )

    def observe(self, wanted: t.Sequence[Desired]) -> list[tuple[RuntimeCert | None, bool | None]]:
        """``(current, listed)`` per certificate, in few round trips (one pipeline).

        Only crt-lists HAProxy has are asked about (``listed`` is None for the others:
        ``unknown_list`` names them).
        """
        lists = sorted(
            {
                w.crt_list
                for w in wanted
                if w.crt_list and w.state == PRESENT and (self.crt_lists is None or w.crt_list in self.crt_lists)
            }
        )
        shows = [cmd.show_cert(w.path) for w in wanted] + [cmd.show_crt_list(name) for name in lists]
        replies = self.api.run_many(shows)
        current = [self._cert_from(reply, w.path) for reply, w in zip(replies, wanted)]
        members = {name: self._members_from(reply, name) for reply, name in zip(replies[len(wanted) :], lists)}
        return [
            (cur, (w.path in members[w.crt_list]) if w.crt_list in members else None) for cur, w in zip(current, wanted)
        ]

    def show(self, name: str) -> RuntimeCert | None:
        """``show ssl cert <name>``; None when HAProxy does not hold it."""
        return self._cert_from(self._run(cmd.show_cert(name), name, check=False), name)

    def _cert_from(self, reply: str, name: str) -> RuntimeCert | None:
        if is_not_found(reply):
            return None
        if "currently locked" in reply:
            reply = self._run(cmd.show_cert(name), name, check=False)
            if is_not_found(reply):
                return None
        return parse_cert_detail(reply)

    def _members_from(self, reply: str, crt_list: str) -> set[str]:
        if "currently locked" in reply:
            reply = self._run(cmd.show_crt_list(crt_list), crt_list)
        raise_for_reply("show ssl crt-list", reply, crt_list)
        return {entry.certificate for entry in parse_crt_list(reply)}

    # ----------------------------------------------------------- applying

    def apply(self, want: Desired, plan: Plan) -> None:
        """Send the plan's commands; on any failure leave no transaction open and no empty store."""
        created = False
        self._confirmed = None
        try:
            if "new" in plan.steps:
                created = self._new(want.path)
            if "set" in plan.steps:
                self._set_and_commit(want)
            if "add" in plan.steps:
                self._add(want)
            if "del_list" in plan.steps:
                self._del_from_list(want)
            if "del" in plan.steps:
                self._run(cmd.del_cert(want.path), want.path)
        except RuntimeApiConnectionError:
            # Cleaning up now would go over a new connection, maybe to a new process
            # that loaded this very certificate from disk: recover() decides.
            self._lost = (self._open, want.path if created else None)
            self._open = None
            raise
        except BaseException:
            self._abort_ours()
            if created:
                self._quietly(cmd.del_cert(want.path))
            raise

    def verify(self, want: Desired) -> RuntimeCert | None:
        """Read the certificate back: the new serial and ``Used``, or gone."""
        after = self._confirmed if self._confirmed is not None else self.show(want.path)
        if want.state == ABSENT:
            if after is not None:
                raise RuntimeApiVerifyError(f"HAProxy still holds {want.path} after 'del ssl cert'", name=want.path)
            return None
        if after is None or not same_leaf(want.leaf, after):
            got = after.serial if after is not None else "nothing"
            raise RuntimeApiVerifyError(
                f"after commit HAProxy holds serial {got} for {want.path}, not {want.leaf.serial}",
                name=want.path,
                serial=want.leaf.serial,
            )
        if not after.used:
            raise RuntimeApiVerifyError(
                f"HAProxy loaded {want.path} but reports Status {after.status}: no crt-list serves it"
                f" (tried {want.target_list}); set crt_list to the crt-list or directory of the bind line",
                name=want.path,
                status=after.status,
            )
        return after

    # -------------------------------------------------------------- steps

    def _new(self, name: str) -> bool:
        """``new ssl cert``; False when the store appeared meanwhile (someone else made it)."""
        reply = self._run(cmd.new_cert(name), name, check=False)
        if "already exists" in reply:
            return False
        raise_for_reply("new ssl cert", reply, name)
        return True

    def _set_and_commit(self, want: Desired) -> None:
        """``set``, check, ``commit``, check; again while another client gets in the way.

        On HAProxy 2.6 another client's ``set ssl cert`` for any name lands in our
        open transaction. So the certificate is read back after the commit (and,
        once another client has shown up, the transaction before it); if it holds
        someone else's payload, ours is sent again (the other client sees its own
        mistake the same way and retries).
        """
        deadline = self._clock() + self.wait
        while True:
            self._set(want)
            problem = self._commit_checked(want)
            if problem is None:
                return
            self._contended = True
            if self._clock() >= deadline:
                raise RuntimeApiBusy(f"{want.path}: {problem}, for more than {self.wait:g} s", name=want.path)
            self.warnings.append(f"{want.path}: {problem}; sent it again")

    def _commit_checked(self, want: Desired) -> str | None:
        """None when our certificate is committed, else what went wrong."""
        if self._contended:
            pending = self._cert_from(self._run(cmd.show_transaction(want.path), want.path, check=False), want.path)
            if pending is None:
                self._open = None
                return "our transaction disappeared before the commit (another client aborted it)"
            if not same_leaf(want.leaf, pending):
                return "another client's payload replaced ours in the open transaction"
        try:
            reply, shown = self._with_show(cmd.commit_cert(want.path), want.path)
            raise_for_reply("commit ssl cert", reply, want.path)
        except RuntimeApiError as exc:
            if "No ongoing transaction" not in exc.msg and "transaction" not in exc.context:
                raise
            self._open = None  # gone: never abort what may now be someone else's
            return f"our transaction was taken away before the commit ({exc})"
        self._open = None
        committed = self._cert_from(shown, want.path) if shown is not None else self.show(want.path)
        if committed is None or not same_leaf(want.leaf, committed):
            return "HAProxy committed another client's payload under this name"
        self._confirmed = committed
        return None

    def _set(self, want: Desired) -> None:
        """``set ssl cert`` once no other transaction is open; checks whose transaction it updated."""
        deadline = self._clock() + self.wait
        while True:
            self._await_no_transaction(deadline)
            try:
                reply = self._run(cmd.set_cert(want.path, want.payload, self.bufsize), want.path, deadline=deadline)
            except RuntimeApiBusy as exc:
                if "transaction" not in exc.context:
                    raise
                continue  # HAProxy 3.x refuses while another transaction is open: wait again
            owner = transaction_of(reply)
            if owner == want.path:
                self._open = want.path
                return
            # HAProxy 2.6 put our payload into another certificate's transaction.
            self._contended = True
            self._quietly(cmd.abort_cert(str(owner)))
            self.aborted.append(str(owner))
            self.warnings.append(
                f"HAProxy wrote the payload for {want.path} into the open transaction of {owner}"
                f" (HAProxy 2.6 behaviour); that transaction was aborted so it can never be committed"
            )

    def _await_no_transaction(self, deadline: float) -> None:
        """Wait until no certificate transaction is open; then, if allowed, abort a stale one."""
        while True:
            transaction = probed_transaction(self._run(cmd.transaction_probe(), None, check=False, deadline=deadline))
            if transaction is None or transaction == self._open:
                return
            self._contended = True
            if self._clock() < deadline:
                self._sleep(POLL)
                continue
            if not self.abort_foreign:
                raise RuntimeApiBusy(
                    f"a certificate transaction on {transaction} has been open for more than {self.wait:g} s"
                    " (another client, or one that died): HAProxy allows one at a time. Let it finish, abort it with"
                    f" 'abort ssl cert {transaction}', or set abort_foreign_transaction",
                    transaction=transaction,
                )
            self._run(cmd.abort_cert(transaction), transaction)
            self.aborted.append(transaction)
            self.warnings.append(f"aborted the stale certificate transaction on {transaction}")

    def _add(self, want: Desired) -> None:
        """``add ssl crt-list``; another client that attached it first is no failure (verify reads it back)."""
        reply, shown = self._with_show(cmd.add_crt_list(want.target_list, want.path), want.path)
        # Its status changes: verify() reads the show sent with it, or reads it again.
        self._confirmed = self._cert_from(shown, want.path) if shown is not None else None
        if "already exists" in reply:  # 2.6: "file already exists in this directory!"
            return
        raise_for_reply("add ssl crt-list", reply, want.path)

    # ------------------------------------------------------- lost connections

    def recover(self, within: float) -> bool:
        """Connect again after a lost connection, for up to ``within`` seconds.

        True when the same process answers: what the lost connection left open in it
        (our transaction, a store we had just created) is cleaned up. False when another
        process answers (HAProxy was restarted or reloaded): everything we had open
        died with the old one, and the new one loaded the configuration and the files
        on disk. RuntimeApiConnectionError when HAProxy does not come back in time.
        """
        lost, self._lost = self._lost, None
        old = self.pid
        self._reconnect(within)
        if self.pid is not None and self.pid == old:
            transaction, created = lost or (None, None)
            if transaction is not None:
                self._quietly(cmd.abort_cert(transaction))
            if created is not None:
                self._quietly(cmd.del_cert(created))
            return True
        self._process_changed(old)
        return False

    def same_process(self) -> bool:
        """Whether the socket still leads to the process ``begin()`` found, on a new connection.

        After a reload (``-W`` master-worker, SIGUSR2) an open connection stays with the
        old, stopping worker, which keeps answering: only a new connection reaches the
        new worker. False (with a warning) when another process answers now.
        """
        old = self.pid
        self.api.close()
        self.begin()
        if self.pid == old:
            return True
        self._process_changed(old)
        return False

    def _reconnect(self, within: float) -> None:
        deadline = self._clock() + within
        while True:
            try:
                self.api.open()
                self.begin()
                return
            except RuntimeApiConnectionError as exc:
                if self._clock() >= deadline:
                    raise RuntimeApiConnectionError(
                        f"the connection to HAProxy's Runtime API at {self.api.address} was lost during the deploy"
                        f" (HAProxy restarted or stopped) and it did not come back within {within:g} s: {exc}",
                        socket=self.api.address,
                    ) from None
                self._sleep(RECONNECT_POLL)

    def _process_changed(self, old: int | None) -> None:
        self._open = None
        self._contended = False
        self.warnings.append(
            f"HAProxy behind {self.api.address} was restarted or reloaded during the deploy (process {old} is now"
            f" {self.pid}): every certificate was read again from the new process"
        )

    def _del_from_list(self, want: Desired) -> None:
        reply = self._run(cmd.del_crt_list(want.target_list, want.path), want.path, check=False)
        if "can't be found in crt-list" in reply:
            return  # not (or no longer) in that list: 'del ssl cert' tells if another list still uses it
        raise_for_reply("del ssl crt-list", reply, want.path)

    def _abort_ours(self) -> None:
        if self._open is not None:
            name, self._open = self._open, None
            self._quietly(cmd.abort_cert(name))

    def _quietly(self, command: cmd.Command) -> None:
        """Clean-up that must not hide the error being raised.

        It retries through a held lock (at least CLEANUP_WAIT seconds, on a new
        connection if the old one broke); if it still fails, a warning says what
        to send by hand.
        """
        deadline = self._clock() + max(self.wait, CLEANUP_WAIT)
        try:
            # check=False: "No ongoing transaction!" means there is nothing left to clean.
            self._run(command, None, check=False, deadline=deadline)
        except HaproxyAcmeError as exc:
            self.warnings.append(f"could not send '{command.line}' to clean up: {exc}; send it by hand")

    def _with_show(self, command: cmd.Command, name: str) -> tuple[str, str | None]:
        """``command`` and ``show ssl cert <name>`` in one round trip: (its reply, the show's reply).

        HAProxy runs them in order, so the show reads what the command left. When the
        certificate lock made the command wait, it is sent again alone (as ``_run`` does)
        and the show is None: read it afresh.
        """
        reply, shown = self.api.run_many([command, cmd.show_cert(name)])
        if _LOCKED in reply:
            return self._run(command, name, check=False), None
        return reply, shown

    def _run(self, command: cmd.Command, name: str | None, check: bool = True, deadline: float | None = None) -> str:
        """Run a command, retrying while HAProxy reports its certificate lock held."""
        deadline = self._clock() + self.wait if deadline is None else deadline
        while True:
            reply = self.api.run(command)
            locked = _LOCKED in reply
            if locked and self._clock() < deadline:
                self._sleep(POLL)
                continue
            if check or locked:
                raise_for_reply(command.verb, reply, name)
            return reply
