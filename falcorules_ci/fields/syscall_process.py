"""libsinsp's process and thread fields (class ``process``: ``proc.*``, ``thread.*``), libs 0.25.x.

Argument forms follow the class's own name parser (``sinsp_filtercheck_thread.cpp``):
- the ancestor fields (``proc.aname``, ``apid``, ``aexe``, ``aexepath``, ``acmdline``, ``aargs``)
  and ``proc.args`` take an optional ``[N]`` (a C ``%d`` number); anything else in the brackets
  makes the whole token an unknown field;
- ``proc.env`` and ``proc.aenv`` take an optional ``[NAME]`` or ``[N]``;
- ``thread.cgroup`` requires a dotted subsystem name: ``thread.cgroup.cpuacct``.
"""

from __future__ import annotations

from falcorules_ci.fields._declare import Flag as F
from falcorules_ci.fields._declare import Row
from falcorules_ci.fields.registry import FieldType as T

# Ancestor lookups compare against each ancestor in turn, which rules out transformers and
# field-to-field comparisons.
_ANCESTOR = F.ARG_INDEX | F.NO_RHS | F.NO_TRANSFORMER
_TAB = F.TABLE_ONLY

# fmt: off
PROCESS_FIELDS: tuple[Row, ...] = (
    ("proc.exe", T.CHARBUF, F.NONE, "argv[0] of the process: usually the command as invoked."),
    ("proc.pexe", T.CHARBUF, F.NONE, "proc.exe of the parent process."),
    ("proc.aexe", T.CHARBUF, _ANCESTOR, "proc.exe of an ancestor: [0] self, [1] parent, ...; bare: any ancestor."),
    ("proc.exepath", T.CHARBUF, F.NONE, "Full path of the executable file, symlinks resolved."),
    ("proc.pexepath", T.CHARBUF, F.NONE, "proc.exepath of the parent process."),
    ("proc.aexepath", T.CHARBUF, _ANCESTOR, "proc.exepath of an ancestor: [0] self, [1] parent, ...; bare: any ancestor."),
    ("proc.name", T.CHARBUF, F.NONE, "Process name (the kernel's comm, at most 16 characters)."),
    ("proc.pname", T.CHARBUF, F.NONE, "proc.name of the parent process."),
    ("proc.aname", T.CHARBUF, _ANCESTOR, "proc.name of an ancestor: [0] self, [1] parent, ...; bare: any ancestor."),
    ("proc.args", T.CHARBUF, F.ARG_INDEX, "Command-line arguments after argv[0]; [N] picks one of them."),
    ("proc.aargs", T.CHARBUF, F.ARG_INDEX, "proc.args of an ancestor: [0] self, [1] parent, ...; bare: any ancestor."),
    ("proc.cmdline", T.CHARBUF, F.NONE, "proc.name followed by proc.args."),
    ("proc.pcmdline", T.CHARBUF, F.NONE, "proc.cmdline of the parent process."),
    ("proc.acmdline", T.CHARBUF, _ANCESTOR, "proc.cmdline of an ancestor: [0] self, [1] parent, ...; bare: any ancestor."),
    ("proc.cmdnargs", T.UINT64, F.NONE, "Number of command-line arguments in proc.args."),
    ("proc.cmdlenargs", T.UINT64, F.NONE, "Total length of the arguments in proc.args, separators excluded."),
    ("proc.exeline", T.CHARBUF, F.NONE, "proc.exe followed by proc.args."),
    ("proc.env", T.CHARBUF, F.ARG_INDEX | F.ARG_KEY, "Environment as NAME=value pairs; [NAME] gives one variable's value."),
    (
        "proc.aenv", T.CHARBUF, F.ARG_INDEX | F.ARG_KEY | F.NO_RHS | F.NO_TRANSFORMER,
        "Experimental: proc.env of an ancestor ([N]), a variable looked up through the ancestors ([NAME]), or any.",
    ),
    ("proc.cwd", T.CHARBUF, F.NONE, "Current working directory of the thread."),
    ("proc.loginshellid", T.INT64, F.NONE, "Pid of the oldest shell among the ancestors, if any."),
    ("proc.tty", T.UINT32, F.NONE, "Controlling terminal of the process; 0 when it has none."),
    ("proc.pid", T.INT64, F.NONE, "Process id."),
    ("proc.ppid", T.INT64, F.NONE, "Process id of the parent."),
    ("proc.apid", T.INT64, _ANCESTOR, "Pid of an ancestor: [0] self, [1] parent, ...; bare: any ancestor."),
    ("proc.vpid", T.INT64, F.NONE, "Process id as seen from its own pid namespace."),
    ("proc.pvpid", T.INT64, F.NONE, "Parent's process id as seen from its own pid namespace."),
    ("proc.sid", T.INT64, F.NONE, "Session id of the process."),
    ("proc.sname", T.CHARBUF, F.NONE, "proc.name of the session leader (or the eldest ancestor in the session)."),
    ("proc.sid.exe", T.CHARBUF, F.NONE, "proc.exe of the session leader."),
    ("proc.sid.exepath", T.CHARBUF, F.NONE, "proc.exepath of the session leader."),
    ("proc.vpgid", T.INT64, F.NONE, "Process group id as seen from the process's pid namespace."),
    ("proc.vpgid.name", T.CHARBUF, F.NONE, "proc.name of the leader of the process group (vpgid)."),
    ("proc.vpgid.exe", T.CHARBUF, F.NONE, "proc.exe of the leader of the process group (vpgid)."),
    ("proc.vpgid.exepath", T.CHARBUF, F.NONE, "proc.exepath of the leader of the process group (vpgid)."),
    ("proc.pgid", T.INT64, F.NONE, "Process group id as seen from the host pid namespace."),
    ("proc.pgid.name", T.CHARBUF, F.NONE, "proc.name of the leader of the process group (pgid)."),
    ("proc.pgid.exe", T.CHARBUF, F.NONE, "proc.exe of the leader of the process group (pgid)."),
    ("proc.pgid.exepath", T.CHARBUF, F.NONE, "proc.exepath of the leader of the process group (pgid)."),
    ("proc.duration", T.RELTIME, F.NONE, "Nanoseconds since the process started."),
    ("proc.ppid.duration", T.RELTIME, F.NONE, "Nanoseconds since the parent process started."),
    ("proc.pid.ts", T.RELTIME, F.NONE, "Start time of the process, in nanoseconds since the epoch."),
    ("proc.ppid.ts", T.RELTIME, F.NONE, "Start time of the parent process, in nanoseconds since the epoch."),
    ("proc.is_exe_writable", T.BOOL, F.NONE, "Whether the executable file is writable by the user that started it."),
    ("proc.is_exe_upper_layer", T.BOOL, F.NONE, "Whether the executable file is in the upper layer of an overlayfs."),
    ("proc.is_exe_lower_layer", T.BOOL, F.NONE, "Whether the executable file is in the lower layer of an overlayfs."),
    ("proc.is_exe_from_memfd", T.BOOL, F.NONE, "Whether the executable is an anonymous memfd_create() file."),
    ("proc.is_sid_leader", T.BOOL, F.NONE, "Whether the process leads its session (proc.sid == proc.vpid)."),
    ("proc.is_vpgid_leader", T.BOOL, F.NONE, "Whether the process leads its process group (proc.vpgid == proc.vpid)."),
    ("proc.is_pgid_leader", T.BOOL, F.NONE, "Whether the process leads its host process group (proc.pgid == proc.pid)."),
    ("proc.exe_ino", T.INT64, F.NONE, "Inode number of the executable file."),
    ("proc.exe_ino.ctime", T.ABSTIME, F.NONE, "Status-change time (ctime) of the executable file, ns since the epoch."),
    ("proc.exe_ino.mtime", T.ABSTIME, F.NONE, "Modification time (mtime) of the executable file, ns since the epoch."),
    (
        "proc.exe_ino.ctime_duration_proc_start", T.ABSTIME, F.NONE,
        "Nanoseconds from the executable file's last status change to the process start.",
    ),
    (
        "proc.exe_ino.ctime_duration_pidns_start", T.ABSTIME, F.NONE,
        "Nanoseconds from the pid namespace start to the executable's ctime, when the namespace is older.",
    ),
    ("proc.pidns_init_start_ts", T.UINT64, F.NONE, "Start time of the process's pid namespace, ns since the epoch."),
    ("thread.cap_permitted", T.CHARBUF, F.NONE, "Permitted capability set of the thread."),
    ("thread.cap_inheritable", T.CHARBUF, F.NONE, "Inheritable capability set of the thread."),
    ("thread.cap_effective", T.CHARBUF, F.NONE, "Effective capability set of the thread."),
    ("proc.fdopencount", T.UINT64, F.NONE, "Number of open file descriptors of the process."),
    ("proc.fdlimit", T.INT64, F.NONE, "Maximum number of file descriptors the process may open."),
    ("proc.fdusage", T.DOUBLE, F.NONE, "Ratio of open file descriptors to the process's limit."),
    ("proc.vmsize", T.UINT64, F.NONE, "Total virtual memory of the process, in kB."),
    ("proc.vmrss", T.UINT64, F.NONE, "Resident (non-swapped) memory of the process, in kB."),
    ("proc.vmswap", T.UINT64, F.NONE, "Swapped memory of the process, in kB."),
    ("thread.pfmajor", T.UINT64, F.NONE, "Major page faults since the thread started."),
    ("thread.pfminor", T.UINT64, F.NONE, "Minor page faults since the thread started."),
    ("thread.tid", T.INT64, F.NONE, "Thread id."),
    ("thread.ismain", T.BOOL, F.NONE, "Whether the thread is its process's main thread."),
    ("thread.vtid", T.INT64, F.NONE, "Thread id as seen from its own pid namespace."),
    ("thread.nametid", T.CHARBUF, _TAB, "Process name and thread id joined: an identifier for one thread run."),
    ("thread.exectime", T.RELTIME, F.NONE, "CPU nanoseconds of the last scheduled thread (switch events only)."),
    ("thread.totexectime", T.RELTIME, F.NONE, "Total CPU nanoseconds of the thread since capture start (switch events)."),
    ("thread.cgroups", T.CHARBUF, F.NONE, "All cgroups of the thread, in one string."),
    ("thread.cgroup", T.CHARBUF, F.DOTTED | F.ARG_REQUIRED, "The thread's cgroup for the subsystem after the dot (thread.cgroup.cpuacct)."),
    ("proc.nthreads", T.UINT64, F.NONE, "Live threads of the process, its leader included."),
    ("proc.nchilds", T.UINT64, F.NONE, "Live threads of the process other than its leader."),
    ("thread.cpu", T.DOUBLE, F.NONE, "CPU used by the thread over the last second."),
    ("thread.cpu.user", T.DOUBLE, F.NONE, "User CPU used by the thread over the last second."),
    ("thread.cpu.system", T.DOUBLE, F.NONE, "System CPU used by the thread over the last second."),
    ("thread.vmsize", T.UINT64, F.NONE, "Total virtual memory in kB for a main thread; 0 for other threads."),
    ("thread.vmrss", T.UINT64, F.NONE, "Resident memory in kB for a main thread; 0 for other threads."),
    ("thread.vmsize.b", T.UINT64, _TAB, "Total virtual memory in bytes for a main thread; 0 for other threads."),
    ("thread.vmrss.b", T.UINT64, _TAB, "Resident memory in bytes for a main thread; 0 for other threads."),
    ("proc.stdin.type", T.CHARBUF, F.NONE, "Type of the process's file descriptor 0."),
    ("proc.stdout.type", T.CHARBUF, F.NONE, "Type of the process's file descriptor 1."),
    ("proc.stderr.type", T.CHARBUF, F.NONE, "Type of the process's file descriptor 2."),
    ("proc.stdin.name", T.CHARBUF, F.NONE, "Name of the process's file descriptor 0."),
    ("proc.stdout.name", T.CHARBUF, F.NONE, "Name of the process's file descriptor 1."),
    ("proc.stderr.name", T.CHARBUF, F.NONE, "Name of the process's file descriptor 2."),
)
# fmt: on
