"""User and group tables, as Falco 0.44 resolves ``user.*`` and ``group.*`` in replay.

Only host entries count: the capture's user/group lists and ``useradded``/``groupadded`` events
without a container id. Container users are ignored (Falco would read the container's
``/etc/passwd`` on the machine running it), so inside a container only uid/gid 0 resolve, to
``root``. Host ids missing from the capture are not looked up on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from falcorules_ci.sources.records import GroupInfo, UserInfo

NA = "<NA>"


@dataclass(frozen=True, slots=True)
class UserRecord:
    uid: int
    gid: int
    name: str
    home: str
    shell: str


class UserTable:
    """Host users and groups by id."""

    def __init__(self, users: list[UserInfo], groups: list[GroupInfo]) -> None:
        self._users: dict[int, UserRecord] = {}
        self._groups: dict[int, str] = {}
        for user in users:
            if not user.container_id:
                self.add_user(user.uid, user.gid, user.name, user.home, user.shell)
        for group in groups:
            if not group.container_id:
                self._groups[group.gid] = group.name

    def add_user(self, uid: int, gid: int, name: str, home: str, shell: str) -> None:
        # NSS compat entries ("+name", "-name") are not users.
        if name[:1] in ("+", "-"):
            return
        self._users[uid] = UserRecord(uid, gid, name, home, shell)

    def remove_user(self, uid: int) -> None:
        self._users.pop(uid, None)

    def add_group(self, gid: int, name: str) -> None:
        self._groups[gid] = name

    def remove_group(self, gid: int) -> None:
        self._groups.pop(gid, None)

    def user(self, container_id: str, uid: int) -> UserRecord | None:
        if container_id:
            return None
        return self._users.get(uid)

    def user_name(self, container_id: str, uid: int) -> str:
        record = self.user(container_id, uid)
        if record is not None:
            return record.name
        return "root" if uid == 0 else NA

    def resolved_user(self, container_id: str, uid: int) -> str:
        """A uid parameter's resolved form (``evt.arg.uid``): the name, else ``<NA>``."""
        record = self.user(container_id, uid)
        return record.name if record is not None and record.name else NA

    def resolved_group(self, container_id: str, gid: int) -> str:
        name = None if container_id else self._groups.get(gid)
        return name if name else NA

    def user_home(self, container_id: str, uid: int) -> str:
        record = self.user(container_id, uid)
        if record is not None:
            return record.home
        return "/root" if uid == 0 else NA

    def user_shell(self, container_id: str, uid: int) -> str:
        record = self.user(container_id, uid)
        return record.shell if record is not None else NA

    def group_name(self, container_id: str, gid: int) -> str:
        name = None if container_id else self._groups.get(gid)
        if name is not None:
            return name
        return "root" if gid == 0 else NA
