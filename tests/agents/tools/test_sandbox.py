"""The ``python`` sandbox tool (checklist 6.1), run for real through each isolation this machine has (bubblewrap and
util-linux unshare): the tool contract, ordinary programs, and an escape list of attacks that each must fail in a
way the test can check from outside.

Every escape test plants what an escape would reveal or leave behind and checks it afterwards: a canary file with a
random secret in pytest's tmp_path and another in /tmp (its content must never appear in the output), a secret
environment variable of this process (never in the output), a TCP listener on 127.0.0.1 (no connection may ever
arrive), marker files the attack tries to create outside the sandbox (must not exist), a host process the attack
tries to kill (must still run), and no sandbox process may outlive the call. Each attack also prints what happened
to it, and the test asserts that output, so an attack that silently did nothing cannot pass as a blocked one.

The leftover checks look at the whole machine (any sandbox interpreter, any flightdeck-sandbox cgroup), so two runs
of this file at the same time would see each other's sandboxes.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flightdeck.agents.tools.base import Tool, ToolError
from flightdeck.agents.tools.sandbox import _BOOTSTRAP, SANDBOX_UID, PythonSandboxTool, SandboxConfig, seccomp_filter
from flightdeck.testing.tool_contract import ToolContract

ISOLATIONS = ("bubblewrap", "unshare")
_PROGRAM = {"bubblewrap": "bwrap", "unshare": "unshare"}
# what the sandboxed interpreter's command line contains: how a leftover sandbox process is recognised on the host
_BOOTSTRAP_MARK = "_src = _boot()"


def _build(isolation: str, **settings: object) -> PythonSandboxTool:
    if shutil.which(_PROGRAM[isolation]) is None:
        pytest.skip(f"{_PROGRAM[isolation]} is not installed (make system-deps installs bubblewrap)")
    return PythonSandboxTool(SandboxConfig(isolation=isolation, **settings))  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=ISOLATIONS)
def escape_tool(request: pytest.FixtureRequest) -> PythonSandboxTool:
    """One sandbox per isolation, with short limits so the attacks that run until stopped are quick."""
    return _build(request.param, timeout_s=3, memory_mb=256, max_processes=16, workdir_mb=8,
                  max_output_chars=20_000)


def _sandbox_processes(interpreters_only: bool = False) -> list[int]:
    """Host processes of a sandbox: any whose command line carries the bootstrap (the wrappers too), or only the
    sandboxed interpreters themselves."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if _BOOTSTRAP_MARK.encode() in cmdline and (
                    not interpreters_only or os.path.basename(cmdline.split(b"\0")[0]).startswith(b"python")):
                found.append(int(entry))
    return found


def _wait_for_no_sandbox_processes(seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _sandbox_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _flightdeck_cgroups() -> list[str]:
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(root, d) for d in dirs if d.startswith("flightdeck-sandbox-")]
        dirs[:] = [d for d in dirs if not d.startswith("flightdeck-sandbox-")]
    return found


# ------------------------------------------------------------------------------------------------------ contract


@pytest.mark.integration
class TestPythonSandboxContract(ToolContract):
    @pytest.fixture
    def tool(self) -> PythonSandboxTool:
        return PythonSandboxTool(SandboxConfig(max_code_chars=1000))

    @pytest.fixture
    def good_arguments(self) -> dict[str, object]:
        return {"code": "print(6 * 7)"}

    @pytest.fixture
    def bad_arguments(self) -> list[dict[str, object]]:
        return [{}, {"code": None}, {"code": 42}, {"code": "   \n"}, {"code": "x = 1\n" * 200},
                {"code": "print(1)", "stdin": "data"}, {"code": "print(1)\x00"}]


# ---------------------------------------------------------------------------------------------- settings, refusal


@pytest.mark.unit
def test_the_config_is_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        SandboxConfig(timeout=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="isolation"):
        SandboxConfig(isolation="none")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top-level import name"):
        SandboxConfig(packages=("numpy; rm -rf /",))
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxConfig(memory_mb=8)


@pytest.mark.unit
def test_no_isolation_means_no_tool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without bwrap and unshare on PATH the tool refuses to exist (with the install hint), never runs unisolated."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="apt-get install bubblewrap") as info:
        PythonSandboxTool(SandboxConfig(isolation="auto"))
    message = str(info.value)
    assert "bubblewrap: bwrap" in message and "unshare: unshare and setpriv are not installed" in message
    assert "never runs code unisolated" in str(info.value)


@pytest.mark.unit
def test_an_unknown_package_is_refused_at_construction() -> None:
    with pytest.raises(ToolError, match="no_such_package_xyz"):
        PythonSandboxTool(SandboxConfig(packages=("no_such_package_xyz",)))


