"""Render a topology and its addressing plan as text, JSON-ready dicts, or Graphviz dot."""

from __future__ import annotations

from typing import Any

from controller.topology.model import Interface, Link, Topology


def _interface(i: Interface) -> dict[str, Any]:
    return {
        "node": i.node,
        "name": i.name,
        "port": i.port,
        "mac": i.mac,
        "link_local": str(i.link_local),
    }


def _link(link: Link) -> dict[str, Any]:
    return {
        "name": link.name,
        "kind": link.kind,
        "a": _interface(link.a),
        "b": _interface(link.b),
        "bandwidth_mbps": link.bandwidth_mbps,
        "plane": link.plane,
        "ua_sid_a": str(link.ua_sid_a) if link.ua_sid_a else None,
        "ua_sid_b": str(link.ua_sid_b) if link.ua_sid_b else None,
    }


def to_dict(topo: Topology) -> dict[str, Any]:
    return {
        "name": topo.name,
        "description": topo.description,
        "source": topo.source,
        "addressing": {
            "usid_block": str(topo.addressing.usid_block),
            "host_block": str(topo.addressing.host_block),
        },
        "switches": [
            {
                "name": s.name,
                "node_id": s.node_id,
                "plane": s.plane,
                "locator": str(s.locator),
            }
            for s in topo.switches
        ],
        "hosts": [
            {
                "name": h.name,
                "host_id": h.host_id,
                "gpu": h.gpu,
                "nics": [
                    {
                        "index": n.index,
                        "interface": n.interface.name,
                        "switch": n.switch,
                        "prefix": str(n.prefix),
                        "address": str(n.address),
                        "gateway": str(n.gateway),
                        "plane": n.plane,
                        "link": n.link,
                    }
                    for n in h.nics
                ],
            }
            for h in topo.hosts
        ],
        "links": [_link(link) for link in topo.links],
    }


def to_text(topo: Topology) -> str:
    out = [topo.summary()]
    if topo.description:
        out.append(f"  {topo.description}")
    out.append(
        f"  uSID block {topo.addressing.usid_block}, host block {topo.addressing.host_block}"
    )
    out.append("")
    out.append(f"{'switch':<12}{'node id':>8}  {'plane':>5}  uN locator")
    for s in topo.switches:
        plane = "-" if s.plane is None else str(s.plane)
        out.append(f"{s.name:<12}{f'0x{s.node_id:04x}':>8}  {plane:>5}  {s.locator}")
    out.append("")
    out.append(f"{'host':<12}{'gpu':<5}{'nic':<12}{'switch':<12}{'address':<24}gateway")
    for h in topo.hosts:
        for n in h.nics:
            out.append(
                f"{h.name:<12}{'yes' if h.gpu else 'no':<5}{n.interface.name:<12}"
                f"{n.switch:<12}{f'{n.address}/64':<24}{n.gateway}"
            )
    out.append("")
    out.append(f"{'link':<20}{'Mbit/s':>8}  {'a end':<14}{'b end':<14}uA SIDs (a, b)")
    for link in topo.links:
        ua = ""
        if link.ua_sid_a or link.ua_sid_b:
            ua = f"{link.ua_sid_a or '-'}, {link.ua_sid_b or '-'}"
        out.append(
            f"{link.name:<20}{link.bandwidth_mbps:>8g}  {link.a.name:<14}{link.b.name:<14}{ua}"
        )
    return "\n".join(out)


def to_dot(topo: Topology) -> str:
    out = [f'graph "{topo.name}" {{', "  node [fontname=Helvetica];"]
    for s in topo.switches:
        out.append(f'  "{s.name}" [shape=box, label="{s.name}\\n{s.locator}"];')
    for h in topo.hosts:
        shape = "doubleoctagon" if h.gpu else "ellipse"
        out.append(f'  "{h.name}" [shape={shape}, label="{h.name}\\n{h.address}"];')
    for link in topo.links:
        label = f"{link.bandwidth_mbps:g}M"
        out.append(
            f'  "{link.a.node}" -- "{link.b.node}" '
            f'[label="{label}", taillabel="{link.a.port}", headlabel="{link.b.port}"];'
        )
    out.append("}")
    return "\n".join(out)
