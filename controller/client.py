"""The CLI client of the northbound API: ``srv6lab intent add|list|show|delete|diff``,
``srv6lab controller status|events``, and ``srv6lab paths`` against a running controller.
Short-lived, so it uses the synchronous gRPC API."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from controller.daemon import DEFAULT_LISTEN, ENV_RUN_DIR

ENV_CONTROLLER = "SRV6LAB_CONTROLLER"
STATUS = {0: "unknown", 1: "installed", 2: "degraded", 3: "failed"}


def controller_address() -> str:
    """$SRV6LAB_CONTROLLER, else the running lab's controller (``controller.addr`` in its
    run directory), else the daemon's default."""
    if os.environ.get(ENV_CONTROLLER):
        return os.environ[ENV_CONTROLLER]
    run = Path(os.environ.get(ENV_RUN_DIR, "/run/srv6lab"))
    with contextlib.suppress(OSError):
        return (run / "controller.addr").read_text().strip() or DEFAULT_LISTEN
    return DEFAULT_LISTEN


def add_controller_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--controller", default=controller_address(), metavar="ADDR",
        help=f"controller API address (default: ${ENV_CONTROLLER}, else the running lab's "
        f"controller, else {DEFAULT_LISTEN})",
    )  # fmt: skip


class ApiError(Exception):
    pass


def stub(address: str) -> Any:
    from controller.northbound import srv6lab_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(address)
    return pb_grpc.ControllerStub(channel)  # type: ignore[no-untyped-call]


