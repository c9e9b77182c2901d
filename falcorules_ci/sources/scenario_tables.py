"""Symbolic names a scenario may use for libscap parameter values, as plain data.

The values are libscap's own encodings (``PPM_*``), not Linux's: ``O_RDONLY`` is 1 and ``O_CREAT``
is 4 here, which is what a capture holds and what ``evt.arg.flags`` renders back into names. They
were read off libs' ``driver/ppm_events_public.h`` and ``driver/flags_table.c`` (the commit in
``../shared/reference/event-tables``); errno and signal numbers are Linux x86-64's.
"""

from __future__ import annotations

from typing import Final

# Flag tables by the name libs gives them; which parameter uses which is in PARAM_FLAG_TABLE.
FLAG_TABLES: Final[dict[str, dict[str, int]]] = {
    "socket_families": {"AF_NFC": 39, "AF_ALG": 38, "AF_CAIF": 37, "AF_IEEE802154": 36, "AF_PHONET": 35,
        "AF_ISDN": 34, "AF_RXRPC": 33, "AF_IUCV": 32, "AF_BLUETOOTH": 31, "AF_TIPC": 30, "AF_CAN": 29,
        "AF_LLC": 26, "AF_WANPIPE": 25, "AF_PPPOX": 24, "AF_IRDA": 23, "AF_SNA": 22, "AF_RDS": 21,
        "AF_ATMSVC": 20, "AF_ECONET": 19, "AF_ASH": 18, "AF_PACKET": 17, "AF_ROUTE": 16, "AF_NETLINK": 16,
        "AF_KEY": 15, "AF_SECURITY": 14, "AF_NETBEUI": 13, "AF_DECnet": 12, "AF_ROSE": 11, "AF_INET6": 10,
        "AF_X25": 9, "AF_ATMPVC": 8, "AF_BRIDGE": 7, "AF_NETROM": 6, "AF_APPLETALK": 5, "AF_IPX": 4,
        "AF_AX25": 3, "AF_INET": 2, "AF_LOCAL": 1, "AF_UNIX": 1, "AF_UNSPEC": 0},
    "file_flags": {"O_LARGEFILE": 2048, "O_DIRECTORY": 1024, "O_DIRECT": 512, "O_TRUNC": 256,
        "O_SYNC": 128, "O_NONBLOCK": 64, "O_EXCL": 32, "O_DSYNC": 16, "O_APPEND": 8, "O_CREAT": 4,
        "O_RDWR": 3, "O_WRONLY": 2, "O_RDONLY": 1, "O_CLOEXEC": 4096, "O_NONE": 0, "O_TMPFILE": 8192,
        "O_F_CREATED": 16384, "FD_UPPER_LAYER": 32768, "FD_LOWER_LAYER": 65536},
    "creat_flags": {"FD_UPPER_LAYER_CREAT": 1, "FD_LOWER_LAYER_CREAT": 2},
    "flock_flags": {"LOCK_SH": 1, "LOCK_EX": 2, "LOCK_NB": 4, "LOCK_UN": 8, "LOCK_NONE": 0},
    "clone_flags": {"CLONE_FILES": 1, "CLONE_FS": 2, "CLONE_IO": 4, "CLONE_NEWIPC": 8, "CLONE_NEWNET": 16,
        "CLONE_NEWNS": 32, "CLONE_NEWPID": 64, "CLONE_NEWUTS": 128, "CLONE_PARENT": 256,
        "CLONE_PARENT_SETTID": 512, "CLONE_PTRACE": 1024, "CLONE_SIGHAND": 2048, "CLONE_SYSVSEM": 4096,
        "CLONE_THREAD": 8192, "CLONE_UNTRACED": 16384, "CLONE_VM": 32768, "CLONE_INVERTED": 65536,
        "NAME_CHANGED": 131072, "CLOSED": 262144, "CLONE_NEWUSER": 1048576,
        "CLONE_CHILD_CLEARTID": 8388608, "CLONE_CHILD_SETTID": 16777216, "CLONE_SETTLS": 33554432,
        "CLONE_STOPPED": 67108864, "CLONE_VFORK": 134217728, "CLONE_NEWCGROUP": 268435456,
        "CLONE_CHILD_IN_PIDNS": 536870912},
    "futex_operations": {"FUTEX_CLOCK_REALTIME": 256, "FUTEX_PRIVATE_FLAG": 128,
        "FUTEX_CMP_REQUEUE_PI": 12, "FUTEX_WAIT_REQUEUE_PI": 11, "FUTEX_WAKE_BITSET": 10,
        "FUTEX_WAIT_BITSET": 9, "FUTEX_TRYLOCK_PI": 8, "FUTEX_UNLOCK_PI": 7, "FUTEX_LOCK_PI": 6,
        "FUTEX_WAKE_OP": 5, "FUTEX_CMP_REQUEUE": 4, "FUTEX_REQUEUE": 3, "FUTEX_FD": 2, "FUTEX_WAKE": 1,
        "FUTEX_WAIT": 0},
    "poll_flags": {"POLLIN": 1, "POLLPRI": 2, "POLLOUT": 4, "POLLRDHUP": 8, "POLLERR": 16, "POLLHUP": 32,
        "POLLNVAL": 64, "POLLRDNORM": 128, "POLLRDBAND": 256, "POLLWRNORM": 512, "POLLWRBAND": 1024},
    "mount_flags": {"RDONLY": 1, "NOSUID": 2, "NODEV": 4, "NOEXEC": 8, "SYNCHRONOUS": 16, "REMOUNT": 32,
        "MANDLOCK": 64, "DIRSYNC": 128, "NOATIME": 1024, "NODIRATIME": 2048, "BIND": 4096, "MOVE": 8192,
        "REC": 16384, "SILENT": 32768, "POSIXACL": 65536, "UNBINDABLE": 131072, "PRIVATE": 262144,
        "SLAVE": 524288, "SHARED": 1048576, "RELATIME": 2097152, "KERNMOUNT": 4194304,
        "I_VERSION": 8388608, "STRICTATIME": 16777216, "LAZYTIME": 33554432, "NOSEC": 268435456,
        "BORN": 536870912, "ACTIVE": 1073741824, "NOUSER": 2147483648},
    "umount_flags": {"FORCE": 1, "DETACH": 2, "EXPIRE": 4, "NOFOLLOW": 8},
    "lseek_whence": {"SEEK_END": 2, "SEEK_CUR": 1, "SEEK_SET": 0},
    "shutdown_how": {"SHUT_UNKNOWN": 65535, "SHUT_RDWR": 2, "SHUT_WR": 1, "SHUT_RD": 0},
    "rlimit_resources": {"RLIMIT_UNKNOWN": 255, "RLIMIT_RTTIME": 15, "RLIMIT_RTPRIO": 14,
        "RLIMIT_NICE": 13, "RLIMIT_MSGQUEUE": 12, "RLIMIT_SIGPENDING": 11, "RLIMIT_LOCKS": 10,
        "RLIMIT_AS": 9, "RLIMIT_MEMLOCK": 8, "RLIMIT_NOFILE": 7, "RLIMIT_NPROC": 6, "RLIMIT_RSS": 5,
        "RLIMIT_CORE": 4, "RLIMIT_STACK": 3, "RLIMIT_DATA": 2, "RLIMIT_FSIZE": 1, "RLIMIT_CPU": 0},
    "fcntl_commands": {"F_GETPIPE_SZ": 29, "F_SETPIPE_SZ": 28, "F_NOTIFY": 27, "F_DUPFD_CLOEXEC": 26,
        "F_CANCELLK": 25, "F_GETLEASE": 24, "F_SETLEASE": 23, "F_GETOWN_EX": 22, "F_SETOWN_EX": 21,
        "F_SETLKW64": 19, "F_SETLK64": 18, "F_GETLK64": 17, "F_GETSIG": 15, "F_SETSIG": 13, "F_GETOWN": 12,
        "F_SETOWN": 10, "F_SETLKW": 9, "F_SETLK": 8, "F_GETLK": 6, "F_SETFL": 5, "F_GETFL": 4,
        "F_SETFD": 3, "F_GETFD": 2, "F_DUPFD": 1, "F_OFD_GETLK": 30, "F_OFD_SETLK": 31, "F_OFD_SETLKW": 32,
        "UNKNOWN": 0},
    "sockopt_levels": {"SOL_SOCKET": 1, "SOL_TCP": 2, "UNKNOWN": 0},
    "sockopt_options": {"SO_COOKIE": 53, "SO_MEMINFO": 52, "SO_PEERGROUPS": 51, "SO_ATTACH_BPF": 50,
        "SO_INCOMING_CPU": 49, "SO_BPF_EXTENSIONS": 48, "SO_MAX_PACING_RATE": 47, "SO_BUSY_POLL": 46,
        "SO_SELECT_ERR_QUEUE": 45, "SO_LOCK_FILTER": 44, "SO_NOFCS": 43, "SO_PEEK_OFF": 42,
        "SO_WIFI_STATUS": 41, "SO_RXQ_OVFL": 40, "SO_DOMAIN": 39, "SO_PROTOCOL": 38, "SO_TIMESTAMPING": 37,
        "SO_MARK": 36, "SO_TIMESTAMPNS": 35, "SO_PASSSEC": 34, "SO_PEERSEC": 31, "SO_ACCEPTCONN": 30,
        "SO_TIMESTAMP": 29, "SO_PEERNAME": 28, "SO_DETACH_FILTER": 27, "SO_ATTACH_FILTER": 26,
        "SO_BINDTODEVICE": 25, "SO_SECURITY_ENCRYPTION_NETWORK": 24,
        "SO_SECURITY_ENCRYPTION_TRANSPORT": 23, "SO_SECURITY_AUTHENTICATION": 22, "SO_SNDTIMEO": 21,
        "SO_RCVTIMEO": 20, "SO_SNDLOWAT": 19, "SO_RCVLOWAT": 18, "SO_PEERCRED": 17, "SO_PASSCRED": 16,
        "SO_REUSEPORT": 15, "SO_BSDCOMPAT": 14, "SO_LINGER": 13, "SO_PRIORITY": 12, "SO_NO_CHECK": 11,
        "SO_OOBINLINE": 10, "SO_KEEPALIVE": 9, "SO_RCVBUFFORCE": 33, "SO_SNDBUFFORCE": 32, "SO_RCVBUF": 8,
        "SO_SNDBUF": 7, "SO_BROADCAST": 6, "SO_DONTROUTE": 5, "SO_ERROR": 4, "SO_TYPE": 3,
        "SO_REUSEADDR": 2, "SO_DEBUG": 1, "UNKNOWN": 0},
    "ptrace_requests": {"PTRACE_SINGLEBLOCK": 38, "PTRACE_SYSEMU_SINGLESTEP": 37, "PTRACE_SYSEMU": 36,
        "PTRACE_ARCH_PRCTL": 35, "PTRACE_SET_THREAD_AREA": 34, "PTRACE_GET_THREAD_AREA": 33,
        "PTRACE_OLDSETOPTIONS": 32, "PTRACE_SETFPXREGS": 31, "PTRACE_GETFPXREGS": 30,
        "PTRACE_SETFPREGS": 29, "PTRACE_GETFPREGS": 28, "PTRACE_SETREGS": 27, "PTRACE_GETREGS": 26,
        "PTRACE_SETSIGMASK": 25, "PTRACE_GETSIGMASK": 24, "PTRACE_PEEKSIGINFO": 23, "PTRACE_LISTEN": 22,
        "PTRACE_INTERRUPT": 21, "PTRACE_SEIZE": 20, "PTRACE_SETREGSET": 19, "PTRACE_GETREGSET": 18,
        "PTRACE_SETSIGINFO": 17, "PTRACE_GETSIGINFO": 16, "PTRACE_GETEVENTMSG": 15,
        "PTRACE_SETOPTIONS": 14, "PTRACE_SYSCALL": 13, "PTRACE_DETACH": 12, "PTRACE_ATTACH": 11,
        "PTRACE_SINGLESTEP": 10, "PTRACE_KILL": 9, "PTRACE_CONT": 8, "PTRACE_POKEUSR": 7,
        "PTRACE_POKEDATA": 6, "PTRACE_POKETEXT": 5, "PTRACE_PEEKUSR": 4, "PTRACE_PEEKDATA": 3,
        "PTRACE_PEEKTEXT": 2, "PTRACE_TRACEME": 1, "PTRACE_UNKNOWN": 0},
    "prot_flags": {"PROT_READ": 1, "PROT_WRITE": 2, "PROT_EXEC": 4, "PROT_SEM": 8, "PROT_GROWSDOWN": 16,
        "PROT_GROWSUP": 32, "PROT_SAO": 64, "PROT_NONE": 0},
    "mmap_flags": {"MAP_SHARED": 1, "MAP_PRIVATE": 2, "MAP_FIXED": 4, "MAP_ANONYMOUS": 8, "MAP_32BIT": 16,
        "MAP_RENAME": 32, "MAP_NORESERVE": 64, "MAP_POPULATE": 128, "MAP_NONBLOCK": 256,
        "MAP_GROWSDOWN": 512, "MAP_DENYWRITE": 1024, "MAP_EXECUTABLE": 2048, "MAP_INHERIT": 4096,
        "MAP_FILE": 8192, "MAP_LOCKED": 16384},
    "splice_flags": {"SPLICE_F_MOVE": 1, "SPLICE_F_NONBLOCK": 2, "SPLICE_F_MORE": 4, "SPLICE_F_GIFT": 8},
    "quotactl_dqi_flags": {"DQF_NONE": 1, "V1_DQF_RSQUASH": 2},
    "quotactl_cmds": {"Q_QUOTAON": 1, "Q_QUOTAOFF": 2, "Q_GETFMT": 4, "Q_GETINFO": 8, "Q_SETINFO": 16,
        "Q_GETQUOTA": 32, "Q_SETQUOTA": 64, "Q_SYNC": 128, "Q_XQUOTAON": 256, "Q_XQUOTAOFF": 512,
        "Q_XGETQUOTA": 1024, "Q_XSETQLIM": 2048, "Q_XGETQSTAT": 4096, "Q_XQUOTARM": 8192,
        "Q_XQUOTASYNC": 16384},
    "quotactl_types": {"USRQUOTA": 1, "GRPQUOTA": 2},
    "quotactl_quota_fmts": {"QFMT_NOT_USED": 1, "QFMT_VFS_OLD": 2, "QFMT_VFS_V0": 4, "QFMT_VFS_V1": 8},
    "semop_flags": {"IPC_NOWAIT": 1, "SEM_UNDO": 2},
    "semget_flags": {"IPC_EXCL": 16384, "IPC_CREAT": 8192},
    "semctl_commands": {"IPC_STAT": 1, "IPC_SET": 2, "IPC_RMID": 4, "IPC_INFO": 8, "SEM_INFO": 16,
        "SEM_STAT": 32, "GETALL": 64, "GETNCNT": 128, "GETPID": 256, "GETVAL": 512, "GETZCNT": 1024,
        "SETALL": 2048, "SETVAL": 4096},
    "access_flags": {"F_OK": 0, "R_OK": 4, "W_OK": 2, "X_OK": 1},
    "pf_flags": {"PROTECTION_VIOLATION": 1, "PAGE_NOT_PRESENT": 2, "WRITE_ACCESS": 4, "READ_ACCESS": 8,
        "USER_FAULT": 16, "SUPERVISOR_FAULT": 32, "RESERVED_PAGE": 64, "INSTRUCTION_FETCH": 128},
    "unlinkat_flags": {"AT_REMOVEDIR": 512},
    "linkat_flags": {"AT_SYMLINK_FOLLOW": 1024, "AT_EMPTY_PATH": 4096},
    "newfstatat_flags": {"AT_EMPTY_PATH": 4096, "AT_NO_AUTOMOUNT": 2048, "AT_SYMLINK_NOFOLLOW": 256},
    "chmod_mode": {"S_IXOTH": 1, "S_IWOTH": 2, "S_IROTH": 4, "S_IXGRP": 8, "S_IWGRP": 16, "S_IRGRP": 32,
        "S_IXUSR": 64, "S_IWUSR": 128, "S_IRUSR": 256, "S_ISVTX": 512, "S_ISGID": 1024, "S_ISUID": 2048},
    "fchownat_flags": {"AT_SYMLINK_NOFOLLOW": 1024, "AT_EMPTY_PATH": 4096},
    "renameat2_flags": {"RENAME_NOREPLACE": 1, "RENAME_EXCHANGE": 2, "RENAME_WHITEOUT": 4},
    "openat2_flags": {"RESOLVE_BENEATH": 1, "RESOLVE_IN_ROOT": 2, "RESOLVE_NO_MAGICLINKS": 4,
        "RESOLVE_NO_SYMLINKS": 8, "RESOLVE_NO_XDEV": 16, "RESOLVE_CACHED": 32},
    "execve_flags": {"EXE_WRITABLE": 1, "EXE_UPPER_LAYER": 2, "EXE_FROM_MEMFD": 4, "EXE_LOWER_LAYER": 8},
    "execveat_flags": {"AT_EMPTY_PATH": 1, "AT_SYMLINK_NOFOLLOW": 2},
    "io_uring_setup_flags": {"IORING_SETUP_IOPOLL": 1, "IORING_SETUP_SQPOLL": 2,
        "IORING_SQ_NEED_WAKEUP": 4, "IORING_SETUP_SQ_AFF": 8, "IORING_SETUP_CQSIZE": 16,
        "IORING_SETUP_CLAMP": 32, "IORING_SETUP_ATTACH_RW": 64, "IORING_SETUP_R_DISABLED": 128},
    "io_uring_setup_feats": {"IORING_FEAT_SINGLE_MMAP": 1, "IORING_FEAT_NODROP": 2,
        "IORING_FEAT_SUBMIT_STABLE": 4, "IORING_FEAT_RW_CUR_POS": 8, "IORING_FEAT_CUR_PERSONALITY": 16,
        "IORING_FEAT_FAST_POLL": 32, "IORING_FEAT_POLL_32BITS": 64, "IORING_FEAT_SQPOLL_NONFIXED": 128,
        "IORING_FEAT_ENTER_EXT_ARG": 256, "IORING_FEAT_NATIVE_WORKERS": 512, "IORING_FEAT_RSRC_TAGS": 1024},
    "io_uring_enter_flags": {"IORING_ENTER_GETEVENTS": 1, "IORING_ENTER_SQ_WAKEUP": 2,
        "IORING_ENTER_SQ_WAIT": 4, "IORING_ENTER_EXT_ARG": 8},
    "io_uring_register_opcodes": {"IORING_REGISTER_BUFFERS": 0, "IORING_UNREGISTER_BUFFERS": 1,
        "IORING_REGISTER_FILES": 2, "IORING_UNREGISTER_FILES": 3, "IORING_REGISTER_EVENTFD": 4,
        "IORING_UNREGISTER_EVENTFD": 5, "IORING_REGISTER_FILES_UPDATE": 6,
        "IORING_REGISTER_EVENTFD_ASYNC": 7, "IORING_REGISTER_PROBE": 8, "IORING_REGISTER_PERSONALITY": 9,
        "IORING_UNREGISTER_PERSONALITY": 10, "IORING_REGISTER_RESTRICTIONS": 11,
        "IORING_REGISTER_ENABLE_RINGS": 12, "IORING_REGISTER_FILES2": 13,
        "IORING_REGISTER_FILES_UPDATE2": 14, "IORING_REGISTER_BUFFERS2": 15,
        "IORING_REGISTER_BUFFERS_UPDATE": 16, "IORING_REGISTER_IOWQ_AFF": 17,
        "IORING_UNREGISTER_IOWQ_AFF": 18, "IORING_REGISTER_IOWQ_MAX_WORKERS": 19,
        "IORING_REGISTER_RING_FDS": 20, "IORING_UNREGISTER_RING_FDS": 21},
    "mlockall_flags": {"MCL_CURRENT": 1, "MCL_FUTURE": 2, "MCL_ONFAULT": 4},
    "mlock2_flags": {"MLOCK_ONFAULT": 1},
    "fsconfig_cmds": {"FSCONFIG_SET_FLAG": 0, "FSCONFIG_SET_STRING": 1, "FSCONFIG_SET_BINARY": 2,
        "FSCONFIG_SET_PATH": 3, "FSCONFIG_SET_PATH_EMPTY": 4, "FSCONFIG_SET_FD": 5,
        "FSCONFIG_CMD_CREATE": 6, "FSCONFIG_CMD_RECONFIGURE": 7},
    "epoll_create1_flags": {"EPOLL_CLOEXEC": 1},
    "prctl_options": {"PR_GET_DUMPABLE": 3, "PR_SET_DUMPABLE": 4, "PR_GET_KEEPCAPS": 7,
        "PR_SET_KEEPCAPS": 8, "PR_SET_NAME": 15, "PR_GET_NAME": 16, "PR_GET_SECCOMP": 21,
        "PR_SET_SECCOMP": 22, "PR_CAPBSET_READ": 23, "PR_CAPBSET_DROP": 24, "PR_GET_SECUREBITS": 27,
        "PR_SET_SECUREBITS": 28, "PR_MCE_KILL": 33, "PR_SET_MM": 35, "PR_SET_CHILD_SUBREAPER": 36,
        "PR_GET_CHILD_SUBREAPER": 37, "PR_SET_NO_NEW_PRIVS": 38, "PR_GET_NO_NEW_PRIVS": 39,
        "PR_GET_TID_ADDRESS": 40, "PR_SET_THP_DISABLE": 41, "PR_GET_THP_DISABLE": 42, "PR_CAP_AMBIENT": 47},
    "keyctl_operations": {"KEYCTL_GET_KEYRING_ID": 0, "KEYCTL_JOIN_SESSION_KEYRING": 1, "KEYCTL_UPDATE": 2,
        "KEYCTL_REVOKE": 3, "KEYCTL_CHOWN": 4, "KEYCTL_SETPERM": 5, "KEYCTL_DESCRIBE": 6,
        "KEYCTL_CLEAR": 7, "KEYCTL_LINK": 8, "KEYCTL_UNLINK": 9, "KEYCTL_SEARCH": 10, "KEYCTL_READ": 11,
        "KEYCTL_INSTANTIATE": 12, "KEYCTL_NEGATE": 13, "KEYCTL_SET_REQKEY_KEYRING": 14,
        "KEYCTL_SET_TIMEOUT": 15, "KEYCTL_ASSUME_AUTHORITY": 16, "KEYCTL_GET_SECURITY": 17,
        "KEYCTL_SESSION_TO_PARENT": 18, "KEYCTL_REJECT": 19, "KEYCTL_INSTANTIATE_IOV": 20,
        "KEYCTL_INVALIDATE": 21, "KEYCTL_GET_PERSISTENT": 22, "KEYCTL_DH_COMPUTE": 23,
        "KEYCTL_PKEY_QUERY": 24, "KEYCTL_PKEY_ENCRYPT": 25, "KEYCTL_PKEY_DECRYPT": 26,
        "KEYCTL_PKEY_SIGN": 27, "KEYCTL_PKEY_VERIFY": 28, "KEYCTL_RESTRICT_KEYRING": 29, "KEYCTL_MOVE": 30,
        "KEYCTL_CAPABILITIES": 31, "KEYCTL_WATCH_KEY": 32},
    "memfd_create_flags": {"MFD_CLOEXEC": 1, "MFD_ALLOW_SEALING": 2, "MFD_HUGETLB": 4},
    "pidfd_open_flags": {"PIDFD_NONBLOCK": 1},
    "mknod_mode": {"S_IXOTH": 1, "S_IWOTH": 2, "S_IROTH": 4, "S_IXGRP": 8, "S_IWGRP": 16, "S_IRGRP": 32,
        "S_IXUSR": 64, "S_IWUSR": 128, "S_IRUSR": 256, "S_ISVTX": 512, "S_ISGID": 1024, "S_ISUID": 2048,
        "S_IFREG": 32768, "S_IFCHR": 8192, "S_IFBLK": 24576, "S_IFIFO": 4096, "S_IFSOCK": 49152},
    "bpf_commands": {"BPF_MAP_CREATE": 0, "BPF_MAP_LOOKUP_ELEM": 1, "BPF_MAP_UPDATE_ELEM": 2,
        "BPF_MAP_DELETE_ELEM": 3, "BPF_MAP_GET_NEXT_KEY": 4, "BPF_PROG_LOAD": 5, "BPF_OBJ_PIN": 6,
        "BPF_OBJ_GET": 7, "BPF_PROG_ATTACH": 8, "BPF_PROG_DETACH": 9, "BPF_PROG_TEST_RUN": 10,
        "BPF_PROG_RUN": 10, "BPF_PROG_GET_NEXT_ID": 11, "BPF_MAP_GET_NEXT_ID": 12,
        "BPF_PROG_GET_FD_BY_ID": 13, "BPF_MAP_GET_FD_BY_ID": 14, "BPF_OBJ_GET_INFO_BY_FD": 15,
        "BPF_PROG_QUERY": 16, "BPF_RAW_TRACEPOINT_OPEN": 17, "BPF_BTF_LOAD": 18,
        "BPF_BTF_GET_FD_BY_ID": 19, "BPF_TASK_FD_QUERY": 20, "BPF_MAP_LOOKUP_AND_DELETE_ELEM": 21,
        "BPF_MAP_FREEZE": 22, "BPF_BTF_GET_NEXT_ID": 23, "BPF_MAP_LOOKUP_BATCH": 24,
        "BPF_MAP_LOOKUP_AND_DELETE_BATCH": 25, "BPF_MAP_UPDATE_BATCH": 26, "BPF_MAP_DELETE_BATCH": 27,
        "BPF_LINK_CREATE": 28, "BPF_LINK_UPDATE": 29, "BPF_LINK_GET_FD_BY_ID": 30,
        "BPF_LINK_GET_NEXT_ID": 31, "BPF_ENABLE_STATS": 32, "BPF_ITER_CREATE": 33, "BPF_LINK_DETACH": 34,
        "BPF_PROG_BIND_MAP": 35},
    "delete_module_flags": {"O_NONBLOCK": 2, "O_TRUNC": 1},
    "close_range_flags": {"CLOSE_RANGE_UNSHARE": 2, "CLOSE_RANGE_CLOEXEC": 4},
    "finit_module_flags": {"MODULE_INIT_IGNORE_MODVERSIONS": 1, "MODULE_INIT_IGNORE_VERMAGIC": 2,
        "MODULE_INIT_COMPRESSED_FILE": 4},
    # Not libscap tables: the raw Linux numbers socket()'s type and protocol carry, named for
    # convenience (the parameters themselves are plain integers).
    "socket_types": {"SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3, "SOCK_RDM": 4, "SOCK_SEQPACKET": 5,
        "SOCK_PACKET": 10, "SOCK_NONBLOCK": 0o4000, "SOCK_CLOEXEC": 0o2000000},
    "ip_protocols": {"IPPROTO_IP": 0, "IPPROTO_ICMP": 1, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17,
        "IPPROTO_IPV6": 41, "IPPROTO_ICMPV6": 58, "IPPROTO_RAW": 255},
}

