"""Who holds a port (fleet/ports.py): found with its pid and command; a port held by the fleet's own processes
is not taken.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from fleet import ports
from fleet.sandbox import free_port_block


def test_the_holder_of_a_port_is_found_with_its_pid_and_command():
    port = free_port_block(1)
    with socket.create_server(("127.0.0.1", port)):
        assert not ports.bindable(port)
        holders = ports.holders(port)
        assert [h.pid for h in holders] == [os.getpid()]
        assert "python" in holders[0].command
        taken = ports.taken({port: "test port", free_port_block(1): "a free one"})
        assert [(t.port, t.role) for t in taken] == [(port, "test port")]
        assert str(taken[0]).startswith(f"port {port} (test port) is held by pid {os.getpid()} (")
    assert ports.bindable(port) and ports.holders(port) == []


def test_a_port_held_by_the_fleets_own_processes_is_not_taken():
    # A child holds the port; seen from its parent (this test, standing in for supervisord) it is "own".
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys; s = socket.create_server(('127.0.0.1', 0));"
            "print(s.getsockname()[1], flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(child.stdout.readline())
        assert ports.taken({port: "app"}, own_root=os.getpid()) == []
        assert [t.holders[0].pid for t in ports.taken({port: "app"}, own_root=1 << 22)] == [child.pid]
    finally:
        child.stdin.close()
        child.wait(10)
        child.stdout.close()
