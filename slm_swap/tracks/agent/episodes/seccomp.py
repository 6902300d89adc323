"""The worker's seccomp filter: a deny list of system calls, answered with EPERM, for x86_64.

Written here with `ctypes` and classic BPF, a few dozen instructions: libseccomp's Python binding is not a
wheel on the registries (it builds against the system's headers), and the list is what we need to read in
review. What it denies: starting a program or a process (`execve`, `fork`, `clone`), sending a signal to
another process, opening a socket, mounting, entering or making namespaces, tracing, and reaching kernel
keyrings, BPF, io_uring, modules. A call from a foreign architecture kills the process; x32 calls are denied.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# x86_64 system calls the worker never needs and code that escaped the interpreter would
DENIED_SYSCALLS_X86_64 = {
    "fork": 57,
    "vfork": 58,
    "clone": 56,
    "clone3": 435,
    "execve": 59,
    "execveat": 322,
    "kill": 62,
    "tkill": 200,
    "tgkill": 234,
    "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297,
    "pidfd_open": 434,
    "pidfd_send_signal": 424,
    "pidfd_getfd": 438,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "socket": 41,
    "socketpair": 53,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "unshare": 272,
    "setns": 308,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "kexec_load": 246,
    "reboot": 169,
    "swapon": 167,
    "swapoff": 168,
    "personality": 135,
}


def seccomp_program(denied: list[int], arch: int) -> bytes:
    """A classic-BPF filter: kill on a foreign architecture, EPERM for x32 calls and `denied`, allow the rest."""
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    errno = SECCOMP_RET_ERRNO | 1  # EPERM

    def op(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)

    body = [op(ld_abs, 0, 0, 4), op(jeq, 1, 0, arch), op(ret, 0, 0, SECCOMP_RET_KILL_PROCESS), op(ld_abs, 0, 0, 0)]
    checks = [X32_SYSCALL_BIT, *denied]
    for index, number in enumerate(checks):
        to_deny = len(checks) - index  # past the remaining checks and the allow
        body.append(op(jge if index == 0 else jeq, to_deny, 0, number))
    body += [op(ret, 0, 0, SECCOMP_RET_ALLOW), op(ret, 0, 0, errno)]
    return b"".join(body)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp(libc: Any) -> int:
    """Load the filter into this process (after `no_new_privs`); returns prctl's result (0 on success)."""
    program = seccomp_program(sorted(DENIED_SYSCALLS_X86_64.values()), AUDIT_ARCH_X86_64)
    buffer = ctypes.create_string_buffer(program)
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)
