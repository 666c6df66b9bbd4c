#!/usr/bin/python3
"""Give every member of the configured directory groups a home and a shared directory.

Installed by the nfs_server role as /usr/local/sbin/site-nfs-homes and run at deploy time
and from site-nfs-homes.timer. Users and groups come from NSS (nslcd on the NFS server), so
a user added to the directory gets <home_root>/<user> (mode home_mode) and
<shared_root>/<user> (mode shared_mode), owned by the user's UID and primary GID, within
one timer period. Directories are never deleted or renamed. Prints one line per change;
exits 1 when a configured group is unknown to NSS (the directory is unreachable or the
name is wrong), 2 on a bad configuration.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import re
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

NAME = re.compile(r"^[a-z_][a-z0-9_.-]*$")
GROUP_OTHER_WRITE = stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Config:
    home_root: Path
    shared_root: Path
    groups: tuple[str, ...]
    min_uid: int
    home_mode: int
    shared_mode: int
    strip_shared_write: bool


def load_config(path: Path) -> Config:
    data = json.loads(path.read_text())
    return Config(
        home_root=Path(data["home_root"]),
        shared_root=Path(data["shared_root"]),
        groups=tuple(data["groups"]),
        min_uid=int(data["min_uid"]),
        home_mode=int(str(data["home_mode"]), 8),
        shared_mode=int(str(data["shared_mode"]), 8),
        strip_shared_write=bool(data["strip_shared_write"]),
    )


def members(
    groups: Iterable[str],
    min_uid: int,
    getgrnam: Callable[[str], grp.struct_group] = grp.getgrnam,
    getpwnam: Callable[[str], pwd.struct_passwd] = pwd.getpwnam,
    getpwall: Callable[[], list[pwd.struct_passwd]] = pwd.getpwall,
) -> tuple[list[User], list[str], list[str]]:
    """Users of the groups (listed members and users whose primary group it is),
    warnings about skipped users, and errors about unknown groups."""
    users: dict[str, User] = {}
    warnings: list[str] = []
    errors: list[str] = []
    everyone: list[pwd.struct_passwd] | None = None
    for group in groups:
        try:
            entry = getgrnam(group)
        except KeyError:
            errors.append(f"group {group} is unknown to NSS (is the directory reachable?)")
            continue
        if everyone is None:
            everyone = getpwall()
        names = set(entry.gr_mem) | {p.pw_name for p in everyone if p.pw_gid == entry.gr_gid}
        for name in sorted(names):
            if not NAME.match(name):
                warnings.append(f"user {name!r} of group {group} has an unsafe name, skipped")
                continue
            try:
                entry_pw = getpwnam(name)
            except KeyError:
                warnings.append(f"user {name} of group {group} is unknown to NSS, skipped")
                continue
            if entry_pw.pw_uid < min_uid:
                warnings.append(f"user {name} has UID {entry_pw.pw_uid} < {min_uid}, skipped")
                continue
            users[name] = User(name, entry_pw.pw_uid, entry_pw.pw_gid)
    return [users[n] for n in sorted(users)], warnings, errors


def has_access_acl(path: Path) -> bool:
    """Whether the directory carries a POSIX access ACL beyond its mode bits."""
    try:
        return bool(os.getxattr(path, "system.posix_acl_access", follow_symlinks=False))
    except OSError:
        return False


def mode_keeping_acl_mask(path: Path, current: int, mode: int) -> int:
    """The mode to set: with an access ACL the group bits of the mode are the ACL's mask,
    which limits the named entries others granted (ownCloud's web server user), while the
    owning group's own entry stays as the ACL says. Keep the mask; set the rest."""
    if not has_access_acl(path):
        return mode
    return (mode & ~stat.S_IRWXG) | (current & stat.S_IRWXG)


def ensure_directory(path: Path, user: User, mode: int, dry_run: bool) -> list[str]:
    """Create path owned by the user with mode, or correct owner and mode of an existing
    directory (never following a symbolic link). Returns what changed."""
    prefix = "would " if dry_run else ""
    try:
        st = path.lstat()
    except FileNotFoundError:
        if not dry_run:
            path.mkdir(mode=0o700)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                os.fchown(fd, user.uid, user.gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        return [f"{prefix}create {path} ({user.uid}:{user.gid}, {mode:04o})"]
    if not stat.S_ISDIR(st.st_mode):
        return [f"{path} is not a directory, left alone"]
    changes = []
    fd = None if dry_run else os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if (st.st_uid, st.st_gid) != (user.uid, user.gid):
            if fd is not None:
                os.fchown(fd, user.uid, user.gid)
            changes.append(f"{prefix}set the owner of {path} to {user.uid}:{user.gid}")
        wanted = mode_keeping_acl_mask(path, stat.S_IMODE(st.st_mode), mode)
        if stat.S_IMODE(st.st_mode) != wanted:
            if fd is not None:
                os.fchmod(fd, wanted)
            changes.append(f"{prefix}set the mode of {path} to {wanted:04o}")
    finally:
        if fd is not None:
            os.close(fd)
    return changes


def strip_write(top: Path, user: User, dry_run: bool) -> list[str]:
    """Remove group/other write permission from everything under top that the user owns.
    Runs in a child process with the user's UID and GID only, so a link placed in the tree
    can never make it touch anything the user could not change anyway."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, as the user
        os.close(read_fd)
        lines = []
        prefix = "would " if dry_run else ""
        try:
            os.setgroups([])
            os.setresgid(user.gid, user.gid, user.gid)
            os.setresuid(user.uid, user.uid, user.uid)
            for root, dirs, files in os.walk(top):
                for name in dirs + files:
                    path = Path(root, name)
                    st = path.lstat()
                    if stat.S_ISLNK(st.st_mode) or st.st_uid != user.uid:
                        continue
                    if st.st_mode & GROUP_OTHER_WRITE:
                        if not dry_run:
                            path.chmod(stat.S_IMODE(st.st_mode) & ~GROUP_OTHER_WRITE)
                        lines.append(f"{prefix}remove group/other write from {path}")
        except Exception as error:  # reported to the parent; the child must exit below
            lines.append(f"{top}: {error}")
        finally:
            os.write(write_fd, "\n".join(lines).encode())
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        output = pipe.read()
    os.waitpid(pid, 0)
    return [line for line in output.splitlines() if line]


def run(config: Config, dry_run: bool) -> int:
    users, warnings, errors = members(config.groups, config.min_uid)
    for line in warnings + errors:
        print(line, file=sys.stderr)
    for root in (config.home_root, config.shared_root):
        if not root.is_dir():
            print(f"{root} does not exist", file=sys.stderr)
            return 1
    for user in users:
        changes = ensure_directory(config.home_root / user.name, user, config.home_mode, dry_run)
        shared = config.shared_root / user.name
        changes += ensure_directory(shared, user, config.shared_mode, dry_run)
        if config.strip_shared_write and shared.is_dir() and not shared.is_symlink():
            changes += strip_write(shared, user, dry_run)
        for line in changes:
            print(line)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("/etc/site-nfs-homes.json"))
    parser.add_argument("--dry-run", action="store_true", help="only say what would change")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (OSError, ValueError, KeyError) as error:
        print(f"cannot read {args.config}: {error}", file=sys.stderr)
        return 2
    return run(config, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
