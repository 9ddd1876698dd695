"""switchd's P4Runtime server (grpc.aio): arbitration, the pipeline, Write, Read and
Capabilities, over a :class:`~switchd.dataplane.Dataplane`.

One asyncio loop serves everything. The data plane's methods block (netlink, ``ip -batch``),
so they run in one worker thread, one call at a time: the loop keeps answering arbitration,
reads and gNMI while the kernel is being programmed, and validates the next chunk of a write
while the kernel applies the one before. Writes and pipeline changes are
serialised by a lock; a write that has started to touch the data plane finishes and commits
even if its client goes away, so the store always matches the kernel.

Writes are CONTINUE_ON_ERROR or ROLLBACK_ON_ERROR (undone by inverse changes); the kernel
cannot switch a whole batch at once, so DATAPLANE_ATOMIC is UNIMPLEMENTED.

A request that fails, however malformed, gets a status and a message and is logged; nothing a
client sends ends the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
from finsy.proto import p4i, p4r, p4r_grpc

from switchd.dataplane import (
    Change,
    ChangeKind,
    CounterValue,
    Dataplane,
    DataplaneError,
    EntityKey,
)
from switchd.p4rt.arbitration import Arbitration, Controller, election_id_of
from switchd.p4rt.errors import (
    ABORTED,
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    INTERNAL,
    INVALID_ARGUMENT,
    NOT_FOUND,
    OK,
    PERMISSION_DENIED,
    RESOURCE_EXHAUSTED,
    UNIMPLEMENTED,
    P4RuntimeError,
    RpcFailure,
    batch_failure,
    code_from_name,
    grpc_code,
)
from switchd.p4rt.pipeline import (
    DEFAULT_P4INFO_PATH,
    PipelineState,
    load_p4info,
    p4info_differences,
)
from switchd.p4rt.store import EntityStore, parse
from switchd.p4rt.validate import (
    CounterWrite,
    P4InfoIndex,
    Validated,
    Validator,
    invalid,
    varint,
)

if TYPE_CHECKING:
    from switchd.gnmi import GnmiServer

log = logging.getLogger("switchd.p4rt")

P4RUNTIME_API_VERSION = "1.5.0"
"""The version of finsy's p4runtime.proto, which this server speaks."""

READ_CHUNK_BYTES = 1 << 20
PIPELINE_CHUNK = 256
"""Updates per data plane call within a write: the kernel applies one chunk while the next
is validated (see _Batch)."""
PIPELINE_DEPTH = 2
"""Chunks of a write handed to the data plane and not yet committed: with two, the data
plane goes on to the next chunk as soon as the kernel has one, instead of waiting for the
server to commit it and send the next (see _Batch)."""
READ_CHUNK_ENTITIES = 4096

# Validation errors that depend on the store: an earlier update of the same batch, not yet
# applied, may change the answer.
_STORE_DEPENDENT = frozenset({NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, RESOURCE_EXHAUSTED})

_SET_ACTIONS = p4r.SetForwardingPipelineConfigRequest
_GET_TYPES = p4r.GetForwardingPipelineConfigRequest
_ATOMICITIES = frozenset({p4r.WriteRequest.CONTINUE_ON_ERROR, p4r.WriteRequest.ROLLBACK_ON_ERROR})


def _atomicity_name(value: int) -> str:
    try:
        return str(p4r.WriteRequest.Atomicity.Name(value))
    except ValueError:
        return str(value)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The committed forwarding pipeline and the entities written for it."""

    config: p4r.ForwardingPipelineConfig
    index: P4InfoIndex
    store: EntityStore
    validator: Validator


class _StreamEnd:
    """Put on a stream's outbox to end it (code OK: the client closed it)."""

    def __init__(self, code: int = OK, message: str = "") -> None:
        self.code = code
        self.message = message


