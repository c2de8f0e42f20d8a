# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain names and certificate names: validation and normalisation.

HTTP-01 (RFC 8555 section 8.3) validates one DNS name over HTTP, so a wildcard or an
IP address cannot be validated this way and is refused before anything is sent.
"""

from __future__ import annotations

import ipaddress
import re
import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import ConfigError

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
# A certificate name becomes a file name <cert_dir>/<name>.pem and a HAProxy
# certificate name: no path separator, no leading dot (HAProxy's directory loader
# skips dotfiles), no whitespace or control characters.
_CERT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]*$")


def _bad(domain: str, why: str, cert_name: str | None) -> ConfigError:
    where = f"certificate {cert_name!r}: " if cert_name else ""
    return ConfigError(f"{where}invalid domain {domain!r}: {why}", certificate=cert_name, domain=domain)


def _label_problem(label: str) -> str | None:
    if not label:
        return "empty label"
    if len(label) > MAX_LABEL_LENGTH:
        return f"label {label[:20]!r}... is longer than {MAX_LABEL_LENGTH} characters"
    if not _LABEL.match(label):
        return f"label {label!r} must be letters, digits and inner hyphens"
    return None


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


_SHAPE_RULES: tuple[tuple[t.Callable[[str], bool], str], ...] = (
    (lambda name: not name, "empty"),
    (lambda name: any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in name),
     "contains whitespace or control characters"),
    (lambda name: "*" in name, "wildcards cannot be validated with HTTP-01 (they need DNS-01)"),
    (_is_ip_address, "IP addresses are not supported (HTTP-01 validates DNS names)"),
    (lambda name: len(name) > MAX_NAME_LENGTH, f"longer than {MAX_NAME_LENGTH} characters"),
    (lambda name: not name.isascii(), "not ASCII: use its punycode (xn--) form"),
)


def _shape_problem(name: str) -> str | None:
    """Why ``name`` (already lower-case, no trailing dot) cannot be validated by HTTP-01."""
    return next((why for test, why in _SHAPE_RULES if test(name)), None)


def normalize_domain(domain: t.Any, cert_name: str | None = None) -> str:
    """Return ``domain`` lower-cased without one trailing dot; ConfigError if HTTP-01 cannot validate it."""
    if not isinstance(domain, str):
        raise _bad(str(domain), "not a string", cert_name)
    name = domain.lower()
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    why = _shape_problem(name)
    if why is None:
        labels = name.split(".")
        if len(labels) < 2:
            why = "needs at least two labels (a public DNS name)"
        else:
            why = next((p for p in map(_label_problem, labels) if p), None)
    if why:
        raise _bad(domain, why, cert_name)
    return name


def normalize_domains(domains: t.Iterable[t.Any], cert_name: str | None = None) -> list[str]:
    """Normalise every domain, drop duplicates, keep the order asked (the first is the CN)."""
    result: list[str] = []
    for domain in domains:
        name = normalize_domain(domain, cert_name)
        if name not in result:
            result.append(name)
    if not result:
        where = f"certificate {cert_name!r}: " if cert_name else ""
        raise ConfigError(f"{where}no domains given", certificate=cert_name)
    return result


def check_cert_name(name: t.Any) -> str:
    """Return ``name`` if it is safe as a file name and a HAProxy certificate name."""
    if not isinstance(name, str) or not _CERT_NAME.match(name) or len(name) > 200:
        raise ConfigError(
            f"invalid certificate name {name!r}: use letters, digits and . _ - @ + = "
            "(no slash, no leading dot, no whitespace)",
            certificate=str(name),
        )
    if name.endswith(".pem"):
        raise ConfigError(f"invalid certificate name {name!r}: give it without '.pem'", certificate=name)
    return name
