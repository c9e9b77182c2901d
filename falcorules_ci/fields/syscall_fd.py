"""libsinsp's file descriptor fields (class ``fd``), libs 0.25.x.

``fd.ip``, ``fd.port``, ``fd.proto`` and the ``fd.*net`` fields match either endpoint of a
connection. They are flagged filter-only (libs 0.25 still compiles them in output formats) and
take neither transformers nor field-to-field comparisons. ``fd.types`` takes an optional ``[N]``
fd number; anything else there is "not a valid number".
"""

from __future__ import annotations

from falcorules_ci.fields._declare import Flag as F
from falcorules_ci.fields._declare import Row
from falcorules_ci.fields.registry import FieldType as T

_MATCH_ONLY = F.FILTER_ONLY | F.NO_RHS | F.NO_TRANSFORMER
# Name lookups of endpoint addresses: resolved lazily, so no transformers or field comparisons.
_DNS = F.NO_RHS | F.NO_TRANSFORMER

# fmt: off
FD_FIELDS: tuple[Row, ...] = (
    ("fd.num", T.INT64, F.NONE, "Number of the file descriptor."),
    ("fd.type", T.CHARBUF, F.NONE, "Kind of file descriptor: file, directory, ipv4, ipv6, unix, pipe, ..."),
    ("fd.typechar", T.CHARBUF, F.NONE, "Kind of file descriptor as one character: f, d, 4, 6, u, p, ..."),
    ("fd.name", T.CHARBUF, F.NONE, "Full name: the absolute path of a file, or the connection tuple of a socket."),
    ("fd.directory", T.CHARBUF, F.NONE, "For a file, the directory that holds it."),
    ("fd.filename", T.CHARBUF, F.NONE, "For a file, its name without the directory."),
    ("fd.ip", T.IPADDR, _MATCH_ONLY, "Matches the IP address of either end (client or server)."),
    ("fd.cip", T.IPADDR, F.NONE, "Client IP address."),
    ("fd.sip", T.IPADDR, F.NONE, "Server IP address."),
    ("fd.lip", T.IPADDR, F.NONE, "Local IP address."),
    ("fd.rip", T.IPADDR, F.NONE, "Remote IP address."),
    ("fd.port", T.PORT, _MATCH_ONLY, "Matches the port of either end (client or server)."),
    ("fd.cport", T.PORT, F.NONE, "Client port of a TCP/UDP socket."),
    ("fd.sport", T.PORT, F.NONE, "Server port of a TCP/UDP socket."),
    ("fd.lport", T.PORT, F.NONE, "Local port of a TCP/UDP socket."),
    ("fd.rport", T.PORT, F.NONE, "Remote port of a TCP/UDP socket."),
    ("fd.l4proto", T.CHARBUF, F.NONE, "IP protocol of a socket: tcp, udp, icmp or raw."),
    ("fd.sockfamily", T.CHARBUF, F.NONE, "Socket family: ip or unix."),
    ("fd.is_server", T.BOOL, F.NONE, "Whether the process owning the fd is the server end of the connection."),
    ("fd.uid", T.CHARBUF, F.NONE, "Unique fd identifier: the fd number and thread id chained."),
    ("fd.containername", T.CHARBUF, F.NONE, "Container id and fd name chained."),
    ("fd.containerdirectory", T.CHARBUF, F.NONE, "Container id and directory name chained."),
    ("fd.proto", T.PORT, _MATCH_ONLY, "Matches the protocol of either end (client or server)."),
    ("fd.cproto", T.CHARBUF, F.NONE, "Protocol (service name) of the client port."),
    ("fd.sproto", T.CHARBUF, F.NONE, "Protocol (service name) of the server port."),
    ("fd.lproto", T.CHARBUF, F.NONE, "Protocol (service name) of the local port."),
    ("fd.rproto", T.CHARBUF, F.NONE, "Protocol (service name) of the remote port."),
    ("fd.net", T.IPNET, _MATCH_ONLY, "Matches the IP network of either end (client or server)."),
    ("fd.cnet", T.IPNET, _MATCH_ONLY, "Matches the client IP network."),
    ("fd.snet", T.IPNET, _MATCH_ONLY, "Matches the server IP network."),
    ("fd.lnet", T.IPNET, _MATCH_ONLY, "Matches the local IP network."),
    ("fd.rnet", T.IPNET, _MATCH_ONLY, "Matches the remote IP network."),
    ("fd.connected", T.BOOL, F.NONE, "Whether a TCP/UDP socket is connected."),
    ("fd.name_changed", T.BOOL, F.NONE, "Whether the event changed the fd's name (e.g. a UDP tuple update)."),
    ("fd.cip.name", T.CHARBUF, _DNS, "Domain name of the client IP address."),
    ("fd.sip.name", T.CHARBUF, _DNS, "Domain name of the server IP address."),
    ("fd.lip.name", T.CHARBUF, _DNS, "Domain name of the local IP address."),
    ("fd.rip.name", T.CHARBUF, _DNS, "Domain name of the remote IP address."),
    ("fd.dev", T.INT32, F.NONE, "Device number (major and minor) of the file's device."),
    ("fd.dev.major", T.INT32, F.NONE, "Major device number of the file's device."),
    ("fd.dev.minor", T.INT32, F.NONE, "Minor device number of the file's device."),
    ("fd.ino", T.INT64, F.NONE, "Inode number of the file."),
    ("fd.nameraw", T.CHARBUF, F.NONE, "For a file, the path as the syscall gave it, not made absolute."),
    (
        "fd.types", T.CHARBUF, F.LIST | F.ARG_INDEX | F.NO_RHS,
        "Types of every fd the process has open; fd.types[N] gives the type of fd N only.",
    ),
    ("fd.is_upper_layer", T.BOOL, F.NONE, "Whether the file is in the upper layer of an overlayfs."),
    ("fd.is_lower_layer", T.BOOL, F.NONE, "Whether the file is in the lower layer of an overlayfs."),
)
# fmt: on
