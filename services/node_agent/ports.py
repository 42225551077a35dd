"""Host ports for replicas, from a configured range on 127.0.0.1."""

from __future__ import annotations


class PortsExhausted(RuntimeError):
    """Every port of the range is in use; the message names the range."""


class PortAllocator:
    def __init__(self, first: int, last: int) -> None:
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"port range {first}-{last} is not within 1-65535")
        self.first, self.last = first, last
        self._taken: set[int] = set()
        self._next = first

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def allocate(self) -> int:
        """The next free port after the last one given (so a port is not reused at once)."""
        size = self.last - self.first + 1
        for step in range(size):
            port = self.first + (self._next - self.first + step) % size
            if port not in self._taken:
                self._taken.add(port)
                self._next = port + 1 if port < self.last else self.first
                return port
        raise PortsExhausted(f"all ports {self.first}-{self.last} are in use")

    def reserve(self, port: int) -> None:
        """Mark a port as used (an adopted container already listens on it)."""
        self._taken.add(port)

    def release(self, port: int) -> None:
        self._taken.discard(port)

    @property
    def in_use(self) -> int:
        return len(self._taken)
