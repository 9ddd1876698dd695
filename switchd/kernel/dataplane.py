"""KernelDataplane: srv6.p4 realised with the Linux SRv6 data plane (see render.py)."""

from __future__ import annotations

import ipaddress
import logging
import operator
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from finsy.proto import p4r

from switchd.dataplane import Change, ChangeKind, CounterValue, DataplaneError
from switchd.kernel.iproute import IGNORABLE_ON_DELETE, BatchFailure, IpRoute
from switchd.kernel.render import (
    ECMP_GROUP_BASE,
    HEADEND_GROUP_BASE,
    HEADEND_MEMBER_BASE,
    MEMBER_BASE,
    NFT_SETUP,
    RULES,
    SID_DEV,
    SID_DEV_MTU,
    SID_DEV_PEER,
    TABLE_HEADEND,
    TABLE_MAIN,
    TABLE_MY_SID,
    KKey,
    KObj,
    Ports,
    RKey,
    dependencies,
    kernel_key,
    nexthop_of_neighbour,
    render,
    route_dependency,
)
from switchd.kernel.schema import Schema
from switchd.kernel.state import (
    EcmpMember,
    Group,
    GroupMember,
    HostPort,
    MySid,
    NextHop,
    Prefix,
    Record,
    Route,
    SegmentList,
    SidBlock,
    decode,
    encode,
    record_key,
    route_of_change,
)

if TYPE_CHECKING:
    from finsy.proto import p4i

log = logging.getLogger("switchd.kernel")
DEFAULT_PROTOCOL = 222
STREAM_SLICE = 64
"""Routes per slice of a batch of routes handed to ``ip`` while the next slice is made."""
_LEVEL = operator.attrgetter("level")


@dataclass
class _Journal:
    """What one transaction changed, so it can be undone."""

    records: list[tuple[RKey, Record | None]] = field(default_factory=list)
    objects: list[tuple[KKey, KObj | None]] = field(default_factory=list)
    tunnel_source: ipaddress.IPv6Address | None = None

    def mark(self) -> tuple[int, int, ipaddress.IPv6Address | None]:
        return len(self.records), len(self.objects), self.tunnel_source

    def split(self, mark: tuple[int, int, ipaddress.IPv6Address | None]) -> _Journal:
        """Take out what was journalled since ``mark``, as a journal of its own."""
        records, objects, tunnel_source = mark
        tail = _Journal(self.records[records:], self.objects[objects:], self.tunnel_source)
        del self.records[records:]
        del self.objects[objects:]
        self.tunnel_source = tunnel_source
        return tail

    def before(self) -> dict[KKey, KObj | None]:
        """Each touched kernel object as it was before the first change."""
        out: dict[KKey, KObj | None] = {}
        for kkey, old in self.objects:
            out.setdefault(kkey, old)
        return out


