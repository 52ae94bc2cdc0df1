"""The guard in conftest.py must itself work, or every 'offline' claim is empty."""

import socket

import pytest

from conftest import NetworkAccessError


def test_guard_blocks_remote_connection():
    with pytest.raises(NetworkAccessError):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    with pytest.raises(NetworkAccessError):
        with socket.socket() as s:
            s.connect(("93.184.216.34", 80))


def test_guard_allows_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=1):
            pass
