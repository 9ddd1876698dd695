"""The controller: intents in, switches kept in the desired state, events out.

One object on one asyncio loop owns the state: the topology, the links that are down, the
intents (in creation order, persisted to ``<state dir>/intents.json``), the current
:class:`~controller.intents.Solution` and one :class:`SwitchSession` per switch. Every
change (an intent created or deleted, a link going down or up) recomputes the solution with
the pure core (path engine, compiler), hands each session its new desired entities and
bumps the *version*; sessions acknowledge versions as they reach them. The northbound API
and the daemon are thin layers over this class.

Nothing is half-installed: an intent is accepted only if the path engine can give it
something and it takes nothing another intent holds; it is then written to every
connected switch, and if any switch refuses its part, the intent is taken out again (the
switches return to the previous state) and the caller gets the switch's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import finsy as fy

from controller.compiler import CompileError, compile_policies, p4entities
from controller.compiler.entries import SwitchRules
from controller.intents import (
    KINDS,
    Connectivity,
    Impossible,
    Intent,
    IntentError,
    IntentState,
    Solution,
    check_id,
    check_possible,
    fast_reroute,
    parse_spec,
    repair_order,
    solve,
    spec_dict,
)
from controller.intents.engine import LinkKey, pair
from controller.metrics import Metrics
from controller.paths import LiveGraph
from controller.reconcile import Normalized, Plan, breaks_deferred, diff, normalize_all
from controller.southbound.gate import REROUTE_WRITES, WriteGate
from controller.southbound.inventory import SwitchAddress
from controller.southbound.session import P4INFO, SessionEvent, SwitchSession
from controller.topology import Topology

LOG = logging.getLogger("srv6lab.controller")
EventKind = Literal["link", "intent", "switch", "reroute"]


class Conflict(ValueError):
    """The intent needs something another intent holds, or its id is taken."""


class NotFound(KeyError):
    pass


class Aborted(RuntimeError):
    """A switch refused the writes; the change was rolled back."""


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    subject: str
    """The link (``a-b``), intent id or switch name."""
    state: str
    """link: up/down; intent: created/deleted/installed/degraded/failed; switch: a role or
    synced/error; reroute: backup/recomputed."""
    detail: str = ""
    at: float = field(default_factory=time.time)
    """Unix time."""
    monotonic_ns: int = field(default_factory=time.monotonic_ns)


class EventBus:
    """Fan-out of events to every subscriber (bounded queues; a slow subscriber loses its
    oldest events, never blocks the controller), plus a short history."""

    def __init__(self, history: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self.history: deque[Event] = deque(maxlen=history)

    def publish(self, event: Event) -> None:
        self.history.append(event)
        for q in self._subscribers:
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, maxsize: int = 10000) -> AsyncIterator[asyncio.Queue[Event]]:
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)


@dataclass
class Timeline:
    """The controller's own timeline of one reroute (monotonic ns)."""

    link: str
    source: str
    seen_ns: int
    computed_ns: int = 0
    pushed_ns: int = 0
    """The fast reroute's entities handed to the switch sessions."""
    acked_ns: int = 0
    recomputed_ns: int = 0
    recompute_acked_ns: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "source": self.source,
            "event_seen_ns": self.seen_ns,
            "reroute_computed_ns": self.computed_ns,
            "reroute_pushed_ns": self.pushed_ns,
            "last_switch_acked_ns": self.acked_ns,
            "recompute_done_ns": self.recomputed_ns,
            "recompute_acked_ns": self.recompute_acked_ns,
        }


