"""Running Debian's sysdig 0.29.3 on a capture: rule filters through chisels, field values through ``-p``.

Two kinds of runs, both reading the capture once:

- **Matching** (:meth:`SysdigRunner.match_filters`): one sysdig process evaluates many filters at
  once. Each filter gets its own instance of a small Lua chisel (written by us at run time) that
  sets the filter with ``chisel.set_filter`` and prints ``INDEX EVT_NUM`` for every event it
  accepts. A chisel's filter is evaluated on every event *after* libsinsp parsed it, which is
  ``sysdig -d`` (display filter) semantics, Falco's order: a plain ``sysdig -r FILE FILTER`` would
  evaluate most filters *before* parsing and skip the parsing of rejected events, which changes
  the state later events see. Chisels also see libsinsp's internal events (``procinfo``) as
  ``sysdig -D`` shows them. Compared with one process per filter this saves sysdig's start-up
  (about 20 ms) and one read of the file per filter; each chisel costs about 2 ms.
- **Printing** (:meth:`SysdigRunner.print_fields`): ``sysdig -r FILE -D -d -p "*%evt.num ..."``
  with unit-separator characters between values and a record separator after each event, so
  values may hold spaces and new lines. ``*`` keeps events with missing values (``<NA>``).

sysdig runs with ``TZ=UTC``; results are cached per (capture file identity, request) for the
runner's lifetime, so one session never reads the same capture twice for the same question.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from falcorules_ci.errors import FalcoRulesError, Span

SYSDIG_ENV: Final = "FALCORULES_SYSDIG"
DEFAULT_SYSDIG: Final = "/usr/bin/sysdig"

# Fields sysdig 0.29.3 accepts in filters only ("is filter only and cannot be used as a display
# field", ``sysdig -lv``), and argument-less ancestor fields its formatter misreads (``%proc.aname``
# prints the process name followed by the literal text "proc.aname").
FILTER_ONLY_FIELDS: Final = frozenset({"evt.around", "fd.ip", "fd.port", "fd.proto", "fd.net", "fd.cnet", "fd.snet",
                                       "fd.lnet", "fd.rnet"})  # fmt: skip
MISPRINTED_FIELDS: Final = frozenset({"proc.aname", "proc.apid"})

FIELD_SEP: Final = "\x1f"
RECORD_END: Final = "\x1e\n"
# Longest filter we pass on the command line (Linux caps one argument at 128 KiB).
MAX_FILTER_ARG: Final = 100_000
_INVALID_FILTER: Final = "invalid filter in chisel "

# The chisel: one instance per filter; its argument is "INDEX@FILTERS_FILE" (line INDEX of the
# file, counted from 0, is its filter). A filter sysdig rejects prints "E INDEX" once and matches
# nothing; sysdig itself prints the reason on stderr, in chisel order.
CHISEL_SOURCE: Final = """\
-- falcorules-ci: report the events one libsinsp filter accepts, after the state engine saw them.
description = "falcorules-ci filter matcher"
short_description = "falcorules-ci filter matcher"
category = "misc"
args = {{name = "spec", description = "INDEX@FILTERS_FILE", argtype = "string"}}

local index = nil
local filter_text = nil
local num_field = nil
local rejected = false

function on_set_arg(name, val)
  local i, path = string.match(val, "^(%d+)@(.+)$")
  if i == nil then
    return false
  end
  index = tonumber(i)
  local n = 0
  for line in io.lines(path) do
    if n == index then
      filter_text = line
      break
    end
    n = n + 1
  end
  return filter_text ~= nil
end

function on_init()
  num_field = chisel.request_field("evt.num")
  if not pcall(chisel.set_filter, filter_text) then
    rejected = true
    print("E " .. index)
  end
  return true
end

function on_event()
  if not rejected then
    print(index .. " " .. evt.field(num_field))
  end
  return true