# (event name, parameter name) -> flag table. Event names are ``evt.type`` names, so every version
# of an event shares the entry.
PARAM_FLAG_TABLE: Final[dict[tuple[str, str], str]] = {
    ("access", "mode"): "access_flags",
    ("bpf", "cmd"): "bpf_commands",
    ("chmod", "mode"): "chmod_mode",
    ("fchmod", "mode"): "chmod_mode",
    ("fchmodat", "mode"): "chmod_mode",
    ("clone", "flags"): "clone_flags",
    ("clone3", "flags"): "clone_flags",
    ("fork", "flags"): "clone_flags",
    ("vfork", "flags"): "clone_flags",
    ("setns", "nstype"): "clone_flags",
    ("unshare", "flags"): "clone_flags",
    ("close_range", "flags"): "close_range_flags",
    ("creat", "creat_flags"): "creat_flags",
    ("delete_module", "flags"): "delete_module_flags",
    ("epoll_create1", "flags"): "epoll_create1_flags",
    ("execve", "flags"): "execve_flags",
    ("execveat", "flags"): "execve_flags",
    ("fchownat", "flags"): "fchownat_flags",
    ("fcntl", "cmd"): "fcntl_commands",
    ("open", "flags"): "file_flags",
    ("openat", "flags"): "file_flags",
    ("openat2", "flags"): "file_flags",
    ("open_by_handle_at", "flags"): "file_flags",
    ("socket", "flags"): "file_flags",
    ("userfaultfd", "flags"): "file_flags",
    ("dup3", "flags"): "file_flags",
    ("pipe2", "flags"): "file_flags",
    ("inotify_init1", "flags"): "file_flags",
    ("eventfd2", "flags"): "file_flags",
    ("signalfd4", "flags"): "file_flags",
    ("finit_module", "flags"): "finit_module_flags",
    ("flock", "operation"): "flock_flags",
    ("fsconfig", "cmd"): "fsconfig_cmds",
    ("futex", "op"): "futex_operations",
    ("io_uring_enter", "flags"): "io_uring_enter_flags",
    ("io_uring_register", "opcode"): "io_uring_register_opcodes",
    ("io_uring_setup", "features"): "io_uring_setup_feats",
    ("io_uring_setup", "flags"): "io_uring_setup_flags",
    ("keyctl", "operation"): "keyctl_operations",
    ("linkat", "flags"): "linkat_flags",
    ("lseek", "whence"): "lseek_whence",
    ("llseek", "whence"): "lseek_whence",
    ("memfd_create", "flags"): "memfd_create_flags",
    ("mknod", "mode"): "mknod_mode",
    ("mknodat", "mode"): "mknod_mode",
    ("mlock2", "flags"): "mlock2_flags",
    ("mlockall", "flags"): "mlockall_flags",
    ("mmap", "flags"): "mmap_flags",
    ("mmap2", "flags"): "mmap_flags",
    ("mmap", "prot"): "prot_flags",
    ("mmap2", "prot"): "prot_flags",
    ("mprotect", "prot"): "prot_flags",
    ("mount", "flags"): "mount_flags",
    ("newfstatat", "flags"): "newfstatat_flags",
    ("openat2", "resolve"): "openat2_flags",
    ("pidfd_open", "flags"): "pidfd_open_flags",
    ("prctl", "option"): "prctl_options",
    ("ptrace", "request"): "ptrace_requests",
    ("quotactl", "cmd"): "quotactl_cmds",
    ("quotactl", "type"): "quotactl_types",
    ("quotactl", "dqi_flags"): "quotactl_dqi_flags",
    ("quotactl", "quota_fmt"): "quotactl_quota_fmts",
    ("quotactl", "quota_fmt_out"): "quotactl_quota_fmts",
    ("renameat2", "flags"): "renameat2_flags",
    ("getrlimit", "resource"): "rlimit_resources",
    ("setrlimit", "resource"): "rlimit_resources",
    ("prlimit", "resource"): "rlimit_resources",
    ("semctl", "cmd"): "semctl_commands",
    ("semget", "semflg"): "semget_flags",
    ("semop", "sem_flg_0"): "semop_flags",
    ("semop", "sem_flg_1"): "semop_flags",
    ("shutdown", "how"): "shutdown_how",
    ("socket", "domain"): "socket_families",
    ("socketpair", "domain"): "socket_families",
    ("socket", "type"): "socket_types",
    ("socketpair", "type"): "socket_types",
    ("socket", "proto"): "ip_protocols",
    ("socketpair", "proto"): "ip_protocols",
    ("setsockopt", "level"): "sockopt_levels",
    ("getsockopt", "level"): "sockopt_levels",
    ("setsockopt", "optname"): "sockopt_options",
    ("getsockopt", "optname"): "sockopt_options",
    ("splice", "flags"): "splice_flags",
    ("umount", "flags"): "umount_flags",
    ("umount2", "flags"): "umount_flags",
    ("unlinkat", "flags"): "unlinkat_flags",
    ("page_fault", "error"): "pf_flags",
}