class P4RuntimeServer(p4r_grpc.P4RuntimeServicer):
    """The P4Runtime service of one switch (one device).

    ``ports`` maps P4 port numbers to interface names (watch ports are checked against it);
    ``state_dir`` keeps the committed pipeline across restarts; ``p4info`` is the only P4Info
    SetForwardingPipelineConfig accepts (a P4Info or a file; default: srv6.p4's,
    ``p4/build/srv6.p4info.txtpb`` of this checkout).
    """

    def __init__(
        self,
        dataplane: Dataplane,
        *,
        device_id: int = 1,
        ports: Mapping[int, str] | None = None,
        state_dir: Path | None = None,
        p4info: p4i.P4Info | Path | None = None,
    ) -> None:
        if device_id <= 0:
            raise ValueError(f"device id must be positive, got {device_id}")
        self.dataplane = dataplane
        self.device_id = device_id
        self.ports = dict(ports) if ports is not None else None
        self.state = PipelineState(state_dir)
        self._reference: p4i.P4Info | None = None
        self._reference_path = DEFAULT_P4INFO_PATH
        if isinstance(p4info, p4i.P4Info):
            self._reference = p4info
        elif p4info is not None:
            self._reference_path = Path(p4info)
        self.arbitration = Arbitration(device_id)
        self.pipeline: Pipeline | None = None
        self._lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchd-dataplane")
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- life cycle -----------------------------------------------------------------------

    async def restore(self) -> None:
        """At start: serve the pipeline committed before a restart, with the entities the
        data plane still holds (it was not flushed: forwarding never stopped)."""
        config = self.state.load()
        if config is None:
            return
        try:
            self.reference_p4info()
        except RpcFailure as exc:
            log.error("cannot restore the saved pipeline: %s", exc.message)
            return
        try:
            self._verify(config)
        except RpcFailure as exc:
            log.warning(
                "the saved pipeline is not the one this switchd accepts (%s); "
                "starting without a pipeline",
                exc.message,
            )
            self.state.clear()
            return
        pipeline = self._new_pipeline(config)
        try:
            entities = await self._in_dataplane(self.dataplane.recover, config.p4info)
        except Exception:
            # Keep the pipeline (flushing would stop forwarding); a controller that reads
            # back an empty switch writes everything again.
            log.exception("the data plane could not recover its entities; serving none")
            entities = []
        order = {"action_profile_member": 0, "action_profile_group": 1, "table_entry": 2}
        rejected = 0
        for entity in sorted(entities, key=lambda e: order.get(e.WhichOneof("entity") or "", 3)):
            is_default = entity.WhichOneof("entity") == "table_entry" and (
                entity.table_entry.is_default_action
            )
            update = p4r.Update(
                type=p4r.Update.MODIFY if is_default else p4r.Update.INSERT, entity=entity
            )
            try:
                result = pipeline.validator.update(update)
            except P4RuntimeError as exc:
                rejected += 1
                log.warning("recovered entity not restored: %s: %s", exc, entity)
                continue
            if isinstance(result, Validated):
                pipeline.store.commit(result.key, result.change)
        self.pipeline = pipeline
        log.info(
            "restored the saved pipeline with %s from the data plane%s",
            pipeline.store.counts(),
            f" ({rejected} entities rejected)" if rejected else "",
        )

    async def close(self) -> None:
        """Wait for writes in progress, then stop the data plane worker."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=True)

    # -- helpers --------------------------------------------------------------------------

    async def _in_dataplane(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def _shielded(self, coro: Any) -> Any:
        """Run ``coro`` to its end even if the RPC awaiting it is cancelled."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    def reference_p4info(self) -> p4i.P4Info:
        if self._reference is None:
            path = self._reference_path
            try:
                self._reference = load_p4info(path)
            except FileNotFoundError as exc:
                raise RpcFailure(
                    FAILED_PRECONDITION,
                    f"switchd cannot check a pipeline: srv6.p4's P4Info {path} does not exist "
                    "(build it with `make p4`, or start switchd with --p4info)",
                ) from exc
            except Exception as exc:
                raise RpcFailure(
                    FAILED_PRECONDITION, f"switchd cannot read its P4Info {path}: {exc}"
                ) from exc
        return self._reference

    def _check_device(self, device_id: int) -> None:
        if device_id != self.device_id:
            raise RpcFailure(
                NOT_FOUND, f"unknown device id {device_id}: this switch is device {self.device_id}"
            )

    def _check_role(self, role: str, role_id: int = 0) -> None:
        if role or role_id:
            raise RpcFailure(
                NOT_FOUND,
                f"unknown role {role or role_id!r}: switchd serves only the default role",
            )

    def _check_primary(
        self, request: p4r.WriteRequest | p4r.SetForwardingPipelineConfigRequest
    ) -> None:
        election_id = election_id_of(request)
        if not self.arbitration.is_primary(election_id):
            primary = self.arbitration.primary_election_id
            raise RpcFailure(
                PERMISSION_DENIED,
                f"not the primary: the request's election id is "
                f"{'unset' if election_id is None else election_id}, the primary's is "
                f"{'none (no primary)' if primary is None else primary}",
            )

    def _require_pipeline(self) -> Pipeline:
        if self.pipeline is None:
            raise RpcFailure(
                FAILED_PRECONDITION,
                f"No forwarding pipeline config has been set for device {self.device_id}",
            )
        return self.pipeline

    async def _unary(self, context: Any, name: str, handler: Callable[[], Any]) -> Any:
        try:
            return await handler()
        except RpcFailure as exc:
            failure = exc
        except Exception as exc:
            log.exception("%s failed", name)
            failure = RpcFailure(INTERNAL, f"{name}: internal error: {exc!r}")
        log.info("%s from %s: %s", name, _peer(context), failure.message)
        await context.abort(
            grpc_code(failure.code), failure.message, trailing_metadata=failure.trailing_metadata()
        )
        raise AssertionError("unreachable")

    # -- Capabilities ---------------------------------------------------------------------

    async def Capabilities(
        self, request: p4r.CapabilitiesRequest, context: Any
    ) -> p4r.CapabilitiesResponse:
        async def handle() -> p4r.CapabilitiesResponse:
            device_id = getattr(request, "device_id", 0)
            if device_id:
                self._check_device(device_id)
            return p4r.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)

        result: p4r.CapabilitiesResponse = await self._unary(context, "Capabilities", handle)
        return result

    # -- pipeline -------------------------------------------------------------------------

    async def GetForwardingPipelineConfig(
        self, request: p4r.GetForwardingPipelineConfigRequest, context: Any
    ) -> p4r.GetForwardingPipelineConfigResponse:
        async def handle() -> p4r.GetForwardingPipelineConfigResponse:
            self._check_device(request.device_id)
            pipeline = self.pipeline
            if pipeline is None:
                return p4r.GetForwardingPipelineConfigResponse()
            config = pipeline.config
            rtype = request.response_type
            out = p4r.ForwardingPipelineConfig()
            if rtype == _GET_TYPES.ALL:
                out.CopyFrom(config)
            elif rtype == _GET_TYPES.COOKIE_ONLY:
                pass
            elif rtype == _GET_TYPES.P4INFO_AND_COOKIE:
                out.p4info.CopyFrom(config.p4info)
            elif rtype == _GET_TYPES.DEVICE_CONFIG_AND_COOKIE:
                out.p4_device_config = config.p4_device_config
            else:
                raise RpcFailure(INVALID_ARGUMENT, f"unknown response_type {rtype}")
            if config.HasField("cookie"):
                out.cookie.CopyFrom(config.cookie)
            return p4r.GetForwardingPipelineConfigResponse(config=out)

        result: p4r.GetForwardingPipelineConfigResponse = await self._unary(
            context, "GetForwardingPipelineConfig", handle
        )
        return result

    async def SetForwardingPipelineConfig(
        self, request: p4r.SetForwardingPipelineConfigRequest, context: Any
    ) -> p4r.SetForwardingPipelineConfigResponse:
        async def handle() -> p4r.SetForwardingPipelineConfigResponse:
            self._check_device(request.device_id)
            self._check_role(request.role, request.role_id)
            self._check_primary(request)
            action = request.action
            if action == _SET_ACTIONS.VERIFY:
                self._verify(self._config_of(request))
            elif action in (_SET_ACTIONS.VERIFY_AND_COMMIT, _SET_ACTIONS.RECONCILE_AND_COMMIT):
                config = self._config_of(request)
                self._verify(config)
                await self._shielded(self._commit(request, config))
            elif action == _SET_ACTIONS.VERIFY_AND_SAVE:
                raise RpcFailure(
                    UNIMPLEMENTED,
                    "VERIFY_AND_SAVE is not supported; use VERIFY_AND_COMMIT, or "
                    "RECONCILE_AND_COMMIT to keep the entries",
                )
            elif action == _SET_ACTIONS.COMMIT:
                if request.HasField("config"):
                    raise RpcFailure(INVALID_ARGUMENT, "COMMIT takes no config")
                raise RpcFailure(
                    NOT_FOUND,
                    "no saved config to commit (switchd does not support VERIFY_AND_SAVE)",
                )
            else:
                raise RpcFailure(
                    INVALID_ARGUMENT,
                    f"action {action} is not VERIFY, VERIFY_AND_COMMIT or RECONCILE_AND_COMMIT",
                )
            return p4r.SetForwardingPipelineConfigResponse()

        result: p4r.SetForwardingPipelineConfigResponse = await self._unary(
            context, "SetForwardingPipelineConfig", handle
        )
        return result

    @staticmethod
    def _config_of(request: p4r.SetForwardingPipelineConfigRequest) -> p4r.ForwardingPipelineConfig:
        if not request.HasField("config") or not request.config.HasField("p4info"):
            raise RpcFailure(INVALID_ARGUMENT, "the request carries no config with a P4Info")
        return request.config

    def _verify(self, config: p4r.ForwardingPipelineConfig) -> None:
        reference = self.reference_p4info()
        diffs = p4info_differences(reference, config.p4info)
        if diffs:
            shown = "; ".join(diffs[:12])
            more = f"; and {len(diffs) - 12} more" if len(diffs) > 12 else ""
            raise RpcFailure(
                INVALID_ARGUMENT,
                "switchd implements srv6.p4 only, and this P4Info is not its P4Info: "
                f"{shown}{more}",
            )

    def _new_pipeline(self, config: p4r.ForwardingPipelineConfig) -> Pipeline:
        saved = p4r.ForwardingPipelineConfig()
        saved.CopyFrom(config)
        index = P4InfoIndex(saved.p4info)
        store = EntityStore(index)
        ports = None if self.ports is None else set(self.ports)
        return Pipeline(saved, index, store, Validator(index, store, ports))

    async def _commit(
        self, request: p4r.SetForwardingPipelineConfigRequest, config: p4r.ForwardingPipelineConfig
    ) -> None:
        async with self._lock:
            self._check_primary(request)
            current = self.pipeline
            reconcile = request.action == _SET_ACTIONS.RECONCILE_AND_COMMIT
            if reconcile and current is not None:
                if p4info_differences(current.config.p4info, config.p4info):
                    raise RpcFailure(
                        INVALID_ARGUMENT,
                        "RECONCILE_AND_COMMIT cannot keep the entries across a different P4Info; "
                        "use VERIFY_AND_COMMIT",
                    )
                saved = p4r.ForwardingPipelineConfig()
                saved.CopyFrom(config)
                self.pipeline = Pipeline(saved, current.index, current.store, current.validator)
                self.state.save(saved)
                log.info("pipeline reconciled: cookie and device config updated, entries kept")
                return
            pipeline = self._new_pipeline(config)
            try:
                await self._in_dataplane(self.dataplane.set_pipeline, pipeline.config.p4info)
            except Exception as exc:
                # The data plane may be half flushed: nothing it holds can be trusted now.
                log.exception("the data plane failed to take the pipeline")
                self.pipeline = None
                self.state.clear()
                raise RpcFailure(
                    INTERNAL, f"the data plane failed to take the pipeline: {exc}"
                ) from exc
            self.pipeline = pipeline
            self.state.save(pipeline.config)
            log.info(
                "pipeline committed (%d tables, %d actions); forwarding state cleared",
                len(pipeline.index.tables),
                len(pipeline.index.actions),
            )

    # -- Write ----------------------------------------------------------------------------

    async def Write(self, request: p4r.WriteRequest, context: Any) -> p4r.WriteResponse:
        async def handle() -> p4r.WriteResponse:
            self._check_device(request.device_id)
            self._check_role(request.role, request.role_id)
            self._check_primary(request)
            self._require_pipeline()
            if request.atomicity not in _ATOMICITIES:
                raise RpcFailure(
                    UNIMPLEMENTED,
                    f"atomicity {_atomicity_name(request.atomicity)} is not supported; "
                    "switchd supports CONTINUE_ON_ERROR and ROLLBACK_ON_ERROR (the kernel "
                    "cannot switch a whole batch in one step, so no DATAPLANE_ATOMIC)",
                )
            if not request.updates:
                return p4r.WriteResponse()
            results: list[P4RuntimeError | None] = await self._shielded(self._write(request))
            if any(r is not None for r in results):
                raise batch_failure("Write", results)
            return p4r.WriteResponse()

        result: p4r.WriteResponse = await self._unary(context, "Write", handle)
        return result

    async def _write(self, request: p4r.WriteRequest) -> list[P4RuntimeError | None]:
        async with self._lock:
            # The primary or the pipeline may have changed while this write waited.
            self._check_primary(request)
            pipeline = self._require_pipeline()
            rollback = request.atomicity == p4r.WriteRequest.ROLLBACK_ON_ERROR
            return await _Batch(self, pipeline, rollback).run(request.updates)

    # -- Read -----------------------------------------------------------------------------

    async def Read(self, request: p4r.ReadRequest, context: Any) -> AsyncIterator[p4r.ReadResponse]:
        try:
            self._check_device(request.device_id)
            self._require_pipeline()
            entities, errors = await self._read(request)
        except RpcFailure as exc:
            failure = exc
        except Exception as exc:
            log.exception("Read failed")
            failure = RpcFailure(INTERNAL, f"Read: internal error: {exc!r}")
        else:
            chunk: list[bytes] = []
            size = 0
            for data in entities:
                chunk.append(data)
                size += len(data)
                if size >= READ_CHUNK_BYTES or len(chunk) >= READ_CHUNK_ENTITIES:
                    yield _read_response(chunk)
                    chunk, size = [], 0
            if chunk:
                yield _read_response(chunk)
            if all(e is None for e in errors):
                return
            failure = batch_failure("Read", errors)
        log.info("Read from %s: %s", _peer(context), failure.message)
        await context.abort(
            grpc_code(failure.code), failure.message, trailing_metadata=failure.trailing_metadata()
        )

    async def _read(
        self, request: p4r.ReadRequest
    ) -> tuple[list[bytes], list[P4RuntimeError | None]]:
        errors: list[P4RuntimeError | None] = []
        # The lock orders the snapshot after or before a whole Write, never inside one.
        async with self._lock:
            reader = _Reader(self._require_pipeline())
            for entity in request.entities:
                try:
                    reader.read(entity)
                except P4RuntimeError as exc:
                    errors.append(exc)
                else:
                    errors.append(None)
        if reader.counters:
            values = await self._in_dataplane(_read_counters, self.dataplane, reader.counters)
            reader.fill_counters(values)
        return reader.out, errors

    # -- StreamChannel ----------------------------------------------------------------------

    async def StreamChannel(
        self, request_iterator: AsyncIterator[p4r.StreamMessageRequest], context: Any
    ) -> AsyncIterator[p4r.StreamMessageResponse]:
        outbox: asyncio.Queue[p4r.StreamMessageResponse | _StreamEnd] = asyncio.Queue()
        ctrl = Controller(send=outbox.put_nowait, peer=_peer(context))
        reader = asyncio.create_task(self._stream_reader(request_iterator, ctrl, outbox))
        try:
            while True:
                item = await outbox.get()
                if isinstance(item, _StreamEnd):
                    if item.code != OK:
                        log.info("StreamChannel %s ends: %s", ctrl.describe(), item.message)
                        await context.abort(grpc_code(item.code), item.message)
                    return
                yield item
        finally:
            reader.cancel()
            was_primary = self.arbitration.primary is ctrl
            self.arbitration.remove(ctrl)
            if ctrl.arbitrated:
                log.info(
                    "StreamChannel %s closed%s; primary now: %s",
                    ctrl.describe(),
                    " (was the primary)" if was_primary else "",
                    self.arbitration.primary.describe() if self.arbitration.primary else "none",
                )

    async def _stream_reader(
        self,
        request_iterator: AsyncIterator[p4r.StreamMessageRequest],
        ctrl: Controller,
        outbox: asyncio.Queue[p4r.StreamMessageResponse | _StreamEnd],
    ) -> None:
        try:
            async for msg in request_iterator:
                which = msg.WhichOneof("update")
                if which == "arbitration":
                    before = self.arbitration.primary
                    try:
                        self.arbitration.update(ctrl, msg.arbitration)
                    except P4RuntimeError as exc:
                        outbox.put_nowait(_StreamEnd(exc.code, exc.message))
                        return
                    if self.arbitration.primary is not before:
                        log.info(
                            "primary for device %d: %s",
                            self.device_id,
                            self.arbitration.primary.describe()
                            if self.arbitration.primary
                            else "none",
                        )
                elif which == "packet":
                    outbox.put_nowait(
                        _stream_error(
                            UNIMPLEMENTED,
                            "switchd has no packet I/O (srv6.p4 declares no controller port)",
                            packet_out=p4r.PacketOutError(packet_out=msg.packet),
                        )
                    )
                elif which == "digest_ack":
                    outbox.put_nowait(
                        _stream_error(
                            UNIMPLEMENTED,
                            "switchd sends no digests",
                            digest_list_ack=p4r.DigestListAckError(digest_list_ack=msg.digest_ack),
                        )
                    )
                else:
                    outbox.put_nowait(
                        _stream_error(UNIMPLEMENTED, f"stream message {which} is not supported")
                    )
            outbox.put_nowait(_StreamEnd())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, grpc.RpcError):
                log.exception("StreamChannel reader failed")
            outbox.put_nowait(_StreamEnd(INTERNAL, f"stream failed: {exc!r}"))