class ControllerService:
    def __init__(
        self,
        topo: Topology,
        switches: Sequence[SwitchAddress],
        *,
        election_id: int = 10,
        state_dir: Path | None = None,
        connectivity: bool = True,
        interval: float = 30.0,
        apply_timeout: float = 10.0,
        p4info: Path = P4INFO,
        metrics: Metrics | None = None,
        reroute_writes: int = REROUTE_WRITES,
    ) -> None:
        self.topo = topo
        self.schema = fy.P4Schema(p4info)
        self.metrics = metrics or Metrics()
        self.events = EventBus()
        self.state_dir = state_dir
        self.default_connectivity = connectivity
        self.apply_timeout = apply_timeout
        self.intents: dict[str, Intent] = {}
        self.down: set[LinkKey] = set()
        self.down_reasons: dict[LinkKey, set[str]] = {}
        self.version = 0
        self.live = LiveGraph(topo.graph)
        self.solution = Solution({}, {}, ())  # computed by start()
        self.timelines: deque[Timeline] = deque(maxlen=100)
        self._created = time.monotonic()
        self._programmed = False
        self._changed = asyncio.Condition()
        self._sections: dict[tuple[str, tuple[Any, ...]], tuple[Normalized, ...]] = {}
        self._standby: dict[str, tuple[Normalized, ...]] = {}
        """Per switch: the headend members of the current solution's backup paths."""
        self._lock = asyncio.Lock()
        self.gate = WriteGate(reroute_writes)
        unknown = [s.name for s in switches if not topo.is_switch(s.name)]
        if unknown:
            raise ValueError(
                f"switch inventory names switches {topo.name} does not have: {', '.join(unknown)}"
            )
        self.sessions: dict[str, SwitchSession] = {
            s.name: SwitchSession(
                s,
                schema=self.schema,
                p4info=p4info,
                election_id=election_id,
                interval=interval,
                on_event=self._session_event,
                gate=self.gate,
            )
            for s in switches
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._load()
        if not self.intents and self.default_connectivity:
            self.intents["connectivity"] = Intent("connectivity", Connectivity(), time.time())
            self._save()
        self._recompute("start")
        for session in self.sessions.values():
            session.start()

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.sessions.values()))

    # -- intents -----------------------------------------------------------------------------

    def list_intents(self) -> list[tuple[Intent, IntentState]]:
        return [(i, self.state_of(i.id)) for i in self.intents.values()]

    def get_intent(self, intent_id: str) -> tuple[Intent, IntentState]:
        intent = self.intents.get(intent_id)
        if intent is None:
            raise NotFound(f"no intent {intent_id!r}")
        return intent, self.state_of(intent_id)

    def state_of(self, intent_id: str) -> IntentState:
        state = self.solution.states.get(intent_id)
        if state is None:
            return IntentState(intent_id, "failed", "not computed", ())
        waiting = self.waiting_switches()
        if waiting and state.status == "installed":
            return IntentState(
                intent_id,
                "degraded",
                f"not yet on {len(waiting)} switch(es): {', '.join(waiting[:6])}",
                state.paths,
            )
        return state

    def busy(self) -> bool:
        """A connected switch is still being written to the current version."""
        return any(
            s.role == "primary" and s.synced_version < self.version for s in self.sessions.values()
        )

    def waiting_switches(self) -> list[str]:
        """Switches that do not hold the current version (disconnected, or still writing)."""
        return sorted(n for n, s in self.sessions.items() if s.synced_version < self.version)

    async def create_intent(self, intent_id: str | None, data: Mapping[str, Any]) -> IntentState:
        """Validate, check, install and wait until every connected switch holds it.
        Raises IntentError (bad input), Impossible, Conflict, Aborted."""
        async with self._lock:
            if intent_id:
                check_id(intent_id)
                if intent_id in self.intents:
                    raise Conflict(f"id: intent {intent_id!r} exists")
            kind = data.get("kind") if isinstance(data, Mapping) else None
            where = f"spec.{kind}" if kind in KINDS else "spec"  # the API's oneof, named
            spec = parse_spec(data, self.topo, where)
            if isinstance(spec, Connectivity) and any(
                isinstance(i.spec, Connectivity) for i in self.intents.values()
            ):
                raise Conflict("spec.connectivity: a connectivity intent exists already")
            check_possible(self.topo, spec)
            new_id = intent_id or self._next_id(spec.kind)
            intent = Intent(new_id, spec, time.time())
            trial = solve(self.topo, self.live, [*self.intents.values(), intent])
            state = trial.states[new_id]
            if state.status == "failed":
                if state.reason.startswith("conflicts with"):
                    raise Conflict(state.reason)
                raise Impossible(state.reason)
            self.intents[new_id] = intent
            self.solution = trial
            version = self._publish(f"intent {new_id} created")
            errors = await self.wait_applied(version)
            if errors:
                del self.intents[new_id]
                rollback = self._recompute(f"intent {new_id} rolled back")
                await self.wait_applied(rollback)
                raise Aborted(f"intent {new_id} was not installed: {'; '.join(errors)}")
            self._save()
            self.events.publish(Event("intent", new_id, "created", spec_dict_line(intent)))
            return self.state_of(new_id)

    async def delete_intent(self, intent_id: str) -> None:
        async with self._lock:
            if intent_id not in self.intents:
                raise NotFound(f"no intent {intent_id!r}")
            del self.intents[intent_id]
            version = self._recompute(f"intent {intent_id} deleted")
            self._save()
            self.events.publish(Event("intent", intent_id, "deleted"))
            await self.wait_applied(version)

    def _next_id(self, kind: str) -> str:
        n = 1
        while f"{kind}-{n}" in self.intents:
            n += 1
        return f"{kind}-{n}"

    # -- links -------------------------------------------------------------------------------

    def link_key(self, x: str, y: str | None = None) -> LinkKey:
        link = self.topo.link(x, y) if y is not None else self.topo.link(*x.split("-", 1))
        return frozenset(link.ends())

    async def link_changed(
        self, link: LinkKey, up: bool, source: str, reason: str = "port"
    ) -> bool:
        """A link went down or came back (deduplicated: False if nothing changed)."""
        return await self.links_changed([link], up, source, reason)

    async def links_changed(
        self, links: Iterable[LinkKey], up: bool, source: str, reason: str = "port"
    ) -> bool:
        """Links went down or came back for ``reason`` (``port``: a port's status;
        ``probe``: the controller's path probes). A link is down while any reason holds.
        False if nothing changed."""
        kind = source.split(maxsplit=1)[0]
        changed: list[LinkKey] = []
        for link in links:
            self.metrics.link_events.labels(kind, "up" if up else "down").inc()
            reasons = self.down_reasons.setdefault(link, set())
            was_down = bool(reasons)
            if up:
                reasons.discard(reason)
            else:
                reasons.add(reason)
            if not reasons:
                del self.down_reasons[link]
            if was_down != bool(reasons):
                changed.append(link)
        if not changed:
            return False
        seen = time.monotonic_ns()
        name = ", ".join("-".join(sorted(k)) for k in changed)
        for link in changed:
            self.events.publish(
                Event("link", "-".join(sorted(link)), "up" if up else "down", f"from {source}")
            )
        LOG.info("link %s %s (%s)", name, "up" if up else "down", source)
        async with self._lock:
            if up:
                self.down.difference_update(changed)
                before = self.solution
                self.live = LiveGraph(self.topo.graph, [pair(k) for k in self.down])
                self.solution = solve(self.topo, self.live, list(self.intents.values()))
                # make-before-break across switches: every switch first gets the fabric
                # through the link that came back with its headend policies as they are;
                # the policies that move onto the link follow once every switch holds
                # it (written together, an ingress sent traffic into the new path before
                # its transit switches routed it: 40 ms lost)
                staged = {
                    n: replace(r, policies=before.rules[n].policies if n in before.rules else ())
                    for n, r in self.solution.rules.items()
                }
                if staged != self.solution.rules:
                    first = self._push(
                        {n: self._with_standby(n, self._normalized(r)) for n, r in staged.items()}
                    )
                    await self.wait_applied(first)
                version = self._publish(f"link {name} up")
                await self.wait_applied(version)
                return True
            # no cyclic collection until the fast reroute is acknowledged (a full one
            # takes 40-55 ms in this process)
            with collector_paused():
                self.down.update(changed)
                timeline = Timeline(name, source, seen)
                self.timelines.append(timeline)
                self.live = LiveGraph(self.topo.graph, [pair(k) for k in self.down])
                # 1. make-before-break to what survives (other lists, precomputed backups):
                #    only the affected policies' ingress entries change
                affected = frozenset().union(*(self.solution.affected(k) for k in changed))
                # and the link's two ends stop using it: a kernel switch's ECMP members on a
                # port that went down left their groups by themselves, BMv2's only when its
                # port monitor notices (it polls every 200 ms), and a gray link (reason probe)
                # stays up and drops: so prune it at its ends first, a write to two switches
                rules = fast_reroute(self.topo, self.solution, changed, prune=True)
                if rules:
                    order = repair_order(self.solution, changed, rules)
                    timeline.computed_ns = time.monotonic_ns()
                    # what the new paths no longer use is deleted by the recompute: the
                    # deletes are no repair, and their writes took CPU from the ones that are
                    version = self._push(
                        {
                            n: breaks_deferred(
                                self._with_standby(n, self._normalized(rules[n])), self._holding(n)
                            )
                            for n in order
                        },
                        only=True,
                        ranks={n: i for i, n in enumerate(order)},
                    )
                    timeline.pushed_ns = time.monotonic_ns()
                    refused = await self.wait_applied(version)
                    timeline.acked_ns = time.monotonic_ns()
                    if refused:
                        # the recompute below writes the whole state again
                        LOG.warning("fast reroute of %s not applied: %s", name, "; ".join(refused))
                    LOG.info(
                        "fast reroute of %s: computed in %.1f ms, handed to %d switches in %.1f "
                        "ms, answered by all %.1f ms after the event (%d refused)",
                        name, (timeline.computed_ns - seen) / 1e6, len(rules),
                        (timeline.pushed_ns - timeline.computed_ns) / 1e6,
                        (timeline.acked_ns - seen) / 1e6, len(refused),
                    )  # fmt: skip
                    self.metrics.reroutes.labels("backup").inc()
                    self.metrics.reroute_seconds.labels("backup").observe(
                        (timeline.acked_ns - seen) / 1e9
                    )
                    self.events.publish(
                        Event("reroute", name, "backup", f"intents {', '.join(sorted(affected))}")
                    )
            # 2. the full recompute replaces backups with the best new paths
            self.solution = solve(self.topo, self.live, list(self.intents.values()))
            timeline.recomputed_ns = time.monotonic_ns()
            if not rules:
                timeline.computed_ns = timeline.recomputed_ns
            version = self._publish(f"link {name} down")
            await self.wait_applied(version)
            timeline.recompute_acked_ns = time.monotonic_ns()
            if not rules:
                timeline.acked_ns = timeline.recompute_acked_ns
            self.metrics.reroutes.labels("recompute").inc()
            self.metrics.reroute_seconds.labels("recompute").observe(
                (timeline.recompute_acked_ns - seen) / 1e9
            )
            self.events.publish(Event("reroute", name, "recomputed"))
            return True

    # -- desired state -----------------------------------------------------------------------

    def _recompute(self, why: str) -> int:
        self.live = LiveGraph(self.topo.graph, [pair(k) for k in self.down])
        self.solution = solve(self.topo, self.live, list(self.intents.values()))
        return self._publish(why)

    def _publish(self, why: str) -> int:
        """Hand the current solution to the sessions; the new version."""
        self._standby = self._standby_members(self.solution)
        version = self._push(
            {n: self._with_standby(n, self._normalized(r)) for n, r in self.solution.rules.items()}
        )
        self._count_intents()
        for intent_id, state in self.solution.states.items():
            if state.status != "installed":
                LOG.info("intent %s %s: %s", intent_id, state.status, state.reason)
        LOG.debug("version %d: %s", version, why)
        return version

    def _push(
        self,
        desired: Mapping[str, Sequence[Any]],
        *,
        only: bool = False,
        ranks: Mapping[str, int] | None = None,
    ) -> int:
        """A new version: ``desired`` per switch; with ``only``, switches not named keep
        what they have (their version just moves). With ``ranks``, the named switches'
        writes go through the gate in that order (and their sessions wake in it)."""
        self.version += 1
        ranks = ranks or {}
        names = sorted(self.sessions, key=lambda n: ranks.get(n, len(ranks)))
        for name in names:
            session = self.sessions[name]
            if only and name not in desired:
                session.touch(self.version)
            else:
                session.set_desired(
                    self.version,
                    normalize_all(desired.get(name, ()), self.schema),
                    rank=ranks.get(name),
                )
        self._notify()
        return self.version

    def _holding(self, switch: str) -> tuple[Normalized, ...]:
        """What the session of ``switch`` is to hold now (its last desired state)."""
        session = self.sessions.get(switch)
        if session is None or session.desired is None:
            return ()
        return session.desired.entities

    def desired_entities(self, switch: str) -> list[Normalized]:
        rules = self.solution.rules.get(switch)
        return self._with_standby(switch, self._normalized(rules)) if rules else []

    def _standby_members(self, solution: Solution) -> dict[str, tuple[Normalized, ...]]:
        """The action profile members of every policy's precomputed backup, installed
        ahead (a member no group uses forwards nothing): a fast reroute then only points
        the headend entries at them, one write instead of an insert and then a modify."""
        specs = [p.spec(p.backup) for p in solution.policies if p.backup]
        try:
            compiled = compile_policies(self.topo, specs) if specs else []
        except CompileError as exc:  # an optimisation: never a reason to refuse the solution
            LOG.warning("backup members not installed ahead: %s", exc)
            compiled = []
        out: dict[str, list[Any]] = {}
        for rule in compiled:
            out.setdefault(rule.switch, []).extend(p4entities.headend_members(rule))
        return {n: tuple(normalize_all(members, self.schema)) for n, members in out.items()}

    def _with_standby(self, switch: str, entities: list[Normalized]) -> list[Normalized]:
        standby = self._standby.get(switch, ())
        if not standby:
            return entities
        keys = {e.key for e in entities}
        return entities + [m for m in standby if m.key not in keys]

    def _normalized(self, rules: SwitchRules) -> list[Normalized]:
        """``normalize_all(entities(rules))``, each section of the rules (next hops, ECMP
        members, ..., policies) normalised once and remembered: a reroute changes a few
        sections of a few switches, and normalising every entity of every switch it
        touched took 30-110 ms of the loop before the first switch was written."""
        out: list[Normalized] = []
        for section in _sections(rules):
            got = self._sections.get(section)
            if got is None:
                got = tuple(normalize_all(_section_entities(section), self.schema))
                if len(self._sections) >= SECTION_CACHE:
                    self._sections.clear()
                self._sections[section] = got
            out.extend(got)
        return out

    async def wait_applied(self, version: int, timeout: float | None = None) -> list[str]:
        """Wait until every primary session holds ``version`` (disconnected switches are
        not waited for; they get it on reconnect). Errors reported meanwhile, by switch."""
        started = time.monotonic()
        deadline = started + (self.apply_timeout if timeout is None else timeout)
        errors: dict[str, str] = {}
        async with self._changed:
            while True:
                pending = [
                    s
                    for s in self.sessions.values()
                    if s.role == "primary" and s.synced_version < version and s.name not in errors
                ]
                for s in pending:
                    if s.last_error and s.last_error[0] >= version:
                        errors[s.name] = f"{s.name}: {s.last_error[1]}"
                pending = [s for s in pending if s.name not in errors]
                if not pending:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    errors.update({s.name: f"{s.name}: no answer in time" for s in pending})
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)
        self.metrics.apply_seconds.observe(time.monotonic() - started)
        return sorted(errors.values())

    async def plans(self) -> dict[str, Plan | str]:
        """The dry-run diff per switch: what a reconcile pass would write now (or why the
        switch cannot be read)."""
        out: dict[str, Plan | str] = {}
        for name, session in self.sessions.items():
            if session.role not in ("primary", "backup"):
                out[name] = f"not connected ({session.role})"
                continue
            try:
                have = await session.read_back()
                out[name] = diff(self.desired_entities(name), have, self.schema)
            except (fy.P4ClientError, ValueError) as exc:
                out[name] = f"read failed: {exc}"
        return out

    # -- session events ----------------------------------------------------------------------

    def _session_event(self, event: SessionEvent) -> None:
        roles = [s.role for s in self.sessions.values()]
        for role in ("connecting", "primary", "backup", "down"):
            self.metrics.sessions.labels(role).set(roles.count(role))
        if event.kind == "role":
            LOG.info("switch %s: %s", event.switch, event.role)
            self.events.publish(Event("switch", event.switch, event.role))
        elif event.kind == "synced":
            self.metrics.reconcile_seconds.observe(event.seconds)
            if not self._programmed and not self.waiting_switches():
                self._programmed = True
                LOG.info(
                    "all %d switches programmed (version %d) %.2f s after start",
                    len(self.sessions), self.version, time.monotonic() - self._created,
                )  # fmt: skip
            if event.written:
                self.metrics.writes.labels(event.switch).inc(event.written)
                LOG.info(
                    "switch %s: version %d, %d updates in %.1f ms",
                    event.switch, event.version, event.written, event.seconds * 1000,
                )  # fmt: skip
                self.events.publish(
                    Event("switch", event.switch, "synced", f"{event.written} updates")
                )
        else:
            self.metrics.write_errors.labels(event.switch).inc()
            self.events.publish(Event("switch", event.switch, "error", event.detail))
        self._notify()

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(wake())

    def _count_intents(self) -> None:
        states = [s.status for s in self.solution.states.values()]
        for status in ("installed", "degraded", "failed"):
            self.metrics.intents.labels(status).set(states.count(status))

    # -- persistence -------------------------------------------------------------------------

    @property
    def _state_file(self) -> Path | None:
        return self.state_dir / "intents.json" if self.state_dir else None

    def _save(self) -> None:
        path = self._state_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "topology": self.topo.name,
            "intents": [
                {"id": i.id, "created": i.created, "spec": spec_dict(i.spec)}
                for i in self.intents.values()
            ],
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)

    def _load(self) -> None:
        path = self._state_file
        if path is None or not path.exists():
            return
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the saved intents: {exc}") from None
        if data.get("topology") != self.topo.name:
            raise ValueError(
                f"{path}: holds intents for topology {data.get('topology')!r}, not "
                f"{self.topo.name!r}; move it away or use another --state-dir"
            )
        for n, item in enumerate(data.get("intents", [])):
            try:
                intent_id = check_id(item.get("id"), f"intents[{n}].id")
                spec = parse_spec(item.get("spec", {}), self.topo, f"intents[{n}].spec")
            except IntentError as exc:
                raise ValueError(f"{path}: {exc}") from None
            self.intents[intent_id] = Intent(intent_id, spec, float(item.get("created", 0)))
        LOG.info("loaded %d intents from %s", len(self.intents), path)


