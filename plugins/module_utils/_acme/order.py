# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One certificate through the order flow of RFC 8555 section 7.4.

newOrder -> authorizations -> trigger http-01 -> wait for valid -> finalize with a CSR
-> wait for valid -> download the chain (and alternates for ``preferred_chain``).
The answer to each challenge is HAProxy's job (stateless, docs/roles.md): nothing to
provision here.

Replays are safe. Every POST-as-GET is simply sent again when its reply is lost. A
newOrder is too: at worst the CA holds a second order that is never used. The two
requests that change state and that a CA refuses to see twice, the challenge trigger
("Cannot update challenge with status valid") and finalize ("orderNotReady"), are sent
with ``replay_safe=False``: when the reply is lost, or the CA refuses a repetition, the
resource's current state is read (POST-as-GET) and the flow goes on from it (the
challenge is already ``processing`` or ``valid``, the order already ``processing`` or
``valid`` with its certificate URL), sending again only what the CA has not received.
"""

from __future__ import annotations

import functools
import typing as t
from dataclasses import dataclass

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import chain as chains
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.client import PEM_CHAIN, AcmeClient
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.csr import csr_b64
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.names import identifier
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.poll import Poller
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.problems import describe
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Response
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    AcmeError,
    AcmeProblem,
    AcmeReplyLost,
    AcmeValidationError,
)

if t.TYPE_CHECKING:
    from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.jws import SigningKey

CHALLENGE_TYPE = "http-01"
# Rounds of "sent, reply lost (or refused), state read, still to do" before giving up;
# each round is bounded in time by the transport.
REPLAYS = 5


def _is_settled(data: t.Mapping[str, t.Any]) -> bool:
    """An authorization or order that no longer waits on the CA (section 7.1.6)."""
    return data.get("status") not in ("pending", "processing")


class OrderFlow:
    """The requests for one certificate; ``context`` names it in every error."""

    def __init__(self, client: AcmeClient, poller: Poller, **context: t.Any) -> None:
        self.client = client
        self.poller = poller
        self.context = context
        self.url = ""
        self.data: dict[str, t.Any] = {}

    # ------------------------------------------------------------ order

    def new_order(
        self, domains: t.Sequence[str], replaces: str | None = None, profile: str | None = None
    ) -> dict[str, t.Any]:
        """Place the order (section 7.4); ``replaces`` names the certificate it renews (RFC 9773 section 5).

        ``profile`` is sent only when asked: a CA then picks its default (docs/lifetimes.md).
        """
        payload: dict[str, t.Any] = {"identifiers": [identifier(d) for d in domains]}
        if replaces:
            payload["replaces"] = replaces
        if profile:
            payload["profile"] = profile
        # Sent again when its reply is lost: a second order at worst, never used, harmless. A 5xx
        # problem document refusing ``replaces`` is an answer (place_order), not an outage.
        response = self.client.post(self.client.directory["newOrder"], payload,
                                    retry_server_errors=not replaces, **self.context)
        if not response.location:
            raise AcmeError("the ACME server did not return the order URL (Location header)", **self.context)
        self.url = response.location
        self.data = response.json()
        return self.data

    def _fetch_order(self) -> Response:
        return self.client.post_as_get(self.url, **self.context)

    def _wait_order(self, first: Response | None = None) -> dict[str, t.Any]:
        self.data = self.poller.until(self._fetch_order, _is_settled, "the order", first=first, **self.context)
        return self.data

    # ------------------------------------------------------------ authorizations

    def _fetch_authz(self, url: str) -> Response:
        return self.client.post_as_get(url, **self.context)

    def _start_challenge(self, url: str) -> str | None:
        """Trigger the http-01 challenge of a pending authorization; its URL, or None if already valid."""
        authz = self._fetch_authz(url).json()
        domain = str(authz.get("identifier", {}).get("value", "?"))
        if authz.get("status") == "valid":
            return None  # reused from an earlier order (section 7.1.4)
        if authz.get("status") != "pending":
            raise self._invalid(authz, domain)
        challenge = _http01(authz)
        if challenge is None:
            raise AcmeError(f"the CA offers no http-01 challenge for {domain}", domain=domain, **self.context)
        if challenge.get("status") == "pending":
            self._trigger(url, str(challenge["url"]), domain)
        return url

    def _trigger(self, authz_url: str, challenge_url: str, domain: str) -> None:
        """Section 7.5.1: an empty JSON object says "ready, go validate". Sent again only when
        the authorization, read after a lost reply, shows the CA never got it."""
        failure: AcmeError | None = None
        for _attempt in range(REPLAYS):
            try:
                self.client.post(challenge_url, {}, replay_safe=False, **self.context)
                return
            except (AcmeReplyLost, AcmeProblem) as exc:
                failure = exc  # a refusal may be the CA seeing it twice: the state says
            authz = self._fetch_authz(authz_url).json()
            challenge = _http01(authz) or {}
            if authz.get("status") == "valid" or challenge.get("status") in ("processing", "valid"):
                return  # the first one arrived
            if authz.get("status") != "pending" or challenge.get("status") != "pending":
                raise self._invalid(authz, domain)
            if isinstance(failure, AcmeProblem):
                raise failure  # refused, and still pending: a refusal indeed
        raise t.cast(AcmeError, failure)

    def _invalid(self, authz: t.Mapping[str, t.Any], domain: str) -> AcmeError:
        """The error of an authorization that failed, with the challenge's own error (section 7.1.6)."""
        for challenge in authz.get("challenges", []):
            error = challenge.get("error")
            if isinstance(error, dict):
                return AcmeValidationError(
                    f"validation of {domain} failed: {describe(error)}",
                    domain=domain, problem=error, **self.context,
                )
        return AcmeValidationError(
            f"the authorization for {domain} is {authz.get('status')!r}", domain=domain, **self.context
        )

    def authorize(self) -> None:
        """Trigger every pending challenge first, then wait: the CA validates them in parallel."""
        waiting = [u for u in (self._start_challenge(url) for url in self.data.get("authorizations", [])) if u]
        for url in waiting:
            authz = self.poller.until(
                functools.partial(self._fetch_authz, url), _is_settled, "the authorization", **self.context
            )
            if authz.get("status") != "valid":
                raise self._invalid(authz, str(authz.get("identifier", {}).get("value", "?")))

    # ------------------------------------------------------------ finalize, download

    def finalize(self, key: SigningKey, domains: t.Sequence[str]) -> str:
        """Send the CSR (section 7.4), wait for ``valid``; the certificate URL.

        One CSR for every try. When the reply is lost, or the CA answers orderNotReady, the
        order is read: ``processing`` or ``valid`` means the CA has it (wait, then take its
        certificate URL); ``pending`` means the authorizations have not caught up (wait);
        ``ready`` means the CSR never arrived (send it again).
        """
        if self.data.get("status") == "pending":
            self._wait_order()
        payload = {"csr": csr_b64(key, domains)}
        response: Response | None = None
        failure: AcmeError | None = None
        for _attempt in range(REPLAYS):
            if self.data.get("status") in ("processing", "valid"):
                break
            if self.data.get("status") not in ("ready", "pending"):
                break  # invalid: reported below
            try:
                response = self.client.post(self.data["finalize"], payload, replay_safe=False, **self.context)
            except AcmeReplyLost as exc:
                failure = exc
            except AcmeProblem as exc:
                if exc.short_type != "orderNotReady":
                    raise
                failure = exc
            else:
                self.data = response.json()
                break
            self._wait_order()  # what became of it; settles a pending order first
        else:
            raise t.cast(AcmeError, failure)
        if self.data.get("status") != "valid":
            self._wait_order(first=response)  # honours its Retry-After
        if self.data.get("status") != "valid" or not self.data.get("certificate"):
            error = self.data.get("error")
            reason = describe(error) if isinstance(error, dict) else f"status {self.data.get('status')!r}"
            raise AcmeError(f"the order failed at finalization: {reason}", **self.context)
        return str(self.data["certificate"])

    def download(self, url: str, preferred_chain: str | None = None) -> bytes:
        """The PEM chain (section 7.4.2); with ``preferred_chain``, the first chain that matches."""
        response = self.client.post_as_get(url, accept=PEM_CHAIN, **self.context)
        if not preferred_chain or chains.matches(response.content, preferred_chain):
            return response.content
        for alternate in response.links("alternate"):
            candidate = self.client.post_as_get(alternate, accept=PEM_CHAIN, **self.context).content
            if chains.matches(candidate, preferred_chain):
                return candidate
        return response.content  # as certbot does: the default chain when none matches


