"""The extractor contract shared by every source's field extraction.

An extractor takes the event and the source's state object (the syscall state tables, or None
for sources without state) and returns the field's value, or ``None`` when the field has no
value (libsinsp's "extraction failed": every comparison is then false). List fields return a
non-empty ``list``; an empty result is ``None``.

Value types by :class:`~falcorules_ci.fields.registry.FieldType`: numeric types → ``int``
(DOUBLE → ``float``), CHARBUF/FSPATH/FSRELPATH → ``str``, BOOL → ``bool``, BYTEBUF → ``bytes``,
IPADDR → ``ipaddress.IPv4Address | IPv6Address``, IPNET → the endpoint *address* (the network
literal on the right-hand side matches by membership), PORT → ``int``. Ancestor fields without an
index (``proc.aname``…) return an ``Ancestors`` list meaning "true if any ancestor matches";
``evt.around[T]`` returns an ``AroundWindow`` (both in ``extract/syscall_*``). ``fd.ip``/``fd.net``/``fd.port`` style fields that match either
endpoint return a ``tuple`` of both endpoint values (a :class:`EitherEnd`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falcorules_ci.sources.event import Event

Extractor = Callable[[Event, Any], Any]


class EitherEnd(tuple[Any, ...]):
    """Values of a field that matches either endpoint of a connection (fd.ip, fd.net, fd.port).

    ``=``/``in`` are true if any end matches; ``!=`` is true only if no end matches.
    """

    __slots__ = ()
