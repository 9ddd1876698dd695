"""Load a topology file into the immutable model, validating it strictly.

The schema is documented in ``topologies/README.md``. Validation collects every problem
(unknown key, wrong type, duplicate name or id, dangling link end, self-loop, host without
a NIC, bad bandwidth, bad address override) and raises one :class:`TopologyError` that
lists them all, each naming file, line and field. A file with any problem is rejected whole.

The addressing plan (DESIGN.md, "Addressing"):

- uSID block ``fcbb:bb00::/32``; switch with node ID N has the uN locator ``<block>:N::/48``;
- the uA SID of switch port P is the node-local uSID ``<block>:(0xE000+P)::/48`` (F3216 LIB);
- host with ID H, NIC n lives in ``<host block>:H:n::/64`` with address ``::1`` there;
- every interface has a fixed MAC and link-local address derived from node ID and port, so
  link next hops are known before anything runs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.topology.model import (
    Addressing,
    Host,
    Interface,
    Link,
    Nic,
    Switch,
    Topology,
)
from controller.topology.yamlsrc import Document, Problem, parse
from controller.topology.yamlsrc import Path as FieldPath

DEFAULT_USID_BLOCK = "fcbb:bb00::/32"
DEFAULT_HOST_BLOCK = "2001:db8::/32"
DEFAULT_BANDWIDTH_MBPS = 1000.0
MAX_BANDWIDTH_MBPS = 100_000.0
UA_BASE = 0xE000
MAX_GLOBAL_NODE_ID = 0xDFFF  # 0xE000-0xFFFF is the local (uA) range of F3216
MAX_PORT = 255
IFNAMSIZ = 15
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class TopologyError(ValueError):
    """A topology file is invalid. ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        head = f"{len(problems)} problem(s) in topology" if len(problems) > 1 else "bad topology"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))


