# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Parsers and the reply-to-exception table, on reply texts recorded from HAProxy 2.6.12 (and 3.x sources)."""

from __future__ import annotations

import datetime as dt

import pytest

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._errors import RuntimeApiBusy, RuntimeApiError
from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._haproxy import parse

DETAIL_26 = """Filename: /tmp/h3dev/certs/a.test.pem
Status: Used
Serial: 5BCB377970071300F3BA2DC5C5B78B0E17726CC0
notBefore: Nov 27 23:46:23 2026 GMT
notAfter: Feb  6 00:46:23 2027 GMT
Subject Alternative Name: DNS:b.test, DNS:www.b.test
Algorithm: EC256
SHA1 FingerPrint: 4D618D1A94FDA8407A31287F6FA9868D0D167F67
Subject: /CN=b.test
Issuer: /CN=Test CA
Chain Subject: /C=US/O=Let's Encrypt/CN=R11
Chain Issuer: /C=US/O=Internet Security Research Group/CN=ISRG Root X1
Chain Subject: /C=US/O=Internet Security Research Group/CN=ISRG Root X1
Chain Issuer: /C=US/O=Internet Security Research Group/CN=ISRG Root X1
OCSP Response Key: """

# HAProxy 3.x: a transaction shows "Uncommitted", an extra chain file line may appear.
DETAIL_30 = """Filename: */etc/haproxy/certs/a.pem
Status: Uncommitted
Chain Filename: /etc/haproxy/chain.pem
Serial: 0A
notBefore: Jan  1 00:00:00 2025 GMT
notAfter: Mar 31 23:59:59 2025 GMT
Subject Alternative Name: DNS:a.test, IP Address:127.0.0.1, , DNS:B.Test
Algorithm: RSA2048
SHA1 FingerPrint: 417A11CAE25F607B24F638B4A8AEE51D1E211477
Subject: /CN=a.test
Issuer: /CN=x
Some Future Field: with: colons"""

EMPTY_26 = "Filename: /tmp/h3dev/certs/a.test.pem\nStatus: Empty\nOCSP Response Key: "


def test_detail_26() -> None:
    cert = parse.parse_cert_detail(DETAIL_26)
    assert cert.filename == "/tmp/h3dev/certs/a.test.pem"
    assert cert.used and not cert.empty
    assert cert.serial == "5BCB377970071300F3BA2DC5C5B78B0E17726CC0"
    assert cert.not_before == dt.datetime(2026, 11, 27, 23, 46, 23, tzinfo=dt.timezone.utc)
    assert cert.not_after == dt.datetime(2027, 2, 6, 0, 46, 23, tzinfo=dt.timezone.utc)
    assert cert.domains == ["b.test", "www.b.test"]
    assert cert.sha1_fingerprint == "4D618D1A94FDA8407A31287F6FA9868D0D167F67"
    assert cert.chain_subjects == [
        "/C=US/O=Let's Encrypt/CN=R11",
        "/C=US/O=Internet Security Research Group/CN=ISRG Root X1",
    ]
    assert len(cert.chain_issuers) == 2


def test_detail_30_tolerates_new_fields() -> None:
    cert = parse.parse_cert_detail(DETAIL_30)
    assert cert.filename == "/etc/haproxy/certs/a.pem"
    assert cert.status == "Uncommitted" and not cert.used
    assert cert.serial == "0A"
    assert cert.domains == ["a.test", "b.test"]
    assert cert.fields["Chain Filename"] == "/etc/haproxy/chain.pem"
    assert cert.fields["Some Future Field"] == "with: colons"


def test_detail_empty_store() -> None:
    cert = parse.parse_cert_detail(EMPTY_26)
    assert cert.empty and cert.status == "Empty" and cert.serial == ""
    assert cert.not_after is None


def test_detail_of_an_error_reply_raises() -> None:
    with pytest.raises(RuntimeApiError, match="Permission denied"):
        parse.parse_cert_detail("Permission denied")