@pytest.mark.unit
def test_leftover_sandbox_processes_are_recognisable() -> None:
    assert _BOOTSTRAP_MARK in _BOOTSTRAP  # what the leftover and host-uid checks look for on the host


@pytest.mark.unit
def test_the_seccomp_filter_is_a_well_formed_bpf_program() -> None:
    prog = seccomp_filter()
    if prog is None:
        pytest.skip("seccomp filter is written for x86-64 only")
    assert len(prog) % 8 == 0 and len(prog) // 8 < 4096
    import struct

    ins = [struct.unpack("<HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    assert ins[0] == (0x20, 0, 0, 4) and ins[1][3] == 0xC000003E  # checks the architecture first
    assert ins[-1] == (0x06, 0, 0, 0x7FFF0000)  # allows what it does not name
    denied = {k for code, _, _, k in ins if code == 0x15}
    assert {272, 308, 165, 101, 321, 425, 250} <= denied  # unshare setns mount ptrace bpf io_uring keyctl
    for n, (code, jt, jf, _) in enumerate(ins):  # every jump lands inside the program
        if code & 0x07 == 0x05:
            assert n + 1 + max(jt, jf) < len(ins)


# ---------------------------------------------------------------------------------------------- ordinary programs


@pytest.fixture(scope="module", params=ISOLATIONS)
def tool(request: pytest.FixtureRequest) -> PythonSandboxTool:
    return _build(request.param, timeout_s=10)


@pytest.mark.integration
def test_a_program_computes_and_prints(tool: PythonSandboxTool) -> None:
    code = ("import json, math, statistics\n"
            "data = [math.factorial(n) for n in range(1, 8)]\n"
            "print(json.dumps({'sum': sum(data), 'mean': statistics.mean([1, 2, 3, 4]), 'pi': round(math.pi, 5)}))\n")
    result = tool.call({"code": code})
    assert result.ok, result.content
    assert json.loads(result.data["stdout"]) == {"sum": 5913, "mean": 2.5, "pi": 3.14159}
    assert result.data["exit_code"] == 0 and result.data["timed_out"] is False
    assert result.data["isolation"] == tool.isolation
    assert result.content.startswith("exit code 0") and "5913" in result.content


@pytest.mark.integration
def test_the_work_dir_is_writable_private_and_forgotten(tool: PythonSandboxTool) -> None:
    code = ("import os, pathlib\n"
            "print(os.getcwd())\n"
            "pathlib.Path('notes.txt').write_text('hello ' * 3)\n"
            "os.makedirs('sub/dir')\n"
            "pathlib.Path('sub/dir/x.json').write_text('[1, 2]')\n"
            "print(pathlib.Path('notes.txt').read_text(), sorted(os.listdir('.')))\n"
            "import tempfile\n"
            "with tempfile.NamedTemporaryFile('w', delete=False) as f: f.write('t')\n"
            "print(f.name.startswith('/sandbox/'))\n")
    result = tool.call({"code": code})
    assert result.ok, result.content
    assert result.data["stdout"].splitlines() == ["/sandbox", "hello hello hello  ['notes.txt', 'sub']", "True"]
    again = tool.call({"code": "import os; print(sorted(os.listdir('.')))"})
    assert again.data["stdout"].strip() == "[]"  # each call starts empty


@pytest.mark.integration
def test_stdin_is_empty(tool: PythonSandboxTool) -> None:
    code = ("import sys, os\n"
            "print(repr(sys.stdin.read()), os.readlink('/proc/self/fd/0'))\n"
            "try:\n    input('? ')\nexcept EOFError:\n    print('EOFError')\n")
    result = tool.call({"code": code})
    assert result.ok, result.content
    assert result.data["stdout"].splitlines()[0] == "'' /dev/null"
    assert result.data["stdout"].rstrip().endswith("EOFError")


@pytest.mark.integration
def test_a_failing_program_is_a_result_with_its_traceback(tool: PythonSandboxTool) -> None:
    result = tool.call({"code": "x = 1\nprint('before')\nraise ValueError('bad value ' + str(x))\n"})
    assert not result.ok
    assert result.error == "the program exited with code 1: ValueError: bad value 1"
    assert result.data["exit_code"] == 1 and result.data["stdout"] == "before\n"
    assert 'File "<code>", line 3' in result.data["stderr"] and "raise ValueError" in result.data["stderr"]
    assert "_boot" not in result.data["stderr"] and "<string>" not in result.data["stderr"]  # no bootstrap frame
    assert result.content.startswith("error: the program exited with code 1")

    exited = tool.call({"code": "import sys; print('partial'); sys.exit(3)"})
    assert exited.data["exit_code"] == 3 and exited.error == "the program exited with code 3"
    syntax = tool.call({"code": "def f(:\n"})
    assert syntax.data["exit_code"] == 1 and "SyntaxError" in syntax.error


@pytest.mark.integration
def test_the_cpu_limit_stops_a_busy_program() -> None:
    tool = _build("bubblewrap" if shutil.which("bwrap") else "unshare", timeout_s=8, cpu_s=1)
    started = time.monotonic()
    result = tool.call({"code": "print('spinning', flush=True)\nwhile True:\n    pass\n"})
    assert time.monotonic() - started < 5  # the CPU limit, not the 8 s deadline
    assert result.data["signal"] == "SIGXCPU" and not result.data["timed_out"]
    assert result.error == "the program was killed by SIGXCPU (CPU time limit, 1 s)"
    assert result.data["stdout"] == "spinning\n" and result.data["exit_code"] is None


@pytest.mark.integration
def test_unicode_in_and_out(tool: PythonSandboxTool) -> None:
    result = tool.call({"code": "s = 'héllo wörld ✓ 日本'\nprint(s.upper(), len(s))"})
    assert result.ok and result.data["stdout"] == "HÉLLO WÖRLD ✓ 日本 16\n"


@pytest.mark.integration
def test_only_the_packages_configured_are_importable() -> None:
    plain = _build("bubblewrap" if shutil.which("bwrap") else "unshare")
    missing = plain.call({"code": "import numpy"})
    assert "ModuleNotFoundError: No module named 'numpy'" in missing.error
    with_numpy = _build("bubblewrap" if shutil.which("bwrap") else "unshare", packages=("numpy",))
    result = with_numpy.call({"code": "import numpy as np\nprint(int(np.arange(10).sum()), np.eye(3).trace())"})
    assert result.ok, result.content
    assert result.data["stdout"] == "45 3.0\n"
    assert "numpy" in with_numpy.spec.description


@pytest.mark.integration
def test_the_spec_tells_the_model_the_limits() -> None:
    tool = PythonSandboxTool(SandboxConfig(name="run_python", timeout_s=7, memory_mb=512))
    spec = tool.spec.to_openai()["function"]
    assert spec["name"] == "run_python"
    assert "7 s" in spec["description"] and "512 MB" in spec["description"] and "No network" in spec["description"]
    assert spec["parameters"]["required"] == ["code"] and spec["parameters"]["additionalProperties"] is False
    assert isinstance(tool, Tool)


# ------------------------------------------------------------------------------------------------- escape list


@dataclass
class Plant:
    """What an escape would reveal or leave behind, planted before each attack and checked after it."""

    secret: str
    canary: Path
    canary_tmp: Path
    env_secret: str
    marker: Path
    marker_tmp: Path
    marker_usr: Path
    listener: socket.socket
    victim: subprocess.Popen[bytes]

    def prelude(self) -> str:
        values = {"SECRET_LEN": len(self.secret), "CANARY": str(self.canary), "CANARY_TMP": str(self.canary_tmp),
                  "MARKER": str(self.marker), "MARKER_TMP": str(self.marker_tmp), "MARKER_USR": str(self.marker_usr),
                  "PORT": self.listener.getsockname()[1], "VICTIM": self.victim.pid,
                  "PROJECT_FILE": str(Path(__file__).resolve()), "VENV_SITE": _venv_site()}
        lines = [f"{k} = {v!r}" for k, v in values.items()]
        lines.append("def attempt(label, fn):\n"
                     "    try:\n"
                     "        print(label, 'OK', repr(fn())[:500], flush=True)\n"
                     "    except BaseException as e:\n"
                     "        print(label, 'FAIL', type(e).__name__, str(e)[:200], flush=True)\n")
        return "\n".join(lines) + "\n"


def _venv_site() -> str:
    return next(p for p in sys.path if p.endswith("site-packages"))


@pytest.fixture
def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plant]:
    secret = uuid.uuid4().hex
    token = uuid.uuid4().hex[:10]
    canary = tmp_path / "canary.txt"
    canary.write_text(f"canary {secret}\n")
    canary_tmp = Path(f"/tmp/flightdeck-canary-{token}")
    canary_tmp.write_text(f"canary {secret}\n")
    env_secret = uuid.uuid4().hex
    monkeypatch.setenv("FLIGHTDECK_SANDBOX_TEST_SECRET", env_secret)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    victim = subprocess.Popen(["sleep", "120"])
    p = Plant(secret=secret, canary=canary, canary_tmp=canary_tmp, env_secret=env_secret,
              marker=tmp_path / "pwned", marker_tmp=Path(f"/tmp/flightdeck-pwned-{token}"),
              marker_usr=Path(f"/usr/local/flightdeck-pwned-{token}"), listener=listener, victim=victim)
    try:
        yield p
    finally:
        victim.kill()
        victim.wait()
        listener.close()
        for path in (canary_tmp, p.marker_tmp, p.marker_usr):
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Attack:
    code: str
    expect: tuple[str, ...] = ()  # what the attack must print (it ran, and failed the checkable way)
    ok: bool | None = False  # whether the run itself succeeds (None: either)


ATTACKS = {
    "class_hierarchy_walk_to_os_system": Attack(
        "wrap = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
        "system = wrap.__init__.__globals__['system']\n"
        "print('reached system', flush=True)\n"
        "print('rc', system(f'cat {CANARY} {CANARY_TMP}; touch {MARKER} {MARKER_TMP}; env'))\n",
        expect=("reached system", "No such file or directory", "cannot touch"), ok=True),
    "class_hierarchy_walk_to_builtins_import": Attack(
        "for c in ().__class__.__base__.__subclasses__():\n"
        "    g = getattr(getattr(c, '__init__', None), '__globals__', None)\n"
        "    if g and '__builtins__' in g:\n"
        "        b = g['__builtins__']\n"
        "        imp = b['__import__'] if isinstance(b, dict) else b.__import__\n"
        "        break\n"
        "sp = imp('subprocess')\n"
        "print('reached subprocess', flush=True)\n"
        "attempt('read canary', lambda: sp.run(['cat', CANARY_TMP], capture_output=True, check=True).stdout)\n",
        expect=("reached subprocess", "read canary FAIL CalledProcessError"), ok=True),
    "os_system": Attack(
        "import os\n"
        "print('rc', os.system(f'cat {CANARY} {CANARY_TMP} /etc/shadow; touch {MARKER} {MARKER_TMP} {MARKER_USR}'))\n",
        expect=("No such file or directory", "rc 256"), ok=True),
    "subprocess_run": Attack(
        "import subprocess\n"
        "r = subprocess.run(['sh', '-c', f'cat {CANARY_TMP}; env; id; ls /'], capture_output=True, text=True)\n"
        "print(r.stdout, r.stderr)\n",
        expect=("No such file or directory", "uid="), ok=True),
    "ctypes_libc_system": Attack(
        "import ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        "print('rc', libc.system(f'cat {CANARY_TMP}; touch {MARKER_TMP}'.encode()))\n",
        expect=("rc 256",), ok=True),
    "etc_shadow_and_passwd": Attack(
        "attempt('shadow', lambda: open('/etc/shadow').read())\n"
        "attempt('passwd', lambda: open('/etc/passwd').read())\n"
        "attempt('ssh', lambda: __import__('os').listdir('/etc/ssh'))\n",
        expect=("shadow FAIL FileNotFoundError", "passwd FAIL FileNotFoundError", "ssh FAIL FileNotFoundError"),
        ok=True),
    "canary_by_absolute_path": Attack(
        "attempt('tmp_path', lambda: open(CANARY).read())\n"
        "attempt('tmp', lambda: open(CANARY_TMP).read())\n"
        "attempt('listdir tmp', lambda: __import__('os').listdir('/tmp'))\n",
        expect=("tmp_path FAIL FileNotFoundError", "tmp FAIL FileNotFoundError", "listdir tmp FAIL FileNotFoundError"),
        ok=True),
    "proc_1_root_and_cwd": Attack(
        "import os\n"
        "attempt('root', lambda: os.listdir('/proc/1/root'))\n"
        "attempt('canary via root', lambda: open('/proc/1/root' + CANARY_TMP).read())\n"
        "attempt('canary via cwd', lambda: open('/proc/1/cwd/../../..' + CANARY_TMP).read())\n"
        "attempt('parent root', lambda: os.listdir(f'/proc/{os.getppid()}/root/tmp'))\n"
        "attempt('pids', lambda: sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n",
        expect=("canary via root FAIL", "canary via cwd FAIL", "parent root FAIL"), ok=True),
    "environment_of_self_and_init": Attack(
        "import os\n"
        "print(dict(os.environ))\n"
        "attempt('self environ', lambda: open('/proc/self/environ').read())\n"
        "attempt('init environ', lambda: open('/proc/1/environ').read())\n",
        expect=("'PATH': '/usr/local/bin:/usr/bin:/bin'", "self environ OK"), ok=True),
    "write_outside_the_work_dir": Attack(
        "import os\n"
        "attempt('tmp_path', lambda: open(MARKER, 'w').write('x'))\n"
        "attempt('tmp', lambda: open(MARKER_TMP, 'w').write('x'))\n"
        "attempt('usr', lambda: open(MARKER_USR, 'w').write('x'))\n"
        "attempt('root', lambda: open('/pwned', 'w').write('x'))\n"
        "attempt('python', lambda: open(__import__('os').__file__, 'a').write('x'))\n"
        "attempt('hostname', lambda: open('/proc/sys/kernel/hostname', 'w').write('x'))\n"
        "attempt('core_pattern', lambda: os.open('/proc/sys/kernel/core_pattern', os.O_WRONLY))\n"
        "attempt('drop_caches', lambda: os.open('/proc/sys/vm/drop_caches', os.O_WRONLY))\n"
        "attempt('sysrq', lambda: os.open('/proc/sysrq-trigger', os.O_WRONLY))\n",
        expect=("tmp_path FAIL FileNotFoundError", "tmp FAIL FileNotFoundError", "usr FAIL OSError",
                "root FAIL OSError", "python FAIL", "hostname FAIL", "core_pattern FAIL", "drop_caches FAIL",
                "sysrq FAIL"), ok=True),
    "socket_to_a_listener_on_the_host": Attack(
        "import socket\n"
        "attempt('tcp', lambda: socket.create_connection(('127.0.0.1', PORT), timeout=1))\n"
        "attempt('ipv6', lambda: socket.create_connection(('::1', PORT), timeout=1))\n"
        "attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53)))\n"
        "attempt('outside', lambda: socket.create_connection(('1.1.1.1', 443), timeout=1))\n"
        "attempt('devices', lambda: [n for _, n in socket.if_nameindex()])\n",
        expect=("tcp FAIL", "ipv6 FAIL", "udp FAIL OSError", "outside FAIL OSError", "devices OK ['lo']"), ok=True),
    "dns": Attack(
        "import socket\n"
        "attempt('dns', lambda: socket.getaddrinfo('example.com', 443))\n"
        "attempt('resolv', lambda: open('/etc/resolv.conf').read())\n",
        expect=("dns FAIL gaierror", "resolv FAIL FileNotFoundError"), ok=True),
    "kill_init_parent_and_a_host_process": Attack(
        "import os, signal\n"
        "attempt('host victim', lambda: os.kill(VICTIM, signal.SIGKILL))\n"
        "attempt('parent', lambda: os.kill(os.getppid(), signal.SIGKILL))\n"
        "attempt('init', lambda: os.kill(1, signal.SIGKILL))\n"
        "attempt('group', lambda: os.killpg(0, signal.SIGCONT))\n"
        "print('alive', flush=True)\n"
        "attempt('everything', lambda: os.kill(-1, signal.SIGKILL))\n",
        expect=("alive",), ok=None),
    "setuid_to_root": Attack(
        "import os\n"
        "attempt('setuid', lambda: os.setuid(0))\n"
        "attempt('setresuid', lambda: os.setresuid(0, 0, 0))\n"
        "attempt('setgroups', lambda: os.setgroups([0]))\n"
        "print([l for l in open('/proc/self/status') if l.startswith(('Cap', 'NoNewPrivs', 'Seccomp:'))])\n",
        expect=("setuid FAIL", "setresuid FAIL", "setgroups FAIL PermissionError", "CapEff:\\t0000000000000000",
                "CapPrm:\\t0000000000000000", "NoNewPrivs:\\t1"), ok=True),
    "mount_unshare_and_ptrace": Attack(
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "os.mkdir('m')\n"
        "print('mount', libc.mount(b'none', b'm', b'tmpfs', 0, None))\n"
        "print('unshare', libc.unshare(0x10000000 | 0x00020000))\n"
        "print('ptrace', libc.ptrace(16, 1, 0, 0))\n"
        "print('sh mount', os.system('mount -t tmpfs none m 2>/dev/null'))\n"
        "print('sh unshare', os.system('unshare -r true 2>/dev/null'))\n"
        "attempt('init mem', lambda: open('/proc/1/mem', 'rb').read(1))\n",
        expect=("mount -1", "unshare -1", "ptrace -1", "init mem FAIL"), ok=True),
    "symlink_and_hardlink_tricks": Attack(
        "import os\n"
        "os.symlink(CANARY_TMP, 'to_canary'); os.symlink('/proc/1/root/../../../tmp', 'to_tmp')\n"
        "os.symlink('/proc/self/root/..', 'up')\n"
        "attempt('symlink', lambda: open('to_canary').read())\n"
        "attempt('via proc', lambda: os.listdir('to_tmp'))\n"
        "attempt('up', lambda: os.listdir('up'))\n"
        "attempt('hardlink', lambda: os.link(CANARY_TMP, 'hard'))\n"
        "attempt('write through', lambda: open('to_tmp/x', 'w'))\n",
        expect=("symlink FAIL FileNotFoundError", "via proc FAIL", "hardlink FAIL FileNotFoundError",
                "write through FAIL"), ok=True),
    "inherited_file_descriptors": Attack(
        "import os\n"
        "print('fds', sorted(os.listdir('/proc/self/fd')))\n"
        "for fd in range(3, 64):\n"
        "    attempt(f'fd {fd}', lambda: os.read(fd, 100)) if os.path.exists(f'/proc/self/fd/{fd}') else None\n",
        expect=("fds ['0', '1', '2', '3']",), ok=True),
    "host_folders_project_and_packages": Attack(
        "import os, sys\n"
        "for d in ('/home', '/work', '/var', '/srv', '/opt'):\n"
        "    attempt(d, lambda: os.listdir(d))\n"
        "attempt('project', lambda: open(PROJECT_FILE).read())\n"
        "attempt('import pydantic', lambda: __import__('pydantic'))\n"
        "sys.path.append(VENV_SITE)\n"
        "attempt('venv', lambda: __import__('pydantic'))\n"
        "attempt('site', lambda: os.listdir(os.path.join(sys.base_prefix, 'lib', 'python3.11', 'site-packages')))\n",
        expect=("/home FAIL FileNotFoundError", "/work FAIL FileNotFoundError", "/var FAIL FileNotFoundError",
                "project FAIL FileNotFoundError", "import pydantic FAIL ModuleNotFoundError",
                "venv FAIL ModuleNotFoundError"), ok=True),
    "fill_the_work_dir": Attack(
        "attempt('big file', lambda: open('big', 'wb').write(b'x' * (20 << 20)))\n"
        "def many():\n"
        "    for i in range(100):\n"
        "        open(f'f{i}', 'wb').write(b'x' * (1 << 20))\n"
        "attempt('many files', many)\n",
        expect=("big file FAIL", "many files FAIL OSError"), ok=True),
    "thread_bomb": Attack(
        "import threading, time\n"
        "def bomb():\n"
        "    ts = []\n"
        "    for _ in range(500):\n"
        "        t = threading.Thread(target=time.sleep, args=(0.3,)); t.start(); ts.append(t)\n"
        "attempt('threads', bomb)\n",
        expect=("threads FAIL RuntimeError can't start new thread",), ok=True),
    "memory_bomb": Attack(
        "x = []\n"
        "while True:\n"
        "    x.append(' ' * 10**6)\n",
        expect=()),
    "huge_output": Attack("while True:\n    print('spam' * 100)\n"),
    "deep_recursion_in_python": Attack(
        "import sys\nsys.setrecursionlimit(30_000)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n",
        expect=("RecursionError",)),
    "deep_recursion_in_c_overflows_the_stack": Attack(
        "import sys\nsys.setrecursionlimit(10**7)\nx = []\nfor _ in range(10**5):\n    x = [x]\n"
        "print('built', flush=True)\nprint(len(repr(x)))\n",
        expect=("built",)),
}
SLOW_ATTACKS = {
    "fork_bomb": Attack(
        "import os\n"
        "print('forking', flush=True)\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n"),
    "infinite_loop": Attack("while True:\n    pass\n"),
    "sleep_past_the_deadline_with_output_closed": Attack(
        "import os, time\nos.close(1); os.close(2)\ntime.sleep(60)\n"),
}


def _check_nothing_escaped(plant: Plant, output: str) -> None:
    assert plant.secret not in output, "the canary's secret reached the program"
    assert plant.env_secret not in output, "this process's environment reached the program"
    for marker in (plant.marker, plant.marker_tmp, plant.marker_usr):
        assert not marker.exists(), f"the program created {marker} outside the sandbox"
    assert plant.victim.poll() is None, "the program killed a host process"
    readable, _, _ = select.select([plant.listener], [], [], 0.1)
    assert not readable, "the program connected to the host's listener"
    assert _wait_for_no_sandbox_processes() == [], "a sandbox process outlived the call"


def _run_attack(tool: PythonSandboxTool, plant: Plant, name: str, attack: Attack) -> dict[str, object]:
    started = time.monotonic()
    result = tool.call({"code": plant.prelude() + attack.code})
    elapsed = time.monotonic() - started
    output = result.content + json.dumps(result.data)
    _check_nothing_escaped(plant, output)
    for text in attack.expect:
        assert text in result.data["stdout"] + result.data["stderr"], f"{name}: expected {text!r} in\n{output}"
    if attack.ok is not None:
        assert result.ok is attack.ok, f"{name}: {result.content[:2000]}"
    assert elapsed < tool.config.timeout_s + 5
    return {**result.data, "error": result.error, "elapsed": elapsed}


@pytest.mark.integration
@pytest.mark.parametrize("name", list(ATTACKS))
def test_escape_list(escape_tool: PythonSandboxTool, plant: Plant, name: str) -> None:
    data = _run_attack(escape_tool, plant, name, ATTACKS[name])
    limits = escape_tool.config
    if name == "memory_bomb":
        assert "MemoryError" in data["stderr"] or data["signal"] == "SIGKILL", data
        assert not data["timed_out"] and data["elapsed"] < limits.timeout_s
        if data["memory_peak_mb"] is not None:
            assert data["memory_peak_mb"] <= limits.memory_mb + limits.workdir_mb + 64
    elif name == "huge_output":
        assert data["truncated"] and len(data["stdout"]) <= limits.max_output_chars
        assert "print less" in data["error"] and data["elapsed"] < limits.timeout_s
    elif name == "deep_recursion_in_python":
        assert data["exit_code"] == 1 and "RecursionError" in data["error"]
    elif name == "deep_recursion_in_c_overflows_the_stack":
        # the C stack overflows (about 1 s here); on a loaded machine the deadline may come first
        assert (data["signal"] == "SIGSEGV" and "killed by SIGSEGV" in data["error"]) or data["timed_out"], data
    elif name == "kill_init_parent_and_a_host_process":
        assert "host victim FAIL ProcessLookupError" in data["stdout"]


@pytest.fixture(scope="module", params=ISOLATIONS)
def deadline_tool(request: pytest.FixtureRequest) -> PythonSandboxTool:
    """A sandbox with a short deadline, for the attacks that run until they are stopped."""
    return _build(request.param, timeout_s=1.5, memory_mb=256, max_processes=16, workdir_mb=8)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_ATTACKS))
