"""What the resolver answers during a replay, for libsinsp's ``fd.*ip.name`` fields.

libsinsp keeps a cache of host names a filter compared against, each with the addresses
``getaddrinfo`` gave for it. A condition ``fd.sip.name = NAME`` is true when NAME resolves to
the fd's address (``!=`` when it does not); an output prints a cached name that resolves to the
address. A replay has no resolver of its own: the input says what the answers are (a scenario's
``dns``), and a capture says nothing, so its names never resolve, as in Falco offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address

IPAddress = IPv4Address | IPv6Address


class DnsAnswers:
    """Host name -> addresses, and for each address the names that resolve to it (in the order
    the names were given)."""

    def __init__(self, answers: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.answers: dict[str, tuple[str, ...]] = dict(answers or {})
        names: dict[IPAddress, list[str]] = {}
        for name, addresses in self.answers.items():
            for text in addresses:
                try:
                    addr = ip_address(text)
                except ValueError:
                    continue
                found = names.setdefault(addr, [])
                if name not in found:
                    found.append(name)
        self._names = {addr: tuple(found) for addr, found in names.items()}

    def names_of(self, addr: IPAddress | None) -> tuple[str, ...]:
        """Every name that resolves to ``addr`` (empty when none does)."""
        if addr is None:
            return ()
        return self._names.get(addr, ())

    def __bool__(self) -> bool:
        return bool(self.answers)