def load(path: str | Path) -> Topology:
    """Read and validate a topology file. Raises :class:`TopologyError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError([Problem(str(p), None, (), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise TopologyError([Problem(str(p), None, (), "not a UTF-8 text file")]) from None
    return loads(text, source=str(p))


def loads(text: str, source: str = "<string>") -> Topology:
    doc = parse(text, source)
    if doc.problems:
        raise TopologyError(doc.problems)
    topo = _Builder(doc).build()
    if doc.problems:
        raise TopologyError(doc.problems)
    assert topo is not None
    return topo


# -- schema helpers ---------------------------------------------------------------------------

_TOP_KEYS = {"name", "description", "addressing", "defaults", "switches", "hosts", "links"}
_ADDRESSING_KEYS = {"usid_block", "host_block"}
_DEFAULTS_KEYS = {"bandwidth", "host_bandwidth"}
_SWITCH_KEYS = {"name", "id", "plane"}
_HOST_KEYS = {"name", "id", "gpu", "nics"}
_NIC_KEYS = {"switch", "bandwidth", "prefix", "address", "port"}
_LINK_KEYS = {"ends", "bandwidth", "plane", "ports"}


@dataclass
class _PendingEnd:
    node: str
    port: int | None
    path: FieldPath


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc

    # small typed accessors; each records a problem and returns None on a bad value

    def mapping(self, value: Any, path: FieldPath, keys: set[str], required: set[str]) -> bool:
        if not isinstance(value, dict):
            self.doc.problem(path, f"must be a mapping, got {_kind(value)}")
            return False
        for key in value:
            if key not in keys:
                hint = _did_you_mean(key, keys)
                self.doc.problem((*path, key), f"unknown key {key!r}{hint}")
        for key in sorted(required - value.keys()):
            self.doc.problem(path, f"missing required key {key!r}")
        return True

    def sequence(self, value: Any, path: FieldPath) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.doc.problem(path, f"must be a list, got {_kind(value)}")
            return []
        return value

    def integer(self, value: Any, path: FieldPath, lo: int, hi: int, what: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.doc.problem(path, f"{what} must be an integer, got {_kind(value)} {value!r}")
            return None
        if not lo <= value <= hi:
            self.doc.problem(path, f"{what} {value} is out of range {lo}..{hi}")
            return None
        return value

    def bandwidth(self, value: Any, path: FieldPath) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.doc.problem(
                path, f"bandwidth must be a number of Mbit/s, got {_kind(value)} {value!r}"
            )
            return None
        if not 0 < value <= MAX_BANDWIDTH_MBPS:
            self.doc.problem(
                path, f"bandwidth {value} Mbit/s must be above 0 and at most {MAX_BANDWIDTH_MBPS:g}"
            )
            return None
        return float(value)

    def name(self, value: Any, path: FieldPath) -> str | None:
        if not isinstance(value, str):
            self.doc.problem(path, f"name must be a string, got {_kind(value)} {value!r}")
            return None
        if not NAME_RE.match(value):
            self.doc.problem(
                path,
                f"name {value!r} must start with a letter and hold only letters, digits and _",
            )
            return None
        return value

    def network(self, value: Any, path: FieldPath, prefixlen: int | None) -> Any:
        if not isinstance(value, str):
            self.doc.problem(path, f"must be an IPv6 prefix string, got {_kind(value)}")
            return None
        try:
            net = ipaddress.IPv6Network(value, strict=True)
        except ValueError as exc:
            self.doc.problem(path, f"not an IPv6 prefix: {exc}")
            return None
        if prefixlen is not None and net.prefixlen != prefixlen:
            self.doc.problem(path, f"must be a /{prefixlen}, got /{net.prefixlen}")
            return None
        return net

    # -- the build --------------------------------------------------------------------------

    def build(self) -> Topology | None:
        data = self.doc.data
        if not self.mapping(data, (), _TOP_KEYS, {"name", "switches"}):
            return None
        name = data.get("name")
        if not isinstance(name, str) or not name:
            self.doc.problem(("name",), "must be a non-empty string")
            name = "?"
        description = data.get("description", "")
        if not isinstance(description, str):
            self.doc.problem(("description",), "must be a string")
            description = ""

        addressing = self.addressing(data.get("addressing"))
        default_bw, host_bw = self.defaults(data.get("defaults"))
        switches = self.switches(data.get("switches"), addressing)
        by_name: dict[str, Switch] = {s.name: s for s in switches}

        # Host NICs and fabric links both take switch ports; reserve explicit ports first.
        host_specs = self.host_specs(data.get("hosts"), by_name, host_bw)
        link_specs = self.link_specs(data.get("links"), by_name, default_bw)
        seen_hosts = {spec["name"] for spec in host_specs}
        for dup in seen_hosts & by_name.keys():
            self.doc.problem(("hosts",), f"{dup!r} is both a switch and a host")

        ports = _PortAllocator(self.doc)
        for spec in host_specs:
            for nic in spec["nics"]:
                ports.reserve(nic["end"])
        for spec in link_specs:
            for end in spec["ends"]:
                ports.reserve(end)
        if self.doc.problems:
            return None
        for spec in host_specs:
            for nic in spec["nics"]:
                ports.assign(nic["end"])
        for spec in link_specs:
            for end in spec["ends"]:
                ports.assign(end)

        links: list[Link] = []
        hosts: list[Host] = []
        for spec in host_specs:
            nics: list[Nic] = []
            for index, nic in enumerate(spec["nics"]):
                sw = by_name[nic["end"].node]
                port = nic["end"].port
                assert port is not None
                host_if = _host_interface(spec["name"], spec["id"], index)
                sw_if = _switch_interface(sw, port, self.doc, nic["end"].path)
                prefix = nic["prefix"] or _host_prefix(addressing.host_block, spec["id"], index)
                address = nic["address"] or prefix[1]
                if address not in prefix:
                    self.doc.problem(
                        (*nic["path"], "address"), f"address {address} is not inside {prefix}"
                    )
                link_name = f"{spec['name']}-{sw.name}"
                if len(spec["nics"]) > 1:
                    link_name = f"{spec['name']}.{index}-{sw.name}"
                links.append(
                    Link(
                        name=link_name,
                        a=host_if,
                        b=sw_if,
                        bandwidth_mbps=nic["bandwidth"],
                        plane=sw.plane,
                        kind="access",
                        ua_sid_a=None,
                        ua_sid_b=_ua_sid(addressing.usid_block, port),
                    )
                )
                nics.append(
                    Nic(
                        host=spec["name"],
                        index=index,
                        switch=sw.name,
                        interface=host_if,
                        prefix=prefix,
                        address=address,
                        gateway=sw_if.link_local,
                        plane=sw.plane,
                        link=link_name,
                    )
                )
            hosts.append(Host(spec["name"], spec["id"], spec["gpu"], tuple(nics)))

        seen_links: dict[frozenset[str], FieldPath] = {}
        for spec in link_specs:
            end_a, end_b = spec["ends"]
            key = frozenset((end_a.node, end_b.node))
            if key in seen_links:
                self.doc.problem(
                    spec["path"],
                    f"a second link between {end_a.node} and {end_b.node} "
                    f"(first at line {self.doc.line(seen_links[key])}); parallel links "
                    "are not supported",
                )
                continue
            seen_links[key] = spec["path"]
            sw_a, sw_b = by_name[end_a.node], by_name[end_b.node]
            assert end_a.port is not None and end_b.port is not None
            plane = spec["plane"]
            if plane is None and sw_a.plane is not None and sw_a.plane == sw_b.plane:
                plane = sw_a.plane
            links.append(
                Link(
                    name=f"{sw_a.name}-{sw_b.name}",
                    a=_switch_interface(sw_a, end_a.port, self.doc, end_a.path),
                    b=_switch_interface(sw_b, end_b.port, self.doc, end_b.path),
                    bandwidth_mbps=spec["bandwidth"],
                    plane=plane,
                    kind="fabric",
                    ua_sid_a=_ua_sid(addressing.usid_block, end_a.port),
                    ua_sid_b=_ua_sid(addressing.usid_block, end_b.port),
                )
            )

        self.check_address_overlaps(hosts)
        if self.doc.problems:
            return None
        return Topology(
            name=name,
            description=description,
            source=self.doc.source,
            addressing=addressing,
            switches=tuple(switches),
            hosts=tuple(hosts),
            links=tuple(links),
        )

    def addressing(self, value: Any) -> Addressing:
        usid = ipaddress.IPv6Network(DEFAULT_USID_BLOCK)
        hostb = ipaddress.IPv6Network(DEFAULT_HOST_BLOCK)
        if value is None:
            return Addressing(usid, hostb)
        path: FieldPath = ("addressing",)
        if self.mapping(value, path, _ADDRESSING_KEYS, set()):
            if "usid_block" in value:
                net = self.network(value["usid_block"], (*path, "usid_block"), 32)
                usid = net or usid
            if "host_block" in value:
                net = self.network(value["host_block"], (*path, "host_block"), 32)
                hostb = net or hostb
            if usid.overlaps(hostb):
                self.doc.problem(path, f"usid_block {usid} overlaps host_block {hostb}")
        return Addressing(usid, hostb)

    def defaults(self, value: Any) -> tuple[float, float]:
        bw = DEFAULT_BANDWIDTH_MBPS
        if value is None:
            return bw, bw
        path: FieldPath = ("defaults",)
        host_bw: float | None = None
        if self.mapping(value, path, _DEFAULTS_KEYS, set()):
            if "bandwidth" in value:
                bw = self.bandwidth(value["bandwidth"], (*path, "bandwidth")) or bw
            if "host_bandwidth" in value:
                host_bw = self.bandwidth(value["host_bandwidth"], (*path, "host_bandwidth"))
        return bw, host_bw or bw

    def switches(self, value: Any, addressing: Addressing) -> list[Switch]:
        out: list[Switch] = []
        names: dict[str, FieldPath] = {}
        ids: dict[int, FieldPath] = {}
        items = self.sequence(value, ("switches",))
        if not items and value is not None:
            return out
        if not items:
            self.doc.problem(("switches",), "a topology needs at least one switch")
        for i, item in enumerate(items):
            path: FieldPath = ("switches", i)
            if not self.mapping(item, path, _SWITCH_KEYS, {"name", "id"}):
                continue
            name = self.name(item.get("name"), (*path, "name")) if "name" in item else None
            node_id = (
                self.integer(item["id"], (*path, "id"), 1, MAX_GLOBAL_NODE_ID, "node id")
                if "id" in item
                else None
            )
            plane = (
                self.integer(item["plane"], (*path, "plane"), 0, 255, "plane")
                if "plane" in item
                else None
            )
            if name is not None:
                if name in names:
                    self.doc.problem(
                        (*path, "name"),
                        f"duplicate switch name {name!r} (first at line "
                        f"{self.doc.line(names[name])})",
                    )
                    continue
                names[name] = (*path, "name")
            if node_id is not None:
                if node_id in ids:
                    self.doc.problem(
                        (*path, "id"),
                        f"duplicate node id {node_id} "
                        f"(first at line {self.doc.line(ids[node_id])})",
                    )
                    continue
                ids[node_id] = (*path, "id")
            if name is None or node_id is None:
                continue
            block = int(addressing.usid_block.network_address)
            locator = ipaddress.IPv6Network((block | (node_id << 80), 48))
            out.append(Switch(name=name, node_id=node_id, plane=plane, locator=locator))
        return out

    def host_specs(
        self, value: Any, switches: dict[str, Switch], host_bw: float
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        names: dict[str, FieldPath] = {}
        ids: dict[int, FieldPath] = {}
        for i, item in enumerate(self.sequence(value, ("hosts",))):
            path: FieldPath = ("hosts", i)
            if not self.mapping(item, path, _HOST_KEYS, {"name", "nics"}):
                continue
            name = self.name(item.get("name"), (*path, "name")) if "name" in item else None
            host_id = i + 1
            if "id" in item:
                host_id = self.integer(item["id"], (*path, "id"), 1, 0xFFFF, "host id") or 0
            gpu = item.get("gpu", False)
            if not isinstance(gpu, bool):
                self.doc.problem((*path, "gpu"), f"must be true or false, got {gpu!r}")
                gpu = False
            if name is not None:
                if name in names:
                    self.doc.problem(
                        (*path, "name"),
                        f"duplicate host name {name!r} (first at line "
                        f"{self.doc.line(names[name])})",
                    )
                    name = None
                else:
                    names[name] = (*path, "name")
            if host_id:
                if host_id in ids:
                    self.doc.problem(
                        (*path, "id") if "id" in item else path,
                        f"duplicate host id {host_id} "
                        f"(first at line {self.doc.line(ids[host_id])})",
                    )
                else:
                    ids[host_id] = (*path, "id") if "id" in item else path
            nics = self.nics(item.get("nics"), (*path, "nics"), switches, host_bw)
            if "nics" in item and item.get("nics") in (None, []):
                self.doc.problem((*path, "nics"), "a host needs at least one NIC")
            if name is None or not host_id:
                continue
            out.append({"name": name, "id": host_id, "gpu": gpu, "nics": nics})
        return out

    def nics(
        self, value: Any, path: FieldPath, switches: dict[str, Switch], host_bw: float
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        attached: dict[str, FieldPath] = {}
        for i, raw in enumerate(self.sequence(value, path)):
            nic_path: FieldPath = (*path, i)
            item = {"switch": raw} if isinstance(raw, str) else raw
            if not isinstance(raw, str) and not self.mapping(item, nic_path, _NIC_KEYS, {"switch"}):
                continue
            sw_name = item.get("switch")
            if sw_name is None:
                continue
            sw_path: FieldPath = (
                (*nic_path, "switch") if (*nic_path, "switch") in (self.doc.lines) else nic_path
            )
            if not isinstance(sw_name, str) or sw_name not in switches:
                self.doc.problem(
                    sw_path,
                    f"NIC attaches to unknown switch {sw_name!r}"
                    + _did_you_mean(str(sw_name), set(switches)),
                )
                continue
            if sw_name in attached:
                self.doc.problem(sw_path, f"a second NIC on the same switch {sw_name!r}")
                continue
            attached[sw_name] = sw_path
            bw = host_bw
            if "bandwidth" in item:
                bw = self.bandwidth(item["bandwidth"], (*nic_path, "bandwidth")) or host_bw
            port = None
            if "port" in item:
                port = self.integer(item["port"], (*nic_path, "port"), 1, MAX_PORT, "port")
            prefix = None
            if "prefix" in item:
                prefix = self.network(item["prefix"], (*nic_path, "prefix"), 64)
            address = None
            if "address" in item:
                try:
                    address = ipaddress.IPv6Address(str(item["address"]))
                except ValueError as exc:
                    self.doc.problem((*nic_path, "address"), f"not an IPv6 address: {exc}")
            out.append(
                {
                    "end": _PendingEnd(sw_name, port, sw_path),
                    "bandwidth": bw,
                    "prefix": prefix,
                    "address": address,
                    "path": nic_path,
                }
            )
        return out

    def link_specs(
        self, value: Any, switches: dict[str, Switch], default_bw: float
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, item in enumerate(self.sequence(value, ("links",))):
            path: FieldPath = ("links", i)
            if not self.mapping(item, path, _LINK_KEYS, {"ends"}):
                continue
            ends = item.get("ends")
            if ends is None:
                continue
            ends_path: FieldPath = (*path, "ends")
            if not isinstance(ends, list) or len(ends) != 2:
                self.doc.problem(ends_path, "must be a list of exactly two switch names")
                continue
            ok = True
            for j, end in enumerate(ends):
                if not isinstance(end, str) or end not in switches:
                    self.doc.problem(
                        (*ends_path, j),
                        f"link end {end!r} is not a switch"
                        + _did_you_mean(str(end), set(switches)),
                    )
                    ok = False
            if ok and ends[0] == ends[1]:
                self.doc.problem(ends_path, f"self-loop: both ends are {ends[0]!r}")
                ok = False
            bw = default_bw
            if "bandwidth" in item:
                got = self.bandwidth(item["bandwidth"], (*path, "bandwidth"))
                ok = ok and got is not None
                bw = got or bw
            plane = None
            if "plane" in item:
                plane = self.integer(item["plane"], (*path, "plane"), 0, 255, "plane")
            ports: list[int | None] = [None, None]
            if "ports" in item:
                raw = item["ports"]
                if not isinstance(raw, list) or len(raw) != 2:
                    self.doc.problem((*path, "ports"), "must be a list of two port numbers")
                    ok = False
                else:
                    ports = [
                        self.integer(p, (*path, "ports", j), 1, MAX_PORT, "port")
                        for j, p in enumerate(raw)
                    ]
            if not ok:
                continue
            out.append(
                {
                    "ends": [
                        _PendingEnd(ends[0], ports[0], (*ends_path, 0)),
                        _PendingEnd(ends[1], ports[1], (*ends_path, 1)),
                    ],
                    "bandwidth": bw,
                    "plane": plane,
                    "path": path,
                }
            )
        return out

    def check_address_overlaps(self, hosts: list[Host]) -> None:
        # Every NIC prefix is a /64 (validated), so two overlap exactly when they are equal.
        seen: dict[ipaddress.IPv6Network, str] = {}
        for host in hosts:
            for nic in host.nics:
                owner = seen.get(nic.prefix)
                if owner is not None:
                    self.doc.problem(
                        ("hosts",),
                        f"prefix {nic.prefix} of {host.name} NIC {nic.index} overlaps "
                        f"{nic.prefix} of {owner}",
                    )
                seen.setdefault(nic.prefix, f"{host.name} NIC {nic.index}")


class _PortAllocator:
    """Gives every switch end a port: explicit ones first, then 1, 2, ... in file order
    (host NICs before fabric links)."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.used: dict[str, dict[int, FieldPath]] = {}

    def reserve(self, end: _PendingEnd) -> None:
        if end.port is None:
            return
        used = self.used.setdefault(end.node, {})
        if end.port in used:
            self.doc.problem(
                end.path,
                f"port {end.port} of {end.node} is already used (line "
                f"{self.doc.line(used[end.port])})",
            )
            return
        used[end.port] = end.path

    def assign(self, end: _PendingEnd) -> None:
        used = self.used.setdefault(end.node, {})
        if end.port is not None:
            return
        port = 1
        while port in used:
            port += 1
        if port > MAX_PORT:
            self.doc.problem(end.path, f"{end.node} has more than {MAX_PORT} ports")
            return
        used[port] = end.path
        end.port = port


