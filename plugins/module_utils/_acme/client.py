# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ACME client object: transport + directory + account key, shared by every thread."""

from __future__ import annotations

import threading
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme import jws
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.directory import Directory
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._acme.transport import Response, Transport
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeError

PEM_CHAIN = "application/pem-certificate-chain"


class AcmeClient:
    """Signs requests with the account key; fetches the directory only when first needed.

    A run that has nothing to order never touches the CA: the directory is lazy.
    """

    def __init__(
        self, directory_url: str, transport: Transport, key: jws.SigningKey | None = None, kid: str | None = None
    ) -> None:
        self.directory_url = directory_url
        self.key = key
        self.transport = transport
        if transport.server is None:
            transport.server = directory_url  # how messages name the CA
        self.kid = kid
        self._directory: Directory | None = None
        self._lock = threading.Lock()

    @property
    def directory(self) -> Directory:
        """The directory (RFC 8555 section 7.1.1), fetched once by whichever thread asks first."""
        with self._lock:
            if self._directory is None:
                data = self.transport.get(self.directory_url, directory=self.directory_url).json()
                self._directory = Directory(self.directory_url, data)
                self.transport.nonce_url = self._directory["newNonce"]
            return self._directory

    @property
    def account_key(self) -> jws.SigningKey:
        if self.key is None:
            raise AcmeError("internal error: no account key loaded before a signed request")
        return self.key

    def _ensure_directory(self) -> Directory:
        return self.directory

    @property
    def thumbprint(self) -> str:
        return jws.thumbprint(self.account_key)

    def post(self, url: str, payload: t.Any, accept: str | None = None, use_jwk: bool = False, *,
             replay_safe: bool = True, retry_server_errors: bool = True, **context: t.Any) -> Response:
        """A signed POST (RFC 8555 section 6.2); ``payload=None`` is a POST-as-GET (section 6.3).

        ``replay_safe=False`` for a request that must not simply be sent again when its reply
        was lost (AcmeReplyLost then; see transport.py); ``retry_server_errors=False`` to take
        a 5xx problem document as the answer.
        """
        self._ensure_directory()  # the nonce URL and the JWS url come from it
        kid = None if use_jwk else self.kid
        key = self.account_key

        def sign(nonce: str) -> dict[str, str]:
            return jws.sign(key, url, payload, nonce, kid)

        return self.transport.post(url, sign, accept=accept, replay_safe=replay_safe,
                                   retry_server_errors=retry_server_errors, **context)

    def post_as_get(self, url: str, accept: str | None = None, **context: t.Any) -> Response:
        return self.post(url, None, accept=accept, **context)
