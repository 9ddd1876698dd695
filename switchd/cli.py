"""``srv6lab switchd``: run a P4Runtime switch on the Linux kernel's SRv6 data plane.

The lab wires :func:`register` into the ``srv6lab`` command. Everything heavy (grpc, pyroute2,
the kernel data plane) is imported when the subcommand runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from pathlib import Path

log = logging.getLogger("switchd")

DEFAULT_LISTEN = "127.0.0.1:9559"
PORT_NAME = re.compile(r"^.+-eth(\d+)$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``switchd`` subcommand."""
    p = sub.add_parser(
        "switchd",
        help="run a P4Runtime switch (srv6.p4) on the Linux kernel's SRv6 data plane",
        description=(
            "Run switchd: a P4Runtime server (and a gNMI server for port status) that "
            "implements p4/srv6.p4 with the Linux kernel's SRv6 data plane (seg6 and "
            "seg6local routes, nexthop objects and groups, neighbour entries) of the network "
            "namespace it runs in. It starts without a pipeline: a controller pushes srv6.p4's "
            "P4Info with SetForwardingPipelineConfig. SIGTERM or SIGINT stops it; the kernel "
            "keeps forwarding, and a switchd started again with the same --state-dir serves "
            "the same pipeline and entries."
        ),
    )
    p.add_argument(
        "--listen",
        metavar="ADDR",
        default=DEFAULT_LISTEN,
        help="where P4Runtime listens: HOST:PORT (port 0 picks a free one) or unix:/PATH "
        f"(default: {DEFAULT_LISTEN})",
    )
    p.add_argument(
        "--device-id",
        metavar="N",
        type=_positive_int,
        default=1,
        help="the P4Runtime device id that clients must use (default: 1)",
    )
    p.add_argument(
        "--gnmi-listen",
        metavar="ADDR",
        default=None,
        help="where gNMI (port status) listens, HOST:PORT or unix:/PATH (default: on the "
        "P4Runtime address, as Stratum does)",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="keep the committed pipeline in DIR, so that a restarted switchd serves it again "
        "with the entries the kernel still holds (default: keep nothing; a restart starts "
        "without a pipeline)",
    )
    p.add_argument(
        "--ports",
        metavar="MAP",
        default=None,
        help="P4 port numbers and their interfaces, e.g. 1=s1-eth1,2=s1-eth2 (default: every "
        "interface named <anything>-eth<N> is port N)",
    )
    p.add_argument(
        "--protocol",
        metavar="N",
        type=_route_protocol,
        default=None,
        help="route protocol number on everything switchd installs, so it can list, rebuild "
        "and flush its own state (default: 222)",
    )
    p.add_argument(
        "--netns",
        metavar="NAME",
        default=None,
        help="program the interfaces and routes of the named network namespace instead of "
        "the one switchd runs in",
    )
    p.add_argument(
        "--p4info",
        metavar="FILE",
        type=Path,
        default=None,
        help="the only P4Info SetForwardingPipelineConfig accepts (default: "
        "p4/build/srv6.p4info.txtpb of this checkout)",
    )
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="logging level (default: info)",
    )
    p.set_defaults(func=_run)


def _positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _route_protocol(text: str) -> int:
    value = _positive_int(text)
    if value > 255:
        raise argparse.ArgumentTypeError(f"route protocol {value} must be 1..255")
    return value


def parse_ports(text: str) -> dict[int, str]:
    """``1=s1-eth1,2=s1-eth2`` -> {1: "s1-eth1", 2: "s1-eth2"}; ValueError names the item."""
    ports: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        number, sep, name = item.partition("=")
        if not sep or not name.strip() or not number.strip().isdigit():
            raise ValueError(f"--ports: {item!r} is not PORT=INTERFACE")
        port = int(number)
        if port in ports:
            raise ValueError(f"--ports: port {port} is given twice")
        if name.strip() in ports.values():
            raise ValueError(f"--ports: interface {name.strip()} is given twice")
        ports[port] = name.strip()
    if not ports:
        raise ValueError("--ports: no port given")
    return ports


def ports_from_names(names: list[str]) -> dict[int, str]:
    """Interfaces named <anything>-eth<N> as port N; ValueError when two claim one number."""
    ports: dict[int, str] = {}
    for name in sorted(names):
        m = PORT_NAME.match(name)
        if m is None:
            continue
        port = int(m.group(1))
        if port in ports:
            raise ValueError(
                f"interfaces {ports[port]} and {name} both look like port {port}; use --ports"
            )
        ports[port] = name
    return ports


def discover_ports(netns: str | None = None) -> dict[int, str]:
    """The ports of a namespace: its interfaces named <anything>-eth<N>."""
    from pyroute2 import IPRoute

    with IPRoute(netns=netns) if netns else IPRoute() as ipr:
        names = [str(link.get("ifname")) for link in ipr.link("dump")]
    return ports_from_names(names)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s switchd %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        ports = parse_ports(args.ports) if args.ports else discover_ports(args.netns)
    except (ValueError, OSError) as exc:
        print(f"switchd: {exc}", file=sys.stderr)
        return 2
    if not ports:
        log.warning("no interface named <anything>-eth<N> found: the switch has no ports")
    try:
        return asyncio.run(_serve(args, ports))
    except OSError as exc:
        print(f"switchd: {exc}", file=sys.stderr)
        return 1


async def _serve(args: argparse.Namespace, ports: dict[int, str]) -> int:
    from switchd.gnmi import GnmiServer, PortMonitor
    from switchd.kernel import DEFAULT_PROTOCOL, KernelDataplane
    from switchd.p4rt.server import P4RuntimeServer, Switchd

    protocol = args.protocol if args.protocol is not None else DEFAULT_PROTOCOL
    dataplane = KernelDataplane(args.netns, ports, protocol)
    dataplane.start()
    switch = Switchd(
        P4RuntimeServer(
            dataplane,
            device_id=args.device_id,
            ports=ports,
            state_dir=args.state_dir,
            p4info=args.p4info,
        ),
        GnmiServer(PortMonitor(ports, args.netns)),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await switch.start(args.listen, args.gnmi_listen)
        _tune_gc()
        log.info(
            "ready: device %d, ports %s, route protocol %d",
            args.device_id,
            ", ".join(f"{n}={name}" for n, name in sorted(ports.items())) or "none",
            protocol,
        )
        await stop.wait()
        log.info("stopping")
    finally:
        await switch.stop()
        dataplane.stop()
    return 0


GC_THRESHOLDS = (50_000, 20, 10)
"""The cyclic GC's thresholds in the switchd process. The default (700, 10, 10) collects
every few hundred entries written, and the older generations hold every entry's record:
at 50,000 entries the collector took 5-10 us of the ~45 us of Python an entry costs. A
write's objects die young, without cycles; a larger first threshold lets them go before
the collector ever looks at them."""


def _tune_gc() -> None:
    """Once started: leave what was imported and set up out of every later collection
    (gc.freeze), and collect less often."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> int:
    """``python -m switchd.cli [options]``: switchd without the rest of ``srv6lab``."""
    parser = argparse.ArgumentParser(prog="python -m switchd.cli")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["switchd", *(sys.argv[1:] if argv is None else argv)])
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
