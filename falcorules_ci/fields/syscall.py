"""libsinsp's built-in field classes for the ``syscall`` source, as of libs 0.25.x (Falco 0.44.1).

Falco gives the syscall source libsinsp's full filter-check list, in this order: generic event
fields, syscall event fields, process/thread, user, group, fd, fs.path, the hidden util class and
fdlist (``libs:userspace/libsinsp/filter_check_list.cpp``). Plugin classes (the container plugin)
come after them. Process and fd fields live in their own modules to keep each table readable.

Types are the declared ``PT_*`` types; flags are described in :mod:`._declare`.
"""

from __future__ import annotations

from falcorules_ci.fields._declare import FieldClass, Row
from falcorules_ci.fields._declare import Flag as F
from falcorules_ci.fields.registry import FieldType as T
from falcorules_ci.fields.syscall_fd import FD_FIELDS
from falcorules_ci.fields.syscall_process import PROCESS_FIELDS

SYSCALL = "syscall"

# Fields every event has whatever its source; libsinsp also gives them to plugin sources.
# fmt: off
GENERIC_EVENT_FIELDS: tuple[Row, ...] = (
    ("evt.num", T.UINT64, F.NONE, "Sequence number of the event."),
    ("evt.time", T.CHARBUF, F.NONE, "Event time of day, with nanoseconds."),
    ("evt.time.s", T.CHARBUF, F.NONE, "Event time of day, whole seconds only."),
    ("evt.time.iso8601", T.CHARBUF, F.NONE, "Event date and time in ISO 8601 form (UTC), with nanoseconds."),
    ("evt.datetime", T.CHARBUF, F.NONE, "Event date and time of day, with nanoseconds."),
    ("evt.datetime.s", T.CHARBUF, F.NONE, "Event date and time of day, whole seconds only."),
    ("evt.rawtime", T.ABSTIME, F.NONE, "Event timestamp in nanoseconds since the epoch."),
    ("evt.rawtime.s", T.ABSTIME, F.NONE, "Whole seconds of the event timestamp since the epoch."),
    ("evt.rawtime.ns", T.ABSTIME, F.NONE, "Sub-second part of the event timestamp, in nanoseconds."),
    ("evt.reltime", T.RELTIME, F.NONE, "Nanoseconds since the start of the capture."),
    ("evt.reltime.s", T.RELTIME, F.NONE, "Whole seconds since the start of the capture."),
    ("evt.reltime.ns", T.RELTIME, F.NONE, "Sub-second part of the time since the start of the capture."),
    ("evt.pluginname", T.CHARBUF, F.NONE, "Name of the loaded plugin that produced a plugin-source event."),
    ("evt.plugininfo", T.CHARBUF, F.NONE, "One-line summary of a plugin-source event, as its plugin renders it."),
    ("evt.source", T.CHARBUF, F.NONE, "Name of the event source the event came from."),
    ("evt.is_async", T.BOOL, F.NONE, "Whether the event is asynchronous (not produced by a traced thread)."),
    ("evt.asynctype", T.CHARBUF, F.NONE, "Name of an asynchronous event, such as 'container'."),
    ("evt.hostname", T.CHARBUF, F.NONE, "Host name of the machine (can be overridden through the environment)."),
)
# fmt: on

_DEP = F.DEPRECATED
_TAB = F.TABLE_ONLY

