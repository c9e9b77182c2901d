"""The field declarations: every field the upstream packs use resolves, with Falco's types and flags."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import INCUBATING, K8SAUDIT, ROOT, SANDBOX, STABLE
from hypothesis import given
from hypothesis import strategies as st

from falcorules_ci.fields import (
    ArgKind,
    FieldError,
    FieldRegistry,
    FieldType,
    default_registry,
    field_classes,
    match_field,
    plugin_for_unknown_source,
    rawarg_type,
)
from falcorules_ci.fields.sysdig_fields import SYSDIG_FIELDS

SEMANTICS = ROOT.parent / "shared" / "reference" / "falco-semantics.md"

# --- the reference field census (falco-semantics.md §4) -------------------------------------------


def _census() -> tuple[dict[str, bool], set[str]]:
    """Syscall field forms → known to sysdig (the `sd` column), and the k8s_audit field forms."""
    text = SEMANTICS.read_text()
    section = text[text.index("**Field census.**") : text.index("Field types in current libs")]
    syscall: dict[str, bool] = {}
    k8s: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            for first in (0, 4):
                if first < len(cells) and cells[first].startswith("`"):
                    syscall[cells[first].strip("`")] = cells[first + 3] == "y"
        elif line.startswith("k8s_audit (all K-only"):
            k8s.update(re.findall(r"`([^`]+\.[^`]+)`", line))
    return syscall, k8s


CENSUS_SYSCALL, CENSUS_K8S = _census()

# Types the reference gives for census fields; every other census field is a string (CHARBUF).
CENSUS_TYPES: dict[str, FieldType] = {
    **dict.fromkeys(["evt.rawres", "fd.num", "proc.vpid", "user.loginuid"], FieldType.INT64),
    **dict.fromkeys(["proc.tty", "user.uid", "group.gid"], FieldType.UINT32),
    "evt.num": FieldType.UINT64,
    **dict.fromkeys(["fd.lport", "fd.rport", "fd.sport", "fd.port"], FieldType.PORT),
    **dict.fromkeys(["fd.cip", "fd.sip", "fd.rip", "fd.ip"], FieldType.IPADDR),
    **dict.fromkeys(["fd.net", "fd.snet", "fd.cnet", "fd.rnet"], FieldType.IPNET),
    **dict.fromkeys(
        [
            "evt.is_open_exec", "evt.is_open_read", "evt.is_open_write", "fd.connected", "fd.name_changed",
            "proc.is_exe_from_memfd", "proc.is_exe_upper_layer", "proc.is_vpgid_leader",
            "container.privileged",  # a plugin bool
        ],
        FieldType.BOOL,
    ),
    "evt.buffer": FieldType.BYTEBUF,
    **dict.fromkeys(
        ["proc.exe_ino.ctime", "proc.exe_ino.mtime", "proc.exe_ino.ctime_duration_proc_start", "container.start_ts"],
        FieldType.ABSTIME,
    ),
    "proc.duration": FieldType.RELTIME,
}  # fmt: skip

CENSUS_LISTS = {
    "ka.req.binding.subjects", "ka.req.pod.containers.image", "ka.req.pod.containers.image.repository",
    "ka.req.pod.containers.privileged", "ka.req.pod.ephemeralContainers.image",
    "ka.req.pod.ephemeralContainers.privileged", "ka.req.pod.initContainers.image",
    "ka.req.pod.initContainers.privileged", "ka.req.pod.volumes.hostpath", "ka.req.role.rules",
    "ka.req.role.rules.resources", "ka.req.role.rules.verbs", "ka.req.service.ports",
}  # fmt: skip

_FORM = re.compile(r"([^\[]+)(?:\[(.*)\])?")


def _split(form: str) -> tuple[str, str | None]:
    match = _FORM.fullmatch(form)
    assert match, form
    name, arg = match.group(1), match.group(2)
    if arg is not None and arg.startswith("<"):  # `container.mount.dest[<12 paths>]`
        arg = "/proc*"
    return name, arg


def _base(form: str) -> str:
    return _split(form)[0]


def test_census_parsed_as_the_reference_counts_it() -> None:
    bases = {_base(f) for f in CENSUS_SYSCALL} | {_base(f) for f in CENSUS_K8S}
    assert len(bases) == 127
    assert len({_base(f) for f in CENSUS_K8S}) == 36
    unknown_to_sysdig = {_base(f) for f, known in CENSUS_SYSCALL.items() if not known}
    assert len(unknown_to_sysdig) == 14


@pytest.mark.parametrize(
    ("form", "source"),
    [(f, "syscall") for f in sorted(CENSUS_SYSCALL)] + [(f, "k8s_audit") for f in sorted(CENSUS_K8S)],
)
def test_census_field_resolves_with_type_and_listness(form: str, source: str) -> None:
    name, arg = _split(form)
    match = match_field(default_registry(), name, arg, source)
    assert match.text == (form if not form.endswith(">]") else f"{name}[{arg}]")
    expected_type = CENSUS_TYPES.get(name, FieldType.CHARBUF)
    assert match.info.type is expected_type, form
    assert match.info.is_list is (name in CENSUS_LISTS), form


@pytest.mark.parametrize("form", sorted(CENSUS_SYSCALL))
def test_census_sysdig_column_matches_sysdig_known(form: str) -> None:
    name, arg = _split(form)
    info = match_field(default_registry(), name, arg, "syscall").info
    assert info.sysdig_known is CENSUS_SYSCALL[form]


def test_no_k8s_audit_field_is_known_to_sysdig() -> None:
    assert not any(i.sysdig_known for i in default_registry() if i.source == "k8s_audit")


# --- every field the upstream packs use -------------------------------------------------------------

# A field token in a condition is followed by its operator; values (process names such as
# `beam.smp`, file names such as `tzdata.postinst`) are not. Quoted strings are dropped first.
_COND_FIELD = re.compile(
    r"(?<![\w./\-:*@%$])([a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z][a-zA-Z0-9_]*)+)(?:\[([^\]\s]+)\])?\s*"
    r"(?=[=<>!]|(?:in|intersects|pmatch|exists|contains|icontains|startswith|endswith|glob|iglob|regex"
    r"|bcontains|bstartswith)\b)"
)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_OUTPUT_FIELD = re.compile(r"%([a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z][a-zA-Z0-9_]*)+)(?:\[([^\]]+)\])?")


def _pack_fields(path: Path) -> tuple[str, set[tuple[str, str | None]]]:
    """The pack's source (macros carry none; they take their rules') and its field tokens."""
    items = [i for i in yaml.load(path.read_text(), Loader=yaml.BaseLoader) if isinstance(i, dict)]
    sources = {i.get("source", "syscall") for i in items if "rule" in i}
    assert len(sources) == 1, sources
    found: set[tuple[str, str | None]] = set()
    for item in items:
        for m in _COND_FIELD.finditer(_QUOTED.sub(" ", item.get("condition", ""))):
            found.add((m.group(1), m.group(2)))
        for m in _OUTPUT_FIELD.finditer(item.get("output", "")):
            found.add((m.group(1), m.group(2)))
    return sources.pop(), found


@pytest.mark.parametrize("pack", [STABLE, INCUBATING, SANDBOX, K8SAUDIT], ids=lambda p: p.name)
def test_every_field_of_upstream_pack_resolves(pack: Path, upstream: Path) -> None:
    source, fields = _pack_fields(pack)
    assert len(fields) > 30  # the scan found the pack's fields, not nothing
    for name, arg in sorted(fields, key=str):
        match_field(default_registry(), name, arg, source)


def test_census_covers_what_the_packs_use(upstream: Path) -> None:
    # The scan and the census are independent readings of the same packs.
    scanned = {_base(n) for pack in (STABLE, INCUBATING, SANDBOX, K8SAUDIT) for n, _ in _pack_fields(pack)[1]}
    census = {_base(f) for f in CENSUS_SYSCALL} | {_base(f) for f in CENSUS_K8S}
    assert scanned <= census


# --- spot checks of types and flags ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source", "ftype"),
    [
        ("fd.num", "syscall", FieldType.INT64),
        ("proc.tty", "syscall", FieldType.UINT32),
        ("fd.lport", "syscall", FieldType.PORT),
        ("fd.net", "syscall", FieldType.IPNET),
        ("evt.buffer", "syscall", FieldType.BYTEBUF),
        ("evt.cpu", "syscall", FieldType.INT16),
        ("fd.dev", "syscall", FieldType.INT32),
        ("proc.fdusage", "syscall", FieldType.DOUBLE),
        ("evt.rawarg", "syscall", FieldType.DYN),
        ("container.duration", "syscall", FieldType.RELTIME),
        ("evt.rawtime", "k8s_audit", FieldType.ABSTIME),
        ("evt.is_async", "k8s_audit", FieldType.BOOL),
    ],
)
def test_types(name: str, source: str, ftype: FieldType) -> None:
    info = default_registry().get(name, source)
    assert info is not None and info.type is ftype


def test_plugin_fields_of_k8s_audit_are_all_strings() -> None:
    plugin_fields = [i for i in default_registry() if i.source == "k8s_audit" and i.plugin]
    assert len(plugin_fields) == 106
    assert {i.type for i in plugin_fields} == {FieldType.CHARBUF}


def test_k8saudit_list_fields() -> None:
    registry = default_registry()
    containers = registry.get("ka.req.pod.containers.image", "k8s_audit")
    assert containers is not None and containers.is_list and containers.arg is ArgKind.INDEX
    assert not containers.arg_required
    lists = {i.name for i in registry if i.source == "k8s_audit" and i.is_list}
    assert {"ka.user.groups", "ka.req.pod.supplemental_groups", "ka.sourceips"} <= lists
    assert len(lists) == 61  # 15 + 15 + 14 per-container fields, and 17 others
    uri_param = registry.get("ka.uri.param", "k8s_audit")
    assert uri_param is not None and uri_param.arg is ArgKind.KEY and uri_param.arg_required


def test_ancestor_fields_flags() -> None:
    registry = default_registry()
    for name in ("proc.aname", "proc.apid", "proc.aexe", "proc.aexepath", "proc.acmdline"):
        info = registry.get(name, "syscall")
        assert info is not None
        assert (info.no_transformer, info.no_rhs, info.arg, info.arg_required) == (True, True, ArgKind.INDEX, False)
    args = registry.get("proc.args", "syscall")
    assert args is not None and args.arg is ArgKind.INDEX and not args.no_rhs
    env = registry.get("proc.env", "syscall")
    assert env is not None and env.arg is ArgKind.INDEX_OR_KEY


def test_either_end_fields_flags() -> None:
    registry = default_registry()
    for name in ("fd.ip", "fd.port", "fd.proto", "fd.net", "fd.cnet", "fd.snet", "fd.lnet", "fd.rnet"):
        info = registry.get(name, "syscall")
        assert info is not None and info.no_rhs and info.no_transformer and info.filter_only, name
    for name in ("fd.cip", "fd.sip", "fd.lport"):
        info = registry.get(name, "syscall")
        assert info is not None and not info.no_rhs and not info.filter_only, name
    sip_name = registry.get("fd.sip.name", "syscall")
    assert sip_name is not None and sip_name.no_rhs and sip_name.no_transformer and not sip_name.filter_only


def test_deprecated_fields_are_falcos_list() -> None:
    deprecated = {i.name for i in default_registry() if i.deprecated}
    assert deprecated == {
        "evt.dir", "evt.latency", "evt.latency.s", "evt.latency.ns", "evt.latency.quantized",
        "evt.latency.human", "evt.wait_latency",
    }  # fmt: skip


def test_container_plugin_suggests_the_default_extra_output_fields() -> None:
    suggested = [i.name for i in default_registry() if i.format_suggested]
    assert suggested == [
        "container.id", "container.name", "container.image.repository", "container.image.tag",
        "k8s.pod.name", "k8s.ns.name",
    ]  # fmt: skip
    assert {i.plugin for i in default_registry() if i.field_class == "container"} == {"container"}


def test_counts_per_source_and_class() -> None:
    registry = default_registry()
    assert Counter(i.source for i in registry) == {"syscall": 294, "k8s_audit": 124}
    per_class = Counter((i.source, i.field_class) for i in registry)
    assert per_class == {
        ("syscall", "evt"): 18 + 58, ("syscall", "process"): 90, ("syscall", "user"): 6,
        ("syscall", "group"): 2, ("syscall", "fd"): 46, ("syscall", "fs.path"): 6, ("syscall", "util"): 1,
        ("syscall", "fdlist"): 6, ("syscall", "container"): 61,
        ("k8s_audit", "evt"): 18, ("k8s_audit", "k8saudit"): 100, ("k8s_audit", "json"): 6,
    }  # fmt: skip


def test_generic_event_fields_are_shared_and_syscall_fields_are_not() -> None:
    registry = default_registry()
    for name in ("evt.num", "evt.time", "evt.rawtime", "evt.plugininfo", "evt.source", "evt.hostname"):
        syscall, k8s = registry.get(name, "syscall"), registry.get(name, "k8s_audit")
        assert syscall is not None and k8s is not None and syscall.type is k8s.type
    for name in ("evt.type", "evt.arg", "proc.name", "fd.name", "container.id"):
        assert registry.resolve(name, "k8s_audit") is None
        assert registry.known_elsewhere(name, "k8s_audit") == ["syscall"]
    assert registry.known_elsewhere("ka.verb", "syscall") == ["k8s_audit"]


def test_every_declaration_has_a_one_line_description() -> None:
    for info in default_registry():
        assert info.description and "\n" not in info.description and len(info.description) < 130, info.name


def test_declarations_build_a_registry_without_duplicates() -> None:
    infos = [i for cls in field_classes() for i in cls.infos(lambda _s, _n: False)]
    assert len(FieldRegistry(infos).sources) == 2
    with pytest.raises(ValueError, match="declared twice"):
        FieldRegistry([*infos, infos[0]])


# --- resolution and arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arg", "source", "field", "text"),
    [
        ("evt.arg.flags", None, "syscall", "evt.arg", "evt.arg.flags"),
        ("evt.arg", "0", "syscall", "evt.arg", "evt.arg[0]"),
        ("evt.rawarg.res", None, "syscall", "evt.rawarg", "evt.rawarg.res"),
        ("proc.aname", "2", "syscall", "proc.aname", "proc.aname[2]"),
        ("proc.aname", None, "syscall", "proc.aname", "proc.aname"),
        ("container.mount.dest", "/proc*", "syscall", "container.mount.dest", "container.mount.dest[/proc*]"),
        ("container.mount.dest", "0", "syscall", "container.mount.dest", "container.mount.dest[0]"),
        ("ka.uri.param", "command", "k8s_audit", "ka.uri.param", "ka.uri.param[command]"),
        ("jevt.value", "/stage", "k8s_audit", "jevt.value", "jevt.value[/stage]"),
        ("json.value", "/x", "k8s_audit", "json.value", "json.value[/x]"),
        ("ka.req.pod.containers.image", "0", "k8s_audit", "ka.req.pod.containers.image", None),
        ("ka.req.pod.containers.image.repository", None, "k8s_audit", "ka.req.pod.containers.image.repository", None),
        ("evt.type.is.open", None, "syscall", "evt.type.is", None),
        ("evt.abspath.src", None, "syscall", "evt.abspath", None),
        ("evt.abspath", None, "syscall", "evt.abspath", None),
        ("thread.cgroup.cpuacct", None, "syscall", "thread.cgroup", None),
        ("proc.env", "HOME", "syscall", "proc.env", "proc.env[HOME]"),
        ("fd.types", "3", "syscall", "fd.types", None),
        ("evt.around", "1700000000", "syscall", "evt.around", None),
        ("proc.is_container_healthcheck", None, "syscall", "proc.is_container_healthcheck", None),
        ("evt.args", None, "syscall", "evt.args", None),
    ],
)
def test_resolves_like_libsinsp(name: str, arg: str | None, source: str, field: str, text: str | None) -> None:
    match = match_field(default_registry(), name, arg, source)
    assert match.info.name == field
    assert match.text == (text or (name if arg is None else f"{name}[{arg}]"))


def test_rawarg_takes_the_parameter_type() -> None:
    registry = default_registry()
    assert match_field(registry, "evt.rawarg.res", None, "syscall").info.type is FieldType.ERRNO
    assert match_field(registry, "evt.rawarg.fd", None, "syscall").info.type is FieldType.FD
    assert match_field(registry, "evt.rawarg.flags", None, "syscall").info.type is rawarg_type("flags")
    assert match_field(registry, "evt.arg.res", None, "syscall").info.type is FieldType.CHARBUF
    assert rawarg_type("no_such_param") is None


@pytest.mark.parametrize(
    ("name", "arg", "source", "message"),
    [
        ("proc.nmae", None, "syscall", "filter_check called with nonexistent field proc.nmae"),
        ("fd.name", "1", "syscall", "filter_check called with nonexistent field fd.name[1]"),
        ("proc.aname", "x", "syscall", "filter_check called with nonexistent field proc.aname[x]"),
        ("proc.aname.x", None, "syscall", "filter_check called with nonexistent field proc.aname.x"),
        ("evt.arg", "flags", "syscall", "flags is not a valid number"),
        ("evt.arg", None, "syscall", "filter syntax error: evt.arg"),
        ("evt.arg.nosuch", None, "syscall", "unknown event argument nosuch"),
        ("evt.arg.fdx", None, "syscall", "filter_check called with nonexistent field evt.arg.fdx"),
        ("evt.arg.fd", "0", "syscall", "filter_check called with nonexistent field evt.arg.fd[0]"),
        ("evt.rawarg", "0", "syscall", "evt.arg fields must be expressed explicitly"),
        ("evt.type.is", None, "syscall", "filter syntax error: evt.type.is"),
        ("evt.type.is.nosuch", None, "syscall", "filter_check called with nonexistent field evt.type.is.nosuch"),
        ("evt.abspath.other", None, "syscall", "filter_check called with nonexistent field evt.abspath.other"),
        ("thread.cgroup", None, "syscall", "filter syntax error: thread.cgroup"),
        ("thread.cgroup", "cpu", "syscall", "filter syntax error: thread.cgroup[cpu]"),
        ("fd.types", "x", "syscall", "x is not a valid number"),
        ("evt.type", None, "k8s_audit", "filter_check called with nonexistent field evt.type"),
        ("ka.verb", None, "syscall", "filter_check called with nonexistent field ka.verb"),
        ("ka.uri.param", None, "k8s_audit", "filter 'ka.uri.param': ka.uri.param requires an argument but none provided"),
        ("container.mount.dest", None, "syscall", "filter 'container.mount.dest': container.mount.dest requires an argument but none provided"),
        ("ka.verb", "x", "k8s_audit", "filter 'ka.verb[x]': ka.verb does not allow nor require an argument but one is provided: x"),
        ("ka.req.pod.containers.image", "01", "k8s_audit", "filter ka.req.pod.containers.image[01] ka.req.pod.containers.image has an invalid index argument starting with 0: 01"),
        ("ka.sourceips", "a", "k8s_audit", "filter ka.sourceips[a] ka.sourceips has an invalid index argument not composed only by digits: a"),
        ("ka.uri.param", "a b", "k8s_audit", "filter 'ka.uri.param[a': ka.uri.param has unbalanced argument brackets"),
        ("container.label", "a]b", "syscall", "filter_check called with nonexistent field container.label[a]b]"),
        ("container.label.foo", None, "syscall", "filter_check called with nonexistent field container.label.foo"),
    ],
)  # fmt: skip
def test_rejects_like_libsinsp(name: str, arg: str | None, source: str, message: str) -> None:
    with pytest.raises(FieldError) as caught:
        match_field(default_registry(), name, arg, source)
    assert caught.value.message == message


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_plugin_index_accepts_any_plain_number(index: int) -> None:
    match = match_field(default_registry(), "ka.req.pod.containers.name", str(index), "k8s_audit")
    assert match.arg == str(index)


@given(st.text(alphabet="0123456789", min_size=2).filter(lambda s: s.startswith("0")))
def test_plugin_index_rejects_leading_zeros(arg: str) -> None:
    with pytest.raises(FieldError, match="starting with 0"):
        match_field(default_registry(), "ka.req.pod.containers.name", arg, "k8s_audit")


@given(st.text(min_size=0, max_size=20).filter(lambda s: "]" not in s and " " not in s))
def test_plugin_key_accepts_any_text(arg: str) -> None:
    assert match_field(default_registry(), "jevt.value", arg, "k8s_audit").arg == arg


# --- other plugin sources --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "plugin", "field"),
    [("aws_cloudtrail", "cloudtrail", "ct.name"), ("okta", "okta", "okta.evt.type"),
     ("gcp_auditlog", "gcpaudit", "gcp.methodName"), ("github", "github", "github.type")],
)  # fmt: skip
def test_other_plugin_sources_are_not_declared(source: str, plugin: str, field: str) -> None:
    registry = default_registry()
    assert plugin_for_unknown_source(source) == plugin
    assert source not in registry.sources
    assert all(registry.resolve(field, s) is None for s in registry.sources)
    prefix = field.split(".", 1)[0] + "."
    assert not any(i.name.startswith(prefix) for i in registry)


@pytest.mark.parametrize("source", ["syscall", "k8s_audit", "nosuch", ""])
def test_plugin_for_unknown_source_is_none_for_others(source: str) -> None:
    assert plugin_for_unknown_source(source) is None


# --- sysdig knowledge --------------------------------------------------------------------------------


def test_sysdig_known_comes_from_the_generated_set() -> None:
    for info in default_registry():
        assert info.sysdig_known is (info.source == "syscall" and info.name in SYSDIG_FIELDS), info.name
    # Built into sysdig's libs (from the container plugin since Falco 0.41) and listed by it:
    mount_dest = default_registry().get("container.mount.dest", "syscall")
    assert mount_dest is not None and mount_dest.sysdig_known
    # Hidden from `sysdig -l` but compiling there:
    assert "evt.latency.quantized" in SYSDIG_FIELDS


@pytest.mark.sysdig
@pytest.mark.skipif(shutil.which("sysdig") is None, reason="needs Debian's sysdig")
def test_generated_set_holds_everything_sysdig_lists() -> None:
    listing = subprocess.run(["sysdig", "-l"], capture_output=True, text=True, check=True).stdout
    listed = {m.group(1) for line in listing.splitlines() if (m := re.match(r"([a-z][\w]*(?:\.\w+)+)(?:\s|$)", line))}
    assert len(listed) > 200
    assert listed <= SYSDIG_FIELDS
