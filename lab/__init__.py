"""The Mininet lab: switch and host nodes, topology builder, fault injection, traffic."""
