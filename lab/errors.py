"""The lab's one exception type (and the one case callers treat apart: a lab already runs)."""

from __future__ import annotations


class LabError(Exception):
    """The lab could not do what was asked. The message says what and why, in terms a
    network engineer can act on (a node, an interface, a command and its output)."""


class LabBusy(LabError):
    """Another lab is running: only one lab runs at a time on a machine."""
