# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HAProxy's replies read into data, and its error replies into exceptions.

Reply texts were checked against HAProxy 2.6.12 and the 3.x sources (which add
the ``Uncommitted`` status and ``Chain Filename``): fields are read by name and
unknown lines are kept, not refused.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import (
    RuntimeApiBusy,
    RuntimeApiError,
)

# Replies that mean "try again shortly": another CLI session holds the
# certificate lock, or another certificate's transaction is open (HAProxy
# allows one per process; management.txt "set ssl cert").
_LOCKED = "Operations on certificates are currently locked!"
_FOREIGN = re.compile(r"The ongoing transaction is about '([^']*)'")

# What success looks like, per command (HAProxy 2.6 to 3.x wording).
_SUCCESS: dict[str, re.Pattern[str]] = {
    "new ssl cert": re.compile(r"^New empty certificate store '.*'!$", re.MULTILINE),
    "set ssl cert": re.compile(r"^Transaction (?:created|updated) for certificate (.*)!$", re.MULTILINE),
    "commit ssl cert": re.compile(r"^Success!$", re.MULTILINE),
    "abort ssl cert": re.compile(r"^Transaction aborted for certificate '.*'!$", re.MULTILINE),
    "del ssl cert": re.compile(r"^Certificate '.*' deleted!$", re.MULTILINE),
    "add ssl crt-list": re.compile(r"^Success!$", re.MULTILINE),
    "del ssl crt-list": re.compile(r"^Entry '.*' deleted in crtlist '.*'!$", re.MULTILINE),
}
_SHOW_ERRORS = (
    "Can't display the certificate",
    "Can't allocate memory!",  # 2.6 answers this to a 'show ssl cert' below level operator
    "Permission denied",
    "Unknown command",
    "Can't ",
    "Couldn't ",
    "didn't find the specified filename",  # show ssl crt-list <unknown>
)
_MONTHS = {
    m: i + 1 for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))
}


# ------------------------------------------------------------------ errors


def raise_for_reply(verb: str, reply: str, name: str | None = None) -> str:
    """``reply`` when it reports success for ``verb``; else RuntimeApiBusy or RuntimeApiError."""
    pattern = _SUCCESS.get(verb)
    if pattern is not None and pattern.search(reply):
        return reply
    if pattern is None and not _looks_like_error(reply):
        return reply
    raise reply_error(verb, reply, name)


def reply_error(verb: str, reply: str, name: str | None = None) -> RuntimeApiError:
    """The exception for an error reply; its message quotes HAProxy."""
    text = " ".join(line.strip() for line in reply.splitlines() if line.strip()) or "(empty reply)"
    target = f" for {name}" if name else ""
    foreign = _FOREIGN.search(reply)
    if foreign:
        return RuntimeApiBusy(
            f"'{verb}'{target}: another certificate transaction is open on {foreign.group(1)}: {text}",
            command=verb,
            name=name,
            transaction=foreign.group(1),
            reply=text,
        )
    if _LOCKED in reply:
        return RuntimeApiBusy(
            f"'{verb}'{target}: HAProxy's certificate operations are locked: {text}",
            command=verb,
            name=name,
            reply=text,
        )
    if "Permission denied" in reply or reply.startswith("Can't allocate memory!"):
        # 2.6 answers "Can't allocate memory!" to 'show ssl cert' below level operator.
        return RuntimeApiError(
            f"'{verb}'{target}: HAProxy says 'Permission denied': the stats socket needs 'level admin'",
            command=verb,
            name=name,
            reply=text,
        )
    return RuntimeApiError(f"'{verb}'{target} failed: HAProxy says: {text}", command=verb, name=name, reply=text)


def _looks_like_error(reply: str) -> bool:
    first = reply.lstrip().split("\n", 1)[0]
    return _LOCKED in reply or any(first.startswith(prefix) for prefix in _SHOW_ERRORS)


def transaction_of(set_reply: str) -> str | None:
    """The certificate a ``set ssl cert`` reply says the open transaction is about."""
    match = _SUCCESS["set ssl cert"].search(set_reply)
    return match.group(1) if match else None


# ------------------------------------------------------- show ssl cert


@dataclass
class CertList:
    """``show ssl cert``: every certificate store, and the open transaction if any."""

    names: list[str] = field(default_factory=list)
    transaction: str | None = None


def parse_cert_list(reply: str) -> CertList:
    result = CertList()
    section = "filename"
    for raw in reply.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            section = line[1:].strip()
            continue
        if section == "transaction":
            result.transaction = line[1:] if line.startswith("*") else line
        else:
            result.names.append(line)
    return result


def open_transaction(reply: str) -> str | None:
    """Only the open transaction of a ``show ssl cert`` listing (it comes first), without reading the rest."""
    if not reply.startswith("# transaction"):
        return None
    line = reply[len("# transaction") :].lstrip("\n").split("\n", 1)[0].strip()
    if not line or line.startswith("#"):
        return None
    return line[1:] if line.startswith("*") else line


