"""Numeric constants of the driver/libscap ABI that the state tables interpret.

Values are the PPM encodings found in capture files (``driver/ppm_events_public.h``) and libscap's
``scap_fd_type`` / ``scap_l4_proto`` enums; they are interface facts, not Linux numbers.
"""

from __future__ import annotations

# Open flags (PPM_O_*), as stored in open/openat/openat2 `flags` parameters and fd tables.
O_RDONLY = 1
O_WRONLY = 2
O_RDWR = 3
O_CREAT = 4
O_APPEND = 8
O_DIRECTORY = 1 << 10
O_CLOEXEC = 1 << 12
O_TMPFILE = 1 << 13
O_F_CREATED = 1 << 14
FD_UPPER_LAYER = 1 << 15
FD_LOWER_LAYER = 1 << 16
# creat() reports overlay layers in its own small flag parameter.
FD_UPPER_LAYER_CREAT = 1
FD_LOWER_LAYER_CREAT = 2

# Mode bits that make an open "exec" (evt.is_open_exec).
S_IXUSR = 1 << 6
S_IXGRP = 1 << 3
S_IXOTH = 1

# Clone flags (PPM_CL_*) plus the bits libsinsp keeps in a thread's flags word.
CL_CLONE_FILES = 1 << 0
CL_CLONE_FS = 1 << 1
CL_CLONE_NEWPID = 1 << 6
CL_CLONE_PARENT = 1 << 8
CL_CLONE_THREAD = 1 << 13
CL_CLONE_INVERTED = 1 << 16
CL_NAME_CHANGED = 1 << 17
CL_CLOSED = 1 << 18
CL_ACTIVE = 1 << 19
CL_CLONE_NEWUSER = 1 << 20
CL_PIPE_SRC = 1 << 21
CL_PIPE_DST = 1 << 22
CL_CLONE_VFORK = 1 << 27
CL_CHILD_IN_PIDNS = 1 << 29
CL_IS_MAIN_THREAD = 1 << 30

# execve `flags` parameter (PPM_EXE_*) and execveat flags.
EXE_WRITABLE = 1 << 0
EXE_UPPER_LAYER = 1 << 1
EXE_FROM_MEMFD = 1 << 2
EXE_LOWER_LAYER = 1 << 3
EXVAT_AT_EMPTY_PATH = 1

AT_FDCWD = -100

# Socket families (PPM_AF_*).
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
AF_PACKET = 17

# Linux socket() type/protocol numbers (socket exit parameters carry the raw values).
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
IPPROTO_IP = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_RAW = 255

FCNTL_F_DUPFD = 1
FCNTL_F_SETFD = 3
FCNTL_F_DUPFD_CLOEXEC = 26
FD_CLOEXEC = 1
EPOLL_CLOEXEC = 1
MFD_CLOEXEC = 1
CLOSE_RANGE_CLOEXEC = 4
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
RLIMIT_NOFILE = 7
EINPROGRESS = 115

# scap_fd_type
FD_UNKNOWN = 0
FD_FILE = 1
FD_DIRECTORY = 2
FD_IPV4_SOCK = 3
FD_IPV6_SOCK = 4
FD_IPV4_SERVSOCK = 5
FD_IPV6_SERVSOCK = 6
FD_FIFO = 7
FD_UNIX_SOCK = 8
FD_EVENT = 9
FD_UNSUPPORTED = 10
FD_SIGNALFD = 11
FD_EVENTPOLL = 12
FD_INOTIFY = 13
FD_TIMERFD = 14
FD_NETLINK = 15
FD_FILE_V2 = 16
FD_BPF = 17
FD_USERFAULTFD = 18
FD_IOURING = 19
FD_MEMFD = 20
FD_PIDFD = 21

# scap_l4_proto
L4_UNKNOWN = 0
L4_NA = 1
L4_TCP = 2
L4_UDP = 3
L4_ICMP = 4
L4_RAW = 5

# The full capability set libsinsp grants on a successful unshare/setns(CLONE_NEWUSER):
# one bit per capability name it knows (41 of them).
CAPABILITY_COUNT = 41
MAX_CAPS = (1 << CAPABILITY_COUNT) - 1

UID_NONE = 0xFFFFFFFF

# A child whose clone exit arrives more than this long after an existing entry was created
# replaces that entry (libsinsp's CLONE_STALE_TIME_NS); also the window of "recently exited".
CLONE_STALE_TIME_NS = 2_000_000_000
RECENTLY_EXITED_RING_SIZE = 8192

# libscap's path buffer (SCAP_MAX_PATH_SIZE): longer joins collapse to a marker path.
MAX_PATH_SIZE = 1024
