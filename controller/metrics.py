"""Prometheus metrics of the controller, and a tiny HTTP endpoint for them served on the
controller's own asyncio loop (no thread, no fork)."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Gauge(
            "srv6lab_sessions", "P4Runtime sessions by role", ["role"], registry=r
        )
        self.writes = Counter(
            "srv6lab_write_updates", "P4Runtime updates written", ["switch"], registry=r
        )
        self.write_errors = Counter(
            "srv6lab_write_errors", "reconcile passes a switch refused", ["switch"], registry=r
        )
        self.reconcile_seconds = Histogram(
            "srv6lab_reconcile_seconds",
            "one reconcile pass on one switch (read-back if any, diff, writes)",
            buckets=_LATENCY,
            registry=r,
        )
        self.apply_seconds = Histogram(
            "srv6lab_apply_seconds",
            "a change of the desired state until every connected switch acknowledged it",
            buckets=_LATENCY,
            registry=r,
        )
        self.reroutes = Counter(
            "srv6lab_reroutes", "reroutes after link events", ["phase"], registry=r
        )
        self.reroute_seconds = Histogram(
            "srv6lab_reroute_seconds",
            "link event seen until the last switch acknowledged the reroute",
            ["phase"],
            buckets=_LATENCY,
            registry=r,
        )
        self.link_events = Counter(
            "srv6lab_link_events", "link events by source and state", ["source", "state"],
            registry=r,
        )  # fmt: skip
        self.intents = Gauge("srv6lab_intents", "intents by status", ["status"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def serve(metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """``GET /metrics`` (any path) on ``host:port`` in the running loop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = metrics.render()
            head = (
                "HTTP/1.1 200 OK\r\n"
                f"Content-Type: {CONTENT_TYPE_LATEST}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port)
