"""The operating-system boundary around one sandbox worker, set up by the worker on itself before it reads a request.

The interpreter's allow-list (`codeact`) is a first filter; smolagents says itself that its executor is
not a security boundary, and a generator frame's `f_locals` opens it in three lines. So the worker
confines itself with the kernel's own tools, the ones bubblewrap uses, on any stock Linux that allows
unprivileged user namespaces (no setuid helper, no daemon, nothing to install):

- **user namespace**: the worker is root only inside it; outside it has this user's rights and no capability;
- **PID namespace**: the worker's server is process 1 of its own PID space. The parent and every other
  process of the machine are invisible, so none can be signalled; when process 1 ends (the episode closes,
  the parent kills it, or the parent dies: `PR_SET_PDEATHSIG`), the kernel kills every process in the
  namespace, a detached `setsid` child included;
- **mount namespace**: a new root, an in-memory file system that is read-only, holding read-only views of
  only what the environments need (the Python installation, the directories on `sys.path`, this package's
  code, the system libraries, `/dev/null`, `/dev/zero`, `/dev/urandom`); `/scratch` (the working folder,
  `HOME`, `TMPDIR`) is the one writable place, a size-capped `tmpfs` that vanishes with the namespace, so
  nothing the code writes reaches the disk. The old root is detached: `/tmp`, `/etc`, `/proc`, the home
  folder and the project's data are not there;
- **network namespace**: no interface but a loopback that is down; IPC and UTS namespaces too;
- **limits**: processes (RLIMIT_NPROC), open files (RLIMIT_NOFILE), file size (RLIMIT_FSIZE), no core
  dumps, on top of the worker's CPU-time and address-space limits;
- **`no_new_privs`, no capabilities, and a seccomp filter** (x86_64) that answers EPERM to starting a
  program or a process (`execve`, `fork`, `clone`), sending a signal to another process, opening a
  socket, mounting, entering or making namespaces, tracing, and reaching kernel keyrings, BPF, io_uring.

The filter is `seccomp.py`'s. Landlock is not used: the mount namespace already leaves nothing else visible.

`confine` reports which layers it set (`Isolation`); the parent refuses to run model-written code
unless the required ones are there (`isolation.boundary_gaps`), or the user passed
`--unsafe-local-executor`.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from slm_swap.tracks.agent.episodes.isolation import Isolation
from slm_swap.tracks.agent.episodes.seccomp import install_seccomp

# <sched.h>
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
)
# <sys/mount.h>
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_NOATIME, MS_NODIRATIME = 1, 2, 4, 8, 32, 1024, 2048
MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 4096, 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
# <sys/prctl.h>, <linux/seccomp.h>, <linux/capability.h>
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}

SCRATCH = "/scratch"  # the one writable place inside the boundary
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
SYSTEM_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache", "/etc/localtime")


@dataclass(frozen=True)
class BoundaryLimits:
    processes: int = 4  # RLIMIT_NPROC: what the worker's user may run inside its namespace
    open_files: int = 64  # RLIMIT_NOFILE
    file_bytes: int = 16 * 1024 * 1024  # RLIMIT_FSIZE: the largest file it may write
    scratch_bytes: int = 64 * 1024 * 1024  # the size of the scratch tmpfs


class BoundaryError(OSError):
    """A step of setting up the boundary failed; its message names the step."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise BoundaryError(errno, f"{what}: {os.strerror(errno)}")


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda value: None if value is None else value.encode()  # noqa: E731
    _check(libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)), f"mount {target}")


def _locked_flags(path: str) -> int:
    """The source mount's flags that a user namespace may not clear on a bind mount (as bubblewrap keeps them)."""
    flags = os.statvfs(path).f_flag
    pairs = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME))
    pairs += ((os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))
    return sum(ms for st, ms in pairs if flags & st)


def visible_paths(package_root: Path) -> list[str]:
    """What the worker may read: the system's libraries, the Python installation, `sys.path`, this package's code."""
    candidates = [*SYSTEM_PATHS, *DEVICES, sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    candidates += [entry for entry in sys.path if entry and os.path.isabs(entry)]
    candidates.append(str(package_root / "slm_swap"))
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in candidates if os.path.lexists(p)}, key=len):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _bind_read_only(libc: ctypes.CDLL, root: str, path: str) -> None:
    target = root + path
    if os.path.islink(path) and os.path.dirname(path) == "/":  # /lib -> usr/lib on merged-usr systems
        os.symlink(os.readlink(path), target)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        Path(target).touch()
    _mount(libc, path, target, None, MS_BIND | MS_REC)
    device = path in DEVICES
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (0 if device else MS_NODEV) | _locked_flags(path)
    _mount(libc, None, target, None, flags)


