"""The field registry: the single place where every filter field is declared.

A field declaration says what Falco's filter compiler needs to know to accept or reject a
condition: the value type, whether it takes an argument (``proc.aname[2]``, ``evt.arg.flags``,
``ka.uri.param[command]``), whether it is multi-valued, which transformers and right-hand-field
comparisons it allows, and which event source it belongs to. Extraction of values lives in later
stages (the engine), keyed by the same names.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class FieldType(enum.Enum):
    """libsinsp's ``ppm_param_type`` values as far as filter fields use them."""

    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    CHARBUF = "string"
    BYTEBUF = "bytebuf"
    BOOL = "bool"
    IPADDR = "ipaddr"
    IPNET = "ipnet"
    PORT = "port"
    FSPATH = "fspath"
    FSRELPATH = "fsrelpath"
    ABSTIME = "abstime"
    RELTIME = "reltime"
    DOUBLE = "double"
    ERRNO = "errno"
    FD = "fd"
    PID = "pid"
    UID = "uid"
    GID = "gid"
    MODE = "mode"
    FLAGS8 = "flags8"
    FLAGS16 = "flags16"
    FLAGS32 = "flags32"
    SYSCALLID = "syscallid"
    SIGTYPE = "sigtype"
    L4PROTO = "l4proto"
    SOCKFAMILY = "sockfamily"
    # Event parameter types that only reach filters through ``evt.rawarg.NAME`` (whose declared
    # type is DYN: the real type is the named parameter's).
    DYN = "dyn"
    SOCKADDR = "sockaddr"
    SOCKTUPLE = "socktuple"
    FDLIST = "fdlist"
    SIGSET = "sigset"
    CHARBUFARRAY = "charbufarray"
    CHARBUF_PAIR_ARRAY = "charbuf_pair_array"
    IPV4ADDR = "ipv4addr"
    IPV4NET = "ipv4net"
    IPV6ADDR = "ipv6addr"
    IPV6NET = "ipv6net"
    ENUMFLAGS8 = "enumflags8"
    ENUMFLAGS16 = "enumflags16"
    ENUMFLAGS32 = "enumflags32"
    FD32 = "fd32"
    PID32 = "pid32"

    @property
    def is_numeric(self) -> bool:
        return self in _NUMERIC

    @property
    def is_string(self) -> bool:
        return self in (FieldType.CHARBUF, FieldType.FSPATH, FieldType.FSRELPATH)


_NUMERIC = frozenset(
    {
        FieldType.INT8, FieldType.INT16, FieldType.INT32, FieldType.INT64,
        FieldType.UINT8, FieldType.UINT16, FieldType.UINT32, FieldType.UINT64,
        FieldType.ABSTIME, FieldType.RELTIME, FieldType.DOUBLE, FieldType.ERRNO,
        FieldType.FD, FieldType.PID, FieldType.UID, FieldType.GID, FieldType.MODE,
        FieldType.FLAGS8, FieldType.FLAGS16, FieldType.FLAGS32, FieldType.SYSCALLID,
        FieldType.SIGTYPE, FieldType.L4PROTO, FieldType.SOCKFAMILY,
        FieldType.ENUMFLAGS8, FieldType.ENUMFLAGS16, FieldType.ENUMFLAGS32,
    }
)  # fmt: skip


class ArgKind(enum.Enum):
    """The argument a field takes, as libsinsp's EPF_ARG_* flags and plugin arg flags define it."""

    NONE = "none"
    INDEX = "index"  # digits: proc.aname[2], plugin fields with an index argument
    KEY = "key"  # any text: ka.uri.param[command], jevt.value[/stage], container.mount.dest[/proc*]
    INDEX_OR_KEY = "index_or_key"  # proc.env[HOME] or proc.env[2]; plugin index-or-key fields


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One filter field as Falco declares it."""

    name: str
    type: FieldType
    source: str  # "syscall" or "k8s_audit"
    field_class: str  # "evt", "process", "fd", "container", "k8saudit", "json", ...
    description: str = ""
    arg: ArgKind = ArgKind.NONE
    arg_required: bool = False
    is_list: bool = False
    no_transformer: bool = False  # EPF_NO_TRANSFORMER
    no_rhs: bool = False  # EPF_NO_RHS: cannot be compared with val(other_field)
    deprecated: bool = False
    # True when the field is a dotted prefix that accepts `.NAME` as its argument (evt.arg.NAME).
    dotted_arg: bool = False
    sysdig_known: bool = True  # whether Debian's sysdig 0.29.3 knows this field
    filter_only: bool = False  # EPF_FILTER_ONLY: meant for conditions (libs 0.25 accepts it in outputs too)
    print_only: bool = False  # EPF_PRINT_ONLY: meant for outputs (libsinsp does not enforce it)
    table_only: bool = False  # EPF_TABLE_ONLY: left out of field listings
    format_suggested: bool = False  # EPF_FORMAT_SUGGESTED: added by append_output.suggested_output
    plugin: str = ""  # the plugin that provides the field; "" for libsinsp's built-in classes


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """A field token resolved against the registry: the declaration and the argument given."""

    info: FieldInfo
    arg: str | None

    @property
    def text(self) -> str:
        if self.arg is None:
            return self.info.name
        if self.info.dotted_arg and not self.arg.isdigit():
            return f"{self.info.name}.{self.arg}"
        return f"{self.info.name}[{self.arg}]"


class FieldRegistry:
    """All fields of every source, looked up by name with Falco's longest-prefix rule."""

    def __init__(self, fields: Iterable[FieldInfo]) -> None:
        self._by_source: dict[str, dict[str, FieldInfo]] = {}
        for info in fields:
            table = self._by_source.setdefault(info.source, {})
            if info.name in table:
                raise ValueError(f"field {info.name} declared twice for source {info.source}")
            table[info.name] = info

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self._by_source)

    def __iter__(self) -> Iterator[FieldInfo]:
        for table in self._by_source.values():
            yield from table.values()

    def get(self, name: str, source: str) -> FieldInfo | None:
        """The field declared with exactly this name for this source."""
        return self._by_source.get(source, {}).get(name)

    def resolve(self, name: str, source: str) -> FieldInfo | None:
        """The declaration a field token (without a bracketed argument) refers to.

        An exact name wins; otherwise the longest declared name that is a dotted prefix of the
        token and accepts a dotted argument (``evt.arg.flags`` → ``evt.arg``).
        """
        table = self._by_source.get(source, {})
        exact = table.get(name)
        if exact is not None:
            return exact
        cut = name.rfind(".")
        while cut > 0:
            info = table.get(name[:cut])
            if info is not None and info.dotted_arg:
                return info
            cut = name.rfind(".", 0, cut)
        return None

    def known_elsewhere(self, name: str, source: str) -> list[str]:
        """The other sources that declare this field (for 'wrong source' diagnostics)."""
        return [s for s in self._by_source if s != source and self.resolve(name, s) is not None]