def call(fn: Callable[..., Any], request: Any, address: str, timeout: float = 60.0) -> Any:
    try:
        return fn(request, timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            raise ApiError(
                f"no controller at {address} (start one: srv6lab controller run, or "
                "srv6lab lab up FILE --controller)"
            ) from None
        raise ApiError(f"{code.name}: {exc.details()}") from None


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ApiError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return wrapped


# -- intents ------------------------------------------------------------------------------------


def _spec(args: argparse.Namespace) -> Any:
    from controller.northbound import srv6lab_pb2 as pb

    kind = args.kind
    if kind == "connectivity":
        return pb.IntentSpec(connectivity=pb.Connectivity())
    if kind == "disjoint":
        weights = [int(w) for w in args.weights.split(",")] if args.weights else []
        return pb.IntentSpec(
            disjoint=pb.Disjoint(
                src=args.src, dst=args.dst, k=args.k, mode=args.mode,
                weights=weights, encoding=args.encoding,
            )
        )  # fmt: skip
    if kind == "explicit":
        via = [w for w in args.via.split(",") if w]
        return pb.IntentSpec(
            explicit=pb.Explicit(src=args.src, dst=args.dst, waypoints=via, encoding=args.encoding)
        )
    return pb.IntentSpec(
        collective=pb.Collective(hosts=args.hosts, pattern=args.pattern, encoding=args.encoding)
    )


def format_intent(intent: Any, verbose: bool = False) -> str:
    status = STATUS.get(intent.status, "?")
    lines = [f"{intent.id:<16} {status:<10} {intent.summary}"]
    if intent.reason:
        lines.append(f"{'':16} reason: {intent.reason}")
    if verbose:
        for i, path in enumerate(intent.paths, 1):
            lines.append(
                f"{'':16} {i:>2}. {' -> '.join(path.nodes)}  (cost {path.cost:g}, "
                f"weight {path.weight})"
            )
            lines.append(f"{'':16}     segments: {' '.join(path.sids)}")
    return "\n".join(lines)


def intent_json(intent: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    out: dict[str, Any] = MessageToDict(intent, preserving_proto_field_name=True)
    out["status"] = STATUS.get(intent.status, "?")
    return out


@_run
def intent_add(args: argparse.Namespace) -> int:
    from controller.northbound import srv6lab_pb2 as pb

    if args.kind == "disjoint" and args.weights:
        try:
            [int(w) for w in args.weights.split(",")]
        except ValueError:
            print(f"error: --weights: expected integers like 3,1, got {args.weights!r}",
                  file=sys.stderr)  # fmt: skip
            return 2
    s = stub(args.controller)
    request = pb.CreateIntentRequest(id=args.id or "", spec=_spec(args))
    _print_intent(call(s.CreateIntent, request, args.controller, timeout=args.timeout), args.json)
    return 0


def _print_intent(intent: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(intent_json(intent), indent=2))
    else:
        print(format_intent(intent, verbose=True))


@_run
def intent_list(args: argparse.Namespace) -> int:
    from controller.northbound import srv6lab_pb2 as pb

    reply = call(stub(args.controller).ListIntents, pb.ListIntentsRequest(), args.controller)
    if args.json:
        print(json.dumps([intent_json(i) for i in reply.intents], indent=2))
        return 0
    if not reply.intents:
        print("no intents")
    for intent in reply.intents:
        print(format_intent(intent))
    return 0


@_run
def intent_show(args: argparse.Namespace) -> int:
    from controller.northbound import srv6lab_pb2 as pb

    intent = call(stub(args.controller).GetIntent, pb.GetIntentRequest(id=args.id), args.controller)
    _print_intent(intent, args.json)
    return 0


@_run
def intent_delete(args: argparse.Namespace) -> int:
    from controller.northbound import srv6lab_pb2 as pb

    s = stub(args.controller)
    for intent_id in args.ids:
        call(s.DeleteIntent, pb.DeleteIntentRequest(id=intent_id), args.controller)
        print(f"deleted {intent_id}")
    return 0


@_run
def intent_diff(args: argparse.Namespace) -> int:
    from controller.northbound import srv6lab_pb2 as pb

    reply = call(stub(args.controller).Diff, pb.DiffRequest(), args.controller)
    out_of_sync = 0
    for sw in reply.switches:
        if not sw.readable:
            print(f"{sw.switch}: {sw.text}")
            out_of_sync += 1
        elif sw.changes:
            out_of_sync += 1
            print(f"{sw.switch}: {sw.changes} change(s)")
            for line in sw.text.splitlines():
                print(f"  {line}")
        elif args.verbose:
            print(f"{sw.switch}: in sync")
    total = len(reply.switches)
    print(f"{total - out_of_sync} of {total} switches in sync")
    return 1 if out_of_sync else 0


# -- controller status / events -----------------------------------------------------------------


def topology(address: str) -> Any:
    from controller.northbound import srv6lab_pb2 as pb

    return call(stub(address).GetTopology, pb.GetTopologyRequest(), address, timeout=5)


def wait_programmed(address: str, timeout: float) -> Any:
    """Poll until every switch session is primary and holds the current version."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = topology(address)
            if last.switches and all(
                s.role == "primary" and s.synced_version >= last.version for s in last.switches
            ):
                return last
        except ApiError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            if last is None:
                raise ApiError(f"no answer from the controller at {address} in {timeout:g} s")
            behind = [s.name for s in last.switches if s.synced_version < last.version]
            raise ApiError(
                f"not all switches programmed after {timeout:g} s: {', '.join(behind[:8])}"
            )
        time.sleep(0.05)


@_run
def controller_status(args: argparse.Namespace) -> int:
    topo = wait_programmed(args.controller, args.wait) if args.wait else topology(args.controller)
    if args.json:
        from google.protobuf.json_format import MessageToDict

        print(json.dumps(MessageToDict(topo, preserving_proto_field_name=True), indent=2))
        return 0
    down = [link.name for link in topo.links if not link.up]
    synced = sum(1 for s in topo.switches if s.synced_version >= topo.version)
    print(f"topology {topo.name}: {len(topo.links)} links, {len(down)} down"
          + (f" ({', '.join(down)})" if down else ""))  # fmt: skip
    print(
        f"desired state version {topo.version}; {synced} of {len(topo.switches)} switches hold it"
    )
    for s in topo.switches:
        mark = "ok" if s.synced_version >= topo.version else "behind"
        print(f"  {s.name:<10} {s.role:<10} v{s.synced_version:<5} {mark:<7} {s.address}")
    return 0


def events(address: str, history: int = 0) -> Iterator[Any]:
    from controller.northbound import srv6lab_pb2 as pb

    try:
        yield from stub(address).WatchEvents(pb.WatchEventsRequest(history=history))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.CANCELLED:
            return
        raise ApiError(f"{exc.code().name}: {exc.details()}") from None


@_run
def controller_events(args: argparse.Namespace) -> int:
    try:
        for ev in events(args.controller, args.history):
            stamp = (
                time.strftime("%H:%M:%S", time.localtime(ev.time))
                + f".{int(ev.time * 1000) % 1000:03d}"
            )
            detail = f"  {ev.detail}" if ev.detail else ""
            print(f"{stamp} {ev.kind:<8} {ev.subject:<16} {ev.state}{detail}", flush=True)
    except KeyboardInterrupt:
        pass
    return 0


@_run
def remote_paths(args: argparse.Namespace) -> int:
    from controller.northbound import srv6lab_pb2 as pb

    request = pb.GetPathsRequest(
        src=args.src,
        dst=args.dst,
        k=args.k,
        mode=args.mode,
        encoding=args.encoding,
        spread=args.spread,
    )
    reply = call(stub(args.controller).GetPaths, request, args.controller)
    total = sum(p.cost for p in reply.paths)
    print(f"{len(reply.paths)} {args.mode}-disjoint paths {args.src} -> {args.dst} on the live "
          f"network, total cost {total:g}")  # fmt: skip
    for i, path in enumerate(reply.paths, 1):
        print(f"  {i}. cost {path.cost:g}: {' -> '.join(path.nodes)}")
        print(f"     segments: {' '.join(path.sids) or 'cannot be forced'}")
    return 0


def timelines(address: str) -> list[dict[str, Any]]:
    """The controller's recent reroute timelines (monotonic ns), newest last."""
    from google.protobuf.json_format import MessageToDict

    from controller.northbound import srv6lab_pb2 as pb

    reply = call(stub(address).GetTimelines, pb.GetTimelinesRequest(), address, timeout=10)
    out: list[dict[str, Any]] = []
    for t in reply.timelines:
        d = MessageToDict(t, preserving_proto_field_name=True)
        out.append({k: int(v) if k.endswith("_ns") else v for k, v in d.items()})
    return out