def test_escape_list_until_the_deadline(deadline_tool: PythonSandboxTool, plant: Plant, name: str) -> None:
    before = len([p for p in os.listdir("/proc") if p.isdigit()])
    data = _run_attack(deadline_tool, plant, name, SLOW_ATTACKS[name])
    assert data["timed_out"] and data["error"].startswith("timed out after 1.5 s")
    assert deadline_tool.config.timeout_s <= data["elapsed"] < deadline_tool.config.timeout_s + 3
    if name == "fork_bomb":
        assert data["stdout"] == "forking\n"  # output printed before the kill comes back
        deadline = time.monotonic() + 5
        while len([p for p in os.listdir("/proc") if p.isdigit()]) > before + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len([p for p in os.listdir("/proc") if p.isdigit()]) <= before + 20
    assert not [c for c in _flightdeck_cgroups()], "a sandbox cgroup was left behind"
    # the sandbox still works after the attack
    assert deadline_tool.call({"code": "print('next')"}).data["stdout"] == "next\n"


@pytest.mark.integration
def test_the_program_runs_unprivileged_in_fresh_namespaces(escape_tool: PythonSandboxTool) -> None:
    code = ("import json, os, socket\n"
            "status = dict(l.rstrip('\\n').split(':\\t', 1) for l in open('/proc/self/status') if ':\\t' in l)\n"
            "print(json.dumps({'uid': os.getuid(), 'host': socket.gethostname(), 'caps': status['CapEff'],\n"
            "                  'nnp': status['NoNewPrivs'], 'seccomp': status['Seccomp'],\n"
            "                  'pids': [p for p in os.listdir('/proc') if p.isdigit()]}))\n")
    result = escape_tool.call({"code": code})
    assert result.ok, result.content
    seen = json.loads(result.data["stdout"])
    assert seen["uid"] != 0 and seen["host"] == "sandbox"
    if escape_tool.isolation == "bubblewrap" or os.geteuid() != 0:
        assert seen["uid"] == SANDBOX_UID
    assert int(seen["caps"], 16) == 0 and seen["nnp"] == "1"
    assert len(seen["pids"]) <= 3  # itself and the namespace's init: nothing of the host
    assert seen["seccomp"] == ("2" if seccomp_filter() is not None else "0")
    assert result.data["seccomp"] is (seccomp_filter() is not None)


