# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ACME directory (RFC 8555 section 7.1.1): aliases for well-known CAs, and its resources."""

from __future__ import annotations

import typing as t
from urllib.parse import urlsplit

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils import _defaults
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import AcmeError, ConfigError

ALIASES: dict[str, str] = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt_test": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "zerossl": "https://acme.zerossl.com/v2/DV90",
    "buypass": "https://api.buypass.com/acme/directory",
    "buypass_test": "https://api.test4.buypass.no/acme/directory",
    "google": "https://dv.acme-v02.api.pki.goog/directory",
    "google_test": "https://dv.acme-v02.test-api.pki.goog/directory",
}
# Resources every RFC 8555 server must list; revokeCert and keyChange are not used here.
REQUIRED = ("newNonce", "newAccount", "newOrder")


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # an unbalanced [ of an IPv6 address
        return False


def resolve_directory(value: t.Any) -> str:
    """Return the directory URL for an alias or an https:// URL; ConfigError for anything else.

    RFC 8555 section 6.1: ACME runs over HTTPS only, so an http:// directory is refused
    before anything is sent (a directory fetched over plain HTTP could send the client anywhere).
    """
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"the ACME directory must be an alias or an https:// URL, not {value!r}", directory=str(value))
    value = (value or _defaults.DIRECTORY).strip()
    if value in ALIASES:
        return ALIASES[value]
    if value.lower().startswith("http://"):
        raise ConfigError(
            f"ACME directory {value!r} is plain http://: RFC 8555 section 6.1 requires HTTPS; "
            "give the CA's https:// directory URL",
            directory=value,
        )
    if value.startswith("https://") and _has_host(value) and not any(c.isspace() for c in value):
        return value
    raise ConfigError(
        f"unknown ACME directory {value!r}: use one of {', '.join(sorted(ALIASES))} or an https:// URL",
        directory=value,
    )


class Directory:
    """A fetched directory object: resource URLs and the ``meta`` field."""

    def __init__(self, url: str, data: t.Mapping[str, t.Any]) -> None:
        missing = [name for name in REQUIRED if not isinstance(data.get(name), str)]
        if missing:
            raise AcmeError(
                f"{url} is not an ACME directory: it lacks {', '.join(missing)}", directory=url
            )
        self.url = url
        self.data = dict(data)

    def __getitem__(self, name: str) -> str:
        value = self.data.get(name)
        if not isinstance(value, str):
            raise AcmeError(f"the ACME directory {self.url} has no {name!r} resource", directory=self.url)
        return value

    @property
    def meta(self) -> dict[str, t.Any]:
        meta = self.data.get("meta")
        return meta if isinstance(meta, dict) else {}

    @property
    def renewal_info(self) -> str | None:
        """The ARI endpoint (RFC 9773 section 4), or None when the CA does not offer it."""
        value = self.data.get("renewalInfo")
        return value if isinstance(value, str) and value else None

    @property
    def terms_of_service(self) -> str | None:
        value = self.meta.get("termsOfService")
        return value if isinstance(value, str) else None

    @property
    def eab_required(self) -> bool:
        return bool(self.meta.get("externalAccountRequired"))
