"""Container ids from cgroups (each runtime's layout) and container metadata sources."""

from __future__ import annotations

import json

import pytest
from _events import DOCKER_ID, Replay, header, process

from falcorules_ci.sources.records import ContainerInfo, MountInfo
from falcorules_ci.state import HOST, match_cgroup

HEX64 = "0123456789abcdef" * 4
SHORT = HEX64[:12]


@pytest.mark.parametrize(
    ("cgroup", "expected"),
    [
        # docker, cgroupfs and systemd drivers
        (f"/docker/{HEX64}", SHORT),
        (f"/system.slice/docker-{HEX64}.scope", SHORT),
        # Kubernetes: a bare 64-hex last component (first matched by the docker layout)
        (f"/kubepods/besteffort/pod1234/{HEX64}", SHORT),
        # containerd via CRI, with and without the systemd driver
        (f"/kubepods.slice/kubepods-burstable.slice/cri-containerd-{HEX64}.scope", SHORT),
        (f"/system.slice/containerd.service/kubepods-pod1.slice:cri-containerd:{HEX64}", SHORT),
        # cri-o
        (f"/kubepods.slice/kubepods-pod1.slice/crio-{HEX64}.scope", SHORT),
        (f"/kubepods/pod1/crio-{HEX64}", SHORT),
        # podman, incl. the split payload layout
        (f"/machine.slice/libpod-{HEX64}.scope", SHORT),
        (f"/machine.slice/libpod-{HEX64}.scope/container", SHORT),
        (f"/user.slice/libpod-payload-{HEX64}", SHORT),
        # nerdctl
        (f"/system.slice/nerdctl-{HEX64}.scope", SHORT),
        # plain containerd (ctr): namespace then any id of up to 64 characters, cut to 12
        ("/default/my-redis-container", "my-redis-con"),
        ("/k8s.io/short", "short"),
        # lxc, libvirt-lxc and bpm
        ("/lxc/web01/init.scope", "web01"),
        ("/lxc.payload.db02", "db02"),
        ("/machine.slice/machine-lxc\\x2d2293906\\x2dlibvirt\\x2dcontainer.scope", "2293906\\x2dlibvirt\\x2dcontainer"),
        ("/system.slice/bpm-redis.scope", "redis"),
        # host cgroups
        ("/", ""),
        ("/user.slice/user-1000.slice/session-2.scope", ""),
        ("/system.slice/containerd.service", ""),
        ("/init.scope", ""),
        # not a docker id (63 characters), but the containerd matcher takes any short id
        (f"/docker/{HEX64[:63]}", SHORT),
    ],
)
def test_container_id_from_cgroup(cgroup: str, expected: str) -> None:
    assert match_cgroup(cgroup)[0] == expected