def build_root(libc: ctypes.CDLL, mountpoint: str, package_root: Path, limits: BoundaryLimits, hidden: list[str]) -> None:
    """A new root at `mountpoint`: a read-only view of `visible_paths`, a writable /scratch, `hidden` emptied."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates back to the host
    _mount(libc, "slm-swap-root", mountpoint, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in visible_paths(package_root):
        _bind_read_only(libc, mountpoint, path)
    for path in hidden:  # folders inside a visible one that hold data, not code (artefacts, run outputs)
        if os.path.isdir(mountpoint + path):
            _mount(libc, "slm-swap-empty", mountpoint + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555")
    os.makedirs(mountpoint + SCRATCH)
    _mount(libc, "slm-swap-scratch", mountpoint + SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.scratch_bytes},mode=0700")
    machine = platform.machine()
    os.chdir(mountpoint)
    # pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the new root
    _check(libc.syscall(SYS_PIVOT_ROOT[machine], b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    _mount(libc, None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(SCRATCH)


def drop_capabilities(libc: ctypes.CDLL) -> None:
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable; two words each: all empty
    _check(libc.syscall(SYS_CAPSET[platform.machine()], header, data), "drop capabilities")


def _set_limits(limits: BoundaryLimits) -> dict[str, int]:
    chosen = {
        "processes": (resource.RLIMIT_NPROC, limits.processes),
        "open_files": (resource.RLIMIT_NOFILE, limits.open_files),
        "file_bytes": (resource.RLIMIT_FSIZE, limits.file_bytes),
        "core_bytes": (resource.RLIMIT_CORE, 0),
    }
    for limit, value in chosen.values():
        resource.setrlimit(limit, (value, value))
    return {name: value for name, (_, value) in chosen.items()}


def _enter_namespaces(libc: ctypes.CDLL, isolation: Isolation) -> bool:
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if libc.unshare(flags) != 0:
        isolation.missing.append(f"namespaces: unshare refused ({os.strerror(ctypes.get_errno())})")
        return False
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")
    isolation.namespaces = ["user", "pid", "mount", "network", "ipc", "uts"]
    isolation.network = "none"
    return True


def _become_init() -> None:
    """Fork: the child is process 1 of the new PID namespace and goes on; this process waits for it and
    leaves with its status, holding none of the pipes. Both die with their parent (PR_SET_PDEATHSIG)."""
    child = os.fork()
    if child == 0:
        _check(_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "parent-death signal")
        return
    for fd in range(0, 3):
        os.close(fd)
    _, status = os.waitpid(child, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def confine(package_root: Path, mountpoint: str, hidden: list[str], limits: BoundaryLimits | None = None) -> tuple[Isolation, int]:
    """Set up every layer this machine allows, in order; each layer that fails is named in `missing`.
    Call it first thing in the worker, while the process has one thread. Returns the isolation and a
    descriptor of this process's `/proc/self/statm` (for the memory limit; `/proc` is not in the view)."""
    limits = limits or BoundaryLimits()
    libc = _libc()
    isolation = Isolation()
    parent = os.getppid()
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "parent-death signal")
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    entered = _enter_namespaces(libc, isolation)
    if entered:
        _become_init()
    statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    if entered:
        try:
            build_root(libc, mountpoint, package_root, limits, hidden)
            isolation.filesystem = "read-only view"
        except (OSError, KeyError) as exc:
            isolation.missing.append(f"file system view: {exc}")
    isolation.limits = _set_limits(limits)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    isolation.no_new_privs = True
    if entered:
        try:
            drop_capabilities(libc)
            isolation.capabilities_dropped = True
        except (BoundaryError, KeyError) as exc:
            isolation.missing.append(f"capabilities: {exc}")
    if platform.machine() == "x86_64":
        try:
            _check(install_seccomp(libc), "seccomp filter")
            isolation.seccomp = True
        except BoundaryError as exc:
            isolation.missing.append(str(exc))
    else:
        isolation.missing.append(f"seccomp: no filter written for {platform.machine()}")
    return isolation, statm