class KernelDataplane:
    """The kernel data plane of one switch.

    ``netns`` is a named network namespace, or None for the namespace switchd runs in.
    ``ports`` maps P4 port numbers to interface names. Everything installed carries the
    route protocol ``protocol``, so it can be listed, rebuilt and flushed.
    """

    def __init__(
        self, netns: str | None, ports: dict[int, str], protocol: int = DEFAULT_PROTOCOL
    ) -> None:
        self.ip = IpRoute(netns)
        self.netns = netns
        self.protocol = protocol
        self.port_names = dict(ports)
        self.port_by_name = {v: k for k, v in ports.items()}
        self.schema: Schema | None = None
        self.records: dict[RKey, Record] = {}
        self.rdeps: dict[RKey, set[RKey]] = {}
        self.objects: dict[KKey, KObj] = {}
        self.ports_up: set[int] = set()
        self._ports_view: Ports | None = None
        self.tunnel_source: ipaddress.IPv6Address | None = None
        self._lock = threading.RLock()
        self._counter_cache: tuple[float, dict[Prefix, CounterValue]] | None = None
        self._monitor: threading.Thread | None = None
        self._stop = threading.Event()
        self._watching = threading.Event()
        self._refresh_ports()

    # -- the Dataplane protocol -----------------------------------------------------------

    def set_pipeline(self, p4info: p4i.P4Info) -> None:
        with self._lock:
            self.schema = Schema.from_p4info(p4info)
            self.flush()
            self._install_base()

    def apply(self, changes: list[Change]) -> list[DataplaneError | None]:
        if self.schema is None:
            return [DataplaneError("FAILED_PRECONDITION", "no pipeline")] * len(changes)
        with self._lock:
            self._counter_cache = None
            results = self._apply_together(changes)
            if results is not None:
                return results
            # Something in the batch failed in the kernel: it was undone; now apply the
            # changes one by one so that each gets its own result.
            return [self._apply_alone(change) for change in changes]

    def direct_counter(self, entry: p4r.TableEntry) -> CounterValue | None:
        if self.schema is None or self.schema.table_by_id.get(entry.table_id) != "my_sid":
            return None
        record = decode(self.schema, p4r.Entity(table_entry=entry))
        assert isinstance(record, MySid)
        now = time.monotonic()
        if self._counter_cache is None or now - self._counter_cache[0] > 0.05:
            self._counter_cache = (now, self._read_counters())
        return self._counter_cache[1].get(record.prefix, CounterValue(0, 0))

    def recover(self, p4info: p4i.P4Info) -> list[p4r.Entity]:
        """Take the pipeline a previous switchd committed, without flushing, and read what
        it installed back from the kernel."""
        with self._lock:
            self.schema = Schema.from_p4info(p4info)
            self._install_base()
            records = self._read_back()
            self.records = {record_key(r): r for r in records}
            self.rdeps = {}
            for key, record in self.records.items():
                self._link_deps(key, record)
            self.objects = {}
            self._render_all()
            # Make the kernel exactly the rendering (re-add what a dead port removed).
            errors = self._transition(dict.fromkeys(self.objects))
            if errors:
                log.error("re-installing recovered state failed: %s", errors[:3])
            return [encode(self.schema, r) for r in records]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Watch the ports: a port that comes back gets its next hops re-installed."""
        if self._monitor is None:
            self._watching.clear()
            self._monitor = threading.Thread(
                target=self._watch_ports, name="switchd-ports", daemon=True
            )
            self._monitor.start()
            # Return once events are flowing, so that no port change can fall between.
            if not self._watching.wait(timeout=10):
                raise RuntimeError("switchd: the port watch did not start within 10 s")

    def stop(self) -> None:
        """Stop watching ports, and end the ``ip -batch`` processes (a later write starts
        them again). The watch thread blocks in netlink until the next event (pyroute2
        buffers messages, so a select() timeout would miss some): it is a daemon thread and
        ends at that event or with the process; stop() does not wait for it."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=0.05)
            self._monitor = None
        with self._lock:
            self.ip.close()

    def flush(self) -> None:
        """Remove everything this switchd installed (its protocol number, its tables)."""
        with self._lock:
            lines = [
                f"route flush table {TABLE_MY_SID} proto {self.protocol}",
                f"route flush table {TABLE_HEADEND} proto {self.protocol}",
                f"route flush table {TABLE_MAIN} proto {self.protocol}",
            ]
            self.ip.batch(lines, force=True)
            # Groups first: a nexthop in a group cannot go before its group.
            self.ip.batch([f"nexthop flush proto {self.protocol}"], force=True, family6=False)
            neighbours = self.ip.json("-6", "neigh", "show", "nud", "permanent")
            self.ip.batch(
                [
                    f"neigh del {nb['dst']} dev {nb['dev']}"
                    for nb in neighbours
                    if nexthop_of_neighbour(nb["dst"]) is not None
                ],
                force=True,
            )
            self.ip.nft("delete table inet srv6lab\n")
            self.records.clear()
            self.rdeps.clear()
            self.objects.clear()

    # -- internals ------------------------------------------------------------------------

    def _install_base(self) -> None:
        links = {link["ifname"] for link in self.ip.json("link", "show")}
        if SID_DEV not in links:
            failures = self.ip.batch(
                [
                    f"link add {SID_DEV} type veth peer name {SID_DEV_PEER}",
                    f"link set dev {SID_DEV} addrgenmode none",
                    # encapsulation adds 40+ bytes: a full-size host packet must still pass
                    # the forwarding MTU check of the encap nexthops on this device
                    f"link set dev {SID_DEV} mtu {SID_DEV_MTU}",
                    f"link set dev {SID_DEV_PEER} mtu {SID_DEV_MTU}",
                    f"link set dev {SID_DEV_PEER} addrgenmode none",
                    f"link set dev {SID_DEV} up",
                    f"link set dev {SID_DEV_PEER} up",
                ],
                force=False,
                family6=False,
            )
            if failures:
                raise DataplaneError("INTERNAL", f"cannot create {SID_DEV}: {failures[0]}")
        # Idempotent, and never a moment without the rules: a restarted switchd must not
        # disturb forwarding.
        have = {(r.get("priority"), str(r.get("table"))) for r in self.ip.json("-6", "rule")}
        missing = [(p, t) for p, t in RULES if (p, str(t)) not in have]
        for pref, table in missing:
            self.ip.batch([f"rule del pref {pref}"], force=True)
            self.ip.batch([f"rule add pref {pref} lookup {table}"], force=False)
        if self.ip.nft_json("list", "table", "inet", "srv6lab") is None:
            err = self.ip.nft(NFT_SETUP)
            if err:
                raise DataplaneError("INTERNAL", f"nftables setup failed: {err}")

    def _ports(self) -> Ports:
        """What render() knows of the ports; rebuilt only after a port changed."""
        if self._ports_view is None:
            self._ports_view = Ports(self.port_names, frozenset(self.ports_up))
        return self._ports_view

    def _refresh_ports(self) -> None:
        up: set[int] = set()
        for link in self.ip.json("link", "show"):
            port = self.port_by_name.get(link.get("ifname", ""))
            if (
                port is not None
                and "LOWER_UP" in link.get("flags", [])
                and "UP" in link.get("flags", [])
            ):
                up.add(port)
        self.ports_up = up
        self._ports_view = None

    def _link_deps(self, key: RKey, record: Record) -> None:
        rdeps = self.rdeps
        for dep in dependencies(record):
            users = rdeps.get(dep)
            if users is None:
                rdeps[dep] = {key}
            else:
                users.add(key)

    def _unlink_deps(self, key: RKey, record: Record) -> None:
        for dep in dependencies(record):
            users = self.rdeps.get(dep)
            if users is not None:
                users.discard(key)
                if not users:
                    del self.rdeps[dep]

    def _set_record(self, key: RKey, record: Record | None, journal: _Journal) -> None:
        old = self.records.get(key)
        journal.records.append((key, old))
        if old is not None:
            self._unlink_deps(key, old)
            del self.records[key]
        if record is not None:
            self.records[key] = record
            self._link_deps(key, record)

    def _rerender(self, start: RKey, journal: _Journal) -> None:
        """Re-render a record and, transitively, those that depend on it; the journal
        records every object that changed."""
        ports = self._ports()
        if start not in self.rdeps:
            # Nothing depends on it (every route): one object to render, no walk.
            self._render_one(start, ports, journal)
            return
        queue = deque([start])
        seen: set[RKey] = set()
        while queue:
            key = queue.popleft()
            if key in seen:
                continue
            seen.add(key)
            if self._render_one(key, ports, journal) or key == start:
                queue.extend(sorted(self.rdeps.get(key, ()), key=repr))

    def _render_one(self, key: RKey, ports: Ports, journal: _Journal) -> bool:
        """Render one record into the kernel objects; True (and journaled) if its object
        changed."""
        kkey = kernel_key(key)
        record = self.records.get(key)
        old = self.objects.get(kkey)
        new = (
            render(record, self.objects, self.records, ports, self.protocol)
            if record is not None
            else None
        )
        if new == old:
            return False
        journal.objects.append((kkey, old))
        if new is None:
            del self.objects[kkey]
        else:
            self.objects[kkey] = new
        return True

    def _write_route(self, key: RKey, route: Route | None, journal: _Journal) -> None:
        """_set_record() and _rerender() of a route (None: delete it), the most frequent
        change, in one: a route depends on one member or group, nothing depends on a route,
        and there is nothing to _check() in it."""
        records = self.records
        old = records.get(key)
        journal.records.append((key, old))
        if old is not None:
            self._unlink_deps(key, old)
            del records[key]
        kkey = kernel_key(key)
        objects = self.objects
        was = objects.get(kkey)
        new = None
        if route is not None:
            records[key] = route
            dep = route_dependency(route)
            users = self.rdeps.get(dep)
            if users is None:
                self.rdeps[dep] = {key}
            else:
                users.add(key)
            new = render(route, objects, records, self._ports(), self.protocol)
        if new != was:
            journal.objects.append((kkey, was))
            if new is None:
                del objects[kkey]
            else:
                objects[kkey] = new

    def _process(self, change: Change, journal: _Journal) -> None:
        """Apply one change to the records and rendered objects (not yet the kernel)."""
        assert self.schema is not None
        route = route_of_change(self.schema, change)
        if route is not None:
            self._write_route(route[0], route[1], journal)
            return
        entity = change.after if change.after is not None else change.before
        assert entity is not None
        try:
            record = decode(self.schema, entity)
        except DataplaneError:
            if _is_default_reset(entity):
                return  # the kernel's "default action" is srv6.p4's: a miss falls through
            raise
        deleting = change.kind is ChangeKind.DELETE
        if not deleting:
            self._check(record)
        key = record_key(record)
        self._set_record(key, None if deleting else record, journal)
        self._rerender(key, journal)
        if not deleting and isinstance(record, SegmentList) and self.tunnel_source != record.src:
            journal.tunnel_source = record.src

    def _check(self, record: Record) -> None:
        """Refuse what the kernel cannot express, before anything is touched."""
        if isinstance(record, NextHop):
            if record.port not in self.port_names:
                raise DataplaneError(
                    "INVALID_ARGUMENT",
                    f"next_hop {record.nexthop_id}: port {record.port} does not exist "
                    f"(ports: {', '.join(map(str, sorted(self.port_names)))})",
                )
            if record.nexthop_id > 0xFFFF:
                raise DataplaneError("OUT_OF_RANGE", "nexthop_id must fit 16 bits")
        if isinstance(record, Group):
            for m in record.members:
                self._check_watch(record, m)
        if isinstance(record, SegmentList):
            others = {
                r.src
                for r in self.records.values()
                if isinstance(r, SegmentList) and r.member_id != record.member_id
            }
            if others and record.src not in others:
                raise DataplaneError(
                    "INVALID_ARGUMENT",
                    f"src_addr {record.src}: the kernel has one SRv6 tunnel source per switch "
                    f"(ip sr tunsrc), already {others.pop()}",
                )
        if isinstance(record, HostPort) and record.port not in self.port_names:
            raise DataplaneError("INVALID_ARGUMENT", f"host_port: no port {record.port}")

    def _check_watch(self, group: Group, member: GroupMember) -> None:
        if member.watch_port is None or group.profile != "ecmp_selector":
            return
        m = self.records.get(("member", "ecmp_selector", member.member_id))
        if isinstance(m, EcmpMember):
            nh = self.records.get(("next_hop", m.nexthop_id))
            if isinstance(nh, NextHop) and nh.port != member.watch_port:
                raise DataplaneError(
                    "INVALID_ARGUMENT",
                    f"group {group.group_id} member {member.member_id}: watch_port "
                    f"{member.watch_port} is not its egress port {nh.port}; the kernel watches "
                    "a member's own egress port",
                )

    @staticmethod
    def _ordered(objs: Any) -> list[KObj]:
        return sorted(objs, key=_LEVEL)

    def _transition(
        self, before: dict[KKey, KObj | None], tunnel_source: ipaddress.IPv6Address | None = None
    ) -> list[str]:
        """Take the kernel from ``before`` (the old objects of the touched keys) to the
        current objects: replaces bottom-up, then deletes top-down. Returns the failures
        that matter."""
        adds: list[KObj] = []
        dels: list[KObj] = []
        objects = self.objects
        for kkey, old in before.items():
            new = objects.get(kkey)
            if new is not None:
                if new != old:
                    adds.append(new)
            elif old is not None:
                dels.append(old)
        runs: list[tuple[bool, list[str]]] = []  # (needs -6, lines)

        def emit(family6: bool, lines: tuple[str, ...]) -> None:
            if runs and runs[-1][0] == family6:
                runs[-1][1].extend(lines)
            else:
                runs.append((family6, list(lines)))

        if tunnel_source is not None:
            emit(True, (f"sr tunsrc set {tunnel_source}",))
        for obj in self._ordered(adds):
            if not obj.nft:
                emit(obj.family6, obj.add)
        for obj in reversed(self._ordered(dels)):
            if not obj.nft:
                emit(False, obj.delete)
        nft_lines = [line for o in adds if o.nft for line in o.add]
        nft_lines += [line for o in dels if o.nft for line in o.delete]
        errors: list[str] = []
        for family6, lines in runs:
            for failure in self.ip.batch(lines, force=True, family6=family6):
                if not self._ignorable(lines, failure):
                    errors.append(f"{_line(lines, failure)}: {failure.message}")
        if nft_lines:
            err = self.ip.nft("\n".join(nft_lines) + "\n")
            if err:
                errors.append(f"nft: {err}")
        if tunnel_source is not None and not errors:
            self.tunnel_source = tunnel_source
        return errors

    @staticmethod
    def _ignorable(lines: list[str], failure: BatchFailure) -> bool:
        text = _line(lines, failure)
        deleting = " del " in f" {text} " or text.startswith("delete")
        return deleting and any(s in failure.message for s in IGNORABLE_ON_DELETE)

    def _apply_routes(self, routes: list[tuple[RKey, Route | None]]) -> bool:
        """Changes of routes only, each of its own prefix (the server's runs are), the write
        path's common case: ``ip`` gets their lines in slices of :data:`STREAM_SLICE` as they
        are made, and applies one while the next is made (each route is one kernel object
        that nothing else in the batch needs, so any order will do). False when the kernel
        refused some: everything is undone, as by _apply_together."""
        journal = _Journal()
        objects = self.objects
        sent: list[str] = []
        done = 0
        for n, (key, route) in enumerate(routes, 1):
            self._write_route(key, route, journal)
            if n % STREAM_SLICE == 0:
                lines = _route_lines(journal.objects[done:], objects)
                done = len(journal.objects)
                self.ip.feed(lines)
                sent += lines
        lines = _route_lines(journal.objects[done:], objects)
        failures = self.ip.batch(lines)
        if not failures:
            return True
        sent += lines
        errors = [
            f"{_line(sent, failure)}: {failure.message}"
            for failure in failures
            if not self._ignorable(sent, failure)
        ]
        if not errors:
            return True
        log.warning("kernel refused part of a batch, retrying one by one: %s", errors[:3])
        self._undo(journal)
        return False

    def _apply_together(self, changes: list[Change]) -> list[DataplaneError | None] | None:
        assert self.schema is not None
        schema = self.schema
        routes = [route_of_change(schema, change) for change in changes]
        if all(route is not None for route in routes):
            only = cast(list[tuple[RKey, Route | None]], routes)
            if len({key for key, _ in only}) == len(only):
                return [None] * len(changes) if self._apply_routes(only) else None
        journal = _Journal()
        results: list[DataplaneError | None] = []
        for change, route in zip(changes, routes, strict=True):
            if route is not None:  # (a route's change cannot fail before the kernel)
                self._write_route(route[0], route[1], journal)
                results.append(None)
                continue
            mark = journal.mark()
            try:
                self._process(change, journal)
            except DataplaneError as exc:
                self._undo(journal.split(mark), touch_kernel=False)
                results.append(exc)
                continue
            results.append(None)
        errors = self._transition(journal.before(), journal.tunnel_source)
        if not errors:
            return results
        log.warning("kernel refused part of a batch, retrying one by one: %s", errors[:3])
        self._undo(journal)
        return None

    def _apply_alone(self, change: Change) -> DataplaneError | None:
        journal = _Journal()
        try:
            self._process(change, journal)
        except DataplaneError as exc:
            self._undo(journal, touch_kernel=False)
            return exc
        errors = self._transition(journal.before(), journal.tunnel_source)
        if errors:
            self._undo(journal)
            return DataplaneError("INTERNAL", "kernel refused: " + "; ".join(errors))
        return None

    def _undo(self, journal: _Journal, touch_kernel: bool = True) -> None:
        """Put records and objects back as they were before the journal, and the kernel
        too (best effort) when it was touched."""
        current = {kkey: self.objects.get(kkey) for kkey in journal.before()}
        for kkey, old in reversed(journal.objects):
            if old is None:
                self.objects.pop(kkey, None)
            else:
                self.objects[kkey] = old
        for key, old_record in reversed(journal.records):
            now = self.records.get(key)
            if now is not None:
                self._unlink_deps(key, now)
                del self.records[key]
            if old_record is not None:
                self.records[key] = old_record
                self._link_deps(key, old_record)
        if touch_kernel:
            errors = self._transition(current)
            if errors:
                log.error("could not fully undo a failed write: %s", errors[:3])

    def _render_all(self) -> None:
        """Render every record, dependencies first."""
        order = {NextHop: 0, SegmentList: 0, HostPort: 0, SidBlock: 0, EcmpMember: 1, Group: 2}
        for record in sorted(self.records.values(), key=lambda r: order.get(type(r), 3)):
            obj = render(record, self.objects, self.records, self._ports(), self.protocol)
            if obj is not None:
                self.objects[obj.key] = obj

    # -- ports ------------------------------------------------------------------------------

    def port_changed(self, ifname: str, up: bool) -> None:
        """A port went up or down: re-render what depends on its next hops."""
        port = self.port_by_name.get(ifname)
        if port is None:
            return
        with self._lock:
            if (port in self.ports_up) == up:
                return
            if up:
                self.ports_up.add(port)
            else:
                self.ports_up.discard(port)
            self._ports_view = None
            # ip caches interface indexes by name, and a port that comes back may be a
            # new interface of the same name.
            self.ip.restart()
            if self.schema is None:
                return
            journal = _Journal()
            starts = [
                key
                for key, record in self.records.items()
                if isinstance(record, NextHop) and record.port == port
            ]
            for key in starts:
                self._rerender(key, journal)
            before = journal.before()
            if up:
                # The kernel deleted everything on the port when it went down, whatever we
                # believed: install the port's next hops and all that hangs off them again.
                for key in self._closure(starts):
                    kkey = kernel_key(key)
                    if kkey in self.objects:
                        before[kkey] = None
            else:
                # The kernel flushed what hung on the port as it went down (its neighbours,
                # the next hops on it, groups left empty, routes that used them): nothing
                # of that is deleted again (ip exits at an ENOENT on a neighbour delete,
                # even with -force).
                for kkey in before:
                    if kkey not in self.objects:
                        before[kkey] = None
            errors = self._transition(before)
            if errors:
                log.error("re-installing after %s %s failed: %s", ifname, up, errors[:3])
            log.info(
                "port %s (%d) %s: %d kernel objects changed",
                ifname,
                port,
                "up" if up else "down",
                len(before),
            )

    def _closure(self, starts: list[RKey]) -> set[RKey]:
        """The records and, transitively, all records that depend on them."""
        seen: set[RKey] = set()
        queue = list(starts)
        while queue:
            key = queue.pop()
            if key not in seen:
                seen.add(key)
                queue.extend(self.rdeps.get(key, ()))
        return seen

    def _watch_ports(self) -> None:
        from pyroute2 import IPRoute, NetNS
        from pyroute2.netlink.rtnl import RTMGRP_LINK

        ipr: Any = NetNS(self.netns) if self.netns else IPRoute()
        try:
            # Link events only: with every rtnl group, each route this switchd installs
            # came back as a message that pyroute2 parsed in Python, under the GIL.
            ipr.bind(groups=RTMGRP_LINK)
            # Events before bind() were missed: catch up with what the ports are now.
            before = set(self.ports_up)
            self._refresh_ports()
            now, self.ports_up = self.ports_up, before
            self._ports_view = None
            for port in before ^ now:
                self.port_changed(self.port_names[port], port in now)
            self._watching.set()
            while not self._stop.is_set():
                for msg in ipr.get():
                    if msg.get("event") not in ("RTM_NEWLINK", "RTM_DELLINK"):
                        continue
                    name = msg.get_attr("IFLA_IFNAME")
                    flags = msg["flags"]
                    up = bool(flags & 0x1) and bool(flags & 0x10000)  # IFF_UP, IFF_LOWER_UP
                    if msg["event"] == "RTM_DELLINK":
                        up = False
                    self.port_changed(name, up)
        except Exception:
            if not self._stop.is_set():
                log.exception("port watch stopped")
        finally:
            ipr.close()

    # -- reading back -----------------------------------------------------------------------

    def _read_counters(self) -> dict[Prefix, CounterValue]:
        out: dict[Prefix, CounterValue] = {}
        for route in self.ip.json("-6", "-s", "route", "show", "table", str(TABLE_MY_SID)):
            stats = route.get("stats64")
            if stats:
                out[_network(route["dst"])] = CounterValue(stats["packets"], stats["bytes"])
        return out

    def _read_back(self) -> list[Record]:
        assert self.schema is not None
        records: list[Record] = []
        macs: dict[str, str] = {
            nb["dst"]: nb.get("lladdr", "")
            for nb in self.ip.json("-6", "neigh", "show", "nud", "permanent")
        }
        tunsrc = ipaddress.IPv6Address("::")
        nexthops = self.ip.json("nexthop", "show", "proto", str(self.protocol))
        link_macs = {link["ifname"]: link.get("address", "") for link in self.ip.json("link")}
        for nh in nexthops:
            kid = nh["id"]
            if "group" in nh:
                base, profile = (
                    (ECMP_GROUP_BASE, "ecmp_selector")
                    if kid < HEADEND_GROUP_BASE
                    else (HEADEND_GROUP_BASE, "headend_selector")
                )
                member_base = MEMBER_BASE if profile == "ecmp_selector" else HEADEND_MEMBER_BASE
                members = tuple(
                    GroupMember(m["id"] - member_base, m.get("weight", 1), None)
                    for m in nh["group"]
                )
                records.append(Group(profile, kid - base, members))
            elif "encap" in nh and kid >= HEADEND_MEMBER_BASE:
                records.append(
                    SegmentList(
                        member_id=kid - HEADEND_MEMBER_BASE,
                        reduced=nh.get("mode") == "encap.red",
                        src=tunsrc,
                        segments=tuple(ipaddress.IPv6Address(s) for s in nh.get("segs", [])),
                    )
                )
            elif kid >= MEMBER_BASE:
                n = nexthop_of_neighbour(nh.get("gateway", ""))
                if n is not None:
                    records.append(EcmpMember(kid - MEMBER_BASE, n))
            else:
                dev = nh.get("dev", "")
                mac = macs.get(nh.get("gateway", ""), "")
                if dev in self.port_by_name and mac:
                    records.append(
                        NextHop(
                            kid,
                            self.port_by_name[dev],
                            bytes.fromhex(link_macs.get(dev, "").replace(":", "")),
                            bytes.fromhex(mac.replace(":", "")),
                        )
                    )
        for table, name in ((TABLE_MAIN, "routing_v6"), (TABLE_HEADEND, "srv6_headend")):
            for route in self.ip.json(
                "-6", "route", "show", "table", str(table), "proto", str(self.protocol)
            ):
                kid = route.get("nhid")
                if kid is None:
                    continue
                prefix = _network(route["dst"])
                kind, ident = _kernel_id(kid)
                if kind == "group":
                    records.append(Route(name, prefix, None, ident))
                elif kind == "member":
                    records.append(Route(name, prefix, ident, None))
        for route in self.ip.json(
            "-6", "route", "show", "table", str(TABLE_MY_SID), "proto", str(self.protocol)
        ):
            behaviour = _behaviour(route)
            if behaviour is None:
                continue
            n = nexthop_of_neighbour(route["nh6"]) if "nh6" in route else None
            records.append(MySid(_network(route["dst"]), behaviour, n))
        sets = self.ip.nft_json("list", "table", "inet", "srv6lab") or {"nftables": []}
        for item in sets["nftables"]:
            s = item.get("set")
            if not s:
                continue
            for elem in s.get("elem", []):
                if s["name"] == "host_ports" and elem in self.port_by_name:
                    records.append(HostPort(self.port_by_name[elem]))
                elif s["name"] == "internal_sids":
                    p = elem["prefix"] if isinstance(elem, dict) else {"addr": elem, "len": 128}
                    records.append(SidBlock(_network(f"{p['addr']}/{p['len']}")))
        src = self._tunnel_source()
        if src is not None:
            self.tunnel_source = src
            records = [
                SegmentList(r.member_id, r.reduced, src, r.segments)
                if isinstance(r, SegmentList)
                else r
                for r in records
            ]
        return records

    def _tunnel_source(self) -> ipaddress.IPv6Address | None:
        import subprocess

        cmd = ["ip", "sr", "tunsrc", "show"]
        if self.netns:
            cmd[1:1] = ["-n", self.netns]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.split()
        if len(out) >= 3 and out[0] == "tunsrc":
            addr = ipaddress.IPv6Address(out[2])
            return None if addr == ipaddress.IPv6Address("::") else addr
        return None


