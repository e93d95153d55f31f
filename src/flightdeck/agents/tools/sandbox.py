"""The ``python`` tool (checklist 6.1, code execution sandboxes): runs a model's Python program in a separate,
OS-isolated process and returns what it printed. Nothing the model writes is ever ``exec``-ed in this process.

What the program gets, and why:

- **Namespaces** (bubblewrap, else util-linux ``unshare``): a new network namespace with only a loopback device (no
  network, no DNS; bwrap brings ``lo`` up, ``unshare`` leaves it down), a new PID namespace (the program sees only
  itself; when it ends or is killed, every process it started dies with the namespace, so a fork bomb or a
  daemonized leftover cannot outlive the call), new mount, IPC, UTS and cgroup namespaces. The program has no
  capabilities and ``no_new_privs``.
- **Never host root**: a user namespace alone is not enough when the server runs as root, because the program's
  uid would still be host uid 0, and plain permission checks honour it: bwrap run by root let the program open
  ``/proc/sys/kernel/core_pattern`` for writing (a host escape). So a root server runs each call as a fresh
  unprivileged host uid (from a range no account uses): the ``unshare`` isolation makes the namespaces as root
  without a user namespace and drops to that uid with ``setpriv``; bubblewrap is started as that uid from a private
  mount namespace where root has first bound the interpreter's folder where the uid can reach it. Any other user's
  program runs as that user in a user namespace (uid 65534 inside), bwrap's usual model. Either way
  ``RLIMIT_NPROC`` holds (the kernel does not apply it to uid 0).
- **A read-only filesystem view** built from nothing: ``/usr`` (system software, world-readable, no secrets; it
  holds the C libraries Python links to), the interpreter's own installation read-only at its own path (pyenv puts
  it under ``/root/.pyenv``: only that folder is shown, nothing else of ``/root``), ``/etc/ld.so.cache`` and
  ``/etc/localtime``, a fresh ``/proc`` of the new PID namespace and a minimal ``/dev``. There is no ``/home``,
  ``/root``, ``/tmp``, ``/work``, project file, ``/etc/passwd`` or ``/etc/shadow``. The only writable place is
  ``/sandbox``, the working directory: a tmpfs of ``workdir_mb`` that disappears with the call.
- **Standard library only, by default**: the interpreter starts as ``python -I -S -B`` (no site-packages, no
  ``PYTHON*`` variables, no user site, no script folder on ``sys.path``) and its site-packages folders are covered
  by empty read-only mounts, so the server's installed packages (cloud SDKs and all) are neither importable nor
  readable. ``packages`` lists the installed top-level packages a deployment chooses to show, read-only (e.g.
  ``("numpy",)``; a wheel's vendored ``<name>.libs`` folder comes with it). The server's venv is never mounted.
- **Limits**: wall time (``timeout_s``: the whole process group and the namespace are killed), and rlimits set
  before the program's first line runs: address space (``memory_mb``: a ``MemoryError``), CPU seconds, processes
  and threads (``max_processes``), file size, 128 open files and no core dumps. Where this process may create
  cgroups (root, or a delegated cgroup v2), each call also gets a pids limit and, with the ``memory`` controller,
  one memory limit for the whole sandbox (without it the bound is ``max_processes`` x ``memory_mb``); leftovers
  are killed through it. Output is read as it comes and capped at ``max_output_chars`` per stream: a program
  printing forever is stopped and its output truncated, never buffered without bound.
- **No inherited state**: the environment is only ``PATH``, ``LANG``, ``HOME``/``TMPDIR`` (``/sandbox``) and
  single-thread settings for BLAS; no file descriptor but stdin, stdout and stderr; stdin is ``/dev/null`` once the
  program's source has been read from it.
- **seccomp** (x86-64 only): a small hand-written BPF deny-list, installed by the bootstrap before the program runs,
  answers ``EPERM`` to the calls a Python program has no use for and that kernel exploits and sandbox escapes
  reach for: ``mount`` and the new mount API, ``unshare``/``setns`` and namespace flags to ``clone``, ``ptrace``,
  ``process_vm_*``, ``bpf``, ``perf_event_open``, ``userfaultfd``, io_uring, keyrings, module and kexec loading,
  ``reboot``, swap, clock setting and ``open_by_handle_at``; ``clone3`` answers ``ENOSYS`` (its flags cannot be
  inspected, and libc then falls back to ``clone``), x32 and 32-bit system calls are refused. No maintained
  binding (libseccomp's Python module) is in the venv, so this filter is a deny-list of system-call numbers
  checked against the kernel headers, not a full allow-list profile; on other architectures there is none and
  ``data["seccomp"]`` says so. The namespaces, no capabilities and the rlimits are the isolation; seccomp narrows
  the kernel surface behind them.

Deny by default: the constructor runs a probe through the chosen isolation and checks that the program really sees
a fresh network namespace (only ``lo``) and runs as a uid other than 0 with no capabilities. When no isolation
works (no bubblewrap, no usable user namespaces), it raises :class:`~flightdeck.agents.tools.base.ToolError` with
the install hint; it never falls back to running the program unisolated.

Results: a program that ran is always a :class:`ToolResult` with ``data`` = ``stdout``, ``stderr``, ``exit_code``,
``signal``, ``timed_out``, ``truncated``, ``duration_s``, ``memory_peak_mb`` (from the cgroup, where there is one),
the isolation used and whether seccomp was on. Exit code 0 is a success; a non-zero exit code, a signal (memory or
CPU limit), a timeout or too much output set ``error`` (the model reads what went wrong and what was printed up to
then, and may try again); ``exit_code`` is None when a signal ended the program. Bad arguments are refused. Only an
outage (the isolation tool vanished since construction, the cgroup could not be made) raises.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import secrets
import selectors
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.agents.tools.base import ToolError, ToolResult, ToolSpec, check_tool_name

__all__ = ["PythonSandboxTool", "SandboxConfig", "SANDBOX_INSTALL_HINT", "seccomp_filter"]

SANDBOX_INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap) and allow "
    "user namespaces (sysctl kernel.unprivileged_userns_clone=1 where it exists; on Ubuntu 24.04+ an AppArmor "
    "profile for bwrap), or give util-linux's unshare the same; see the tool's docstring"
)

WORKDIR = "/sandbox"
SANDBOX_UID = 65534
# where a root server's per-call host uids come from: far above any account's, below the kernel's overflow ids
_EPHEMERAL_UIDS = (0x7000_0000, 0x7FFF_0000)
# Folders shown read-only besides /usr: the loader cache and the time zone; nothing else of /etc.
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_PACKAGES_DIR = "/opt/sandbox-packages"
_MAX_OPEN_FILES = 128
# bwrap's own processes (its monitor and the namespace's init) count against the pids cgroup.
_CGROUP_OVERHEAD_PIDS = 4
_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": WORKDIR,
    "TMPDIR": WORKDIR,
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# Runs first in the sandboxed interpreter: reads the program from stdin, makes stdin /dev/null, sets the rlimits,
# installs the seccomp filter, then runs the program in __main__'s namespace (as ``python -c`` would; everything the
# bootstrap used is gone from it), printing the program's own traceback without this frame.
_BOOTSTRAP = r"""
def _boot():
    import json, linecache, os, resource, sys
    cfg = json.loads(sys.argv[1])
    src = sys.stdin.buffer.read()
    fd = os.open("/dev/null", os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    for name, soft, hard in cfg["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if cfg["seccomp"]:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        prog = bytes.fromhex(cfg["seccomp"])
        buf = ctypes.create_string_buffer(prog, len(prog))
        class Fprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        fprog = Fprog(len(prog) // 8, ctypes.addressof(buf))
        u = ctypes.c_ulong
        # PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP with SECCOMP_MODE_FILTER
        if libc.prctl(38, u(1), u(0), u(0), u(0)) != 0 or libc.prctl(22, u(2), ctypes.byref(fprog), u(0), u(0)):
            sys.stderr.write("sandbox: seccomp filter refused: errno %d\n" % ctypes.get_errno())
            os._exit(121)
    sys.argv = ["<code>"]
    sys.path = [p for p in sys.path if p] + cfg["path"]
    text = src.decode("utf-8", "replace")
    linecache.cache["<code>"] = (len(text), None, text.splitlines(True), "<code>")
    return src
_src = _boot()
del _boot
try:
    exec(compile(globals().pop("_src"), "<code>", "exec", dont_inherit=True), globals())
except SystemExit:
    raise
except BaseException as _e:
    __import__("traceback").print_exception(type(_e), _e, _e.__traceback__.tb_next)
    raise SystemExit(1)
"""


class SandboxConfig(BaseModel):
    """Settings of the ``python`` tool; every limit applies to one call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("python", description="the tool's name as the model sees it")
    isolation: Literal["auto", "bubblewrap", "unshare"] = Field(
        "auto", description="bubblewrap (bwrap), util-linux unshare, or auto: the first of them that works here")
    timeout_s: float = Field(10.0, gt=0, le=600, description="wall-clock seconds before the program is killed")
    cpu_s: int | None = Field(None, ge=1, le=3600, description="CPU seconds (RLIMIT_CPU); default: timeout_s")
    memory_mb: int = Field(256, ge=64, le=65536, description="address space per process, MiB (RLIMIT_AS)")
    max_processes: int = Field(16, ge=1, le=4096, description="processes and threads the program may run at once")
    workdir_mb: int = Field(32, ge=1, le=4096, description="size of the writable /sandbox tmpfs, MiB; also the "
                                                           "largest file (RLIMIT_FSIZE)")
    max_output_chars: int = Field(20_000, ge=100, le=10_000_000, description="characters kept of stdout and of "
                                                                             "stderr each; more stops the program")
    max_code_chars: int = Field(100_000, ge=1, le=1_000_000, description="longest program accepted")
    packages: tuple[str, ...] = Field((), description="installed top-level packages shown read-only and "
                                                      "importable (e.g. numpy); default: standard library only")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_tool_name(value)

    @field_validator("packages")
    @classmethod
    def _packages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"package {name!r}: give a top-level import name such as numpy")
        return value


# ---------------------------------------------------------------------------------------------------------- seccomp

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_EPERM, _ENOSYS = 1, 38
_CLONE, _CLONE3 = 56, 435
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
_CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
# x86-64 numbers (asm/unistd_64.h): what a Python program has no use for and escapes or kernel exploits reach for.
_DENIED_X86_64 = {
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "keyctl": 250, "add_key": 248, "request_key": 249, "kexec_load": 246,
    "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169,
    "swapon": 167, "swapoff": 168, "acct": 163, "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305,
    "adjtimex": 159, "syslog": 103, "quotactl": 179, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "vhangup": 153, "lookup_dcookie": 212,
    "uselib": 134, "fanotify_init": 300,
}


def seccomp_filter() -> bytes | None:
    """The classic-BPF seccomp program the sandbox installs (``struct sock_filter`` array), or None where it has no
    table of system calls (only x86-64 is written and tested)."""
    if platform.machine() not in ("x86_64", "AMD64") or sys.byteorder != "little":
        return None
    prog: list[tuple[int, int, int, int]] = []

    def stmt(code: int, k: int) -> None:
        prog.append((code, 0, 0, k))

    def jump(code: int, k: int, jt: int, jf: int) -> None:
        prog.append((code, jt, jf, k))

    deny = _RET_ERRNO | _EPERM
    stmt(_LD_W_ABS, 4)  # seccomp_data.arch
    jump(_JEQ, _AUDIT_ARCH_X86_64, 1, 0)
    stmt(_RET, deny)  # 32-bit calls (int 0x80) from a 64-bit process
    stmt(_LD_W_ABS, 0)  # seccomp_data.nr
    jump(_JGE, _X32_BIT, 0, 1)
    stmt(_RET, deny)
    jump(_JEQ, _CLONE3, 0, 1)
    stmt(_RET, _RET_ERRNO | _ENOSYS)
    for number in sorted(_DENIED_X86_64.values()):
        jump(_JEQ, number, 0, 1)
        stmt(_RET, deny)
    jump(_JEQ, _CLONE, 0, 3)
    stmt(_LD_W_ABS, 16)  # low 32 bits of args[0]: clone's flags
    jump(_JSET, _CLONE_NS_FLAGS, 0, 1)
    stmt(_RET, deny)
    stmt(_RET, _RET_ALLOW)
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)


# ---------------------------------------------------------------------------------------------------------- cgroups


def _mountinfo() -> list[tuple[str, str, str, set[str]]]:
    """(root within the filesystem, mount point, fs type, super options) of each cgroup mount."""
    mounts = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            mounts.append((fields[3], fields[4].replace("\\040", " "), tail[0], set(tail[2].split(","))))
    return mounts


def _cgroup_dirs() -> dict[str, Path]:
    """controller (pids, memory) → this process's own cgroup folder where a child cgroup could use it."""
    try:
        own = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return {}
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in own:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            v2 = path
        for c in controllers.split(","):
            v1[c] = path
    found: dict[str, Path] = {}
    for root, point, fstype, options in _mountinfo():
        for controller in ("pids", "memory"):
            if controller in found:
                continue
            path = v2 if fstype == "cgroup2" else v1.get(controller) if controller in options else None
            if path is None or not (path + "/").startswith(root.rstrip("/") + "/"):
                continue
            folder = Path(point) / path[len(root.rstrip("/")):].lstrip("/")
            if fstype == "cgroup2":
                try:
                    if controller not in (folder / "cgroup.subtree_control").read_text().split():
                        continue
                except OSError:
                    continue
            found[controller] = folder
    return found


@dataclass
class _Cgroup:
    """One call's cgroups (a folder per controller hierarchy; one folder on cgroup v2)."""

    folders: list[Path] = field(default_factory=list)
    memory: Path | None = None

    @classmethod
    def create(cls, pids_max: int, memory_bytes: int) -> _Cgroup | None:
        """New cgroups with these limits, or None when no pids cgroup can be made here (the memory one is a
        bonus: without it the bound is the rlimits')."""
        dirs = _cgroup_dirs()
        if "pids" not in dirs:
            return None
        group = cls()
        name = f"flightdeck-sandbox-{uuid.uuid4().hex[:12]}"
        try:
            folder = dirs["pids"] / name
            folder.mkdir()
            group.folders.append(folder)
            (folder / "pids.max").write_text(str(pids_max))
        except OSError:
            group.remove()
            return None
        parent = dirs.get("memory")
        if parent is not None:
            folder = parent / name
            try:
                if folder not in group.folders:
                    folder.mkdir()
                    group.folders.append(folder)
                if (folder / "memory.max").exists():  # cgroup v2
                    (folder / "memory.max").write_text(str(memory_bytes))
                    if (folder / "memory.swap.max").exists():
                        (folder / "memory.swap.max").write_text("0")
                else:
                    (folder / "memory.limit_in_bytes").write_text(str(memory_bytes))
                group.memory = folder
            except OSError:
                pass
        return group

    @property
    def procs_files(self) -> list[str]:
        return [str(f / "cgroup.procs") for f in self.folders]

    def memory_peak(self) -> int | None:
        """Bytes at the peak of the sandbox's memory use (page cache included), where the kernel says."""
        if self.memory is None:
            return None
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            try:
                return int((self.memory / name).read_text())
            except (OSError, ValueError):
                continue
        return None

    def oom_killed(self) -> bool:
        if self.memory is None:
            return False
        for name in ("memory.events", "memory.oom_control"):
            try:
                for line in (self.memory / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value or 0) > 0:
                        return True
            except (OSError, ValueError):
                continue
        return False

    def kill(self) -> None:
        for folder in self.folders:
            if (folder / "cgroup.kill").exists():
                try:
                    (folder / "cgroup.kill").write_text("1")
                    continue
                except OSError:
                    pass
            for _ in range(20):
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.01)

    def remove(self) -> None:
        for folder in self.folders:
            for attempt in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02 * (1 + attempt // 10))


# --------------------------------------------------------------------------------------------------------- the view


def _interpreter() -> str:
    """The base interpreter (not a venv's link: the venv itself is never shown to the program)."""
    exe = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(exe)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


@dataclass(frozen=True)
class _View:
    """What the sandbox's filesystem shows, computed once per tool."""

    python: str
    roots: tuple[str, ...]  # read-only at their own path, besides /usr
    hidden: tuple[str, ...]  # site-packages folders covered by an empty read-only tmpfs
    links: tuple[tuple[str, str], ...]  # (/lib, usr/lib): the merged-/usr symlinks of this system
    dirs: tuple[str, ...]  # /lib etc. where they are real folders
    etc: tuple[str, ...]
    packages: tuple[tuple[str, str], ...]  # (source, destination)

    @classmethod
    def build(cls, packages: tuple[str, ...]) -> _View:
        python = _interpreter()
        roots: list[str] = []
        for path in {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix),
                     os.path.dirname(python)}:
            if not _under(path, "/usr") and not any(_under(path, r) for r in roots):
                roots.append(path)
        roots = sorted({r for r in roots if not any(r != o and _under(r, o) for o in roots)})
        hidden = set()
        for prefix in {sys.base_prefix, sys.base_exec_prefix}:
            for key in ("purelib", "platlib"):
                hidden.add(sysconfig.get_path(key, vars={"base": prefix, "platbase": prefix}))
        ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        hidden |= {"/usr/lib/python3/dist-packages", f"/usr/local/lib/{ver}/dist-packages",
                   f"/usr/lib/{ver}/site-packages", f"/usr/local/lib/{ver}/site-packages"}
        hidden = {os.path.realpath(h) for h in hidden}
        visible = [h for h in hidden if os.path.isdir(h) and (_under(h, "/usr") or any(_under(h, r) for r in roots))]
        links, dirs = [], []
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                links.append((top, os.readlink(top)))
            elif os.path.isdir(top):
                dirs.append(top)
        shown: list[tuple[str, str]] = []
        for name in packages:
            shown.extend(_package_sources(name))
        return cls(python=python, roots=tuple(roots), hidden=tuple(sorted(visible)), links=tuple(links),
                   dirs=tuple(dirs), etc=tuple(f for f in _ETC_FILES if os.path.exists(f)), packages=tuple(shown))