ERRNO: Final[dict[str, int]] = {
    "EPERM": 1, "ENOENT": 2, "ESRCH": 3, "EINTR": 4, "EIO": 5, "ENXIO": 6, "E2BIG": 7, "ENOEXEC": 8,
    "EBADF": 9, "ECHILD": 10, "EAGAIN": 11, "EWOULDBLOCK": 11, "ENOMEM": 12, "EACCES": 13, "EFAULT": 14,
    "ENOTBLK": 15, "EBUSY": 16, "EEXIST": 17, "EXDEV": 18, "ENODEV": 19, "ENOTDIR": 20, "EISDIR": 21,
    "EINVAL": 22, "ENFILE": 23, "EMFILE": 24, "ENOTTY": 25, "ETXTBSY": 26, "EFBIG": 27, "ENOSPC": 28,
    "ESPIPE": 29, "EROFS": 30, "EMLINK": 31, "EPIPE": 32, "EDOM": 33, "ERANGE": 34, "EDEADLK": 35,
    "EDEADLOCK": 35, "ENAMETOOLONG": 36, "ENOLCK": 37, "ENOSYS": 38, "ENOTEMPTY": 39, "ELOOP": 40,
    "ENOMSG": 42, "EIDRM": 43, "ECHRNG": 44, "EL2NSYNC": 45, "EL3HLT": 46, "EL3RST": 47, "ELNRNG": 48,
    "EUNATCH": 49, "ENOCSI": 50, "EL2HLT": 51, "EBADE": 52, "EBADR": 53, "EXFULL": 54, "ENOANO": 55,
    "EBADRQC": 56, "EBADSLT": 57, "EBFONT": 59, "ENOSTR": 60, "ENODATA": 61, "ETIME": 62, "ENOSR": 63,
    "ENONET": 64, "ENOPKG": 65, "EREMOTE": 66, "ENOLINK": 67, "EADV": 68, "ESRMNT": 69, "ECOMM": 70,
    "EPROTO": 71, "EMULTIHOP": 72, "EDOTDOT": 73, "EBADMSG": 74, "EOVERFLOW": 75, "ENOTUNIQ": 76,
    "EBADFD": 77, "EREMCHG": 78, "ELIBACC": 79, "ELIBBAD": 80, "ELIBSCN": 81, "ELIBMAX": 82,
    "ELIBEXEC": 83, "EILSEQ": 84, "ERESTART": 85, "ESTRPIPE": 86, "EUSERS": 87, "ENOTSOCK": 88,
    "EDESTADDRREQ": 89, "EMSGSIZE": 90, "EPROTOTYPE": 91, "ENOPROTOOPT": 92, "EPROTONOSUPPORT": 93,
    "ESOCKTNOSUPPORT": 94, "ENOTSUP": 95, "EOPNOTSUPP": 95, "EPFNOSUPPORT": 96, "EAFNOSUPPORT": 97,
    "EADDRINUSE": 98, "EADDRNOTAVAIL": 99, "ENETDOWN": 100, "ENETUNREACH": 101, "ENETRESET": 102,
    "ECONNABORTED": 103, "ECONNRESET": 104, "ENOBUFS": 105, "EISCONN": 106, "ENOTCONN": 107,
    "ESHUTDOWN": 108, "ETOOMANYREFS": 109, "ETIMEDOUT": 110, "ECONNREFUSED": 111, "EHOSTDOWN": 112,
    "EHOSTUNREACH": 113, "EALREADY": 114, "EINPROGRESS": 115, "ESTALE": 116, "EUCLEAN": 117,
    "ENOTNAM": 118, "ENAVAIL": 119, "EISNAM": 120, "EREMOTEIO": 121, "EDQUOT": 122, "ENOMEDIUM": 123,
    "EMEDIUMTYPE": 124, "ECANCELED": 125, "ENOKEY": 126, "EKEYEXPIRED": 127, "EKEYREVOKED": 128,
    "EKEYREJECTED": 129, "EOWNERDEAD": 130, "ENOTRECOVERABLE": 131, "ERFKILL": 132, "EHWPOISON": 133,
}

