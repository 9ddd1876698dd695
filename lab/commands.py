"""The lab's ``srv6lab`` subcommands: ``lab``, ``bench``, ``demo``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Placeholder until the lab commands land."""