def _switch_interface(sw: Switch, port: int, doc: Document, path: FieldPath) -> Interface:
    name = f"{sw.name}-eth{port}"
    if len(name) > IFNAMSIZ:
        doc.problem(
            path,
            f"interface name {name!r} is longer than {IFNAMSIZ} characters; "
            "use a shorter switch name",
        )
    mac = f"02:53:{sw.node_id >> 8:02x}:{sw.node_id & 0xFF:02x}:00:{port:02x}"
    ll = ipaddress.IPv6Address(f"fe80::53:{sw.node_id:x}:{port:x}")
    return Interface(node=sw.name, name=name, port=port, mac=mac, link_local=ll)


def _host_interface(host: str, host_id: int, index: int) -> Interface:
    name = f"{host}-eth{index}"
    mac = f"02:48:{host_id >> 8:02x}:{host_id & 0xFF:02x}:00:{index:02x}"
    ll = ipaddress.IPv6Address(f"fe80::48:{host_id:x}:{index:x}")
    return Interface(node=host, name=name, port=index, mac=mac, link_local=ll)


def _host_prefix(block: ipaddress.IPv6Network, host_id: int, nic: int) -> ipaddress.IPv6Network:
    base = int(block.network_address) | (host_id << 80) | (nic << 64)
    return ipaddress.IPv6Network((base, 64))


def _ua_sid(block: ipaddress.IPv6Network, port: int) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network((int(block.network_address) | ((UA_BASE + port) << 80), 48))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _did_you_mean(word: str, choices: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
