"""srv6lab for plain Mininet: the topologies of ``topologies/`` and the ``kernel`` switch kind.

Usage, as root, from the repository root::

    .venv/bin/mn --custom mininet/srv6lab.py --topo srv6lab,topologies/line-3.yaml \\
        --switch kernel --controller none

``/usr/bin/mn`` (Debian's, on the system Python) works the same way: this file adds the
repository root and, when the system Python lacks them, the packages of the project's
``.venv`` (networkx, ...) to the end of ``sys.path``, after Mininet's own.

- ``--topo srv6lab,FILE`` builds the topology file with the lab's hosts (IPv6 only, plan
  addresses and routes) and links (plan names, MACs, link-local addresses; bandwidth by
  tc htb, never netem). ``--topo srv6lab,FILE,switch=kernel`` fixes the switch kind in the
  topology itself.
- ``--switch kernel``: each switch is an IPv6 SRv6 router in its own namespace (no Open
  vSwitch). Without a controller it forwards nothing beyond its links until switchd or
  the controller programs it, so ``pingall`` (IPv4) has nothing to test; per link, try
  ``s1 ping -6 -c1 fe80::53:2:1%s1-eth2``. ``--controller none`` is needed because a
  kernel switch speaks no OpenFlow.
- ``--switch bmv2`` gives the namespaces of BMv2 switches; under plain mn nothing starts
  ``simple_switch_grpc`` (or switchd for kernel switches): ``srv6lab lab up`` does that.
- Mininet's ``--mac``, ``--ipbase`` and ``--link`` options do not apply: the plan fixes
  MACs and addresses and the topology picks the lab's link class.

mn cleans up with ``mn -c`` after an error, which removes every Mininet node on the
machine; ``srv6lab lab up`` is the lab's own front end and never does that.

This folder is not a package: there must never be an ``__init__.py`` here (it would shadow
the real ``mininet`` package).
"""

from __future__ import annotations

import os
import sys


def _add_repository_to_path() -> None:
    # mn runs this file through exec() without __file__; the code object knows the path.
    here = _add_repository_to_path.__code__.co_filename
    root = os.path.dirname(os.path.dirname(os.path.abspath(here)))
    if root not in sys.path:
        sys.path.append(root)
    try:
        import networkx  # noqa: F401
        import yaml  # noqa: F401
    except ImportError:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        venv = os.path.join(root, ".venv", "lib", version, "site-packages")
        if os.path.isdir(venv) and venv not in sys.path:
            sys.path.append(venv)


_add_repository_to_path()

from lab.nodes import SWITCH_KINDS, LabHost  # noqa: E402
from lab.topo import LabTopo  # noqa: E402

topos = {"srv6lab": LabTopo}
switches = dict(SWITCH_KINDS)
hosts = {"srv6lab": LabHost}
