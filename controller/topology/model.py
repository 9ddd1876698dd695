"""The immutable topology model: switches, hosts, links and the addressing plan.

Everything here is a frozen dataclass built once by :mod:`controller.topology.loader`.
The controller and the lab both read the same file and so derive the same model.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx


@dataclass(frozen=True, slots=True)
class Switch:
    name: str
    node_id: int
    plane: int | None
    locator: ipaddress.IPv6Network
    """The uN locator, ``<block>:<node id>::/48`` in F3216."""

    @property
    def usid(self) -> ipaddress.IPv6Network:
        """The uN SID is the locator itself: a /48 that ends in this node's 16-bit ID."""
        return self.locator


@dataclass(frozen=True, slots=True)
class Interface:
    """One end of a link: a named port on a node with its L2 and link-local address."""

    node: str
    name: str
    port: int
    mac: str
    link_local: ipaddress.IPv6Address

    @property
    def endpoint(self) -> str:
        return f"{self.node}:{self.name}"


@dataclass(frozen=True, slots=True)
class Link:
    """A point-to-point link between two nodes (switch-switch or host-switch).

    ``a`` is always the end that was written first in the file; for host links it is the
    host's NIC.
    """

    name: str
    a: Interface
    b: Interface
    bandwidth_mbps: float
    plane: int | None
    kind: str  # "fabric" (switch-switch) or "access" (host-switch)
    ua_sid_a: ipaddress.IPv6Network | None = None
    """uA SID at ``a`` that forwards over this link (switch ends only)."""
    ua_sid_b: ipaddress.IPv6Network | None = None

    def ends(self) -> tuple[str, str]:
        return (self.a.node, self.b.node)

    def interface_at(self, node: str) -> Interface:
        if node == self.a.node:
            return self.a
        if node == self.b.node:
            return self.b
        raise KeyError(f"link {self.name} does not touch {node}")

    def peer_of(self, node: str) -> Interface:
        if node == self.a.node:
            return self.b
        if node == self.b.node:
            return self.a
        raise KeyError(f"link {self.name} does not touch {node}")

    def ua_sid_at(self, node: str) -> ipaddress.IPv6Network | None:
        return self.ua_sid_a if node == self.a.node else self.ua_sid_b


@dataclass(frozen=True, slots=True)
class Nic:
    """A host NIC: its prefix and address, the switch it attaches to, and its gateway."""

    host: str
    index: int
    switch: str
    interface: Interface
    prefix: ipaddress.IPv6Network
    address: ipaddress.IPv6Address
    gateway: ipaddress.IPv6Address
    """The link-local address of the switch port it attaches to."""
    plane: int | None
    link: str


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    host_id: int
    gpu: bool
    nics: tuple[Nic, ...]

    @property
    def address(self) -> ipaddress.IPv6Address:
        """The host's primary address (its first NIC)."""
        return self.nics[0].address


@dataclass(frozen=True, slots=True)
class Addressing:
    usid_block: ipaddress.IPv6Network
    host_block: ipaddress.IPv6Network


@dataclass(frozen=True)
class Topology:
    name: str
    description: str
    source: str
    addressing: Addressing
    switches: tuple[Switch, ...]
    hosts: tuple[Host, ...]
    links: tuple[Link, ...]
    _index: dict[str, Switch | Host] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for sw in self.switches:
            self._index[sw.name] = sw
        for host in self.hosts:
            self._index[host.name] = host

    # -- lookups ---------------------------------------------------------------------------

    def node(self, name: str) -> Switch | Host:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"no node named {name!r} in topology {self.name}") from None

    def switch(self, name: str) -> Switch:
        node = self.node(name)
        if not isinstance(node, Switch):
            raise KeyError(f"{name!r} is a host, not a switch")
        return node

    def host(self, name: str) -> Host:
        node = self.node(name)
        if not isinstance(node, Host):
            raise KeyError(f"{name!r} is a switch, not a host")
        return node

    def is_switch(self, name: str) -> bool:
        return isinstance(self._index.get(name), Switch)

    def link(self, x: str, y: str) -> Link:
        """The link between two nodes (either order), or by its name ``x-y``."""
        for link in self.links:
            if {link.a.node, link.b.node} == {x, y}:
                return link
        raise KeyError(f"no link between {x} and {y}")

    def link_by_name(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise KeyError(f"no link named {name!r}")

    def links_of(self, node: str) -> Iterator[Link]:
        return (link for link in self.links if node in (link.a.node, link.b.node))

    def interfaces_of(self, node: str) -> list[Interface]:
        return sorted(
            (link.interface_at(node) for link in self.links_of(node)), key=lambda i: i.port
        )

    @property
    def fabric_links(self) -> tuple[Link, ...]:
        return tuple(link for link in self.links if link.kind == "fabric")

    @property
    def access_links(self) -> tuple[Link, ...]:
        return tuple(link for link in self.links if link.kind == "access")

    @property
    def gpu_hosts(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.gpu)

    # -- graph -----------------------------------------------------------------------------

    @cached_property
    def graph(self) -> nx.Graph:
        """An undirected networkx graph: nodes carry ``kind``; edges carry ``link``,
        ``bandwidth`` (Mbit/s), ``plane`` and ``weight`` (1 per hop)."""
        g = nx.Graph(name=self.name)
        for sw in self.switches:
            g.add_node(sw.name, kind="switch", node_id=sw.node_id, plane=sw.plane)
        for host in self.hosts:
            g.add_node(host.name, kind="host", host_id=host.host_id, gpu=host.gpu)
        for link in self.links:
            g.add_edge(
                link.a.node,
                link.b.node,
                link=link.name,
                bandwidth=link.bandwidth_mbps,
                plane=link.plane,
                weight=1,
            )
        return g

    def summary(self) -> str:
        gpus = len(self.gpu_hosts)
        return (
            f"{self.name}: {len(self.switches)} switches, {len(self.hosts)} hosts "
            f"({gpus} GPU), {len(self.fabric_links)} fabric links, "
            f"{len(self.access_links)} host links"
        )