def _package_sources(name: str) -> list[tuple[str, str]]:
    """(source, destination) mounts that make the installed package ``name`` importable in the sandbox."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as e:
        raise ToolError(f"sandbox package {name!r}: {e}") from e
    if spec is None or spec.origin in (None, "built-in", "frozen") and not spec.submodule_search_locations:
        raise ToolError(f"sandbox package {name!r} is not an installed package with files here (pip install it "
                        "in the server's environment, or remove it from packages)")
    if spec.submodule_search_locations:
        source = os.path.realpath(list(spec.submodule_search_locations)[0])
        mounts = [(source, f"{_PACKAGES_DIR}/{name}")]
        libs = source + ".libs"
        if os.path.isdir(libs):  # auditwheel's vendored shared libraries, found through $ORIGIN/../<name>.libs
            mounts.append((libs, f"{_PACKAGES_DIR}/{name}.libs"))
        return mounts
    source = os.path.realpath(spec.origin or "")
    return [(source, f"{_PACKAGES_DIR}/{os.path.basename(source)}")]


_SETPRIV_DROP = "--no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all"


def _host_uid() -> int:
    """A fresh unprivileged host uid for one call when the server is root (no account has it; the program's
    processes are the only ones counted against its RLIMIT_NPROC)."""
    return secrets.randbelow(_EPHEMERAL_UIDS[1] - _EPHEMERAL_UIDS[0]) + _EPHEMERAL_UIDS[0]


def _bwrap_argv(bwrap: str, view: _View, workdir_bytes: int, staged: Mapping[str, str] | None = None) -> list[str]:
    """bwrap's arguments; ``staged`` maps an interpreter or package folder to where a root server's outer mount
    namespace shows it to the unprivileged bwrap."""
    staged = staged or {}
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID), "--gid",
            str(SANDBOX_UID), "--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr"]
    for top, target in view.links:
        argv += ["--symlink", target, top]
    for top in view.dirs:
        argv += ["--ro-bind", top, top]
    for path in view.etc:
        argv += ["--ro-bind", path, path]
    for root in view.roots:
        argv += ["--ro-bind", staged.get(root, root), root]
    for path in view.hidden:
        argv += ["--tmpfs", path, "--remount-ro", path]
    for source, dest in view.packages:
        argv += ["--ro-bind", staged.get(source, source), dest]
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(workdir_bytes), "--perms", "1777", "--tmpfs", WORKDIR,
             "--chdir", WORKDIR, "--clearenv"]
    for key, value in _ENV.items():
        argv += ["--setenv", key, value]
    return argv + ["--remount-ro", "/", "--"]


_SCRATCH_MOUNTS = ("/tmp", "/mnt", "/run", "/srv", "/media", "/opt")


def _scratch(sources: list[str]) -> str:
    """A folder to cover with the staging tmpfs that holds none of ``sources`` (a checkout under /tmp keeps its
    venv there: covering /tmp would hide the very folders to be bound)."""
    for folder in _SCRATCH_MOUNTS:
        if os.path.isdir(folder) and not any(s == folder or s.startswith(folder + "/") for s in sources):
            return folder
    raise ToolError(f"python sandbox: every staging folder ({', '.join(_SCRATCH_MOUNTS)}) holds the interpreter or "
                    "a package; install Python elsewhere")


def _root_bwrap_argv(unshare: str, bwrap: str, view: _View, workdir_bytes: int, uid: int) -> list[str]:
    """For a root server: bwrap started as the unprivileged ``uid`` (so that the program is never host root, which
    a user namespace's DAC checks would still honour: /proc/sys files, root-only files), from a private mount
    namespace in which root has first bound the interpreter's and packages' folders where that uid can reach them
    (pyenv puts Python under /root, which others cannot enter)."""
    q = shlex.quote
    scratch = _scratch([*view.roots, *(s for s, _ in view.packages)])
    stage = f"{scratch}/flightdeck-stage"
    lines = ["set -eu", "export PATH=/usr/sbin:/usr/bin:/sbin:/bin",
             f"mount -t tmpfs -o mode=755,size=64k none {scratch}", f"mkdir {stage}"]
    staged: dict[str, str] = {}
    for n, source in enumerate([*view.roots, *(s for s, _ in view.packages)]):
        target = f"{stage}/{n}"
        lines += [f"touch {target}" if os.path.isfile(source) else f"mkdir {target}",
                  f"mount --bind {q(source)} {target}", f"mount -o remount,bind,ro {target}"]
        staged[source] = target
    lines.append(f'exec setpriv --reuid={uid} --regid={uid} --clear-groups {_SETPRIV_DROP} -- "$@"')
    return [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", "\n".join(lines), "sandbox",
            *_bwrap_argv(bwrap, view, workdir_bytes, staged)]


def _unshare_argv(unshare: str, view: _View, workdir_bytes: int, uid: int | None) -> list[str]:
    """util-linux ``unshare`` running a shell script that builds the same view as bwrap by hand; the program's argv
    follows. A root server (``uid`` given) makes the namespaces itself and runs the program as that unprivileged
    uid; any other user gets a user namespace for the script (root in it, to mount) and a second one, uid 65534
    without capabilities, for the program. Every remount is a bind remount: it sets the mount's own read-only flag,
    never a file system's (which, as root, would reach the host's)."""
    q = shlex.quote
    scratch = _scratch([*view.roots, *view.dirs, *view.etc, *(s for s, _ in view.packages)])
    r = f"{scratch}/flightdeck-root"
    lines = ["set -eu", "export PATH=/usr/sbin:/usr/bin:/sbin:/bin",
             f"mount -t tmpfs -o mode=755 none {scratch}", f"mkdir {r}",
             f"mount -t tmpfs -o mode=755,size=1m none {r}",
             f"mkdir -p {r}/usr {r}/proc {r}/dev {r}{WORKDIR} {r}/etc",
             f"mount --bind /usr {r}/usr", f"mount -o remount,bind,ro {r}/usr"]

    def bind(source: str, dest: str, is_file: bool = False) -> None:
        target = q(r + dest)
        lines.append(f"mkdir -p {q(os.path.dirname(r + dest))}")
        lines.append(f"touch {target}" if is_file else f"mkdir -p {target}")
        lines.append(f"mount --bind {q(source)} {target}")
        lines.append(f"mount -o remount,bind,ro {target}")

    for top, target in view.links:
        lines.append(f"ln -s {q(target)} {q(r + top)}")
    for top in view.dirs:
        bind(top, top)
    for path in view.etc:
        bind(path, path, is_file=True)
    for root in view.roots:
        bind(root, root)
    for path in view.hidden:
        lines.append(f"mount -t tmpfs -o size=4k,mode=755 none {q(r + path)}")
        lines.append(f"mount -o remount,bind,ro {q(r + path)}")
    for source, dest in view.packages:
        bind(source, dest, is_file=os.path.isfile(source))
    for dev in ("null", "zero", "full", "random", "urandom"):
        bind(f"/dev/{dev}", f"/dev/{dev}", is_file=True)
    if uid is None:
        # mapping the outer root needs CAP_SETFCAP there, so unshare runs before setpriv drops everything
        run = (f"{q(unshare)} --user --map-user={SANDBOX_UID} --map-group={SANDBOX_UID} -- "
               f"setpriv {_SETPRIV_DROP} --")
    else:
        run = f"setpriv --reuid={uid} --regid={uid} --clear-groups {_SETPRIV_DROP} --"
    lines += [f"ln -s /proc/self/fd {r}/dev/fd", f"ln -s /proc/self/fd/0 {r}/dev/stdin",
              f"ln -s /proc/self/fd/1 {r}/dev/stdout", f"ln -s /proc/self/fd/2 {r}/dev/stderr",
              f"mount -t tmpfs -o size={workdir_bytes},mode=1777 none {r}{WORKDIR}",
              f"mount -t proc -o nosuid,nodev,noexec proc {r}/proc",
              "hostname sandbox 2>/dev/null || true",
              f"mount -o remount,bind,ro {r}",
              f"cd {r}", "pivot_root . .", "umount -l .", f"cd {WORKDIR}", f"export PATH={_ENV['PATH']}",
              "unset OLDPWD",
              # this shell stays as the PID namespace's init (a program that is not init can be killed by a signal,
              # and its exit status comes back as 128 + the signal); fd 3 carries stdin past the /dev/null a
              # background command gets
              "exec 3<&0",
              f'{run} "$@" <&3 3<&- &',
              "exec 3<&-",
              "wait $!"]
    namespaces = ["--mount", "--propagation", "private", "--net", "--pid", "--fork", "--ipc", "--uts", "--cgroup",
                  "--kill-child"]
    user = ["--user", "--map-root-user"] if uid is None else []
    return [unshare, *user, *namespaces, "--", "/bin/sh", "-c", "\n".join(lines), "sandbox"]


# ------------------------------------------------------------------------------------------------------ one run


@dataclass
class _Outcome:
    stdout: bytes
    stderr: bytes
    returncode: int
    timed_out: bool
    truncated: bool
    duration_s: float
    memory_peak: int | None
    oom_killed: bool


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class PythonSandboxTool:
    """The ``python`` tool: runs the ``code`` argument as a Python 3 program in an isolated sandbox (see the module
    docstring for what it can and cannot reach) and returns its stdout, stderr and exit code."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        c = self.config
        self._cpu_s = c.cpu_s or max(1, int(c.timeout_s + 0.999))
        self._seccomp = seccomp_filter()
        self._view = _View.build(c.packages)
        self._cgroup_dirs = _cgroup_dirs()
        self._root = os.geteuid() == 0
        self.isolation = self._choose_isolation()
        seconds, memory = int(c.timeout_s + 0.999), c.memory_mb
        self.spec = ToolSpec(
            name=c.name,
            description=(
                "Run a Python 3 program in an isolated sandbox and get its stdout, stderr and exit code. Print "
                "what you want to see. No network, no input (stdin is empty), standard library only"
                + (f" plus {', '.join(c.packages)}" if c.packages else "")
                + f". The only writable folder is the working directory {WORKDIR} ({c.workdir_mb} MB), emptied "
                f"after each call: nothing persists between calls. Limits: {seconds} s, {memory} MB of memory, "
                f"{c.max_output_chars} characters of output."),
            parameters={
                "type": "object",
                "properties": {"code": {"type": "string", "description": "the complete Python program to run"}},
                "required": ["code"],
                "additionalProperties": False,
            },
        )

    # -------------------------------------------------------------------------------------------- construction

    def _choose_isolation(self) -> str:
        wanted = ("bubblewrap", "unshare") if self.config.isolation == "auto" else (self.config.isolation,)
        problems = []
        for isolation in wanted:
            problem = self._probe(isolation)
            if problem is None:
                return isolation
            problems.append(f"{isolation}: {problem}")
        raise ToolError("python sandbox: no working isolation here, and the tool never runs code unisolated ("
                        + "; ".join(problems) + f"). To fix: {SANDBOX_INSTALL_HINT}")

    def _probe(self, isolation: str) -> str | None:
        """None when ``isolation`` runs a program here in a fresh network namespace, else what went wrong."""
        needed = ["bwrap"] if isolation == "bubblewrap" else ["unshare", "setpriv"]
        if isolation == "bubblewrap" and self._root:
            needed += ["unshare", "setpriv"]
        missing = [p for p in needed if shutil.which(p) is None]
        if missing:
            return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed"
        code = ("import json, os, socket\nopen('probe', 'w').write('ok')\n"
                "caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff:')][0]\n"
                "print(json.dumps({'net': [n for _, n in socket.if_nameindex()], 'uid': os.getuid(), "
                "'caps': int(caps, 16)}))\n")
        try:
            outcome = self._execute(isolation, code.encode(), timeout_s=max(10.0, self.config.timeout_s))
        except (OSError, ToolError) as e:
            return str(e)
        if outcome.returncode != 0 or outcome.timed_out:
            return f"exit {outcome.returncode}: {outcome.stderr.decode(errors='replace').strip()[-500:]}"
        try:
            seen = json.loads(outcome.stdout)
        except ValueError:
            return f"unexpected probe output {outcome.stdout[:200]!r}"
        if seen.get("net") != ["lo"]:
            return f"the program still sees network devices {seen.get('net')}: no network isolation"
        if seen.get("uid") == 0 or seen.get("caps") != 0:
            return f"the program runs as uid {seen.get('uid')} with capabilities {seen.get('caps')!r}"
        return None

    # -------------------------------------------------------------------------------------------------- calls

    def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Run ``arguments["code"]``; bad arguments are refused, a failing program is a result with ``error``."""
        c = self.config
        if not isinstance(arguments, Mapping):
            return ToolResult.refused("arguments must be an object with a 'code' string")
        unknown = sorted(set(arguments) - {"code"})
        if unknown:
            return ToolResult.refused(f"unknown argument(s) {', '.join(map(repr, unknown))}: give only 'code'")
        code = arguments.get("code")
        if not isinstance(code, str):
            return ToolResult.refused(f"'code' must be a string of Python source, got {type(code).__name__}")
        if not code.strip():
            return ToolResult.refused("'code' is empty: give a Python program that prints its result")
        if len(code) > c.max_code_chars:
            return ToolResult.refused(f"'code' has {len(code)} characters; at most {c.max_code_chars}")
        if "\x00" in code:
            return ToolResult.refused("'code' contains a NUL character")
        try:
            source = code.encode("utf-8")
        except UnicodeEncodeError as e:
            return ToolResult.refused(f"'code' is not valid text: {e.reason}")
        outcome = self._execute(self.isolation, source, timeout_s=c.timeout_s)
        return self._result(outcome)

    def _result(self, o: _Outcome) -> ToolResult:
        c = self.config
        limit = c.max_output_chars
        stdout = o.stdout[:limit].decode("utf-8", "replace")
        stderr = o.stderr[:limit].decode("utf-8", "replace")
        exit_code: int | None = o.returncode if o.returncode >= 0 else None
        sig: int | None = -o.returncode if o.returncode < 0 else None
        # bwrap and a shell report a program killed by a signal as 128 + the signal's number
        if exit_code is not None and 128 < exit_code < 128 + 65:
            exit_code, sig = None, exit_code - 128
        signame = _signal_name(sig) if sig else None
        error = None
        if o.timed_out:
            error = f"timed out after {c.timeout_s:g} s: the program was stopped"
        elif o.truncated:
            error = f"the program printed more than {limit} characters and was stopped; print less"
        elif sig is not None:
            why = {signal.SIGXCPU: f" (CPU time limit, {self._cpu_s} s)", signal.SIGXFSZ: " (file size limit)"}
            reason = why.get(sig, "")
            if o.oom_killed:
                reason = f" (out of memory, limit {c.memory_mb} MB)"
            error = f"the program was killed by {signame}{reason}"
        elif exit_code != 0:
            last = stderr.strip().splitlines()[-1:] if stderr.strip() else []
            error = f"the program exited with code {exit_code}" + (f": {last[0][:300]}" if last else "")
        data = {
            "stdout": stdout,
            "stderr": stderr,
            "exit_code": exit_code,
            "signal": signame,
            "timed_out": o.timed_out,
            "truncated": o.truncated,
            "duration_s": round(o.duration_s, 3),
            "memory_peak_mb": round(o.memory_peak / 2**20, 1) if o.memory_peak is not None else None,
            "isolation": self.isolation,
            "seccomp": self._seccomp is not None,
        }
        head = (f"error: {error}" if error else "exit code 0")
        parts = [head]
        if stdout:
            parts.append("[stdout]\n" + stdout + ("\n[... truncated]" if len(o.stdout) > limit else ""))
        if stderr:
            parts.append("[stderr]\n" + stderr + ("\n[... truncated]" if len(o.stderr) > limit else ""))
        if not stdout and not stderr:
            parts.append("(no output)")
        return ToolResult(content="\n".join(parts), data=data, error=error)

    def _execute(self, isolation: str, source: bytes, timeout_s: float) -> _Outcome:
        c = self.config
        workdir_bytes = c.workdir_mb << 20
        bwrap, unshare = shutil.which("bwrap"), shutil.which("unshare")
        if (isolation == "bubblewrap" and bwrap is None) or ((isolation == "unshare" or self._root) and not unshare):
            raise ToolError(f"python sandbox: {'bwrap' if isolation == 'bubblewrap' else 'unshare'} is gone since "
                            f"the tool was built; {SANDBOX_INSTALL_HINT}")
        # A root server never runs the program as host root (see _root_bwrap_argv): a fresh uid per call.
        uid = _host_uid() if self._root else None
        if isolation == "bubblewrap":
            assert bwrap is not None
            if uid is None:
                argv = _bwrap_argv(bwrap, self._view, workdir_bytes)
            else:
                assert unshare is not None
                argv = _root_bwrap_argv(unshare, bwrap, self._view, workdir_bytes, uid)
        else:
            assert unshare is not None
            argv = _unshare_argv(unshare, self._view, workdir_bytes, uid)
        config = {
            "rlimits": [
                ("RLIMIT_AS", c.memory_mb << 20, c.memory_mb << 20),
                ("RLIMIT_CPU", self._cpu_s, self._cpu_s + 1),
                ("RLIMIT_NPROC", c.max_processes + 1, c.max_processes + 1),
                ("RLIMIT_FSIZE", workdir_bytes, workdir_bytes),
                ("RLIMIT_NOFILE", _MAX_OPEN_FILES, _MAX_OPEN_FILES),
                ("RLIMIT_CORE", 0, 0),
                ("RLIMIT_MEMLOCK", 0, 0),
            ],
            "seccomp": self._seccomp.hex() if self._seccomp else "",
            "path": [_PACKAGES_DIR] if self._view.packages else [],
        }
        argv = argv + [self._view.python, "-I", "-S", "-B", "-u", "-c", _BOOTSTRAP, json.dumps(config)]
        group = None
        if self._cgroup_dirs:
            group = _Cgroup.create(c.max_processes + _CGROUP_OVERHEAD_PIDS,
                                   (c.memory_mb + c.workdir_mb + 64) << 20)
        if group is not None:
            # join the cgroups before bwrap starts, so that every process of the sandbox is counted
            argv = ["/bin/sh", "-c", 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; '
                                     'n=$((n-1)); done; exec "$@"', "sh", str(len(group.procs_files)),
                    *group.procs_files, *argv]
        try:
            return _run(argv, source, timeout_s, c.max_output_chars, group)
        finally:
            if group is not None:
                group.kill()
                group.remove()


def _run(argv: list[str], source: bytes, timeout_s: float, cap: int, group: _Cgroup | None) -> _Outcome:
    """Start ``argv`` in its own session, feed ``source`` on stdin, read stdout and stderr up to ``cap`` bytes each
    (a byte is at most one character), and kill the whole sandbox on timeout or when the cap is passed."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(_ENV), cwd="/", close_fds=True, start_new_session=True)
    try:
        stdout, stderr, timed_out, truncated = _communicate(proc, source, start + timeout_s, cap, group)
    except BaseException:  # an interrupt or a bug here must not leave the sandbox running
        _kill(proc, group)
        proc.wait()
        raise
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return _Outcome(stdout=stdout, stderr=stderr, returncode=proc.returncode, timed_out=timed_out,
                    truncated=truncated, duration_s=time.monotonic() - start,
                    memory_peak=group.memory_peak() if group is not None else None,
                    oom_killed=group.oom_killed() if group is not None else False)


