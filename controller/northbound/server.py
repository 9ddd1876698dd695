"""The northbound gRPC API (grpc.aio, on the controller's loop): a thin translation between
``srv6lab.v1`` messages and :class:`~controller.service.ControllerService`.

Errors map to status codes: a bad field is INVALID_ARGUMENT (the message names the field,
``spec.disjoint.k: ...``), an intent the network cannot give (only 2 node-disjoint paths
exist) or that needs what another intent holds is FAILED_PRECONDITION, an unknown id is
NOT_FOUND, an id in use ALREADY_EXISTS, and a switch that refused its writes ABORTED (the
change was rolled back).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from grpc import aio

from controller.compiler import Encoding, SegmentError, segment_list
from controller.intents import (
    Impossible,
    Intent,
    IntentError,
    IntentState,
    describe,
    spec_dict,
)
from controller.northbound import srv6lab_pb2 as pb
from controller.northbound import srv6lab_pb2_grpc as pb_grpc
from controller.paths import NoPathError, disjoint_paths
from controller.service import Aborted, Conflict, ControllerService, Event, NotFound

_STATUS = {
    "installed": pb.Intent.INSTALLED,
    "degraded": pb.Intent.DEGRADED,
    "failed": pb.Intent.FAILED,
}


def spec_from_pb(spec: pb.IntentSpec) -> dict[str, Any]:
    """The oneof as the mapping :func:`controller.intents.parse_spec` checks."""
    kind = spec.WhichOneof("kind")
    if kind is None:
        raise IntentError("spec", "set one of connectivity, disjoint, explicit, collective")
    out: dict[str, Any] = {"kind": kind}
    if kind == "disjoint":
        d = spec.disjoint
        out.update(src=d.src, dst=d.dst)
        if d.HasField("k"):
            out["k"] = d.k
        if d.mode:
            out["mode"] = d.mode
        if d.weights:
            out["weights"] = list(d.weights)
        if d.encoding:
            out["encoding"] = d.encoding
    elif kind == "explicit":
        e = spec.explicit
        out.update(src=e.src, dst=e.dst, waypoints=list(e.waypoints))
        if e.encoding:
            out["encoding"] = e.encoding
    elif kind == "collective":
        c = spec.collective
        out["hosts"] = list(c.hosts)
        if c.pattern:
            out["pattern"] = c.pattern
        if c.encoding:
            out["encoding"] = c.encoding
    return out


def spec_to_pb(data: Mapping[str, Any]) -> pb.IntentSpec:
    kind = data["kind"]
    fields = {k: v for k, v in data.items() if k != "kind"}
    if kind == "connectivity":
        return pb.IntentSpec(connectivity=pb.Connectivity())
    if kind == "disjoint":
        return pb.IntentSpec(disjoint=pb.Disjoint(**fields))
    if kind == "explicit":
        return pb.IntentSpec(explicit=pb.Explicit(**fields))
    return pb.IntentSpec(collective=pb.Collective(**fields))


def intent_to_pb(intent: Intent, state: IntentState) -> pb.Intent:
    return pb.Intent(
        id=intent.id,
        spec=spec_to_pb(spec_dict(intent.spec)),
        status=_STATUS[state.status],
        reason=state.reason,
        paths=[
            pb.Path(
                nodes=list(s.path.nodes),
                cost=s.path.cost,
                weight=s.weight,
                sids=[str(x) for x in s.segments.sids],
            )
            for s in state.paths
        ],
        created=intent.created,
        summary=describe(intent.spec),
    )


def event_to_pb(event: Event) -> pb.Event:
    return pb.Event(
        kind=event.kind,
        subject=event.subject,
        state=event.state,
        detail=event.detail,
        time=event.at,
        monotonic_ns=event.monotonic_ns,
    )


class ControllerApi(pb_grpc.ControllerServicer):
    def __init__(self, service: ControllerService) -> None:
        self.service = service

    async def CreateIntent(
        self, request: pb.CreateIntentRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.Intent:
        try:
            data = spec_from_pb(request.spec)
            state = await self.service.create_intent(request.id or None, data)
        except IntentError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Conflict as exc:
            code = (
                grpc.StatusCode.ALREADY_EXISTS
                if str(exc).startswith("id:")
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            await context.abort(code, str(exc))
        except Impossible as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except Aborted as exc:
            await context.abort(grpc.StatusCode.ABORTED, str(exc))
        intent, _ = self.service.get_intent(state.id)
        return intent_to_pb(intent, state)

    async def DeleteIntent(
        self, request: pb.DeleteIntentRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.DeleteIntentResponse:
        try:
            await self.service.delete_intent(request.id)
        except NotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"id: no intent {request.id!r}")
        return pb.DeleteIntentResponse()

    async def GetIntent(
        self, request: pb.GetIntentRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.Intent:
        try:
            intent, state = self.service.get_intent(request.id)
        except NotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"id: no intent {request.id!r}")
        return intent_to_pb(intent, state)

    async def ListIntents(
        self, request: pb.ListIntentsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListIntentsResponse:
        return pb.ListIntentsResponse(
            intents=[intent_to_pb(i, s) for i, s in self.service.list_intents()]
        )

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.Event]:
        bus = self.service.events
        async with bus.subscribe() as queue:
            past = list(bus.history)[-request.history :] if request.history else []
            for event in past:
                yield event_to_pb(event)
            while True:
                yield event_to_pb(await queue.get())

    async def GetTopology(
        self, request: pb.GetTopologyRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.Topology:
        s = self.service
        topo = s.topo
        nodes = [pb.Node(name=x.name, kind="switch", locator=str(x.locator)) for x in topo.switches]
        nodes += [
            pb.Node(name=h.name, kind="host", addresses=[str(n.address) for n in h.nics])
            for h in topo.hosts
        ]
        links = [
            pb.Link(
                name=link.name,
                a=link.a.node,
                b=link.b.node,
                up=frozenset(link.ends()) not in s.down,
                bandwidth_mbps=link.bandwidth_mbps,
            )
            for link in topo.links
        ]
        sessions = [
            pb.SwitchSession(
                name=name,
                address=x.address.p4runtime,
                role=x.role,
                synced_version=max(x.synced_version, 0),
            )
            for name, x in s.sessions.items()
        ]
        return pb.Topology(
            name=topo.name, nodes=nodes, links=links, switches=sessions, version=s.version
        )

    async def GetPaths(
        self, request: pb.GetPathsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetPathsResponse:
        s = self.service
        k = request.k if request.HasField("k") else 2
        mode = request.mode or "edge"
        encoding = request.encoding or "usid"
        for name, value in (("src", request.src), ("dst", request.dst)):
            try:
                s.topo.node(value)
            except KeyError:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {value!r} is not a node"
                )
        if mode not in ("edge", "node"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "mode: must be edge or node")
        if encoding not in ("usid", "full"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "encoding: must be usid or full")
        if not 1 <= k <= 64:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "k: must be from 1 to 64")
        try:
            found = disjoint_paths(
                s.live,
                request.src,
                request.dst,
                k,
                mode=mode,  # type: ignore[arg-type]
                salt=request.spread,
            )
        except NoPathError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        out = []
        for path in found:
            try:
                sids = segment_list(
                    s.topo, path.nodes, encoding=Encoding(encoding), live=s.live
                ).sids
            except SegmentError:
                sids = ()
            out.append(
                pb.Path(
                    nodes=list(path.nodes), cost=path.cost, weight=1, sids=[str(x) for x in sids]
                )
            )
        return pb.GetPathsResponse(paths=out, available=len(out))

    async def Diff(
        self, request: pb.DiffRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.DiffResponse:
        plans = await self.service.plans()
        out = []
        for name, plan in plans.items():
            if isinstance(plan, str):
                out.append(pb.SwitchDiff(switch=name, text=plan, readable=False))
            else:
                out.append(
                    pb.SwitchDiff(
                        switch=name,
                        changes=len(plan),
                        text=plan.describe() if plan else "in sync",
                        readable=True,
                    )
                )
        return pb.DiffResponse(switches=out)

    async def GetTimelines(
        self, request: pb.GetTimelinesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetTimelinesResponse:
        return pb.GetTimelinesResponse(
            timelines=[
                pb.Timeline(
                    links=t.link,
                    source=t.source,
                    event_seen_ns=t.seen_ns,
                    reroute_computed_ns=t.computed_ns,
                    last_switch_acked_ns=t.acked_ns,
                    recompute_done_ns=t.recomputed_ns,
                    recompute_acked_ns=t.recompute_acked_ns,
                )
                for t in self.service.timelines
            ]
        )


async def start_api(service: ControllerService, listen: str) -> aio.Server:
    server = aio.server()
    pb_grpc.add_ControllerServicer_to_server(ControllerApi(service), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port(listen)
    if port == 0 and not listen.startswith("unix:"):
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    return server


async def stop_api(server: aio.Server, grace: float = 1.0) -> None:
    await asyncio.wait_for(server.stop(grace), grace + 2)