# fmt: off
EVENT_FIELDS: tuple[Row, ...] = (
    ("evt.latency", T.RELTIME, _DEP, "Nanoseconds between an exit event and its enter event."),
    ("evt.latency.s", T.RELTIME, _DEP, "Whole seconds of evt.latency."),
    ("evt.latency.ns", T.RELTIME, _DEP, "Sub-second part of evt.latency, in nanoseconds."),
    ("evt.latency.quantized", T.UINT64, _TAB | _DEP, "Base-10 logarithm of evt.latency."),
    ("evt.latency.human", T.CHARBUF, _DEP, "evt.latency as readable text, such as 10.3ms."),
    ("evt.deltatime", T.RELTIME, F.NONE, "Nanoseconds since the previous event."),
    ("evt.deltatime.s", T.RELTIME, F.NONE, "Whole seconds since the previous event."),
    ("evt.deltatime.ns", T.RELTIME, F.NONE, "Sub-second part of the time since the previous event."),
    ("evt.outputtime", T.CHARBUF, F.PRINT_ONLY, "Event time in the format chosen for output (evt.time unless changed)."),
    ("evt.dir", T.CHARBUF, _DEP, "Event direction: '>' for an enter event, '<' for an exit event."),
    ("evt.type", T.CHARBUF, F.NONE, "Event name, such as open or execve."),
    ("evt.type.is", T.UINT32, F.DOTTED | F.ARG_REQUIRED, "1 if the event has the type named after the dot (evt.type.is.open), else 0."),
    ("syscall.type", T.CHARBUF, F.NONE, "System call name; no value for events that are not system calls."),
    ("evt.category", T.CHARBUF, F.NONE, "Event category, such as file, net, memory or process."),
    ("evt.cpu", T.INT16, F.NONE, "Number of the CPU the event happened on."),
    ("evt.args", T.CHARBUF, F.NONE, "All event parameters rendered into one string."),
    (
        "evt.arg", T.CHARBUF, F.ARG_INDEX | F.DOTTED | F.ARG_REQUIRED,
        "One event parameter rendered as text, by position (evt.arg[0]) or by name (evt.arg.fd).",
    ),
    (
        "evt.rawarg", T.DYN, F.DOTTED | F.ARG_REQUIRED | F.NO_RHS | F.NO_TRANSFORMER,
        "One event parameter by name (evt.rawarg.res), in the parameter's own type.",
    ),
    ("evt.info", T.CHARBUF, F.NONE, "Currently the same text as evt.args."),
    ("evt.buffer", T.BYTEBUF, F.NONE, "Data buffer of I/O events such as read or sendto."),
    ("evt.buflen", T.UINT64, F.NONE, "Length of the data buffer of I/O events."),
    ("evt.res", T.CHARBUF, F.NONE, "Return value as text: SUCCESS, or an errno name such as ENOENT."),
    ("evt.rawres", T.INT64, F.NONE, "Return value as a number, such as -2."),
    ("evt.failed", T.BOOL, F.NONE, "Whether the event returned an error."),
    ("evt.is_io", T.BOOL, F.NONE, "Whether the event reads from or writes to a file descriptor."),
    ("evt.is_io_read", T.BOOL, F.NONE, "Whether the event reads from a file descriptor."),
    ("evt.is_io_write", T.BOOL, F.NONE, "Whether the event writes to a file descriptor."),
    ("evt.io_dir", T.CHARBUF, F.NONE, "'r' for events that read and 'w' for events that write file descriptors."),
    ("evt.is_wait", T.BOOL, F.NONE, "Whether the event makes the thread wait (sleep, select, poll, ...)."),
    ("evt.wait_latency", T.RELTIME, _DEP, "Nanoseconds a waiting event spent waiting."),
    ("evt.is_syslog", T.BOOL, F.NONE, "Whether the event writes to /dev/log."),
    ("evt.count", T.UINT32, F.NONE, "Always 1; for counting events."),
    ("evt.count.error", T.UINT32, F.NONE, "1 for events that returned an error."),
    ("evt.count.error.file", T.UINT32, F.NONE, "1 for file I/O events that returned an error."),
    ("evt.count.error.net", T.UINT32, F.NONE, "1 for network I/O events that returned an error."),
    ("evt.count.error.memory", T.UINT32, F.NONE, "1 for memory allocation events that returned an error."),
    ("evt.count.error.other", T.UINT32, F.NONE, "1 for failed events outside the file, net and memory categories."),
    ("evt.count.exit", T.UINT32, F.NONE, "1 for exit events."),
    ("evt.count.procinfo", T.UINT32, _TAB, "1 for procinfo events of main threads."),
    ("evt.count.threadinfo", T.UINT32, _TAB, "1 for procinfo events."),
    (
        "evt.around", T.UINT64, F.ARG_INDEX | F.ARG_REQUIRED | F.FILTER_ONLY | F.NO_RHS | F.NO_TRANSFORMER,
        "Accepts events within D ms of the event at time T, written evt.around[T]=D.",
    ),
    (
        # Listed as requiring an argument, but the name parser accepts the bare name as well.
        "evt.abspath", T.CHARBUF, F.DOTTED,
        "Absolute path built from a dirfd and a name; .src and .dst pick the two paths of rename-like calls.",
    ),
    ("evt.buflen.in", T.UINT64, _TAB, "Data buffer length of input I/O events only."),
    ("evt.buflen.out", T.UINT64, _TAB, "Data buffer length of output I/O events only."),
    ("evt.buflen.file", T.UINT64, _TAB, "Data buffer length of file I/O events only."),
    ("evt.buflen.file.in", T.UINT64, _TAB, "Data buffer length of file input events only."),
    ("evt.buflen.file.out", T.UINT64, _TAB, "Data buffer length of file output events only."),
    ("evt.buflen.net", T.UINT64, _TAB, "Data buffer length of network I/O events only."),
    ("evt.buflen.net.in", T.UINT64, _TAB, "Data buffer length of network input events only."),
    ("evt.buflen.net.out", T.UINT64, _TAB, "Data buffer length of network output events only."),
    ("evt.is_open_read", T.BOOL, F.NONE, "Whether an open-family event opened the path for reading."),
    ("evt.is_open_write", T.BOOL, F.NONE, "Whether an open-family event opened the path for writing."),
    ("evt.infra.docker.name", T.CHARBUF, _TAB, "Name of a docker infrastructure event."),
    ("evt.infra.docker.container.id", T.CHARBUF, _TAB, "Container id of a docker infrastructure event."),
    ("evt.infra.docker.container.name", T.CHARBUF, _TAB, "Container name of a docker infrastructure event."),
    ("evt.infra.docker.container.image", T.CHARBUF, _TAB, "Container image of a docker infrastructure event."),
    ("evt.is_open_exec", T.BOOL, F.NONE, "Whether an open-family or creat event created a file with execute permission."),
    ("evt.is_open_create", T.BOOL, F.NONE, "Whether an open-family event created the file."),
)
# fmt: on

