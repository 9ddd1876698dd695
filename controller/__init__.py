"""srv6lab control plane."""
