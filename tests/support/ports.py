"""Free 127.0.0.1 ports for brokers, services and replicas started by tests."""

import socket

_given: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before by this process: the kernel may offer the
    same free port to two calls in a row, and two services started together would then
    race for it (the loser's health check being answered by the winner)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port
