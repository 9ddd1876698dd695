"""``srv6lab controller run``: the controller as a daemon on one asyncio loop — the
sessions to every switch, the northbound gRPC API, link events and the metrics endpoint —
until SIGTERM or SIGINT, then a clean shutdown (the switches keep their state)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from controller.southbound.gate import REROUTE_WRITES

LOG = logging.getLogger("srv6lab.controller")
DEFAULT_LISTEN = "127.0.0.1:50051"
ENV_RUN_DIR = "SRV6LAB_RUN_DIR"


def default_inventory() -> Path:
    """The running lab's switch list: ``$SRV6LAB_RUN_DIR/switches.json`` (the lab's run
    directory, /run/srv6lab unless set)."""
    return Path(os.environ.get(ENV_RUN_DIR, "/run/srv6lab")) / "switches.json"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str, fmt: str, log_file: str | None = None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", "%H:%M:%S"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # finsy logs every channel event at INFO; keep it to warnings unless debugging
    logging.getLogger("finsy").setLevel("DEBUG" if level.upper() == "DEBUG" else "WARNING")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topology", required=True, metavar="FILE", help="topology YAML file")
    p.add_argument(
        "--switches",
        metavar="FILE",
        help="switch inventory (switches.json: name, device_id, p4runtime address per "
        f"switch); default: the running lab's, {default_inventory()}",
    )
    p.add_argument(
        "--listen", default=DEFAULT_LISTEN, metavar="ADDR",
        help=f"northbound gRPC address, HOST:PORT or unix:/PATH (default {DEFAULT_LISTEN})",
    )  # fmt: skip
    p.add_argument(
        "--metrics", default="127.0.0.1:9464", metavar="HOST:PORT",
        help="Prometheus metrics endpoint (default 127.0.0.1:9464; 'off' to disable)",
    )  # fmt: skip
    p.add_argument(
        "--election-id", type=int, default=10,
        help="P4Runtime election id (default 10); a second controller with a lower id "
        "stays backup and takes over when this one dies",
    )  # fmt: skip
    p.add_argument(
        "--state-dir", metavar="DIR",
        help="where intents are kept across restarts (default: 'controller' next to the "
        "switch inventory)",
    )  # fmt: skip
    p.add_argument(
        "--no-connectivity", action="store_true",
        help="do not create the default connectivity intent (ECMP routing between all hosts)",
    )  # fmt: skip
    p.add_argument(
        "--reconcile-interval", type=float, default=30.0, metavar="SECONDS",
        help="full read-back and repair of every switch this often (default 30)",
    )  # fmt: skip
    p.add_argument(
        "--link-events", choices=("auto", "gnmi", "netlink", "off"), default="auto",
        help="where link up/down comes from: the switches' gNMI and netlink in the lab's "
        "namespaces (auto, default), one of them, or nowhere",
    )  # fmt: skip
    p.add_argument(
        "--hold-down", type=float, default=0.0, metavar="SECONDS",
        help="damp flaps: a link that comes back up is used again only after it stayed up "
        "this long (default 0; never delays the reaction to a link going down)",
    )  # fmt: skip
    p.add_argument(
        "--probe-interval", type=float, default=10.0, metavar="MS",
        help="send a probe through every steered SRv6 path this often, to find gray "
        "failures (default 10 ms; 0 turns probes off; kernel switches only)",
    )  # fmt: skip
    p.add_argument(
        "--probe-miss", type=int, default=1, metavar="N",
        help="a steered path is suspect when N probes in a row are lost (default 1); each "
        "of its links that no other path vouches for then gets 2 ICMPv6 echoes at once, "
        "and the links that answer none are taken down. Probes and echoes are DSCP CS6, "
        "which lab links queue in a strict-priority class: congestion does not drop them",
    )  # fmt: skip
    p.add_argument(
        "--probe-grace", type=float, default=4.0, metavar="MS",
        help="a probe or echo reply not back this long after it was sent is lost "
        "(default 4 ms: the machine's CPU jitter; probes never queue behind data)",
    )  # fmt: skip
    p.add_argument(
        "--reroute-writes", type=int, default=REROUTE_WRITES, metavar="N",
        help="a fast reroute writes to N switches at once, those that repair the most "
        f"destinations first (default {REROUTE_WRITES}: the lab's switches share the "
        "controller's cores, and writes that go out together finish late together; "
        "switches on their own hardware want more)",
    )  # fmt: skip
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--log-file", metavar="FILE", help="log here instead of stderr")


def run(args: argparse.Namespace) -> int:
    from controller.southbound import InventoryError, load_inventory
    from controller.topology import TopologyError, load

    setup_logging(args.log_level, args.log_format, args.log_file)
    try:
        topo = load(args.topology)
    except TopologyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    inventory = Path(args.switches) if args.switches else default_inventory()
    try:
        switches = load_inventory(inventory)
    except InventoryError as exc:
        hint = "" if args.switches else " (is a lab running? start one, or pass --switches)"
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 1
    state_dir = Path(args.state_dir) if args.state_dir else inventory.parent / "controller"
    metrics: tuple[str, int] | None = None
    if args.metrics != "off":
        host, _, port = args.metrics.rpartition(":")
        if not host or not port.isdigit():
            print(f"error: --metrics: expected HOST:PORT or off, got {args.metrics!r}",
                  file=sys.stderr)  # fmt: skip
            return 2
        metrics = (host.strip("[]"), int(port))
    try:
        return asyncio.run(_main(args, topo, switches, inventory, state_dir, metrics))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


GC_THRESHOLDS = (10_000, 10, 10)
"""The cyclic collector's thresholds in the controller (Python's default: 700, 10, 10)."""


def _settle_collector() -> None:
    """Once the first solution is out: leave the topology, the compiled pipeline and the
    modules out of every later collection (gc.freeze), and collect the young generation less
    often. A full collection otherwise scanned all of them: 40-55 ms of a stopped event
    loop, now and then in the middle of a reroute."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _main(  # noqa: PLR0917
    args: argparse.Namespace,
    topo: Any,
    switches: Any,
    inventory: Path,
    state_dir: Path,
    metrics_at: tuple[str, int] | None,
) -> int:
    from controller.linkevents import LinkWatcher
    from controller.metrics import serve
    from controller.northbound.server import start_api, stop_api
    from controller.service import ControllerService

    service = ControllerService(
        topo,
        switches,
        election_id=args.election_id,
        state_dir=state_dir,
        connectivity=not args.no_connectivity,
        interval=args.reconcile_interval,
        reroute_writes=args.reroute_writes,
    )
    await service.start()
    _settle_collector()
    api = await start_api(service, args.listen)
    http = await serve(service.metrics, *metrics_at) if metrics_at else None
    watcher = LinkWatcher(service, inventory, mode=args.link_events, hold_down=args.hold_down)
    await watcher.start()
    prober = None
    if args.probe_interval > 0:
        from controller.probing import PathProber

        prober = PathProber(
            service,
            inventory,
            interval=args.probe_interval / 1000,
            miss=args.probe_miss,
            grace=args.probe_grace / 1000,
        )
        await prober.start()
    LOG.info(
        "controller up: topology %s, %d switches from %s, API on %s%s, %d intents",
        topo.name, len(switches), inventory, args.listen,
        f", metrics on http://{metrics_at[0]}:{metrics_at[1]}/metrics" if metrics_at else "",
        len(service.intents),
    )  # fmt: skip

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    LOG.info("stopping (signal)")
    await watcher.stop()
    if prober is not None:
        await prober.stop()
    await stop_api(api)
    if http is not None:
        http.close()
        await http.wait_closed()
    await service.stop()
    LOG.info("stopped; the switches keep their state")
    return 0
