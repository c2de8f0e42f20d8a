# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine behind ``acme_stateless_order``: ensure a list of certificates.

For each certificate: read ``<cert_dir>/<name>.pem``, decide (renewal.py), and only
when something must be ordered talk to the CA. Orders run in a thread pool sharing
one client, session and nonce pool. Every certificate gets its own result; one
failure never stops the others, and a failure never touches the file in place.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import typing as t
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import ari, order, profiles
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.lazy import Lazy
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.names import check_cert_name, normalize_domains
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.poll import Poller
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.renewal import (
    FACTS_KIND,
    Current,
    Decision,
    current,
    decide,
    facts_of,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeError,
    ConfigError,
    FileError,
    HaproxyAcmeError,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._files import (
    atomic_write,
    attributes_differ,
    read_optional,
    set_attributes,
)
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._index import BundleIndex
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import (
    KEY_TYPES,
    Bundle,
    CertInfo,
    bundle_pem,
    check_bundle,
    generate_private_key,
    parse_bundle,
)

if t.TYPE_CHECKING:
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import PrivateKey

ATTRIBUTES_DIFFER = "; mode/owner/group differ from what is asked"


@dataclass
class CertSpec:
    """One certificate as asked: its name (file ``<name>.pem``), domains, key type and ACME profile."""

    name: str
    domains: list[str]
    key_type: str = _defaults.KEY_TYPE
    profile: str | None = None
    # What a copy of the bundle elsewhere says of itself (JSON of renewal.facts_of, from
    # haproxy_runtime_cert_info's bundle_facts): decides when cert_dir has no file.
    bundle_facts: str | None = None


@dataclass
class Options:
    """What applies to every certificate of a run."""

    cert_dir: str
    remaining_days: float | None = None  # None: the lifetime rule (renewal.py)
    force: bool = False
    reuse_key: bool = False
    preferred_chain: str | None = None
    owner: str | None = None
    group: str | None = None
    mode: int = _defaults.BUNDLE_MODE
    use_ari: bool = _defaults.USE_ARI
    concurrency: int = _defaults.CONCURRENCY
    poll_timeout: float = _defaults.POLL_TIMEOUT
    check_mode: bool = False


@dataclass
class CertResult:
    """The outcome for one certificate (``certificates[]`` of the module's result)."""

    name: str
    domains: list[str]
    path: str
    action: str = "unchanged"
    reason: str = ""
    changed: bool = False
    msg: str | None = None
    info: CertInfo | None = None
    previous: CertInfo | None = None  # what the file held before this run (for the diff)
    profile: str | None = None  # the profile recorded in the file now
    replaces: str | None = None  # the certID (RFC 9773) the new order replaced
    error: str | None = field(default=None, repr=False)  # msg without the certificate's name, to group failures

    def as_dict(self, now: dt.datetime | None = None) -> dict[str, t.Any]:
        result: dict[str, t.Any] = {
            "name": self.name, "domains": self.domains, "path": self.path, "action": self.action,
            "reason": self.reason, "changed": self.changed, "profile": self.profile, "replaces": self.replaces,
            "serial": None, "not_before": None, "not_after": None, "days_left": None, "issuer": None,
        }
        if self.info is not None:
            info = self.info.as_dict(now)
            result.update({k: info[k] for k in ("serial", "not_before", "not_after", "days_left", "issuer")})
        if self.msg is not None:
            result["msg"] = self.msg
        return result


@dataclass
class _Plan:
    spec: CertSpec
    result: CertResult
    decision: Decision | None = None
    existed: bool = False
    from_facts: bool = False  # decided from spec.bundle_facts: there is no file here


class Issuer:
    """Ensures certificates; ``prepare_account`` loads the key and finds the account, once, on first order."""

    def __init__(self, client: AcmeClient, prepare_account: t.Callable[[], None], options: Options) -> None:
        self.client = client
        self.options = options
        self.clock = client.transport.clock
        self.poller = Poller(self.clock, options.poll_timeout)
        self._account: Lazy[None] = Lazy(prepare_account)
        self._renewal_info: Lazy[str | None] = Lazy(self._find_renewal_info)
        # What the bundles say, kept beside them: a run with nothing due parses none (_index.py).
        self.index = BundleIndex(options.cert_dir, enabled=not options.check_mode)
        self._cert_dir_checked: dict[bool, FileError | None] = {}

    # ------------------------------------------------------------ planning (no request to the CA)

    def _plan(self, spec: CertSpec, now: dt.datetime) -> _Plan:
        path = os.path.join(self.options.cert_dir, f"{spec.name}.pem")
        plan = _Plan(spec, CertResult(name=spec.name, domains=list(spec.domains), path=path))
        try:
            spec.domains = plan.result.domains = normalize_domains(spec.domains, spec.name)
            check_cert_name(spec.name)
            if spec.key_type not in KEY_TYPES:
                raise ConfigError(f"unknown key_type {spec.key_type!r}; choose one of {', '.join(KEY_TYPES)}")
            spec.profile = profiles.check_name(spec.profile, spec.name)
            self._check_cert_dir(writable=False)
            existing = self._current(path)
            if existing is None and spec.bundle_facts:
                existing, plan.from_facts = self._elsewhere(path, spec.bundle_facts), True
            plan.existed = existing is not None
            plan.result.profile = existing.profile if isinstance(existing, Current) else None
            plan.decision = self._decide(plan, now, existing)
            self._predict(plan)
        except HaproxyAcmeError as exc:
            self._fail(plan, exc)
        return plan

    def _current(self, path: str) -> Current | str | None:
        """The file at ``path`` for the renewal rule (None: no file), from the index when it is unchanged."""

        def load() -> Bundle:
            data = read_optional(path)
            if data is None:
                raise FileError(f"{path} was removed during the run", path=path)
            return parse_bundle(data)

        exists, facts = self.index.get(path, FACTS_KIND, facts_of)
        if not exists or facts is None:
            return None
        try:
            return current(facts, load)
        except (KeyError, TypeError, ValueError):  # an index entry of another shape: read the file
            data = read_optional(path)
            return None if data is None else current(facts_of(data), load)

    @staticmethod
    def _elsewhere(path: str, text: str) -> Current | str:
        """The bundle a host holds, from its facts: the rule decides as if it were at ``path``;
        its key is not here (``reuse_key`` then makes a new one)."""

        def load() -> Bundle:
            raise FileError(f"{path}: only its facts are here, not the file", path=path)

        try:
            facts = json.loads(text)
            if not isinstance(facts, dict):
                raise TypeError("not an object")
            return current(facts, load)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bundle_facts is not what haproxy_runtime_cert_info reports ({exc})") from None

    def _decide(self, plan: _Plan, now: dt.datetime, existing: Current | str | None,
                window: ari.RenewalWindow | None = None) -> Decision:
        spec = plan.spec
        return decide(existing, spec.domains, spec.key_type, self.options.remaining_days,
                      profile=spec.profile, force=self.options.force, ari_window=window, now=now)

    def _predict(self, plan: _Plan) -> None:
        decision, result = t.cast(Decision, plan.decision), plan.result
        result.reason = decision.reason
        if decision.bundle is not None:
            result.info = result.previous = decision.bundle.info()
        if decision.needs_renewal:
            self._check_cert_dir()
            result.action, result.changed = ("renewed" if plan.existed else "issued"), True
        else:
            result.action = "unchanged"
            options = self.options
            differ = not plan.from_facts and attributes_differ(result.path, options.mode, options.owner, options.group)
            result.changed = differ
            if result.changed:
                result.reason += ATTRIBUTES_DIFFER

    def _check_cert_dir(self, writable: bool = True) -> None:
        """FileError when cert_dir is missing (or, to write, not writable); asked once per run."""
        if writable not in self._cert_dir_checked:
            self._cert_dir_checked[writable] = self._cert_dir_problem(writable)
        problem = self._cert_dir_checked[writable]
        if problem is not None:
            raise problem

    def _cert_dir_problem(self, writable: bool) -> FileError | None:
        cert_dir = self.options.cert_dir
        if not os.path.isdir(cert_dir):
            return FileError(f"cert_dir {cert_dir} does not exist or is not a directory", path=cert_dir)
        if writable and not os.access(cert_dir, os.W_OK | os.X_OK):
            return FileError(f"cert_dir {cert_dir} is not writable", path=cert_dir)
        return None

    def _fail(self, plan: _Plan, exc: BaseException) -> None:
        result = plan.result
        text = exc.msg if isinstance(exc, HaproxyAcmeError) else f"unexpected {type(exc).__name__}: {exc}"
        # The one place a certificate's messages are prefixed with its name and domains (names.py,
        # profiles.py leave it out); the domains as asked, so even one that is no string is shown.
        prefix = f"certificate {result.name!r} ({', '.join(map(str, result.domains)) or 'no domains'})"
        result.action, result.changed = "failed", False
        result.msg, result.error = f"{prefix}: {text}", text
        if not result.reason:
            result.reason = text

    # ------------------------------------------------------------ the CA side

    def _find_renewal_info(self) -> str | None:
        try:
            return self.client.directory.renewal_info
        except AcmeError:
            return None  # ARI is advice: an unreachable CA must not fail a certificate that is fine

    def _ari_window(self, plan: _Plan) -> ari.RenewalWindow | None:
        bundle = plan.decision.bundle if plan.decision else None
        cid = bundle.cert_id if bundle is not None else None
        url = self._renewal_info.get() if cid else None
        return ari.fetch_window(self.client.transport, url, t.cast(str, cid)) if url else None

    def _key_for(self, plan: _Plan) -> PrivateKey:
        bundle = plan.decision.bundle if plan.decision else None
        if self.options.reuse_key and bundle is not None and not plan.from_facts and bundle.bundle().key is not None \
                and bundle.info().key_type == plan.spec.key_type:
            return t.cast("PrivateKey", bundle.bundle().key)
        return generate_private_key(plan.spec.key_type)

    def _replaces(self, plan: _Plan) -> str | None:
        """The certID for ``replaces`` (RFC 9773 section 5) when the CA speaks ARI."""
        bundle = plan.decision.bundle if plan.decision else None
        if not self.options.use_ari or bundle is None or not self._renewal_info.get():
            return None
        return bundle.cert_id

    def _order(self, plan: _Plan) -> None:
        spec, result = plan.spec, plan.result
        # Once the CA is known to be gone (transport.CaHealth), fail before any key is made.
        self.client.transport.check_reachable()
        if spec.profile:
            profiles.check_offered(spec.profile, self.client.directory.meta, self.client.directory_url)
        self._account.get()
        key = self._key_for(plan)
        issued = order.issue(self.client, self.poller, spec.domains, key, replaces=self._replaces(plan),
                             profile=spec.profile, preferred_chain=self.options.preferred_chain,
                             certificate=spec.name)
        data = profiles.record(bundle_pem(issued.chain, key), spec.profile)
        bundle = parse_bundle(data)
        check_bundle(bundle, spec.domains)  # never write what HAProxy must not load
        atomic_write(result.path, data, self.options.mode, self.options.owner, self.options.group)
        self.index.put(result.path, FACTS_KIND, facts_of(data))
        result.info, result.changed, result.profile, result.replaces = bundle.info(), True, spec.profile, issued.replaces
        result.action = "renewed" if plan.existed else "issued"
        if issued.note:
            result.reason = f"{result.reason}; {issued.note}"

    def _work(self, plan: _Plan) -> None:
        """Runs in a pool thread: the CA's window where it may decide, then the order if needed."""
        try:
            if self._asks_ari(plan):
                window = self._ari_window(plan)
                if window is not None:
                    self._redecide(plan, window)
            if t.cast(Decision, plan.decision).needs_renewal:
                self._order(plan)
        except Exception as exc:  # one certificate's failure must not stop the batch
            self._fail(plan, exc)

    def _asks_ari(self, plan: _Plan) -> bool:
        """ARI decides the timing of a certificate that fits what is asked (RFC 9773 section 4.2)."""
        decision = plan.decision
        return bool(self.options.use_ari and not self.options.force and decision is not None
                    and decision.bundle is not None and decision.by_timing)

    def _redecide(self, plan: _Plan, window: ari.RenewalWindow) -> None:
        """Decide again with the CA's window; the result follows when ARI holds a renewal back."""
        was_due = t.cast(Decision, plan.decision).needs_renewal
        plan.decision = self._decide(plan, self.clock_now(), plan.decision.bundle if plan.decision else None, window)
        plan.result.reason = plan.decision.reason
        if was_due and not plan.decision.needs_renewal:
            self._predict(plan)
            self._fix_attributes(plan)

    def clock_now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.now(), dt.timezone.utc)

    # ------------------------------------------------------------ the run

    def _needs_work(self, plan: _Plan) -> bool:
        if plan.result.action == "failed" or plan.decision is None:
            return False
        return plan.decision.needs_renewal or self._asks_ari(plan)

    def _fix_attributes(self, plan: _Plan) -> None:
        if plan.result.action != "unchanged" or not plan.result.changed:
            return
        try:
            set_attributes(plan.result.path, self.options.mode, self.options.owner, self.options.group)
            plan.result.reason = plan.result.reason.replace(ATTRIBUTES_DIFFER, "; mode/owner/group fixed")
        except HaproxyAcmeError as exc:
            self._fail(plan, exc)

    def run(self, specs: t.Sequence[CertSpec]) -> list[CertResult]:
        """Ensure every certificate; results in the order asked."""
        now = self.clock_now()
        plans = [self._plan(spec, now) for spec in specs]
        if self.options.check_mode:
            return [p.result for p in plans]  # decided from the files alone: nothing sent to the CA
        for plan in plans:
            self._fix_attributes(plan)
        todo = [p for p in plans if self._needs_work(p)]
        if todo:
            workers = max(1, min(self.options.concurrency, _defaults.MAX_CONCURRENCY, len(todo)))
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(self._work, todo))
        self.index.save()
        return [p.result for p in plans]