end
"""


class SysdigError(FalcoRulesError):
    """sysdig could not be run, or could not read a capture."""


class SysdigUnavailable(SysdigError):
    """No sysdig binary at the configured path."""


class SysdigCrash(SysdigError):
    """sysdig died from a signal (0.29.3 segfaults printing some fields of some events)."""


def sysdig_binary(binary: str | os.PathLike[str] | None = None) -> str | None:
    """The sysdig to run (the argument, else ``$FALCORULES_SYSDIG``, else /usr/bin/sysdig), if it exists."""
    path = os.fspath(binary) if binary is not None else os.environ.get(SYSDIG_ENV) or DEFAULT_SYSDIG
    found = shutil.which(path) if os.sep not in path else path
    return found if found and os.path.isfile(found) and os.access(found, os.X_OK) else None


def require_sysdig(binary: str | os.PathLike[str] | None = None) -> str:
    found = sysdig_binary(binary)
    if found is None:
        wanted = os.fspath(binary) if binary is not None else os.environ.get(SYSDIG_ENV) or DEFAULT_SYSDIG
        raise SysdigUnavailable(f"sysdig not found at {wanted} (install Debian's sysdig package or set {SYSDIG_ENV})")
    return found


@dataclass(frozen=True, slots=True)
class FilterMatches:
    """What one matching run found: per filter (by index) the sysdig event numbers it accepted,
    ascending, and the filters sysdig rejected with its message."""

    matches: tuple[tuple[int, ...], ...]
    rejected: dict[int, str]
    seconds: float


def filter_line(text: str) -> str:
    """A filter as one line of the chisel's filters file.

    New lines and carriage returns can only occur inside quoted values (the printer quotes any
    value holding blanks), where sysdig's lexer decodes ``\\xHH``.
    """
    return text.replace("\n", "\\x0a").replace("\r", "\\x0d")


@dataclass(frozen=True, slots=True)
class PrintedFields:
    """What a printing run gave: per sysdig evt.num the field texts (``None`` where sysdig
    crashed before printing it), and the fields whose own run crashed."""

    rows: dict[int, tuple[str | None, ...]]
    crashed: tuple[str, ...]


class SysdigRunner:
    """Runs one sysdig binary; caches results per (capture identity, request)."""

    def __init__(self, binary: str | os.PathLike[str] | None = None, *, timeout: float | None = None) -> None:
        self.binary = require_sysdig(binary)
        self.timeout = timeout
        self._cache: dict[tuple[object, ...], object] = {}
        self._lock = threading.Lock()
        self._workdir: str | None = None
        self._cleanup: Callable[[], object] | None = None
        self.runs = 0

    # -- plumbing --------------------------------------------------------------------------------

    def _dir(self) -> str:
        with self._lock:
            if self._workdir is None:
                self._workdir = tempfile.mkdtemp(prefix="falcorules-sysdig-")
                # Removed by close(), or when the runner is collected or the interpreter exits.
                self._cleanup = weakref.finalize(self, shutil.rmtree, self._workdir, True)
                Path(self._workdir, "falcorules_match.lua").write_text(CHISEL_SOURCE, encoding="utf-8")
            return self._workdir

    def close(self) -> None:
        """Remove the runner's scratch folder (the chisel and filter files)."""
        with self._lock:
            if self._cleanup is not None:
                self._cleanup()
                self._cleanup = None
            self._workdir = None

    def __enter__(self) -> SysdigRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _identity(capture: str) -> tuple[str, int, int]:
        try:
            st = os.stat(capture)
        except OSError as exc:
            raise SysdigError(f"cannot read capture: {exc.strerror or exc}", Span(capture)) from None
        return os.path.realpath(capture), st.st_mtime_ns, st.st_size

    def _cached(self, key: tuple[object, ...]) -> object | None:
        with self._lock:
            return self._cache.get(key)

    def _store(self, key: tuple[object, ...], value: object) -> None:
        with self._lock:
            self._cache[key] = value

    def _records(self, args: list[str], capture: str, separator: bytes, stderr: list[str]) -> Iterator[str]:
        """Run sysdig and yield its stdout split at ``separator`` as it comes (memory stays flat
        for big captures); raise SysdigError if it fails. Its stderr is appended to ``stderr``."""
        env = dict(os.environ, TZ="UTC")
        with tempfile.TemporaryFile() as err:
            with self._lock:
                self.runs += 1
            proc = subprocess.Popen([self.binary, *args], stdout=subprocess.PIPE, stderr=err, env=env,
                                    stdin=subprocess.DEVNULL)  # fmt: skip
            assert proc.stdout is not None
            pending = b""
            try:
                while chunk := proc.stdout.read(1 << 16):
                    pending += chunk
                    *records, pending = pending.split(separator)
                    for record in records:
                        yield record.decode("utf-8", "surrogateescape")
                code = proc.wait(timeout=self.timeout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
        stderr.append(text)
        if pending.strip():
            yield pending.decode("utf-8", "surrogateescape")
        if code < 0:
            raise SysdigCrash(f"sysdig was killed by signal {-code} reading this capture", Span(capture))
        if code != 0:
            message = " ".join(text.split())[:500] or f"exit status {code}"
            raise SysdigError(f"sysdig failed on this capture: {message}", Span(capture))

    # -- matching -------------------------------------------------------------------------------

    def match_filters(self, capture: str | os.PathLike[str], filters: Sequence[str]) -> FilterMatches:
        """The events each filter accepts (sysdig's evt.num), evaluated after state updates."""
        path = os.fspath(capture)
        lines = [filter_line(f) for f in filters]
        key = ("match", self._identity(path), tuple(lines))
        cached = self._cached(key)
        if isinstance(cached, FilterMatches):
            return cached
        started = time.perf_counter()
        found: list[list[int]] = [[] for _ in lines]
        stderr: list[str] = []
        rejected: list[int] = []
        if lines:
            workdir = self._dir()
            fd, list_file = tempfile.mkstemp(prefix="filters-", suffix=".txt", dir=workdir)
            try:
                with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
                    handle.write("\n".join(lines) + "\n")
                chisel = os.path.join(workdir, "falcorules_match.lua")
                args = ["-r", path]
                for k in range(len(lines)):
                    args += ["-c", chisel, f"{k}@{list_file}"]
                for line in self._records(args, path, b"\n", stderr):
                    head, _, tail = line.partition(" ")
                    if head == "E":
                        rejected.append(int(tail))
                    elif head.isdigit() and tail.isdigit():
                        found[int(head)].append(int(tail))
                    elif line.strip():
                        raise SysdigError(f"unexpected chisel output {line[:200]!r}", Span(path))
            finally:
                os.unlink(list_file)
        reasons = _rejections(rejected, "".join(stderr))
        result = FilterMatches(tuple(tuple(sorted(nums)) for nums in found), reasons,
                               time.perf_counter() - started)  # fmt: skip
        self._store(key, result)
        return result

    # -- printing -------------------------------------------------------------------------------

    def print_fields(
        self,
        capture: str | os.PathLike[str],
        fields: Sequence[str],
        *,
        only: Collection[int] | None = None,
    ) -> PrintedFields:
        """Each event's values of ``fields`` as sysdig prints them (``<NA>`` when missing), keyed
        by sysdig's evt.num; ``only`` limits the result to those event numbers.

        sysdig 0.29.3 crashes printing a few fields on a few events (``evt.res`` of a ``bpf``
        exit). Then each field is printed on its own: the values of a field whose run crashed are
        ``None`` from the crashing event on, and the field is listed in ``crashed``.
        """
        path = os.fspath(capture)
        bad = [f for f in fields if f.split("[", 1)[0] in FILTER_ONLY_FIELDS or f in MISPRINTED_FIELDS]
        if bad:
            raise SysdigError(f"sysdig 0.29.3 cannot print {', '.join(bad)}")
        wanted = None if only is None else sorted(set(only))
        key = ("print", self._identity(path), tuple(fields), None if wanted is None else tuple(wanted))
        cached = self._cached(key)
        if isinstance(cached, PrintedFields):
            return cached
        if wanted is not None and not wanted:
            return PrintedFields({}, ())
        flt = None
        if wanted is not None:
            text = "evt.num in (" + ", ".join(map(str, wanted)) + ")"
            flt = text if len(text) <= MAX_FILTER_ARG else None
        keep = None if wanted is None else set(wanted)
        rows, crashed = self._print_rows(path, fields, flt, keep)
        result = PrintedFields(rows, ())
        if crashed:
            columns = [self._print_rows(path, [name], flt, keep) for name in fields]
            nums = sorted(set().union(*(column for column, _ in columns)))
            merged = {num: tuple(column[num][0] if num in column else None for column, _ in columns) for num in nums}
            result = PrintedFields(merged, tuple(name for name, (_, died) in zip(fields, columns, strict=True) if died))
        self._store(key, result)
        return result

    def _print_rows(self, path: str, fields: Sequence[str], flt: str | None,
                    keep: set[int] | None) -> tuple[dict[int, tuple[str | None, ...]], bool]:  # fmt: skip
        """One printing run: the rows it printed, and whether sysdig crashed before the end."""
        fmt = "*%evt.num" + "".join(FIELD_SEP + "%" + f for f in fields) + RECORD_END.rstrip("\n")
        args = ["-r", path, "-D", "-d", "-p", fmt]
        if flt is not None:
            args.append(flt)
        rows: dict[int, tuple[str | None, ...]] = {}
        try:
            for record in self._records(args, path, RECORD_END.encode(), []):
                if not record.strip("\n"):
                    continue
                num_text, *values = record.split(FIELD_SEP)
                if not num_text.isdigit() or len(values) != len(fields):
                    raise SysdigError(f"unexpected sysdig output {record[:200]!r}", Span(path))
                num = int(num_text)
                if keep is None or num in keep:
                    rows[num] = tuple(values)
        except SysdigCrash:
            return rows, True
        return rows, False


def _rejections(rejected: list[int], stderr: str) -> dict[int, str]:
    # sysdig prints one "invalid filter in chisel PATH: MESSAGE" per rejected filter, in the
    # chisels' order, which is also the order of the "E INDEX" lines.
    messages = [line.split(": ", 1)[1] if ": " in line else line
                for line in stderr.splitlines() if line.startswith(_INVALID_FILTER)]  # fmt: skip
    ordered = sorted(rejected)
    if len(messages) != len(ordered):
        messages = ["sysdig rejected the filter"] * len(ordered)
    return dict(zip(ordered, messages, strict=True))


__all__ = [
    "CHISEL_SOURCE",
    "DEFAULT_SYSDIG",
    "FILTER_ONLY_FIELDS",
    "MISPRINTED_FIELDS",
    "SYSDIG_ENV",
    "FilterMatches",
    "PrintedFields",
    "SysdigCrash",
    "SysdigError",
    "SysdigRunner",
    "SysdigUnavailable",
    "filter_line",
    "require_sysdig",
    "sysdig_binary",
]
