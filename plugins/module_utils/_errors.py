# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one exception tree of the collection.

Lower layers raise these with a clear message and a ``context`` dict of facts
(certificate name, domain, URL, HAProxy reply...). Only a module's ``main()``
turns them into ``fail_json``; the host renewal job turns them into a log line.
Nothing in ``context`` may hold key material.
"""

from __future__ import annotations

import typing as t


class HaproxyAcmeError(Exception):
    """Base of every error this collection raises on purpose."""

    def __init__(self, msg: str, **context: t.Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.context: dict[str, t.Any] = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        return self.msg

    def as_result(self) -> dict[str, t.Any]:
        """Fields to merge into a module's failure result."""
        result: dict[str, t.Any] = {"msg": self.msg}
        result.update(self.context)
        return result


class ConfigError(HaproxyAcmeError):
    """The user's input is wrong: nothing was sent anywhere."""


class PemError(HaproxyAcmeError):
    """A PEM bundle, certificate or key cannot be parsed or does not fit together."""


class FileError(HaproxyAcmeError):
    """A file could not be read or written."""


# ---------------------------------------------------------------- ACME side


class AcmeError(HaproxyAcmeError):
    """Something went wrong talking to the ACME server."""


class AcmeNetworkError(AcmeError):
    """The ACME server could not be reached or did not answer in time."""


class AcmeUnreachable(AcmeNetworkError):
    """The ACME server has answered nothing for the whole retry time: the rest of the run fails at once."""


class AcmeReplyLost(AcmeNetworkError):
    """A request that is not safe to repeat was sent, but its reply was lost (reset, timeout, cut short).

    The caller reads the resource's state to learn whether the server acted on it.
    """


class AcmeProblem(AcmeError):
    """The ACME server answered with a problem document (RFC 8555 section 6.7)."""

    def __init__(
        self,
        msg: str,
        *,
        problem_type: str = "",
        detail: str = "",
        status: int | None = None,
        subproblems: list[dict[str, t.Any]] | None = None,
        retry_after: float | None = None,
        **context: t.Any,
    ) -> None:
        super().__init__(msg, **context)
        self.problem_type = problem_type
        self.detail = detail
        self.status = status
        self.subproblems = subproblems or []
        self.retry_after = retry_after
        self.context.setdefault("problem", {"type": problem_type, "detail": detail, "status": status})
        if retry_after is not None:
            self.context.setdefault("retry_after", retry_after)

    @property
    def short_type(self) -> str:
        """``badNonce`` for ``urn:ietf:params:acme:error:badNonce``."""
        return self.problem_type.rsplit(":", 1)[-1]


class AcmeValidationError(AcmeError):
    """The CA could not validate a challenge: the authorization became invalid."""


class AcmeTimeout(AcmeError):
    """An order or authorization did not reach the wanted state within the time bound."""


# ---------------------------------------------------------- HAProxy side


class RuntimeApiError(HaproxyAcmeError):
    """HAProxy's Runtime API refused a command or answered unexpectedly."""


class RuntimeApiConnectionError(RuntimeApiError):
    """The stats socket is missing, refused the connection, denied access or timed out."""


class RuntimeApiBusy(RuntimeApiError):
    """Another certificate transaction is open, or certificate operations are locked."""


class RuntimeApiVerifyError(RuntimeApiError):
    """After a commit, HAProxy does not serve what was pushed."""