def probed_transaction(reply: str) -> str | None:
    """The open transaction a ``transaction_probe`` reply names; None when none is open.

    RuntimeApiBusy when the certificate lock is held, RuntimeApiError for any other reply.
    """
    if reply.startswith("No ongoing transaction"):
        return None
    foreign = _FOREIGN.search(reply)
    if foreign and _LOCKED not in reply:
        return foreign.group(1)
    raise reply_error("abort ssl cert", reply)


@dataclass
class RuntimeCert:
    """``show ssl cert <name>``: the fields we use, plus every field as HAProxy printed it."""

    filename: str
    status: str
    serial: str = ""
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    domains: list[str] = field(default_factory=list)
    algorithm: str = ""
    sha1_fingerprint: str = ""
    subject: str = ""
    issuer: str = ""
    chain_subjects: list[str] = field(default_factory=list)
    chain_issuers: list[str] = field(default_factory=list)
    fields: dict[str, t.Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """A store made by ``new ssl cert`` and never filled."""
        return self.status == "Empty" or not self.serial

    @property
    def used(self) -> bool:
        return self.status == "Used"


def parse_fields(reply: str) -> dict[str, t.Any]:
    """``Key: value`` lines by name; a key seen twice (``Chain Subject``) gives a list."""
    fields: dict[str, t.Any] = {}
    for line in reply.splitlines():
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            continue
        key, value = key.strip(), value.strip()
        if key in fields:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[key] = value
    return fields


def parse_pid(reply: str) -> int | None:
    """The ``Pid`` of a ``show info`` reply: the process (in master-worker mode the worker)
    behind the socket, which a reload or restart replaces. None without one."""
    text = _one(parse_fields(reply).get("Pid", "")).strip()
    return int(text) if text.isascii() and text.isdigit() else None  # '²'.isdigit(), but int('²') fails


def parse_cert_detail(reply: str) -> RuntimeCert:
    """Read ``show ssl cert <name>``; RuntimeApiError when the reply is not one."""
    fields = parse_fields(reply)
    if "Filename" not in fields or "Status" not in fields:
        raise reply_error("show ssl cert", reply)
    return RuntimeCert(
        filename=_one(fields["Filename"]).lstrip("*"),
        status=_one(fields["Status"]),
        serial=_one(fields.get("Serial", "")).upper(),
        not_before=parse_time(_one(fields.get("notBefore", ""))),
        not_after=parse_time(_one(fields.get("notAfter", ""))),
        domains=parse_sans(_one(fields.get("Subject Alternative Name", ""))),
        algorithm=_one(fields.get("Algorithm", "")),
        sha1_fingerprint=_one(fields.get("SHA1 FingerPrint", "")).upper(),
        subject=_one(fields.get("Subject", "")),
        issuer=_one(fields.get("Issuer", "")),
        chain_subjects=_many(fields.get("Chain Subject")),
        chain_issuers=_many(fields.get("Chain Issuer")),
        fields=fields,
    )


def is_not_found(reply: str) -> bool:
    """``show ssl cert <name>`` for a name HAProxy does not hold."""
    return reply.startswith("Can't display the certificate")


def _one(value: t.Any) -> str:
    return str(value[0] if isinstance(value, list) else value)


def _many(value: t.Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def parse_time(value: str) -> dt.datetime | None:
    """OpenSSL's ASN1_TIME_print form, ``Sep  8 14:45:39 2048 GMT``, as UTC.

    Parsed by hand: strptime's ``%b`` follows the locale.
    """
    parts = value.split()
    if len(parts) < 4 or parts[0] not in _MONTHS:
        return None
    try:
        hour, minute, second = (int(float(p)) for p in parts[2].split(":"))
        return dt.datetime(
            int(parts[3]), _MONTHS[parts[0]], int(parts[1]), hour, minute, second, tzinfo=dt.timezone.utc
        )
    except (ValueError, OverflowError):  # "1E10" seconds or "inf" pass float() but no datetime holds them
        return None


def parse_sans(value: str) -> list[str]:
    """DNS names of ``DNS:a, DNS:b``; HAProxy prints other SAN types as empty items."""
    return [item.strip()[4:].lower() for item in value.split(",") if item.strip().startswith("DNS:")]


# ----------------------------------------------------- show ssl crt-list


@dataclass
class CrtListEntry:
    """One line of ``show ssl crt-list [-n] <list>``."""

    certificate: str
    line: int | None = None
    options: str = ""


def parse_crt_lists(reply: str) -> list[str]:
    """``show ssl crt-list``: the crt-lists and directories the configuration uses."""
    return [line.strip() for line in reply.splitlines() if line.strip() and not line.startswith("#")]


def parse_crt_list(reply: str, numbered: bool = False) -> list[CrtListEntry]:
    """Entries of one crt-list; with ``-n`` each certificate carries ``:<line>``."""
    entries = []
    for raw in reply.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        first, _sep, rest = line.partition(" ")
        number = None
        if numbered:
            path, sep, digits = first.rpartition(":")
            if sep and digits.isascii() and digits.isdigit():
                first, number = path, int(digits)
        entries.append(CrtListEntry(certificate=first, line=number, options=rest.strip()))
    return entries
