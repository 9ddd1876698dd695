"""P4Runtime errors: one exception type for the whole server, and the google.rpc.Status
packing the specification asks for (section "Error Reporting Messages")."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from finsy.proto import p4r, rpc_code, rpc_status

Code = int
"""A ``google.rpc.Code`` value (``rpc_code.INVALID_ARGUMENT`` ...)."""

OK: Code = rpc_code.OK
UNKNOWN: Code = rpc_code.UNKNOWN
INVALID_ARGUMENT: Code = rpc_code.INVALID_ARGUMENT
NOT_FOUND: Code = rpc_code.NOT_FOUND
ALREADY_EXISTS: Code = rpc_code.ALREADY_EXISTS
PERMISSION_DENIED: Code = rpc_code.PERMISSION_DENIED
RESOURCE_EXHAUSTED: Code = rpc_code.RESOURCE_EXHAUSTED
FAILED_PRECONDITION: Code = rpc_code.FAILED_PRECONDITION
OUT_OF_RANGE: Code = rpc_code.OUT_OF_RANGE
UNIMPLEMENTED: Code = rpc_code.UNIMPLEMENTED
ABORTED: Code = rpc_code.ABORTED
INTERNAL: Code = rpc_code.INTERNAL
UNAVAILABLE: Code = rpc_code.UNAVAILABLE

_GRPC_CODES: dict[int, grpc.StatusCode] = {sc.value[0]: sc for sc in grpc.StatusCode}

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def code_name(code: Code) -> str:
    return str(rpc_code.Code.Name(code))


def code_from_name(name: str) -> Code:
    """A code from its name (``"NOT_FOUND"``); INTERNAL for a name that is not a code."""
    try:
        return int(rpc_code.Code.Value(name))
    except ValueError:
        return INTERNAL


def grpc_code(code: Code) -> grpc.StatusCode:
    return _GRPC_CODES.get(code, grpc.StatusCode.UNKNOWN)


class P4RuntimeError(Exception):
    """A request, or one update or read request in a batch, that failed with ``code``."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{code_name(self.code)}: {self.message}"

    def to_p4_error(self) -> p4r.Error:
        return p4r.Error(canonical_code=self.code, message=self.message)


class RpcFailure(Exception):
    """A whole RPC that fails: ``code`` and ``message`` become the gRPC status; ``details``
    (if any) are packed into ``grpc-status-details-bin`` as a google.rpc.Status."""

    def __init__(self, code: Code, message: str, details: Sequence[p4r.Error] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details)

    def status(self) -> rpc_status.Status:
        status = rpc_status.Status(code=self.code, message=self.message)
        for error in self.details:
            status.details.add().Pack(error)
        return status

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        if not self.details:
            return ()
        return ((STATUS_DETAILS_KEY, self.status().SerializeToString()),)


def batch_failure(what: str, results: Sequence[P4RuntimeError | None]) -> RpcFailure:
    """The status of a Write (or Read) batch in which some elements failed: UNKNOWN, with one
    p4.v1.Error per element, in order, OK for the elements that succeeded."""
    failed = [r for r in results if r is not None]
    first = failed[0] if failed else None
    message = f"{what}: {len(failed)} of {len(results)} failed"
    if first is not None:
        message += f"; first: {first}"
    details = [p4r.Error(canonical_code=OK) if r is None else r.to_p4_error() for r in results]
    return RpcFailure(UNKNOWN, message, details)
