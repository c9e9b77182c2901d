"""libsinsp's path joining and normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from falcorules_ci.state.paths import TOO_LONG, concatenate_paths


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("/home/alice/", "notes.txt", "/home/alice/notes.txt"),
        ("/home/alice/", "../bob/./x", "/home/bob/x"),
        ("/home/alice/", "../../../../etc/passwd", "/etc/passwd"),
        ("/home/alice/", "/etc//ssh///sshd_config", "/etc/ssh/sshd_config"),
        ("/", "..", "/"),
        ("/tmp/", "dir/", "/tmp/dir"),
        ("/tmp/", ".", "/tmp"),
        ("", "", ""),
        ("", "./a/b", "a/b"),
        ("", "a/../../b", "b"),
        ("rel/", "../x", "x"),
        # libsinsp does not add a separator: the base must end with one
        ("/tmp", "x", "/tmpx"),
        # the base itself is never normalised
        ("/a//b/", "c", "/a//b/c"),
        ("/a/", "..x/.y", "/a/..x/.y"),
        ("<UNKNOWN>", "x", "<UNKNOWN>x"),
        ("/a/", "b\0c", "/a/b"),
    ],
)
def test_concatenate_paths(base: str, path: str, expected: str) -> None:
    assert concatenate_paths(base, path) == expected


def test_too_long_paths_collapse_to_a_marker() -> None:
    assert concatenate_paths("/" + "d" * 1000 + "/", "f" * 30) == TOO_LONG


components = st.sampled_from(["a", "bc", ".", "..", "", ".hidden", "x..y"])


@given(st.lists(components, max_size=12), st.booleans())
def test_normalised_absolute_paths_are_canonical_and_stable(parts: list[str], trailing: bool) -> None:
    path = "/" + "/".join(parts) + ("/" if trailing else "")
    result = concatenate_paths("", path)
    assert result.startswith("/")
    assert "//" not in result and "/./" not in result and "/../" not in result
    assert result == "/" or not result.endswith(("/", "/.", "/.."))
    assert concatenate_paths("", result) == result
    assert concatenate_paths("/ignored/", path) == result
