"""Client arbitration (P4Runtime specification, "Client Arbitration and Controller
Replication"): which StreamChannel is the primary for this device.

The rules, for the one device of a switchd and the default role:

- A controller's first MasterArbitrationUpdate names the device (another id: NOT_FOUND, the
  stream ends) and its election id; an id another live stream already uses is refused with
  INVALID_ARGUMENT (the stream ends). Roles other than the default are refused.
- The live controller with the highest election id is the primary; a controller without an
  election id is a backup that never becomes primary.
- Every time the primary changes, every controller is told: OK for the primary,
  ALREADY_EXISTS for the backups (NOT_FOUND when there is no primary), with the primary's
  election id. Otherwise only the sender is answered.
- When the primary's stream ends, the live controller with the next highest election id
  becomes the primary, and everyone is told. (The specification leaves the device without a
  primary until a backup claims it with an id at least as high as the old one; switchd promotes
  the next one at once, as the P4Runtime reference server PI in simple_switch_grpc does, and
  still accepts such a claim.)

This module is pure: it neither knows gRPC nor awaits. A controller's ``send`` puts a message
on its stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from finsy.proto import U128, p4r, rpc_status

from switchd.p4rt.errors import (
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    OK,
    P4RuntimeError,
)


@dataclass(eq=False)
class Controller:
    """One StreamChannel. ``election_id`` None: not set (a backup forever)."""

    send: Callable[[p4r.StreamMessageResponse], None]
    peer: str = ""
    election_id: int | None = None
    arbitrated: bool = field(default=False)

    def describe(self) -> str:
        eid = "unset" if self.election_id is None else str(self.election_id)
        return f"{self.peer or 'controller'} (election id {eid})"


def election_id_of(
    msg: p4r.MasterArbitrationUpdate | p4r.WriteRequest | p4r.SetForwardingPipelineConfigRequest,
) -> int | None:
    if not msg.HasField("election_id"):
        return None
    return U128.decode(msg.election_id)


class Arbitration:
    def __init__(self, device_id: int) -> None:
        self.device_id = device_id
        self.controllers: list[Controller] = []
        self.primary: Controller | None = None
        self.highest: int | None = None
        """the highest election id ever seen (reported when there is no primary)"""

    @property
    def primary_election_id(self) -> int | None:
        return None if self.primary is None else self.primary.election_id

    def is_primary(self, election_id: int | None) -> bool:
        """Whether a request carrying ``election_id`` comes from the primary."""
        return election_id is not None and election_id == self.primary_election_id

    def update(self, ctrl: Controller, msg: p4r.MasterArbitrationUpdate) -> None:
        """Handle a MasterArbitrationUpdate from ``ctrl``. A P4RuntimeError means the stream
        must end with that error."""
        if msg.device_id != self.device_id:
            if ctrl.arbitrated:
                raise P4RuntimeError(
                    FAILED_PRECONDITION,
                    f"this stream is for device {self.device_id}, not {msg.device_id}",
                )
            raise P4RuntimeError(
                NOT_FOUND,
                f"unknown device id {msg.device_id}: this switch is device {self.device_id}",
            )
        if msg.HasField("role") and (msg.role.name or msg.role.HasField("config")):
            code = FAILED_PRECONDITION if ctrl.arbitrated else INVALID_ARGUMENT
            raise P4RuntimeError(
                code,
                f"role {msg.role.name!r} is not supported: switchd serves only the default role "
                "(leave MasterArbitrationUpdate.role unset)",
            )
        election_id = election_id_of(msg)
        if election_id is not None:
            for other in self.controllers:
                if other is not ctrl and other.election_id == election_id:
                    raise P4RuntimeError(
                        INVALID_ARGUMENT,
                        f"Election ID {election_id} is already used by another connection "
                        "with the same role",
                    )
        old_primary = self.primary
        ctrl.election_id = election_id
        if not ctrl.arbitrated:
            ctrl.arbitrated = True
            self.controllers.append(ctrl)
        if election_id is not None and (self.highest is None or election_id > self.highest):
            self.highest = election_id
        self.primary = self._elect()
        if self.primary is not old_primary:
            self._notify_all()
        else:
            ctrl.send(self._notification(ctrl))

    def remove(self, ctrl: Controller) -> None:
        """A stream ended."""
        if ctrl not in self.controllers:
            return
        self.controllers.remove(ctrl)
        if self.primary is ctrl:
            self.primary = self._elect()
            self._notify_all()

    def _elect(self) -> Controller | None:
        candidates = [c for c in self.controllers if c.election_id is not None]
        if not candidates:
            return None
        return max(candidates, key=lambda c: c.election_id or 0)

    def _notify_all(self) -> None:
        for ctrl in self.controllers:
            ctrl.send(self._notification(ctrl))

    def _notification(self, ctrl: Controller) -> p4r.StreamMessageResponse:
        update = p4r.MasterArbitrationUpdate(device_id=self.device_id)
        reported = self.primary_election_id if self.primary is not None else self.highest
        if reported is not None:
            update.election_id.CopyFrom(U128.encode(reported))
        if self.primary is ctrl:
            status = rpc_status.Status(code=OK, message="you are the primary")
        elif self.primary is not None:
            status = rpc_status.Status(code=ALREADY_EXISTS, message="you are a backup")
        else:
            status = rpc_status.Status(code=NOT_FOUND, message="there is no primary")
        update.status.CopyFrom(status)
        return p4r.StreamMessageResponse(arbitration=update)
