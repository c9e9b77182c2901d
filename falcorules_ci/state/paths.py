"""Path joining and normalisation exactly as libsinsp does it (``sinsp_utils::concatenate_paths``).

libsinsp never asks the filesystem: it joins a base directory (a cwd with a trailing ``/``, or a
dirfd's name) with the path a syscall received, and normalises ``.``, ``..`` and repeated
separators in a single left-to-right pass. Its corner cases are reproduced here:

- the base is copied verbatim; only the appended part is normalised, but ``..`` may climb back
  into the base;
- ``..`` at the root stays at the root;
- a trailing ``/`` is dropped unless the whole result is ``/``;
- when the base is non-empty and ``..`` climbs back to the very start, a following ``/`` is
  skipped (``foo/../a`` joined to ``""`` gives ``a``, but to a non-empty base gives its climb);
- an absolute path ignores the base;
- inputs longer than libscap's 1024-byte path buffer give ``/DIR_TOO_LONG/FILENAME_TOO_LONG``.
"""

from __future__ import annotations

from falcorules_ci.state.constants import MAX_PATH_SIZE

TOO_LONG = "/DIR_TOO_LONG/FILENAME_TOO_LONG"


def concatenate_paths(base: str, path: str) -> str:
    """Join ``path`` to ``base`` (when ``path`` is relative) and normalise the result."""
    nul = path.find("\0")
    if nul >= 0:
        path = path[:nul]
    if len(base) + len(path) + 1 > MAX_PATH_SIZE:
        return TOO_LONG
    if path and path[0] != "/":
        if (not base or base[-1] == "/") and _is_clean(path, 0):
            return base + path
        return _normalise(list(base), path, empty_base=not base)
    if _is_clean(path, 1):
        return path
    return _normalise([], path, empty_base=True)


def _is_clean(path: str, start: int) -> bool:
    """Whether normalising ``path`` would leave it unchanged (the common case, kept fast)."""
    if not path or (path[-1] == "/" and path != "/"):
        return False
    if path == "/":
        return True
    return all(part not in ("", ".", "..") for part in path.split("/")[start:])


def _normalise(out: list[str], path: str, *, empty_base: bool) -> str:
    n = len(path)
    i = 0
    while i < n:
        c = path[i]
        if c == "." and (not out or out[-1] == "/"):
            nxt = path[i + 1] if i + 1 < n else ""
            if nxt == ".":
                after = path[i + 2] if i + 2 < n else ""
                if after == "/":
                    _climb(out)
                    i += 3
                    continue
                if i + 2 == n:
                    _climb(out)
                    i += 2
                    continue
                out.append(c)
                i += 1
            elif nxt == "/":
                i += 2
            elif i + 1 == n:
                i += 1
            else:
                out.append(c)
                i += 1
        elif c == "/":
            # Skip a repeated separator, and a separator right after climbing back to the start
            # of a non-empty base.
            if (out and out[-1] == "/") or (not out and not empty_base):
                i += 1
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    if len(out) > 1 and out[-1] == "/":
        out.pop()
    return "".join(out)


def _climb(out: list[str]) -> None:
    """Drop the last path component of ``out``, keeping its trailing separator."""
    if len(out) <= 1:
        return
    out.pop()
    while out and out[-1] != "/":
        out.pop()


def with_trailing_slash(path: str) -> str:
    """A directory name as libsinsp uses it for relative lookups (``dir/``)."""
    if not path or path[-1] == "/":
        return path
    return path + "/"
