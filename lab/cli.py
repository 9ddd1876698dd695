"""The ``srv6lab`` command. Each role contributes its own subcommands (DESIGN.md): the
controller (``topology`` ...), switchd (``switchd``) and the lab (``lab``, ``bench``, ``demo``).
The lab is the top layer, so the assembly lives here; every handler imports what it needs
only when it runs, so ``srv6lab topology check`` never loads Mininet."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import controller.cli
import switchd.cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srv6lab",
        description="SRv6 lab controller: topologies, Mininet labs of SRv6 switches, "
        "and the controller that programs them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    controller.cli.register(sub)
    switchd.cli.register(sub)
    _register_lab(sub)
    return parser


def _register_lab(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from lab import bench_commands, commands, demo, fault_commands, parity

    commands.register(sub)
    fault_commands.register(_subcommands(sub.choices["lab"]))
    parity.register(_subcommands(sub.choices["lab"]))
    bench_commands.register(sub)
    demo.register(sub)


def _subcommands(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The subcommands of ``parser`` (``lab``), so other modules can add theirs."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError(f"{parser.prog} has no subcommands")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`srv6lab ... | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return rc


if __name__ == "__main__":
    sys.exit(main())