def _container_header() -> tuple[Replay, ContainerInfo]:
    info = ContainerInfo(
        id=SHORT, full_id=HEX64, name="web", image="docker.io/library/nginx:1.25",
        image_repository="docker.io/library/nginx", image_tag="1.25", privileged=True,
        mounts=(MountInfo(source="/var/run/docker.sock", dest="/var/run/docker.sock"),),
        labels={"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "prod"},
        ip="172.17.0.2",
    )  # fmt: skip
    nginx = process(300, "nginx", cgroups=(f"cpuset=/docker/{HEX64}",), vpid=1, vtid=1)
    return Replay(header(nginx, containers=(info,))), info


def test_threads_get_container_and_metadata_from_the_header() -> None:
    r, info = _container_header()
    thread = r.state.threads.get(300)
    record = r.state.container_of(thread)
    assert record is not None and record.name == "web" and record.privileged
    assert record.labels["io.kubernetes.pod.namespace"] == "prod"
    assert r.state.container_of(r.state.threads.get(1)) is HOST


def test_header_containers_keep_their_pod_sandbox_facts() -> None:
    import dataclasses

    from falcorules_ci.state.containers import record_from_info

    info = ContainerInfo(id="abc123def456", name="app", pod_sandbox_id="0123456789ab",
                         pod_sandbox_labels={"app": "web"}, cni_json='{"ip":"10.0.0.7"}')  # fmt: skip
    record = record_from_info(info)
    assert (record.pod_sandbox_id, record.pod_sandbox_labels, record.cni_json) == (
        "0123456789ab", {"app": "web"}, '{"ip":"10.0.0.7"}')
    # every fact the header can carry reaches the state's record (runtime is called type there)
    carried = {f.name for f in dataclasses.fields(info)} - {"runtime", "created_ts", "is_pod_sandbox"}
    assert carried <= {f.name for f in dataclasses.fields(record)}
    for name in carried:
        assert getattr(record, name) == getattr(info, name), name


def test_container_json_event_adds_metadata_and_is_the_event_container() -> None:
    r = Replay(header(process(400, "sh", cgroups=(f"cpu=/docker/{DOCKER_ID}",))))
    cid = DOCKER_ID[:12]
    assert r.state.containers.get(cid) is None
    body = {"container": {"id": cid, "full_id": DOCKER_ID, "type": 0, "name": "evil", "image": "ubuntu:22.04",
                          "imagerepo": "ubuntu", "imagetag": "22.04", "privileged": True, "ip": "172.17.0.9",
                          "Mounts": [{"Source": "/", "Destination": "/host", "Mode": "", "RW": True,
                                      "Propagation": "rprivate"}], "labels": None}}  # fmt: skip
    r("container", -1, ">", json=json.dumps(body))
    record = r.state.event_container
    assert record is not None and record.name == "evil" and record.type == "docker"
    assert record.mounts[0].dest == "/host" and record.labels == {}
    r("getpid", 400)
    assert r.state.event_container is None
    assert r.state.container_of(r.state.thread) is record


def test_async_container_events_add_and_remove() -> None:
    r = Replay(header())
    body = json.dumps({"container": {"id": "abcdefabcdef", "type": 7, "name": "c1"}})
    r("asyncevent", 0, ">", plugin_id=0, name="container", data=body.encode() + b"\0")
    assert r.state.containers.get("abcdefabcdef") is not None
    r("asyncevent", 0, ">", plugin_id=0, name="container_removed", data=body.encode())
    assert r.state.containers.get("abcdefabcdef") is None


def test_child_created_by_the_caller_is_on_the_host_until_its_own_event() -> None:
    # A caller in the host pid namespace (e.g. a --pid=host container) creates the child entry;
    # the container plugin tags it only on the child's own clone exit.
    r = Replay(header(process(500, "sh", cgroups=(f"cpuset=/docker/{HEX64}",))))
    common = dict(exe="sh", args=b"", cwd="", fdlimit=1, comm="sh", flags=0, uid=0, gid=0,
                  cgroups=f"cpuset=/docker/{HEX64}\0".encode())  # fmt: skip
    r("clone", 500, res=501, tid=500, pid=500, ptid=1, **common)
    child = r.state.threads.get(501)
    assert child is not None and child.container_id == ""
    r("clone", 501, res=0, tid=501, pid=501, ptid=500, **common)
    assert child.container_id == SHORT


def test_caller_in_a_pid_namespace_leaves_the_child_to_its_own_event() -> None:
    r, _ = _container_header()
    common = dict(exe="nginx", args=b"", cwd="", fdlimit=1, comm="nginx", flags=0, uid=0, gid=0)
    r("clone", 300, res=301, tid=300, pid=300, ptid=1, **common)
    assert r.state.threads.get(301) is None
    r("clone", 301, res=0, tid=301, pid=301, ptid=300, vtid=2, vpid=2, **common,
      cgroups=f"cpuset=/docker/{HEX64}\0".encode())  # fmt: skip
    child = r.state.threads.get(301)
    assert child is not None and child.container_id == SHORT and child.vpid == 2