def _communicate(proc: subprocess.Popen[bytes], source: bytes, deadline: float, cap: int,
                 group: _Cgroup | None) -> tuple[bytes, bytes, bool, bool]:
    """(stdout, stderr, timed out, truncated); the process is reaped and ``proc.returncode`` set on return."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err, writer = proc.stdout.fileno(), proc.stderr.fileno(), proc.stdin.fileno()
    buffers = {out: bytearray(), err: bytearray()}
    pending = memoryview(source)
    timed_out = truncated = False
    with selectors.DefaultSelector() as sel:
        for fd in (out, err, writer):
            os.set_blocking(fd, False)
        sel.register(out, selectors.EVENT_READ)
        sel.register(err, selectors.EVENT_READ)
        sel.register(writer, selectors.EVENT_WRITE)
        readers = {out, err}
        while readers and not truncated:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                if key.fd == writer:
                    try:
                        pending = pending[os.write(writer, pending):]
                    except BlockingIOError:
                        continue
                    except OSError:  # the program ended before reading all of it
                        pending = pending[len(pending):]
                    if not pending:
                        sel.unregister(writer)
                        proc.stdin.close()
                    continue
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fd)
                    readers.discard(key.fd)
                    continue
                buf = buffers[key.fd]
                buf += chunk[: max(0, cap + 1 - len(buf))]
                truncated = truncated or len(buf) > cap
    status = None
    if not (timed_out or truncated):
        # output closed: the program is ending, or closed its output and goes on (then the deadline stops it)
        while True:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            status = None
            if time.monotonic() >= deadline:
                timed_out = True
                break
            time.sleep(0.005)
    if status is None:
        _kill(proc, group)
        _, status = os.waitpid(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return bytes(buffers[out]), bytes(buffers[err]), timed_out, truncated


def _kill(proc: subprocess.Popen[bytes], group: _Cgroup | None) -> None:
    """SIGKILL the sandbox: its process group (bwrap or unshare, whose death takes the PID namespace along) and
    whatever is left in its cgroup."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if group is not None:
        group.kill()

