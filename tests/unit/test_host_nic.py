"""The commands that make a lab host's NIC queue MTU-sized frames (lab.nodes)."""

from lab.nodes import host_nic_commands


def test_host_nic_turns_offloads_off_and_caps_gso_at_one_segment() -> None:
    assert host_nic_commands("h1-eth0") == [
        "ethtool -K h1-eth0 tso off gso off >/dev/null",
        "ip link set dev h1-eth0 gso_max_segs 1",
    ]


def test_host_nic_commands_name_only_their_interface() -> None:
    for command in host_nic_commands("gpu1-eth1"):
        assert "gpu1-eth1" in command
        assert "eth0" not in command