SECTION_CACHE = 4096
_CONVERT: dict[str, Any] = {
    "next_hops": p4entities.next_hop,
    "ecmp_members": p4entities.ecmp_member,
    "ecmp_groups": p4entities.ecmp_group,
    "routes": p4entities.route,
    "my_sids": p4entities.my_sid,
    "host_ports": p4entities.host_port,
    "sid_blocks": p4entities.sid_block,
}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection inside the block. A full collection of this
    process takes 40-55 ms (measured on fat-tree-4 with gc.callbacks); one that falls
    between a link event and the fast reroute's last acknowledgement is that much longer
    loss. Garbage made meanwhile is collected once the block ends."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _sections(rules: SwitchRules) -> list[tuple[str, tuple[Any, ...]]]:
    """The rules by kind, in :func:`controller.compiler.entities`' write order."""
    return [(kind, getattr(rules, kind)) for kind in (*_CONVERT, "policies")]


def _section_entities(section: tuple[str, tuple[Any, ...]]) -> list[Any]:
    kind, items = section
    if kind == "policies":
        return p4entities.policy_entities(items)
    return [_CONVERT[kind](rule) for rule in items]


def spec_dict_line(intent: Intent) -> str:
    return json.dumps(spec_dict(intent.spec), separators=(",", ":"))
