"""String primitives of the engine: glob against the C library's own fnmatch, pmatch, base64,
ASCII-only case folding and output sanitising."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from falcorules_ci.engine.matching import (
    PathPrefixSet,
    ascii_lower,
    b64_decode,
    byte_length,
    glob_match,
    sanitize,
)

FNM_CASEFOLD = 1 << 4  # glibc


def _libc_fnmatch() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: its flag values are assumed)
    except (OSError, AttributeError):
        return None
    fn = libc.fnmatch
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


FNMATCH = _libc_fnmatch()
needs_glibc = pytest.mark.skipif(FNMATCH is None, reason="needs glibc's fnmatch as the oracle")


def libc_glob(pattern: str, value: str, casefold: bool = False) -> bool:
    assert FNMATCH is not None
    return bool(FNMATCH(pattern.encode(), value.encode(), FNM_CASEFOLD if casefold else 0) == 0)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "/a/b", True),  # no FNM_PATHNAME: '*' crosses '/'
        ("/etc/*", "/etc/ssh/sshd_config", True),
        ("*.conf", ".hidden.conf", True),  # no FNM_PERIOD
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("[abc]x", "bx", True),
        ("[!abc]x", "bx", False),
        ("[^abc]x", "dx", True),
        ("[]]", "]", True),
        ("[a-]", "-", True),
        ("[a-c]", "b", True),
        ("\\*", "*", True),
        ("\\*", "a", False),
        ("a\\", "a\\", False),  # a trailing backslash never matches
        ("[[:digit:]]x", "5x", True),
        ("[[:bogus:]]", "b", False),
        ("[ab", "[ab", True),  # an unterminated bracket is a literal '['
        ("*.TXT", "a.txt", False),
    ],
)
def test_glob_cases(pattern: str, value: str, expected: bool) -> None:
    assert glob_match(pattern, value) is expected
    if FNMATCH is not None:
        assert libc_glob(pattern, value) is expected


def test_iglob_folds_ascii_only() -> None:
    assert glob_match("*.TXT", "a.txt", casefold=True)
    assert not glob_match("É*", "é1", casefold=True)


def test_glob_counts_bytes_not_characters() -> None:
    # In the C locale '?' is one byte; 'é' is two.
    assert not glob_match("?", "é")
    assert glob_match("??", "é")


_GLOB_ALPHABET = st.sampled_from(list("ab/.-*?[]!^\\:=Zz") + ["[:alpha:]", "[:upper:]", "[=a=]", "[.a.]", "[.", "[=", "[:"])
_VALUE_ALPHABET = st.sampled_from(list("ab/.-*?[]!^\\:=Zz1A"))


@needs_glibc
@settings(max_examples=400, deadline=None)
@given(st.lists(_GLOB_ALPHABET, max_size=10).map("".join), st.lists(_VALUE_ALPHABET, max_size=8).map("".join),
       st.booleans(), st.booleans())  # fmt: skip
def test_glob_agrees_with_glibc(pattern: str, value: str, casefold: bool, value_is_pattern: bool) -> None:
    if value_is_pattern:
        value = pattern  # exercises brackets read as literal text
    assert glob_match(pattern, value, casefold) is libc_glob(pattern, value, casefold)


def test_pmatch_component_prefixes() -> None:
    paths = PathPrefixSet(["/etc", "/usr/lib", "/var/*/x"])
    assert "/etc" in paths
    assert "/etc/passwd" in paths
    assert "/etcx" not in paths
    assert "/usr" not in paths  # a partial match of /usr/lib is not a match
    assert "/usr/lib/libc.so" in paths
    assert "/var/spool/x/y" in paths
    assert "/var/spool/y" not in paths
    assert "//etc//shadow" in paths  # empty components are ignored


def test_pmatch_shorter_prefix_wins_in_either_order() -> None:
    assert "/usr/bin/x" in PathPrefixSet(["/usr/lib", "/usr"])
    assert "/usr/bin/x" in PathPrefixSet(["/usr", "/usr/lib"])
    assert "/anything" in PathPrefixSet(["/"])


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        (b"aGVsbG8", b"hello"),
        (b"aGVsbG8=", b"hello"),
        (b"aGVsbA==", b"hell"),
        (b"aGVsbA", b"hell"),  # padding is optional
        (b"", b""),
        (b"a", None),  # a dangling character
        (b"aGVsbB==", None),  # non-zero unused bits
        (b"aG!s", None),
        (b"aG=s", None),
    ],
)
def test_b64_decode(text: bytes, decoded: bytes | None) -> None:
    assert b64_decode(text) == decoded


def test_ascii_case_and_byte_length() -> None:
    assert ascii_lower("ÉcHo") == "Écho"
    assert byte_length("é\x00ignored") == 2


def test_sanitize_replaces_what_libsinsp_will_not_print() -> None:
    assert sanitize("plain text") == "plain text"
    assert sanitize("a\tb\x7fc") == "a\ufffdb\ufffdc"
    assert sanitize("é\u0085") == "é\ufffd"  # C1 control
    assert sanitize("x\udcff") == "x\ufffd"  # an invalid byte carried as a surrogate escape
