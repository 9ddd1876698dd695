"""switchd: a P4Runtime switch on the Linux SRv6 data plane."""
