# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain names, IP addresses and certificate names: validation and normalisation.

HTTP-01 (RFC 8555 section 8.3) validates one DNS name, or one IP address (RFC 8738
section 4: the CA connects to the address itself), over HTTP. A wildcard cannot be
validated this way and is refused before anything is sent, as is an address no CA
can connect to on its own (a zone-scoped, unspecified or multicast one).
"""

from __future__ import annotations

import ipaddress
import re
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._pem import parse_ip

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
# A certificate name becomes a file name <cert_dir>/<name>.pem and a HAProxy
# certificate name: no path separator, no leading dot (HAProxy's directory loader
# skips dotfiles), no whitespace or control characters.
_CERT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]*$")


def _bad(domain: str, why: str, cert_name: str | None) -> ConfigError:
    # The certificate goes into the context only: the issuer names it (and its domains)
    # at the head of every message of that certificate, once.
    return ConfigError(f"invalid domain {domain!r}: {why}", certificate=cert_name, domain=domain)


def _label_problem(label: str) -> str | None:
    if not label:
        return "empty label"
    if len(label) > MAX_LABEL_LENGTH:
        return f"label {label[:20]!r}... is longer than {MAX_LABEL_LENGTH} characters"
    if not _LABEL.fullmatch(label):
        return f"label {label!r} must be letters, digits and inner hyphens"
    return None


IpAddress = t.Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def _ip_problem(address: IpAddress) -> str | None:
    """Why the CA cannot validate ``address`` by connecting to it (RFC 8738 section 4), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return f"an IPv4-mapped IPv6 address: give the IPv4 address {address.ipv4_mapped}"
    if address.is_unspecified or address.is_multicast:
        return "an unspecified or multicast address names no host the CA could connect to"
    return None


def _zone_scoped(name: str) -> bool:
    """``fe80::1%eth0``: an RFC 4007 zone means something on this host only; an ACME identifier has none."""
    address, sep, zone = name.strip("[]").partition("%")
    return bool(sep and zone) and parse_ip(address) is not None


# str.isspace() holds for these and for Unicode spaces (re's \s, on str, matches the same set).
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")

_SHAPE_RULES: tuple[tuple[t.Callable[[str], bool], str], ...] = (
    (lambda name: not name, "empty"),
    (lambda name: _SPACE_OR_CONTROL.search(name) is not None, "contains whitespace or control characters"),
    (lambda name: "*" in name, "wildcards cannot be validated with HTTP-01 (they need DNS-01)"),
    (_zone_scoped, "a zone-scoped address (with %zone) cannot be validated by a CA"),
    (lambda name: len(name) > MAX_NAME_LENGTH, f"longer than {MAX_NAME_LENGTH} characters"),
    (lambda name: not name.isascii(), "not ASCII: use its punycode (xn--) form"),
)


def _shape_problem(name: str) -> str | None:
    """Why ``name`` (already lower-case, no trailing dot) cannot be validated by HTTP-01."""
    return next((why for test, why in _SHAPE_RULES if test(name)), None)


def normalize_domain(domain: t.Any, cert_name: str | None = None) -> str:
    """Return ``domain`` in its normal form; ConfigError if HTTP-01 cannot validate it.

    A DNS name is lower-cased without one trailing dot. An IP address becomes the
    textual form RFC 8738 section 3 asks for (RFC 1123 for IPv4, RFC 5952 section 4
    for IPv6: lower case, zeros compressed, no brackets), which is also how the
    certificate's iPAddress SANs are read back (``_pem``).
    """
    if not isinstance(domain, str):
        raise _bad(str(domain), "not a string", cert_name)
    name = domain.lower()
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    why = _shape_problem(name)
    address = parse_ip(name) if why is None else None
    if address is not None:
        why = _ip_problem(address)
        name = str(address)
    elif why is None:
        labels = name.split(".")
        if ":" in name:
            why = "not a valid IP address (and a DNS name has no ':')"
        elif len(labels) < 2:
            why = "needs at least two labels (a public DNS name)"
        elif labels[-1].isdigit():
            # RFC 3696 section 2: no top-level domain is all-numeric, so this was meant as an address.
            why = "not a valid IP address (and a DNS name cannot end in an all-numeric label)"
        else:
            why = next((p for p in map(_label_problem, labels) if p), None)
    if why:
        raise _bad(domain, why, cert_name)
    return name


def is_ip_address(name: str) -> bool:
    """Whether a normalised name (normalize_domain) is an IP address rather than a DNS name."""
    return parse_ip(name) is not None


def identifier(name: str) -> dict[str, str]:
    """The ACME identifier of a normalised name: type ``ip`` (RFC 8738 section 3) or ``dns``."""
    return {"type": "ip" if is_ip_address(name) else "dns", "value": name}


def normalize_domains(domains: t.Iterable[t.Any], cert_name: str | None = None) -> list[str]:
    """Normalise every domain, drop duplicates, keep the order asked (the first DNS name is the CN)."""
    result: list[str] = []
    for domain in domains:
        name = normalize_domain(domain, cert_name)
        if name not in result:
            result.append(name)
    if not result:
        raise ConfigError("no domains given", certificate=cert_name)
    return result


def check_cert_name(name: t.Any) -> str:
    """Return ``name`` if it is safe as a file name and a HAProxy certificate name."""
    # fullmatch: with match, '$' also matches before a final newline, and 'a\n' would pass.
    if not isinstance(name, str) or not _CERT_NAME.fullmatch(name) or len(name) > 200:
        hint = "; an IPv6 address needs a name of its own" if isinstance(name, str) and ":" in name else ""
        raise ConfigError(
            f"invalid certificate name {name!r}: use letters, digits and . _ - @ + = "
            f"(no slash, no leading dot, no whitespace){hint}",
            certificate=str(name),
        )
    if name.endswith(".pem"):
        raise ConfigError(f"invalid certificate name {name!r}: give it without '.pem'", certificate=name)
    return name