def _is_default_reset(entity: p4r.Entity) -> bool:
    """A write that sets a table's default entry back to the program's default: no action
    at all (P4Runtime's reset, as finsy's delete_all sends it)."""
    if entity.WhichOneof("entity") != "table_entry" or not entity.table_entry.is_default_action:
        return False
    return entity.table_entry.action.WhichOneof("type") is None


def _kernel_id(kid: int) -> tuple[str, int]:
    """A kernel nexthop id as ("next_hop" | "member" | "group", P4 id); see render.py."""
    if kid < MEMBER_BASE:
        return "next_hop", kid
    if kid < ECMP_GROUP_BASE:
        return "member", kid - MEMBER_BASE
    if kid < HEADEND_MEMBER_BASE:
        return "group", kid - ECMP_GROUP_BASE
    if kid < HEADEND_GROUP_BASE:
        return "member", kid - HEADEND_MEMBER_BASE
    return "group", kid - HEADEND_GROUP_BASE


def _network(text: str) -> Prefix:
    return Prefix.parse(text)


def _behaviour(route: dict[str, Any]) -> str | None:
    action = route.get("action")
    csid = "next-csid" in str(route.get("flavors", ""))
    if action == "End":
        return "usid_un" if csid else "end"
    if action == "End.X":
        return "usid_ua" if csid else "end_x"
    if action == "End.DT6":
        return "end_dt6"
    return None


def _route_lines(touched: list[tuple[KKey, KObj | None]], objects: dict[KKey, KObj]) -> list[str]:
    """The lines that take the kernel from the journalled old objects of routes (each touched
    once) to their current ones."""
    lines: list[str] = []
    for kkey, old in touched:
        new = objects.get(kkey)
        if new is not None:
            if new != old:
                lines.extend(new.add)
        elif old is not None:
            lines.extend(old.delete)
    return lines


def _line(lines: list[str], failure: BatchFailure) -> str:
    if 1 <= failure.line <= len(lines):
        return lines[failure.line - 1]
    return "?"