@pytest.mark.integration
def test_the_program_never_runs_as_host_root(escape_tool: PythonSandboxTool) -> None:
    """Seen from the host while it runs: every process of the sandbox that runs the program has a non-zero uid."""
    import threading

    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(escape_tool.call({"code": "import time; time.sleep(1.5)"})))
    worker.start()
    seen: dict[int, list[int]] = {}
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        for pid in _sandbox_processes(interpreters_only=True):
            try:
                uids = next(u for u in Path(f"/proc/{pid}/status").read_text().splitlines() if u.startswith("Uid:"))
            except (OSError, StopIteration):
                continue
            seen[pid] = [int(u) for u in uids.split()[1:]]
        time.sleep(0.05)
    worker.join()
    assert seen, "the sandboxed interpreter was never seen on the host"
    for pid, uids in seen.items():
        assert 0 not in uids, f"sandbox process {pid} runs with host uids {uids}"


_NON_ROOT_SERVER = r"""
import json, os, sys
cfg = json.loads(sys.argv[1])
sys.path[:0] = cfg["path"]
from flightdeck.agents.tools.sandbox import PythonSandboxTool, SandboxConfig
code = (
    "import json, os, socket\n"
    "res = {'uid': os.getuid(), 'net': [n for _, n in socket.if_nameindex()]}\n"
    "def t(label, fn):\n"
    "    try:\n"
    "        res[label] = 'OK ' + repr(fn())[:200]\n"
    "    except BaseException as e:\n"
    "        res[label] = 'FAIL ' + type(e).__name__\n"
    f"t('canary', lambda: open({cfg['canary']!r}).read())\n"
    f"t('marker', lambda: open({cfg['marker']!r}, 'w'))\n"
    "t('core_pattern', lambda: os.open('/proc/sys/kernel/core_pattern', os.O_WRONLY))\n"
    "t('dns', lambda: socket.getaddrinfo('example.com', 80))\n"
    "n = 0\n"
    "try:\n"
    "    for i in range(100):\n"
    "        if os.fork() == 0:\n"
    "            import time; time.sleep(2); os._exit(0)\n"
    "        n += 1\n"
    "except OSError:\n"
    "    pass\n"
    "res['forked'] = n\n"
    "print(json.dumps(res))\n")
out = {"server_uid": os.getuid(), "server_reads_canary": open(cfg["canary"]).read()}
for isolation in ("bubblewrap", "unshare"):
    result = PythonSandboxTool(SandboxConfig(isolation=isolation, max_processes=8)).call({"code": code})
    out[isolation] = {"error": result.error, "stdout": result.data["stdout"], "stderr": result.data["stderr"]}
print(json.dumps(out))
"""


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="starts a non-root server with setpriv, which needs root")
def test_a_non_root_server_gets_the_same_isolation(plant: Plant) -> None:
    """The model most users run: flightdeck as an ordinary user (here uid 65534, through the system's Python 3.11,
    since pyenv's lives under /root). Both isolations then use unprivileged user namespaces; the program must hide
    a canary that the server's own user can read, refuse a sysctl, have no network, and hold the process limit."""
    python = "/usr/bin/python3.11"
    if not (shutil.which("bwrap") and shutil.which("setpriv") and os.path.exists(python)):
        pytest.skip("needs bwrap, setpriv and the system's /usr/bin/python3.11")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the venv's compiled packages must match the system's Python 3.11")
    import flightdeck

    src = str(Path(flightdeck.__file__).resolve().parents[1])
    plant.canary_tmp.chmod(0o644)  # readable by the non-root server on the host
    config = {"path": [src, _venv_site()], "canary": str(plant.canary_tmp), "marker": str(plant.marker_tmp)}
    run = subprocess.run(["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--",
                          python, "-I", "-c", _NON_ROOT_SERVER, json.dumps(config)],
                         capture_output=True, text=True, timeout=60, cwd="/", env={"PATH": "/usr/bin:/bin"})
    if run.returncode != 0 and ("ModuleNotFoundError" in run.stderr or "Permission denied" in run.stderr):
        pytest.skip(f"uid {SANDBOX_UID} cannot import flightdeck from {src}: {run.stderr[-300:]}")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["server_uid"] == SANDBOX_UID and plant.secret in out["server_reads_canary"]
    for isolation in ("bubblewrap", "unshare"):
        assert out[isolation]["error"] is None, out[isolation]
        seen = json.loads(out[isolation]["stdout"])
        assert seen["uid"] == SANDBOX_UID and seen["net"] == ["lo"], seen
        assert seen["canary"] == "FAIL FileNotFoundError" and seen["marker"] == "FAIL FileNotFoundError", seen
        assert seen["core_pattern"].startswith("FAIL") and seen["dns"].startswith("FAIL"), seen
        assert 1 <= seen["forked"] <= 8, seen
    _check_nothing_escaped(plant, json.dumps({isolation: out[isolation] for isolation in ISOLATIONS}))