def _http01(authz: t.Mapping[str, t.Any]) -> dict[str, t.Any] | None:
    return next((c for c in authz.get("challenges", []) if isinstance(c, dict) and c.get("type") == CHALLENGE_TYPE),
                None)


def _transient(exc: AcmeProblem) -> bool:
    """A refusal that ordering again without ``replaces`` would meet too."""
    return exc.short_type == "rateLimited" or exc.status in (429, 503)


def place_order(
    flow: OrderFlow, domains: t.Sequence[str], replaces: str | None, profile: str | None
) -> str | None:
    """newOrder; when the CA refuses ``replaces``, once more without it. What was dropped, or None.

    RFC 9773 section 5 makes ``replaces`` a hint. A CA refuses it for a certificate of
    another account ("unauthorized"), one it cannot find ("serverInternal" from pebble
    when the serial's top bit is set), or one already replaced: none of that may cost
    the renewal, so only a transient refusal (rate limit, unavailable) is final.
    """
    try:
        flow.new_order(domains, replaces, profile)
    except AcmeProblem as exc:
        if not replaces or _transient(exc):
            raise
        flow.new_order(domains, None, profile)
        refusal = describe({"type": exc.problem_type, "detail": exc.detail})
        return f"ordered without replaces, which the CA refused ({refusal})"
    return None


@dataclass
class Issued:
    """The PEM chain (leaf first); the certID the order replaces, as the CA's order object
    names it; and, when ``replaces`` had to be dropped, why."""

    chain: bytes
    replaces: str | None = None
    note: str | None = None


def issue(
    client: AcmeClient,
    poller: Poller,
    domains: t.Sequence[str],
    key: SigningKey,
    *,
    replaces: str | None = None,
    profile: str | None = None,
    preferred_chain: str | None = None,
    **context: t.Any,
) -> Issued:
    """Order, validate, finalize and download one certificate."""
    flow = OrderFlow(client, poller, **context)
    note = place_order(flow, domains, replaces, profile)
    # RFC 9773 section 5: the order object carries "replaces" back; older CAs may not echo it.
    replaced = flow.data.get("replaces") or (None if note else replaces)
    flow.authorize()
    chain = flow.download(flow.finalize(key, domains), preferred_chain)
    return Issued(chain, str(replaced) if replaced else None, note)