SIGNALS: Final[dict[str, int]] = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGIOT": 6,
    "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13,
    "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19,
    "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25,
    "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPOLL": 29, "SIGPWR": 30, "SIGSYS": 31,
}

# Linux capability bit numbers (CAP_LAST_CAP is CAP_CHECKPOINT_RESTORE).
CAPABILITIES: Final[dict[str, int]] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23, "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}
ALL_CAPS: Final = (1 << (max(CAPABILITIES.values()) + 1)) - 1

# What Docker and containerd grant a non-privileged container by default.
DEFAULT_CONTAINER_CAPS: Final = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL", "CAP_AUDIT_WRITE",
)

# libscap encodings the scenario code sets itself.
PPM_O_RDONLY: Final = 1 << 0
PPM_O_WRONLY: Final = 1 << 1
PPM_O_RDWR: Final = PPM_O_RDONLY | PPM_O_WRONLY
PPM_O_CREAT: Final = 1 << 2
PPM_O_APPEND: Final = 1 << 3
PPM_O_NONBLOCK: Final = 1 << 6
PPM_O_TRUNC: Final = 1 << 8
PPM_O_DIRECTORY: Final = 1 << 10
PPM_O_CLOEXEC: Final = 1 << 12
PPM_O_TMPFILE: Final = 1 << 13
PPM_O_F_CREATED: Final = 1 << 14
PPM_FD_UPPER_LAYER: Final = 1 << 15
PPM_FD_LOWER_LAYER: Final = 1 << 16

