"""Topology model: files in ``topologies/`` loaded into an immutable model, a networkx graph
and the addressing plan of DESIGN.md."""

from controller.topology.loader import TopologyError, load, loads
from controller.topology.model import Addressing, Host, Interface, Link, Nic, Switch, Topology

__all__ = [
    "Addressing",
    "Host",
    "Interface",
    "Link",
    "Nic",
    "Switch",
    "Topology",
    "TopologyError",
    "load",
    "loads",
]
