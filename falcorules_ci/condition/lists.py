"""Falco's list handling: textual substitution of list names in conditions, and item quoting.

Falco substitutes lists into the raw condition text before parsing (``resolve_list`` in
falco ``userspace/engine/rule_loader_compiler.cpp``): every list, in definition order, with no
visibility check, wherever its name stands between delimiters, even inside a quoted string.
Undefined names are not errors; they stay as bare strings. Lists inside lists are expanded one
level only, against the *raw* items of lists defined before (the loader decides visibility).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

_BLANKS = " \t\n\r"
_DELIMITERS = _BLANKS + "(),="


def quote_item(item: str) -> str:
    """Falco's ``quote_item``: wrap in double quotes if the item holds a space and is unquoted.

    Nothing is escaped, which is why upstream items such as ``'"(systemd)"'`` carry their own
    quotes.
    """
    if " " in item and item[0] != '"' and item[0] != "'":
        return f'"{item}"'
    return item


def substitute_lists(
    condition: str,
    lists: Iterable[tuple[str, Sequence[str]]],
    used: set[str] | None = None,
) -> str:
    """Substitute every list, in the order given, into ``condition`` as Falco does.

    ``used`` collects the names of lists that were substituted at least once.
    """
    for name, items in lists:
        if not name or name not in condition:
            continue
        condition, substituted = _substitute_one(condition, name, items)
        if substituted and used is not None:
            used.add(name)
    return condition


def _substitute_one(cnd: str, name: str, items: Sequence[str]) -> tuple[str, bool]:
    # The index arithmetic mirrors Falco's loop exactly, including where the search resumes
    # after a substitution; that decides which later occurrences are seen.
    replacement = ", ".join(quote_item(item) for item in items)
    used = False
    start = cnd.find(name)
    while start != -1:
        end = start + len(name)
        if (start == 0 or cnd[start - 1] in _DELIMITERS) and (end >= len(cnd) or cnd[end] in _DELIMITERS):
            while start > 0 and cnd[start - 1] in _BLANKS:
                start -= 1
            while end < len(cnd) and cnd[end] in _BLANKS:
                end += 1
            if not replacement:
                # An empty list also swallows one adjacent comma.
                if start > 0 and cnd[start - 1] == ",":
                    start -= 1
                elif end < len(cnd) and cnd[end] == ",":
                    end += 1
            prefix = cnd[:start] + " " if start > 0 else ""
            cnd = prefix + replacement + " " + cnd[end:]
            start += len(replacement) + 1
            used = True
        start = cnd.find(name, start + 1)
    return cnd, used


def expand_list_items(
    items: Sequence[str],
    lookup: Callable[[str], Sequence[str] | None],
    used: set[str] | None = None,
) -> list[str]:
    """Falco's ``compile_list_infos`` for one list: items naming a visible list become its items.

    ``lookup(name)`` returns the raw items of a list this list may see (index below its
    visibility), or None. The expansion is one level deep, as in Falco.
    """
    expanded: list[str] = []
    for item in items:
        ref = lookup(item)
        if ref is None:
            expanded.append(item)
            continue
        expanded.extend(ref)
        if used is not None:
            used.add(item)
    return expanded


__all__ = ["expand_list_items", "quote_item", "substitute_lists"]