PPM_CL_CLONE_FILES: Final = 1 << 0
PPM_CL_CLONE_FS: Final = 1 << 1
PPM_CL_CLONE_NEWIPC: Final = 1 << 3
PPM_CL_CLONE_NEWNET: Final = 1 << 4
PPM_CL_CLONE_NEWNS: Final = 1 << 5
PPM_CL_CLONE_NEWPID: Final = 1 << 6
PPM_CL_CLONE_NEWUTS: Final = 1 << 7
PPM_CL_CLONE_PARENT_SETTID: Final = 1 << 9
PPM_CL_CLONE_SIGHAND: Final = 1 << 11
PPM_CL_CLONE_SYSVSEM: Final = 1 << 12
PPM_CL_CLONE_THREAD: Final = 1 << 13
PPM_CL_CLONE_VM: Final = 1 << 15
PPM_CL_CLONE_CHILD_CLEARTID: Final = 1 << 23
PPM_CL_CLONE_CHILD_SETTID: Final = 1 << 24
PPM_CL_CLONE_SETTLS: Final = 1 << 25
PPM_CL_CLONE_VFORK: Final = 1 << 27
PPM_CL_CLONE_NEWCGROUP: Final = 1 << 28
PPM_CL_CHILD_IN_PIDNS: Final = 1 << 29