# -- Write batches ---------------------------------------------------------------------------


class _Batch:
    """The updates of one WriteRequest, applied in order.

    Updates are validated against the store and passed to the data plane together, in runs:
    an update that touches an entity an earlier update of the run touches (the same key, a
    member or group it refers to, or a reference count it depends on) first sends the run to
    the data plane and commits it, so that every update is validated against the state the
    earlier ones left, exactly as if they had been applied one by one.

    Runs are pipelined: a run goes to the data plane in chunks of :data:`PIPELINE_CHUNK`
    updates, and while the kernel applies one chunk (on the data plane's thread) the next are
    validated. Up to :data:`PIPELINE_DEPTH` chunks are in flight: queued for the data plane,
    which takes them one at a time, in order. Chunks in flight are part of the run: "touched"
    covers them, and their results are committed to the store in order, the oldest before a
    chunk beyond the depth goes out. What overlaps is the time ``ip`` itself takes: the data
    plane's rendering is Python too and takes turns with validation under the GIL. With one
    chunk in flight, validation soon waited for ``ip`` and the data plane for the next chunk;
    with two, the data plane renders the next chunk as soon as the kernel has taken one (in
    a model of the loop with ``ip`` as a sleep of 18 us per line, the wall time per entry
    went from 1.5-1.6 to 1.3-1.5 times the CPU time; the rest is rendering and validation
    taking turns under the GIL while ``ip`` waits). A chunk that goes out while the one before it
    turns out to have failed is applied anyway: under ROLLBACK_ON_ERROR it is undone with the
    rest, and its updates are ABORTED as if never attempted.

    CONTINUE_ON_ERROR (default): every update is attempted; each gets its own result.
    ROLLBACK_ON_ERROR (``rollback``): at the first failure the remaining updates are not
    attempted, and the applied ones are undone, newest first, by their inverse changes
    (INSERT by DELETE, MODIFY by MODIFY back, DELETE by INSERT): all or nothing, in the data
    plane and in the store. The failed update reports its error, every other one ABORTED.
    """

    def __init__(self, server: P4RuntimeServer, pipeline: Pipeline, rollback: bool = False) -> None:
        self.server = server
        self.pipeline = pipeline
        self.rollback = rollback
        self.results: list[P4RuntimeError | None] = []
        self.run_items: list[tuple[int, Validated]] = []
        """validated, not yet sent to the data plane"""
        self.inflight: deque[tuple[list[tuple[int, Validated]], asyncio.Future[Any]]] = deque()
        """sent to the data plane, not yet committed, oldest first"""
        self.touched: set[EntityKey] = set()
        self.ref_profiles: set[int] = set()
        self.applied: list[Validated] = []
        """committed changes, in order (kept for a rollback)"""
        self.counter_undo: list[tuple[int, bytes, CounterValue | None]] = []
        self.failed = False

    def _pending(self) -> bool:
        return bool(self.run_items or self.inflight)

    async def run(self, updates: Any) -> list[P4RuntimeError | None]:
        self.results = [None] * len(updates)
        validate = self.pipeline.validator.update
        try:
            for i, update in enumerate(updates):
                if self.rollback and self.failed:
                    break
                # The common case without a coroutine per update (each costs more than the
                # rest of this loop): valid, and independent of the run so far. Anything
                # else takes _one(), which validates again and handles it.
                try:
                    result = validate(update)
                except Exception:
                    await self._one(i, update)
                    continue
                if isinstance(result, CounterWrite) or (
                    (self.run_items or self.inflight) and self._conflicts(result)
                ):
                    await self._one(i, update)
                    continue
                self._queue(i, result)
                if len(self.run_items) >= PIPELINE_CHUNK:
                    await self._send()
            if not (self.rollback and self.failed):
                await self._flush()
        finally:
            # A chunk the data plane has started on is committed whatever happens here.
            await self._settle()
        if self.rollback and self.failed:
            self.run_items.clear()  # validated, never applied
            await self._undo()
            first = next(i for i, r in enumerate(self.results) if r is not None)
            for i, r in enumerate(self.results):
                if r is None:
                    self.results[i] = P4RuntimeError(
                        ABORTED,
                        f"not applied: update {first} failed in this ROLLBACK_ON_ERROR batch",
                    )
        return self.results

    def _fail(self, i: int, error: P4RuntimeError) -> None:
        self.results[i] = error
        self.failed = True

    async def _one(self, i: int, update: p4r.Update) -> None:
        validator = self.pipeline.validator
        for attempt in range(2):
            try:
                result = validator.update(update)
            except P4RuntimeError as exc:
                if attempt == 0 and exc.code in _STORE_DEPENDENT and self._pending():
                    await self._flush()
                    continue
                self._fail(i, exc)
                return
            except Exception as exc:
                log.exception("validating update %d failed", i)
                self._fail(i, P4RuntimeError(INTERNAL, f"update {i}: internal error: {exc!r}"))
                return
            if isinstance(result, CounterWrite):
                if attempt == 0 and self._pending():
                    await self._flush()
                    continue
                error = await self._counter_write(result)
                if error is not None:
                    self._fail(i, error)
                return
            if attempt == 0 and self._pending() and self._conflicts(result):
                await self._flush()
                continue
            self._queue(i, result)
            if len(self.run_items) >= PIPELINE_CHUNK:
                await self._send()
            return

    def _queue(self, i: int, v: Validated) -> None:
        """Add a validated update to the run."""
        self.run_items.append((i, v))
        self.touched.add(v.key)
        # The action profile whose reference counts the change moves, if any.
        kind, owner, _ = v.key
        if kind == "table":
            table = self.pipeline.index.tables.get(owner)
            if table is not None and table.implementation_id:
                self.ref_profiles.add(table.implementation_id)
        elif kind == "group":
            self.ref_profiles.add(owner)

    def _conflicts(self, v: Validated) -> bool:
        touched = self.touched
        if v.key in touched:
            return True
        for ref in v.refs:
            if ref in touched:
                return True
        kind, owner, _ = v.key
        deleting = v.change.after is None
        return deleting and kind in ("member", "group") and owner in self.ref_profiles

    async def _apply(self, changes: list[Change]) -> list[P4RuntimeError | None]:
        """Changes through the data plane; one result per change."""
        return self._results(changes, await self._start_apply(changes))

    def _start_apply(self, changes: list[Change]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(
            self.server._executor, functools.partial(_apply_caught, self.server.dataplane, changes)
        )

    @staticmethod
    def _results(changes: list[Change], outcome: Any) -> list[P4RuntimeError | None]:
        if isinstance(outcome, list) and len(outcome) == len(changes) and not any(outcome):
            return [None] * len(changes)  # all applied (errors are never falsy)
        if isinstance(outcome, BaseException):
            log.error(
                "the data plane failed on a batch of %d changes",
                len(changes),
                exc_info=outcome,
            )
            return [P4RuntimeError(INTERNAL, f"the data plane failed: {outcome!r}")] * len(changes)
        if not isinstance(outcome, list) or len(outcome) != len(changes):
            log.error("the data plane answered %r for %d changes", outcome, len(changes))
            error = P4RuntimeError(INTERNAL, "the data plane returned the wrong number of results")
            return [error] * len(changes)
        results: list[P4RuntimeError | None] = []
        for err in outcome:
            if err is None:
                results.append(None)
            elif isinstance(err, DataplaneError):
                results.append(P4RuntimeError(code_from_name(err.code), err.message))
            else:
                results.append(P4RuntimeError(INTERNAL, f"the data plane answered {err!r}"))
        return results

    async def _send(self) -> None:
        """Send the validated updates to the data plane, once fewer than PIPELINE_DEPTH
        chunks are in flight (committing the oldest first); do not wait for them."""
        while len(self.inflight) >= PIPELINE_DEPTH:
            await self._settle_oldest()
        if not self.run_items or (self.rollback and self.failed):
            return
        items, self.run_items = self.run_items, []
        self.inflight.append((items, self._start_apply([v.change for _, v in items])))

    async def _settle(self) -> None:
        """Wait for the chunks in flight and commit what the data plane applied of them."""
        while self.inflight:
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        items, future = self.inflight[0]
        try:
            outcome = await asyncio.shield(future)
        finally:
            self.inflight.popleft()
        await self._commit(items, self._results([v.change for _, v in items], outcome))

    async def _flush(self) -> None:
        """Apply and commit everything validated so far; the next update starts a new run."""
        await self._send()
        await self._settle()
        self.touched.clear()
        self.ref_profiles.clear()

    async def _commit(
        self, items: list[tuple[int, Validated]], outcome: list[P4RuntimeError | None]
    ) -> None:
        store = self.pipeline.store
        counters: list[tuple[int, Validated, p4r.CounterData]] = []
        for (i, v), err in zip(items, outcome, strict=True):
            if err is None:
                store.commit(v.key, v.change, v.refs)
                if self.rollback:
                    self.applied.append(v)
                if v.counter is not None:
                    counters.append((i, v, v.counter))
            else:
                self._fail(i, err)
        for i, v, data in counters:
            assert v.change.after is not None
            try:
                await self._set_counter(v.key, v.change.after, data)
            except Exception as exc:
                log.exception("setting a direct counter failed")
                self._fail(
                    i,
                    P4RuntimeError(
                        INTERNAL, f"the entry was written but its counter could not be set: {exc!r}"
                    ),
                )

    async def _undo(self) -> None:
        """Undo the applied changes, newest first (ROLLBACK_ON_ERROR)."""
        store = self.pipeline.store
        for table_id, key, base in reversed(self.counter_undo):
            store.set_counter_base(table_id, key, base or CounterValue(0, 0))
        if not self.applied:
            return
        undo = list(reversed(self.applied))
        inverses = [_inverse(v.change) for v in undo]
        outcome = await self._apply(inverses)
        failed = 0
        for v, inverse, err in zip(undo, inverses, outcome, strict=True):
            if err is None:
                store.commit(v.key, inverse)
            else:
                failed += 1
                log.error("rollback: the data plane could not undo %s: %s", v.key[:2], err)
        self.applied.clear()
        if failed:
            raise RpcFailure(
                INTERNAL,
                f"ROLLBACK_ON_ERROR: the data plane could not undo {failed} of {len(undo)} "
                "applied updates; they stay applied (Read shows the switch as it is)",
            )

    async def _counter_write(self, w: CounterWrite) -> P4RuntimeError | None:
        if w.data is None:
            return None
        try:
            await self._set_counter(w.key, w.entry, w.data)
        except Exception as exc:
            log.exception("writing a direct counter failed")
            return P4RuntimeError(INTERNAL, f"reading the data plane's counter failed: {exc!r}")
        return None

    async def _set_counter(self, key: EntityKey, entry: p4r.Entity, data: p4r.CounterData) -> None:
        """Make the entry's counter read ``data`` from now on: the data plane cannot set
        its counters, so the store keeps what to subtract from them."""
        _, table_id, ident = key
        assert isinstance(ident, bytes)
        raw = await self.server._in_dataplane(
            self.server.dataplane.direct_counter, entry.table_entry
        )
        raw = raw if raw is not None else CounterValue(0, 0)
        store = self.pipeline.store
        if self.rollback:
            self.counter_undo.append((table_id, ident, store.counter_base(table_id, ident)))
        store.set_counter_base(
            table_id,
            ident,
            CounterValue(raw.packets - data.packet_count, raw.bytes - data.byte_count),
        )


def _apply_caught(dataplane: Dataplane, changes: list[Change]) -> Any:
    """``dataplane.apply``, its exception returned rather than raised (on the data plane's
    thread: the answer is taken apart on the loop)."""
    try:
        return dataplane.apply(changes)
    except Exception as exc:
        return exc


def _inverse(change: Change) -> Change:
    """The change that undoes ``change`` (its refs left unknown where they differ)."""
    if change.kind is ChangeKind.INSERT:
        return Change(ChangeKind.DELETE, change.after, None, change.key, ())
    if change.kind is ChangeKind.DELETE:
        return Change(ChangeKind.INSERT, None, change.before, change.key)
    return Change(ChangeKind.MODIFY, change.after, change.before, change.key)


# -- Read -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _CounterJob:
    position: int
    """where in the output; the entity there is replaced by one with the counter filled"""
    table_id: int
    key: bytes
    entry: bytes
    """the stored entity, serialized"""
    as_direct_counter_entry: bool


class _Reader:
    """The entities one ReadRequest selects, taken from the store in one go (a consistent
    snapshot of serialized entities); direct counters are read from the data plane
    afterwards, in one call."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.index = pipeline.index
        self.store = pipeline.store
        self.validator = pipeline.validator
        self.out: list[bytes] = []
        self.counters: list[_CounterJob] = []

    def read(self, entity: p4r.Entity) -> None:
        which = entity.WhichOneof("entity")
        if which == "table_entry":
            self._table_entries(entity.table_entry)
        elif which == "action_profile_member":
            self._members(entity.action_profile_member)
        elif which == "action_profile_group":
            self._groups(entity.action_profile_group)
        elif which == "direct_counter_entry":
            self._direct_counters(entity.direct_counter_entry)
        elif which == "counter_entry":
            self._counters(entity.counter_entry)
        elif which == "packet_replication_engine_entry":
            pass  # switchd has no multicast groups or clone sessions: there are none to read
        elif which in _UNSUPPORTED_KINDS:
            self._unsupported(which, getattr(entity, which))
        elif which is None:
            raise invalid("a read request's entity must be set (no wildcard over all kinds)")
        else:
            raise P4RuntimeError(UNIMPLEMENTED, f"reading {which} is not supported by switchd")

    def _unsupported(self, which: str, message: Any) -> None:
        """Entity kinds switchd does not implement: a read finds none when the P4Info
        declares none (a client reading "everything" is answered); otherwise UNIMPLEMENTED."""
        objects, id_field = _UNSUPPORTED_KINDS[which]
        declared = getattr(self.index.p4info, objects)
        if not declared:
            if id_field and getattr(message, id_field):
                raise invalid(f"{which}: the P4Info declares no {objects}")
            return
        raise P4RuntimeError(UNIMPLEMENTED, f"reading {which} is not supported by switchd")

    def _select(self, te: p4r.TableEntry) -> list[tuple[int, bytes, bytes]]:
        """(table id, key, serialized entity) of the entries a TableEntry filter selects;
        default entries have the key b""."""
        if te.table_id == 0:
            if te.match:
                raise invalid("a read of all tables (table_id 0) cannot filter by match")
            if te.is_default_action:
                return [
                    (e.table_entry.table_id, b"", e.SerializeToString())
                    for e in self.store.default_entries()
                ]
            rows = self.store.table_entries()
        else:
            table = self.index.table(te.table_id)
            if te.is_default_action:
                if te.match or te.priority:
                    raise invalid(f"table {table.name}: a default entry has no match or priority")
                return [(table.id, b"", self.store.default_entry(table.id).SerializeToString())]
            if te.match:
                key = self.validator.match_key(table, te)
                found = self.store.table_entry(table.id, key)
                rows = [] if found is None else [(table.id, key, found.SerializeToString())]
            else:
                rows = self.store.table_entries(table.id)
        by_action = te.HasField("action") and te.action.WhichOneof("type") == "action"
        if (te.priority and not te.match) or te.controller_metadata or te.metadata or by_action:
            rows = [r for r in rows if _matches_filter(parse(r[2]).table_entry, te, by_action)]
        return rows

    def _table_entries(self, te: p4r.TableEntry) -> None:
        rows = self._select(te)
        want_counters = te.HasField("counter_data")
        for table_id, key, data in rows:
            if want_counters and key and self.index.tables[table_id].direct_counter_id:
                self.counters.append(_CounterJob(len(self.out), table_id, key, data, False))
            self.out.append(data)

    def _direct_counters(self, dce: p4r.DirectCounterEntry) -> None:
        te = dce.table_entry
        if te.table_id:
            table = self.index.table(te.table_id)
            if not table.direct_counter_id:
                raise invalid(f"table {table.name} has no direct counter")
            if te.is_default_action:
                raise P4RuntimeError(
                    UNIMPLEMENTED, f"table {table.name}: the default entry has no direct counter"
                )
        rows = self._select(te)
        if te.table_id and te.match and not rows:
            raise P4RuntimeError(NOT_FOUND, "no table entry matches the DirectCounterEntry")
        for table_id, key, data in rows:
            if not key or not self.index.tables[table_id].direct_counter_id:
                continue
            self.counters.append(_CounterJob(len(self.out), table_id, key, data, True))
            self.out.append(data)

    def _members(self, m: p4r.ActionProfileMember) -> None:
        if not m.action_profile_id:
            if m.member_id:
                raise invalid("a member id needs its action_profile_id")
            self.out.extend(self.store.members())
            return
        profile = self.index.action_profile(m.action_profile_id)
        if m.member_id:
            found = self.store.member(profile.id, m.member_id)
            if found is not None:
                self.out.append(found.SerializeToString())
        else:
            self.out.extend(self.store.members(profile.id))

    def _groups(self, g: p4r.ActionProfileGroup) -> None:
        if not g.action_profile_id:
            if g.group_id:
                raise invalid("a group id needs its action_profile_id")
            self.out.extend(self.store.groups())
            return
        profile = self.index.action_profile(g.action_profile_id)
        if not profile.with_selector:
            raise invalid(f"{profile.name} is an action profile without selector: no groups")
        if g.group_id:
            found = self.store.group(profile.id, g.group_id)
            if found is not None:
                self.out.append(found.SerializeToString())
        else:
            self.out.extend(self.store.groups(profile.id))

    def _counters(self, c: p4r.CounterEntry) -> None:
        if c.counter_id:
            counter = self.index.counter(c.counter_id)
            raise P4RuntimeError(
                UNIMPLEMENTED, f"counter {counter.name}: indirect counters are not supported"
            )
        if self.index.counters:
            raise P4RuntimeError(UNIMPLEMENTED, "indirect counters are not supported")

    def fill_counters(self, values: list[CounterValue | None]) -> None:
        for job, raw in zip(self.counters, values, strict=True):
            value = raw if raw is not None else CounterValue(0, 0)
            base = self.store.counter_base(job.table_id, job.key)
            if base is not None:
                value = CounterValue(value.packets - base.packets, value.bytes - base.bytes)
            data = p4r.CounterData(packet_count=value.packets, byte_count=value.bytes)
            src = parse(job.entry).table_entry
            if job.as_direct_counter_entry:
                key_only = p4r.TableEntry(
                    table_id=src.table_id, match=src.match, priority=src.priority
                )
                out = p4r.Entity(
                    direct_counter_entry=p4r.DirectCounterEntry(table_entry=key_only, data=data)
                )
            else:
                out = p4r.Entity(table_entry=src)
                out.table_entry.counter_data.CopyFrom(data)
            self.out[job.position] = out.SerializeToString()


def _matches_filter(entry: p4r.TableEntry, te: p4r.TableEntry, by_action: bool) -> bool:
    if te.priority and not te.match and entry.priority != te.priority:
        return False
    if te.controller_metadata and entry.controller_metadata != te.controller_metadata:
        return False
    if te.metadata and entry.metadata != te.metadata:
        return False
    return not by_action or entry.action.action.action_id == te.action.action.action_id


def _read_response(entities: list[bytes]) -> p4r.ReadResponse:
    """A ReadResponse of serialized entities (field 1, length-delimited), parsed in one go."""
    parts: list[bytes] = []
    for data in entities:
        parts.append(b"\x0a")
        parts.append(varint(len(data)))
        parts.append(data)
    return cast(p4r.ReadResponse, p4r.ReadResponse.FromString(b"".join(parts)))


# Entity kinds switchd does not implement: (P4Info list, the entity's id field).
_UNSUPPORTED_KINDS: dict[str, tuple[str, str]] = {
    "meter_entry": ("meters", "meter_id"),
    "direct_meter_entry": ("direct_meters", ""),
    "register_entry": ("registers", "register_id"),
    "value_set_entry": ("value_sets", "value_set_id"),
    "digest_entry": ("digests", "digest_id"),
    "extern_entry": ("externs", "extern_type_id"),
}


def _read_counters(dataplane: Dataplane, jobs: list[_CounterJob]) -> list[CounterValue | None]:
    return [dataplane.direct_counter(parse(job.entry).table_entry) for job in jobs]


def _stream_error(code: int, message: str, **details: Any) -> p4r.StreamMessageResponse:
    return p4r.StreamMessageResponse(
        error=p4r.StreamError(canonical_code=code, message=message, **details)
    )


def _peer(context: Any) -> str:
    try:
        return str(context.peer())
    except Exception:
        return "?"


# -- the gRPC server ---------------------------------------------------------------------------


class Switchd:
    """A switchd: the P4Runtime service, and the gNMI service if given, on a grpc.aio server.

    ``listen`` is ``host:port`` (port 0: any free port) or ``unix:/path``; ``gnmi_listen``
    puts gNMI on its own address (default: the same server as P4Runtime, as Stratum does).
    """

    def __init__(self, p4runtime: P4RuntimeServer, gnmi: GnmiServer | None = None) -> None:
        self.p4runtime = p4runtime
        self.gnmi = gnmi
        self._servers: list[Any] = []
        self.address: str | None = None
        self.gnmi_address: str | None = None

    async def start(self, listen: str, gnmi_listen: str | None = None) -> None:
        await self.p4runtime.restore()
        if self.gnmi is not None:
            await self.gnmi.monitor.start()
        server = grpc.aio.server(options=_SERVER_OPTIONS)
        p4r_grpc.add_P4RuntimeServicer_to_server(self.p4runtime, server)
        gnmi_server = server
        if self.gnmi is not None and gnmi_listen is not None:
            gnmi_server = grpc.aio.server(options=_SERVER_OPTIONS)
            self._servers.append(gnmi_server)
        if self.gnmi is not None:
            self.gnmi.add_to_server(gnmi_server)
        self._servers.insert(0, server)
        self.address = _bind(server, listen)
        if gnmi_server is not server:
            assert gnmi_listen is not None
            self.gnmi_address = _bind(gnmi_server, gnmi_listen)
        elif self.gnmi is not None:
            self.gnmi_address = self.address
        for s in self._servers:
            await s.start()
        log.info(
            "switchd device %d: P4Runtime on %s%s",
            self.p4runtime.device_id,
            self.address,
            f", gNMI on {self.gnmi_address}" if self.gnmi_address else "",
        )

    async def stop(self, grace: float | None = 1.0) -> None:
        for s in self._servers:
            await s.stop(grace)
        self._servers.clear()
        if self.gnmi is not None:
            await self.gnmi.monitor.stop()
        await self.p4runtime.close()

    async def __aenter__(self) -> Switchd:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


def _bind(server: Any, address: str) -> str:
    if address.startswith("unix:"):
        path = Path(address[len("unix:") :].removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if address.startswith("unix:"):
        return address
    host = address.rsplit(":", 1)[0]
    return f"{host}:{port}"
