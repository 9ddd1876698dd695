"""Fixtures of the BMv2 tier.

The tier runs where BMv2 is installed: ``simple_switch`` on PATH, or under
``$SRV6LAB_BMV2_PREFIX/bin``. Elsewhere (CI) every test of it is skipped with the reason; a
prefix named by the variable that lacks BMv2, or a ``simple_switch_CLI`` that no Python can
run, is an error instead, so that a broken installation never passes as a skip.

    PATH=/path/to/prefix/bin:$PATH .venv/bin/python -m pytest tests/bmv2
    SRV6LAB_BMV2_PREFIX=/path/to/prefix .venv/bin/python -m pytest tests/bmv2
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from tests.bmv2.bmv2_support import Bmv2Error, Bmv2Missing, Bmv2Tools, PcapSwitch, find_tools

StartPcapSwitch = Callable[[Path, Iterable[int]], PcapSwitch]


@pytest.fixture(scope="session")
def bmv2_tools() -> Bmv2Tools:
    """The BMv2 tools; skips the test when BMv2 is not installed."""
    try:
        return find_tools()
    except Bmv2Missing as missing:
        pytest.skip(str(missing))
    except Bmv2Error as broken:
        pytest.fail(f"BMv2 is unusable: {broken}", pytrace=False)


@pytest.fixture(scope="module")
def start_pcap_switch(
    bmv2_tools: Bmv2Tools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartPcapSwitch]:
    """``start(program, ports)`` starts ``simple_switch --use-files`` on the BMv2 JSON
    ``program`` in a fresh temporary directory, with a Thrift port of its own, and returns
    it once its CLI answers. Every switch started is stopped when the module ends, also
    when a test failed."""
    switches: list[PcapSwitch] = []

    def start(program: Path, ports: Iterable[int]) -> PcapSwitch:
        switch = PcapSwitch(bmv2_tools, program, tmp_path_factory.mktemp("bmv2-"), ports)
        switches.append(switch)
        switch.start()
        return switch

    try:
        yield start
    finally:
        for switch in switches:
            switch.stop()