PPM_EXE_WRITABLE: Final = 1 << 0
PPM_EXE_UPPER_LAYER: Final = 1 << 1
PPM_EXE_FROM_MEMFD: Final = 1 << 2
PPM_EXE_LOWER_LAYER: Final = 1 << 3

PPM_AF_UNIX: Final = 1
PPM_AF_INET: Final = 2
PPM_AF_INET6: Final = 10
PPM_AT_FDCWD: Final = -100

# Raw Linux socket() values (these parameters are not re-encoded by the drivers).
SOCK_STREAM: Final = 1
SOCK_DGRAM: Final = 2
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17

# scap_fd_type numbers (FdInfo.fd_type) and scap_l4_proto numbers (FdInfo.l4proto).
FD_FILE: Final = 1
FD_DIRECTORY: Final = 2
FD_IPV4_SOCK: Final = 3
FD_IPV6_SOCK: Final = 4
FD_IPV4_SERVSOCK: Final = 5
FD_IPV6_SERVSOCK: Final = 6
FD_FIFO: Final = 7
FD_UNIX_SOCK: Final = 8
FD_EVENT: Final = 9
FD_UNKNOWN: Final = 10
FD_SIGNALFD: Final = 11
FD_EVENTPOLL: Final = 12
FD_INOTIFY: Final = 13
FD_TIMERFD: Final = 14
FD_NETLINK: Final = 15
FD_FILE_V2: Final = 16
FD_BPF: Final = 17
FD_USERFAULTFD: Final = 18
FD_IOURING: Final = 19
FD_MEMFD: Final = 20
FD_PIDFD: Final = 21
L4_UNKNOWN: Final = 0
L4_TCP: Final = 2
L4_UDP: Final = 3
L4_ICMP: Final = 4
L4_RAW: Final = 5
