"""The kernel data plane: srv6.p4's tables realised with Linux SRv6 (seg6, seg6local,
nexthop objects and groups, nftables). See render.py for the mapping."""

from switchd.kernel.dataplane import DEFAULT_PROTOCOL, KernelDataplane

__all__ = ["DEFAULT_PROTOCOL", "KernelDataplane"]