@pytest.mark.parametrize(
    ("reply", "names", "transaction"),
    [
        ("", [], None),
        ("# filename\n/c/a.pem\n/c/b.pem", ["/c/a.pem", "/c/b.pem"], None),
        ("# transaction\n*/c/b.pem\n# filename\n/c/a.pem\n/c/b.pem", ["/c/a.pem", "/c/b.pem"], "/c/b.pem"),
    ],
)
def test_cert_list(reply: str, names: list[str], transaction: str | None) -> None:
    listing = parse.parse_cert_list(reply)
    assert listing.names == names
    assert listing.transaction == transaction
    assert parse.open_transaction(reply) == transaction


@pytest.mark.parametrize(
    ("reply", "transaction"),
    [
        ("No ongoing transaction!", None),
        (
            "The ongoing transaction is about '/c/b.pem' but you are trying to abort a transaction for"
            " '/dev/null/tlsops-haproxy-acme-probe'",
            "/c/b.pem",
        ),
    ],
)
def test_probed_transaction(reply: str, transaction: str | None) -> None:
    assert parse.probed_transaction(reply) == transaction


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("Can't abort!\nOperations on certificates are currently locked!", RuntimeApiBusy),
        ("Permission denied", RuntimeApiError),
        ("Unknown command", RuntimeApiError),
    ],
)
def test_probed_transaction_refuses_other_replies(reply: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse.probed_transaction(reply)


@pytest.mark.parametrize(
    ("reply", "numbered", "expected"),
    [
        ("# /c\n/c/a.pem:1\n/c/b.pem:2", True, [("/c/a.pem", 1, ""), ("/c/b.pem", 2, "")]),
        ("# /c\n/c/a.pem", False, [("/c/a.pem", None, "")]),
        (
            "# list\ncommon.pem:1 !not.test1.com *.test1.com !localhost\necdsa.pem:3 [verify none allow-0rtt] localhost",
            True,
            [
                ("common.pem", 1, "!not.test1.com *.test1.com !localhost"),
                ("ecdsa.pem", 3, "[verify none allow-0rtt] localhost"),
            ],
        ),
        ("# /c", False, []),
    ],
)
def test_crt_list(reply: str, numbered: bool, expected: list[tuple[str, int | None, str]]) -> None:
    entries = parse.parse_crt_list(reply, numbered)
    assert [(e.certificate, e.line, e.options) for e in entries] == expected


def test_crt_lists() -> None:
    assert parse.parse_crt_lists("/etc/haproxy/certs\n/etc/haproxy/list.txt") == [
        "/etc/haproxy/certs",
        "/etc/haproxy/list.txt",
    ]


SUCCESS = [
    ("new ssl cert", "New empty certificate store '/c/a.pem'!"),
    ("set ssl cert", "Transaction created for certificate /c/a.pem!"),
    ("set ssl cert", "Transaction updated for certificate /c/a.pem!"),
    ("commit ssl cert", "Committing /c/a.pem\nSuccess!"),
    ("commit ssl cert", "Committing /c/a.pem.\nSuccess!"),
    ("abort ssl cert", "Transaction aborted for certificate '/c/a.pem'!"),
    ("del ssl cert", "Certificate '/c/a.pem' deleted!"),
    ("add ssl crt-list", "Inserting certificate '/c/a.pem' in crt-list '/c'.\nSuccess!"),
    ("del ssl crt-list", "Entry '/c/a.pem' deleted in crtlist '/c'!"),
    ("show ssl cert", "# filename\n/c/a.pem"),
    ("show ssl crt-list", "# /c\n/c/a.pem"),
]


@pytest.mark.parametrize(("verb", "reply"), SUCCESS)
def test_success_replies(verb: str, reply: str) -> None:
    assert parse.raise_for_reply(verb, reply) == reply


ERRORS = [
    ("new ssl cert", "Certificate '/c/a.pem' already exists!", RuntimeApiError, "already exists"),
    (
        "set ssl cert",
        "Can't replace a certificate which is not referenced by the configuration!\nCan't update /c/x.pem!",
        RuntimeApiError,
        "not referenced",
    ),
    (
        "set ssl cert",
        "unable to load certificate from file '/c/a.pem'.\nCan't load the payload\nCan't update /c/a.pem!",
        RuntimeApiError,
        "unable to load",
    ),
    (
        "set ssl cert",
        "The ongoing transaction is about '/c/b.pem' but you are trying to set '/c/a.pem'\nCan't update /c/a.pem!",
        RuntimeApiBusy,
        "open on /c/b.pem",
    ),
    (
        "commit ssl cert",
        "inconsistencies between private key and certificate loaded '/c/a.pem'.\nCan't commit /c/a.pem!",
        RuntimeApiError,
        "inconsistencies",
    ),
    ("commit ssl cert", "No ongoing transaction! !\nCan't commit /c/a.pem!", RuntimeApiError, "No ongoing"),
    (
        "commit ssl cert",
        "Can't commit the certificate!\nOperations on certificates are currently locked!",
        RuntimeApiBusy,
        "locked",
    ),
    ("show ssl cert", "Can't show!\nOperations on certificates are currently locked!", RuntimeApiBusy, "locked"),
    ("abort ssl cert", "No ongoing transaction!", RuntimeApiError, "No ongoing"),
    (
        "del ssl cert",
        "Can't remove the certificate: certificate '/c/a.pem' in use, can't be deleted!\n",
        RuntimeApiError,
        "in use",
    ),
    ("add ssl crt-list", "Can't edit the crt-list: crt-list '/x' does not exist!", RuntimeApiError, "does not exist"),
    ("add ssl crt-list", "Can't edit the crt-list: certificate '/c/a.pem' is empty!", RuntimeApiError, "is empty"),
    (
        "del ssl crt-list",
        "Can't delete the entry: certificate '/c/a.pem' can't be found in crt-list '/c'!",
        RuntimeApiError,
        "can't be found",
    ),
    ("new ssl cert", "Permission denied", RuntimeApiError, "level admin"),
    ("show ssl cert", "Can't allocate memory!", RuntimeApiError, "level admin"),
    ("show ssl crt-list", "didn't find the specified filename", RuntimeApiError, "didn't find"),
    (
        "show ssl cert",
        "Unknown command, but maybe one of the following ones is a better match:\n  help",
        RuntimeApiError,
        "Unknown",
    ),
]


@pytest.mark.parametrize(("verb", "reply", "error", "text"), ERRORS)
def test_error_replies(verb: str, reply: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error) as info:
        parse.raise_for_reply(verb, reply, "/c/a.pem")
    assert type(info.value) is error
    assert text in str(info.value)


def test_busy_names_the_foreign_transaction() -> None:
    error = parse.reply_error(
        "set ssl cert", "The ongoing transaction is about '/c/b.pem' but you are trying to set '/c/a.pem'"
    )
    assert isinstance(error, RuntimeApiBusy)
    assert error.context["transaction"] == "/c/b.pem"


@pytest.mark.parametrize(
    ("reply", "owner"),
    [
        ("Transaction created for certificate /c/a.pem!", "/c/a.pem"),
        ("Transaction updated for certificate /c/b.pem!", "/c/b.pem"),
        ("Can't update /c/a.pem!", None),
    ],
)
def test_transaction_of(reply: str, owner: str | None) -> None:
    assert parse.transaction_of(reply) == owner


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sep  8 14:45:39 2048 GMT", dt.datetime(2048, 9, 8, 14, 45, 39, tzinfo=dt.timezone.utc)),
        ("Dec 12 21:20:24 2019 GMT", dt.datetime(2019, 12, 12, 21, 20, 24, tzinfo=dt.timezone.utc)),
        ("Dec 12 21:20:24.5 2019 GMT", dt.datetime(2019, 12, 12, 21, 20, 24, tzinfo=dt.timezone.utc)),
        ("", None),
        ("Foo 12 21:20:24 2019 GMT", None),
        ("Feb 30 21:20:24 2019 GMT", None),
    ],
)
def test_parse_time(text: str, expected: dt.datetime | None) -> None:
    assert parse.parse_time(text) == expected


@pytest.mark.parametrize("reply", ["Filename:\u00b2", "/etc/haproxy/certs/a.pem:\u0661 alpn h2"])
def test_a_line_number_of_other_digits_is_part_of_the_name(reply: str) -> None:
    """str.isdigit() holds for superscripts and Arabic-Indic digits, which int() refuses or reads (hypothesis found one)."""
    [entry] = parse.parse_crt_list(reply, numbered=True)
    assert entry.line is None and entry.certificate == reply.split(" ", 1)[0]
