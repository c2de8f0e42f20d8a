# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The common ACME options (plugins/module_utils/_acme/common_args.py).
    DOCUMENTATION = r"""
options:
  directory:
    description:
      - The ACME server, as an alias or as the URL of its directory.
      - V(letsencrypt) and V(letsencrypt_test) (Let's Encrypt and its staging server), V(zerossl),
        V(buypass) and V(buypass_test), V(google) and V(google_test) (Google Trust Services).
      - Any other value must be an C(https://) URL, for example a private CA or pebble.
      - An unknown alias, or an C(http://) URL (RFC 8555 section 6.1 allows ACME over HTTPS only),
        fails before anything is sent.
    type: str
    default: letsencrypt_test
  account_key_path:
    description:
      - Path to the PEM private key of the ACME account (PKCS#8, SEC1 or PKCS#1, unencrypted).
      - An account key written by acme.sh works unchanged, so its thumbprint (and the
        HAProxy configuration built on it) stays valid.
      - Exactly one of O(account_key_path) and O(account_key_content) is needed.
    type: path
  account_key_content:
    description:
      - The PEM private key of the ACME account as a string, for example from an AWX credential.
      - Never logged and never returned.
    type: str
  email:
    description:
      - Contact address(es) of the account (comma-separated), sent as C(mailto:) URIs.
      - When omitted, the account's contact is left as it is.
    type: str
  terms_agreed:
    description:
      - Whether you agree to the CA's terms of service; needed to create an account at a CA
        that has terms (RFC 8555 section 7.3).
    type: bool
    default: false
  eab_kid:
    description:
      - Key identifier for External Account Binding (RFC 8555 section 7.3.4), given by CAs such as
        ZeroSSL or Google Trust Services. Needs O(eab_hmac_key).
    type: str
  eab_hmac_key:
    description:
      - The base64url-encoded MAC key for External Account Binding. Needs O(eab_kid). Never logged.
    type: str
  validate_certs:
    description:
      - Whether to verify the ACME server's TLS certificate. Only switch this off for a throw-away test CA.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates to verify the ACME server's TLS certificate with, for a private ACME server.
    type: path
  request_timeout:
    description:
      - Seconds to wait for each HTTP response from the ACME server (to connect, and for each read).
      - Each request is retried within twice O(request_timeout) (20 seconds by default) of its first try; the
        time, not a count, ends the retries. No try starts after that, and one already sent may take up to
        O(request_timeout) more.
      - Retried are rejected nonces (C(badNonce), at once with the nonce the refusal carries, then after pauses of up
        to half a second), HTTP 429 and 5xx (after 0.5 seconds doubling up to 2, or the server's C(Retry-After) when
        longer), connection errors (a broken connection at once on a new one, then with the same backoff), a reply
        cut short of its C(Content-Length), and a failed C(newNonce), all within the same time. A 5xx problem
        document refusing the C(replaces) of a renewal order is an answer, not retried.
      - A C(Retry-After) on HTTP 429 or 503 pauses every request of the run, not only the one that got it. One that
        reaches past the time bound fails that request at once and says when to try again, as in
        C(the server asks to retry after 3600 s, at 2026-12-01T10:41:32Z).
      - "When the ACME server has answered nothing for that long (connection errors, timeouts, HTTP 502, 503 or 504,
        a 5xx without a problem document), the rest of the run fails at once, without a request, with
        C(the ACME server <url> is unreachable since <time>: <cause>). A request that ran out of time while another
        still got an answer waits for that verdict, at most one time bound more. An outage so costs one time bound,
        however many certificates are left; their files stay as they were."
      - A challenge trigger or a finalize whose reply is lost (a reset, a timeout, a reply cut short) is not simply
        sent again; the authorization or order is read, and the run goes on from what the server did. Other requests
        are sent again; a new order may then be placed twice, and the second one is never used.
      - The ACME server is reached through the proxy in the environment variable C(https_proxy) (or C(HTTPS_PROXY))
        of the host that runs the module, unless C(no_proxy) (or C(NO_PROXY)) exempts its host (names with their
        subdomains, C(host:port), addresses, CIDR networks, or C(*)). Nothing else of the environment is read, no
        C(.netrc) and no C(REQUESTS_CA_BUNDLE); a private CA is given by O(ca_path).
    type: float
    default: 10
notes:
  - The client is this collection's own implementation of RFC 8555 on C(requests) and C(cryptography);
    it runs with the distribution packages of Debian 12 (cryptography 38, requests 2.28) and newer.
  - Nonces from every C(Replay-Nonce) header are reused; C(badNonce) errors are retried with a fresh nonce, within the
    time bound of O(request_timeout).
"""