USER_FIELDS: tuple[Row, ...] = (
    ("user.uid", T.UINT32, F.NONE, "User id of the thread."),
    ("user.name", T.CHARBUF, F.NONE, "User name of the thread's uid."),
    ("user.homedir", T.CHARBUF, F.NONE, "Home directory of the thread's user."),
    ("user.shell", T.CHARBUF, F.NONE, "Login shell of the thread's user."),
    ("user.loginuid", T.INT64, F.NONE, "Audit (login) user id; -1 when it is unset."),
    ("user.loginname", T.CHARBUF, F.NONE, "User name of the audit (login) user id."),
)

GROUP_FIELDS: tuple[Row, ...] = (
    ("group.gid", T.UINT32, F.NONE, "Group id of the thread."),
    ("group.name", T.CHARBUF, F.NONE, "Group name of the thread's gid."),
)

# fmt: off
FSPATH_FIELDS: tuple[Row, ...] = (
    ("fs.path.name", T.CHARBUF, F.NONE, "Path a filesystem syscall acts on, made absolute with the thread's cwd."),
    ("fs.path.nameraw", T.CHARBUF, F.NONE, "Path a filesystem syscall acts on, as passed to the syscall."),
    ("fs.path.source", T.CHARBUF, F.NONE, "Source path of a two-path syscall (rename, link, ...), made absolute."),
    ("fs.path.sourceraw", T.CHARBUF, F.NONE, "Source path of a two-path syscall, as passed to the syscall."),
    ("fs.path.target", T.CHARBUF, F.NONE, "Target path of a two-path syscall (rename, link, ...), made absolute."),
    ("fs.path.targetraw", T.CHARBUF, F.NONE, "Target path of a two-path syscall, as passed to the syscall."),
)
# fmt: on

# The util class is hidden from listings but its field compiles like any other.
UTIL_FIELDS: tuple[Row, ...] = (("util.cnt", T.UINT64, _TAB, "A counter incremented at each extraction."),)

# fmt: off
FDLIST_FIELDS: tuple[Row, ...] = (
    ("fdlist.nums", T.CHARBUF, F.NONE, "For poll events, the fd numbers of the 'fds' argument, comma-separated."),
    ("fdlist.names", T.CHARBUF, F.NONE, "For poll events, the fd names of the 'fds' argument, comma-separated."),
    ("fdlist.cips", T.CHARBUF, F.NONE, "For poll events, the client IPs of the 'fds' argument, comma-separated."),
    ("fdlist.sips", T.CHARBUF, F.NONE, "For poll events, the server IPs of the 'fds' argument, comma-separated."),
    ("fdlist.cports", T.CHARBUF, F.NONE, "For poll events, the client ports of the 'fds' argument, comma-separated."),
    ("fdlist.sports", T.CHARBUF, F.NONE, "For poll events, the server ports of the 'fds' argument, comma-separated."),
)
# fmt: on

SYSCALL_CLASSES: tuple[FieldClass, ...] = (
    FieldClass("evt", SYSCALL, GENERIC_EVENT_FIELDS),
    FieldClass("evt", SYSCALL, EVENT_FIELDS),
    FieldClass("process", SYSCALL, PROCESS_FIELDS),
    FieldClass("user", SYSCALL, USER_FIELDS),
    FieldClass("group", SYSCALL, GROUP_FIELDS),
    FieldClass("fd", SYSCALL, FD_FIELDS),
    FieldClass("fs.path", SYSCALL, FSPATH_FIELDS),
    FieldClass("util", SYSCALL, UTIL_FIELDS),
    FieldClass("fdlist", SYSCALL, FDLIST_FIELDS),
)
