"""The few errors the SDK raises."""

from __future__ import annotations

from typing import Optional, Sequence

import grpc


class InvalidOptionsError(ValueError):
    """Executor options that cannot work; `problems` lists every one of them at once."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("invalid executor options:\n  - " + "\n  - ".join(self.problems))


class InvalidHandlerError(ValueError):
    """A handler registration that cannot work (bad name, duplicate, not callable)."""


class ExecutorConnectError(Exception):
    """start() failed: an admin refused this executor before it was ever welcomed.

    `code` is the gRPC status (for example grpc.StatusCode.UNAUTHENTICATED), `details` the
    admin's explanation, `address` the admin that said so.
    """

    def __init__(self, code: grpc.StatusCode, address: str, details: str):
        self.code = code
        self.address = address
        self.details = details
        hint = (
            " (check access_token: it must be the token of this app_name)"
            if code == grpc.StatusCode.UNAUTHENTICATED
            else ""
        )
        super().__init__(f"admin {address} refused the executor with {code.name}: {details}{hint}")


class ExecutorStoppedError(Exception):
    """start() was still waiting for an admin when stop() was called."""


class RunAborted(Exception):
    """Raised by RunContext helpers once the run was aborted (kill, timeout, cover, shutdown).

    A handler may let it propagate: the run's result was already reported when the abort
    happened, so what the handler does afterwards is not recorded.
    """

    def __init__(self, reason: str, message: str, cause: Optional[BaseException] = None):
        self.reason = reason
        self.message = message
        super().__init__(message)
        if cause is not None:
            self.__cause__ = cause
