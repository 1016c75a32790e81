r"""The native (C++) multi-step LIF op: compiled on first use, cached, registered as a torch op.

``lif_native.cpp`` holds the time loop (OpenMP over batch x neuron blocks through
``at::parallel_for``, bit-identical forward: ``-ffp-contract=off``). On first use it is
compiled with the system C++ compiler (``$CXX``, else ``c++``) against the installed torch's
headers, with the include/library paths and the C++ standard torch's own
:mod:`torch.utils.cpp_extension` uses (:func:`cxx_standard`; no ninja, no install step), into
``$BRAIN_AI_CACHE/kernels`` or ``~/.cache/brain_ai/kernels`` (``$XDG_CACHE_HOME``), keyed by
the source, torch version, compiler and CPU, and loaded with ``torch.ops.load_library``. The
build is announced by one log line (logger ``brain_ai.kernels.native``, WARNING: 45-110 s);
``brain-ai build-kernels`` builds ahead of time.

The cache is trusted only as far as it is private: the directory is created with mode 0700 and
must belong to this user and be closed to writes by others; a library is loaded only if it and
its build record belong to this user, are not writable by others, and its sha256 is the one
recorded when it was built (else it is rebuilt). A compiler run is limited to
``$BRAIN_AI_BUILD_TIMEOUT`` seconds (600); a failure is logged once and recorded beside the
libraries, so later processes do not retry it (``brain-ai build-kernels --force`` does). A
missing compiler or a failed build leaves :func:`available` ``False`` (:func:`load_error` says
why) and the dispatcher runs the pure-PyTorch fused op instead.

The ops ``brain_ai_kernels::lif_forward`` / ``lif_backward`` are registered through
``torch.library`` (``TORCH_LIBRARY`` in C++, fake implementations here), so ``torch.compile``
keeps a whole window as one opaque op instead of unrolling time; :class:`NativeLIF` (an
``autograd.Function``, cheaper per call than ``register_autograd``) ties them together.

Memory: the op's outputs of 16 KiB or more (spikes, the saved ``h``, states, gradients) come
from a small pool of freed blocks (exact size match, at most ``$BRAIN_AI_POOL_MB`` MiB of free
blocks kept, default 512, ``0`` disables it, validated by :func:`pool_limit_mb`;
:func:`empty_cache` frees them), so that a
training loop reuses warm pages instead of faulting in fresh ones each step. They are ordinary
CPU tensors. Inputs are read in place: ``x`` needs a contiguous last axis only (a truncated-BPTT
window or transposed time-first data is not copied), a parameter is passed as it is (one
value or one row shared by the batch is read in place, never expanded to ``(B, N)``), and
its gradient comes back reduced to its shape as autograd reduces it. Backward
writes the input gradient over the saved ``h`` when nothing else can read it again
(:func:`brain_ai.kernels.fused.h_is_free`): forward+backward then holds two ``(B, T, N)``
buffers besides the input (the spikes, and ``h`` turning into the input gradient) instead of
three.

Threads: work items are claimed dynamically inside one OpenMP region; when threads cost more
than one thread alone would have (a worker or the caller not scheduled for a whole tick, as on
a busy virtualized host), the op runs single-threaded for a while before trying again. Results
never depend on the number of threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import platform
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from brain_ai.errors import ConfigError
from brain_ai.kernels.fused import (
    LIF_RULES,
    FusedConfig,
    h_is_free,
    no_second_order,
    rules_covered,
    saved_hooks_active,
)
from brain_ai.physics import rules
from brain_ai.physics import surrogates as S

try:  # POSIX: one builder per cache directory at a time
    import fcntl
except ImportError:  # pragma: no cover - Windows: concurrent builders each compile
    fcntl = None  # type: ignore[assignment]

__all__ = ["BuildReport", "NativeLIF", "available", "build", "build_report", "build_timeout_s",
           "cached_bytes", "cxx_standard", "empty_cache", "load_error", "loaded",
           "native_config", "pool_limit_mb", "run_native"]

_SOURCE = Path(__file__).with_name("lif_native.cpp")
_HEADER = "brain_ai_rules.h"

#: The rule names the C++ loop implements: the same set as the fused op.
COVERED = LIF_RULES
#: The built-in surrogates (by ``Surrogate.name``) whose derivative the C++ loop implements.
COVERED_SURROGATES = frozenset({"atan", "fast_sigmoid", "ste", "sigmoid", "triangular",
                                "piecewise_quadratic", "piecewise_exp", "soft_sign",
                                "super_spike", "erf"})
_ENUMS = (("Charge", "charge"), ("Reset", "reset"), ("Timing", "reset_timing"))


def rules_header() -> str:
    """The C++ enums of ``lif_native.cpp``, generated from the one rule-code table
    (:data:`brain_ai.physics.rules.RULE_CODES`) and the surrogate kernel ids
    (:data:`brain_ai.physics.surrogates.SURROGATE_CODES`). Written next to the build."""
    lines = ["// Generated by brain_ai.kernels.native.rules_header(); do not edit.",
             "#pragma once", "#include <cstdint>"]
    for enum, kind in _ENUMS:
        members = ", ".join(f"{name.upper()} = {code}"
                            for name, code in rules.RULE_CODES[kind].items())
        lines.append(f"enum {enum} : int64_t {{ {members} }};")
    members = ", ".join(f"{cls.name.upper()} = {code}"
                        for cls, code in S.SURROGATE_CODES.items())
    lines.append(f"enum Surr : int64_t {{ {members} }};")
    return "\n".join(lines) + "\n"


class NativeRules(NamedTuple):
    """The op's named rule arguments, in its schema's order (codes from the rule table)."""

    charge: int
    reset: int
    timing: int
    ge: bool
    synapse: bool
    detach_reset: bool
    surrogate: int
    adapt: bool
    recur: bool
    refractory: int
    graded_spikes: bool


_log = logging.getLogger(__name__)

CACHE_ENV = "BRAIN_AI_CACHE"
POOL_ENV = "BRAIN_AI_POOL_MB"
TIMEOUT_ENV = "BRAIN_AI_BUILD_TIMEOUT"
DEFAULT_POOL_MB = 512
DEFAULT_TIMEOUT_S = 600.0
#: The largest pool limit accepted (MiB; ``<< 20`` still fits a 64-bit ``size_t``).
MAX_POOL_MB = 1 << 40
RETRY_COMMAND = "brain-ai build-kernels --force"
_STALE_TMP_S = 900.0  # a tmp*.so of an earlier brain_ai version this old is abandoned
_SPACE = " \t\n\r\v\f"  # what the C++ parser of $BRAIN_AI_POOL_MB skips too

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "ok": False, "error": None, "path": None}


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What :func:`build_report` found or did.

    Attributes:
        status: ``"built"`` (compiled now), ``"cached"`` (a verified library of an earlier
            build), ``"failed"`` (the compiler failed or timed out) or ``"unavailable"`` (no
            compiler, or a cache directory that is not private).
        cache_dir: where libraries, their build records and failure records live.
        path: the verified library (``"built"`` / ``"cached"``), else ``None``.
        seconds: how long the compiler ran (``"built"``, or a failure of this call).
        error: why there is no library.
        std: the C++ standard compiled with (``-std=``).
        remembered: the failure was recorded by an earlier build and not retried.
    """

    status: str
    cache_dir: Path
    path: Path | None = None
    seconds: float | None = None
    error: str | None = None
    std: str | None = None
    remembered: bool = False


# ---------------------------------------------------------------- environment
def pool_limit_mb() -> int:
    """``$BRAIN_AI_POOL_MB``: the MiB of free blocks the op's buffer pool may keep (default
    512; ``0`` disables the pool).

    Raises:
        ConfigError: not a whole number of MiB from 0 to :data:`MAX_POOL_MB` (``-1``, ``abc``,
            ``1e3`` are refused; the C++ side would otherwise read them as something else).
    """
    raw = os.environ.get(POOL_ENV, "")
    text = raw.strip(_SPACE)
    if not text:
        return DEFAULT_POOL_MB
    if not re.fullmatch(r"[0-9]+", text) or int(text) > MAX_POOL_MB:
        raise ConfigError(POOL_ENV, "the buffer pool limit must be a whole number of MiB >= 0",
                          got=repr(raw), expected=f"an integer from 0 to {MAX_POOL_MB} (0 "
                          f"disables the pool; unset: {DEFAULT_POOL_MB})",
                          hint=f"export {POOL_ENV}={DEFAULT_POOL_MB}, or unset it")
    return int(text)


def build_timeout_s() -> float:
    """``$BRAIN_AI_BUILD_TIMEOUT``: seconds one compiler run may take (default 600).

    Raises:
        ConfigError: not a finite number of seconds > 0.
    """
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw.strip(_SPACE):
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(TIMEOUT_ENV, "the kernel build timeout must be a number of seconds > 0",
                          got=repr(raw), expected=f"e.g. {DEFAULT_TIMEOUT_S:g}",
                          hint=f"export {TIMEOUT_ENV}=1200 on a slow machine, or unset it")
    return value


def _cache_dir() -> Path:
    """``$BRAIN_AI_CACHE/kernels``, else ``$XDG_CACHE_HOME/brain_ai/kernels``, else
    ``~/.cache/brain_ai/kernels`` (created by :func:`build_report`, mode 0700)."""
    root = os.environ.get(CACHE_ENV, "").strip()
    if root:
        return Path(root).expanduser().absolute() / "kernels"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "brain_ai" / "kernels"


# ---------------------------------------------------------------- trust
def _owner_problem(path: Path, st: os.stat_result) -> str | None:
    """Why ``path`` is not trusted: owned by another user, or writable by group or others."""
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{path} is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _private_dir(path: Path) -> None:
    """Create the cache ``path`` with mode 0700 (parents with the default mode).

    Raises:
        RuntimeError: it cannot be created, or is not a directory owned by this user and
            closed to writes by others (a library there could have been planted).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError as err:
        raise RuntimeError(f"cannot create the kernel cache {path}: {err}") from err
    problem = (f"{path} is not a directory" if not stat.S_ISDIR(st.st_mode)
               else _owner_problem(path, st))
    if problem:
        raise RuntimeError(f"the kernel cache is not private: {problem}; no library is loaded "
                           f"from it. Hint: `chmod 700 {path}` if it is yours, or point "
                           f"${CACHE_ENV} at a directory of your own")


def _file_problem(path: Path) -> str | None:
    try:
        st = os.lstat(path)  # a symbolic link is not followed: refused
    except OSError:
        return f"{path.name} is missing"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    return _owner_problem(path, st)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify(lib: Path, record: Path, key: str) -> str | None:
    """Why ``lib`` must not be loaded (``None``: it may): both files this user's, not
    writable by others, and the library's sha256 the one its build recorded."""
    for f in (lib, record):
        problem = _file_problem(f)
        if problem:
            return problem
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError) as err:
        return f"unreadable build record {record.name}: {err}"
    if not isinstance(data, dict) or data.get("key") != key:
        return f"{record.name} records another build"
    if data.get("sha256") != _sha256(lib):
        return f"{lib.name} differs from the sha256 recorded when it was built"
    return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600."""
    tmp = path.with_name(f"tmp-{path.name}-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


# ---------------------------------------------------------------- compiler
def _compiler() -> list[str]:
    """``$CXX`` (split like a shell word list, e.g. ``ccache g++``), else ``c++``/``g++``/
    ``clang++`` from ``$PATH``."""
    env = os.environ.get("CXX", "").strip()
    if env:
        cmd = shlex.split(env)
        if not cmd or not shutil.which(cmd[0]):
            raise RuntimeError(f"$CXX={env!r} is not an executable (set $CXX to a C++ "
                               "compiler, e.g. g++, or unset it)")
        return cmd
    for name in ("c++", "g++", "clang++"):
        found = shutil.which(name)
        if found:
            return [found]
    raise RuntimeError("no C++ compiler found (install g++, or set $CXX)")


def _compiler_id(cxx: list[str]) -> str:
    """The compiler's ``--version`` line: a compiler upgraded in place gets a new build."""
    try:
        proc = subprocess.run([*cxx, "--version"], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RuntimeError(f"cannot run the C++ compiler {cxx[0]}: {err}") from err
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else ""


@functools.cache
def cxx_standard() -> str:
    """The C++ standard the installed torch compiles its extensions with: the newest
    ``-std=c++NN`` in :mod:`torch.utils.cpp_extension` (its headers may need it: torch 2.14's
    need C++20); ``c++17`` where none is found."""
    from torch.utils import cpp_extension

    try:
        text = Path(cpp_extension.__file__).read_text()
    except OSError:
        text = ""
    years = {int(y) for y in re.findall(r"-std=c\+\+(\d\d)\b", text)}
    newest = max(years, key=lambda y: y + (1900 if y >= 90 else 2000), default=17)
    return f"c++{newest:02d}"


def _cpu_signature() -> str:
    """Machine + CPU flags: a cache built with ``-march=native`` never crosses CPUs."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{platform.machine()}|{flags}"


def _build_key(cxx: list[str], std: str) -> str:
    """The source and generated header, torch version, CPU, compiler and standard."""
    parts = (_SOURCE.read_bytes(), rules_header().encode(), torch.__version__.encode(),
             _cpu_signature().encode(), " ".join(cxx).encode(), _compiler_id(cxx).encode(),
             std.encode())
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def _compile_cmd(cxx: list[str] | str, src: Path, out: Path, march: bool, include: Path,
                 std: str | None = None) -> list[str]:
    """The compiler call: torch's include and library paths from
    :mod:`torch.utils.cpp_extension`, its C++ standard (:func:`cxx_standard`) and ABI."""
    from torch.utils import cpp_extension

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [*([cxx] if isinstance(cxx, str) else cxx), "-O3", f"-std={std or cxx_standard()}",
           "-fPIC", "-shared", "-ffp-contract=off", "-fopenmp", "-fno-math-errno",
           f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-DTORCH_API_INCLUDE_EXTENSION_H"]
    if march:
        cmd.append("-march=native")
    for inc in cpp_extension.include_paths():
        cmd += ["-isystem", inc]
    cmd += ["-isystem", sysconfig.get_paths()["include"], "-I", str(include), str(src),
            "-o", str(out)]
    for lib in cpp_extension.library_paths():
        cmd += [f"-L{lib}", f"-Wl,-rpath,{lib}"]
    cmd += ["-lc10", "-ltorch_cpu", "-ltorch"]
    return cmd


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``cmd`` in its own process group; on timeout the whole group (driver, cc1plus, ld) is
    killed and :class:`subprocess.TimeoutExpired` raised."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if hasattr(os, "killpg"):
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _compiler_summary(output: str) -> str:
    """The compiler's first error lines (its whole output is kept in the failure record)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return " | ".join((errors or lines[-3:])[:3])[:600] or "no compiler output"


def _compile(cxx: list[str], std: str, key: str, cdir: Path, timeout: float
             ) -> tuple[Path | None, str, str]:
    """Compile into a tmp file of ``cdir`` (``-march=native``, then without). Returns
    ``(tmp library or None, one-line reason, full compiler output)``; no tmp file is left
    behind on failure."""
    reasons, outputs = [], []
    with tempfile.TemporaryDirectory() as include:
        Path(include, _HEADER).write_text(rules_header())
        for march in (True, False):
            fd, name = tempfile.mkstemp(prefix=f"tmp-brain_ai_lif_{key}-", suffix=".so",
                                        dir=cdir)
            os.close(fd)
            tmp, keep = Path(name), False
            try:
                proc = _run(_compile_cmd(cxx, _SOURCE, tmp, march, Path(include), std), timeout)
                if proc.returncode == 0 and tmp.stat().st_size > 0:
                    keep = True
                    return tmp, "", ""
                outputs.append((proc.stderr or "") + (proc.stdout or ""))
                reasons.append(f"exit code {proc.returncode}: {_compiler_summary(outputs[-1])}")
            except subprocess.TimeoutExpired:
                reasons.append(f"the compiler ran longer than {timeout:g} s (${TIMEOUT_ENV})")
                break
            except OSError as err:
                reasons.append(f"cannot run {cxx[0]}: {err}")
                break
            finally:
                if not keep:
                    tmp.unlink(missing_ok=True)
    return None, reasons[-1], "\n".join(outputs)[-8000:]


# ---------------------------------------------------------------- build
@contextlib.contextmanager
def _locked(cdir: Path) -> Iterator[None]:
    """One builder per cache directory at a time (others wait, then find its library)."""
    fd = os.open(cdir / ".build.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_stale_tmp(cdir: Path) -> None:
    """Partial libraries of killed builds: this version's (stale under the lock) and those of
    earlier versions (``tmp*.so``) older than a quarter of an hour."""
    now = time.time()
    for f in cdir.glob("tmp*.so"):
        with contextlib.suppress(OSError):
            if f.name.startswith("tmp-brain_ai_lif_") or now - f.stat().st_mtime > _STALE_TMP_S:
                f.unlink()


def _paths(cdir: Path, key: str) -> tuple[Path, Path, Path]:
    """The library, its build record (sha256) and the record of a failed build."""
    lib = cdir / f"brain_ai_lif_{key}.so"
    return lib, lib.with_suffix(".json"), cdir / f"brain_ai_lif_{key}.failed.json"


def _lookup(cdir: Path, key: str, std: str) -> BuildReport | None:
    """A verified library, or a failure an earlier build recorded (``None``: neither)."""
    lib, record, failed = _paths(cdir, key)
    if _verify(lib, record, key) is None:
        return BuildReport("cached", cdir, lib, std=std)
    if _file_problem(failed) is None:
        try:
            data = json.loads(failed.read_text())
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("key") == key:
            return BuildReport("failed", cdir, seconds=data.get("seconds"), std=std,
                               remembered=True,
                               error=f"building failed on {data.get('when', '?')} "
                                     f"({data.get('error', '?')}); recorded in {failed}, so it "
                                     f"is not retried. Hint: `{RETRY_COMMAND}` retries")
    return None


def build_report(force: bool = False) -> BuildReport:
    """Compile ``lif_native.cpp`` into the cache unless a verified library is there.

    The cache directory is created private (0700) and must be this user's and closed to
    writes by others. A library is used only if it and its build record are this user's, not
    writable by others, and its sha256 is the one recorded when it was built; any other is
    discarded and rebuilt. A failed build (compiler error, or longer than
    ``$BRAIN_AI_BUILD_TIMEOUT`` s) is recorded beside it, keyed by source, torch version,
    compiler and CPU, and not retried until one of those changes or ``force`` is given
    (``brain-ai build-kernels --force``). Never raises for a build problem: it is reported.

    Raises:
        ConfigError: ``$BRAIN_AI_BUILD_TIMEOUT`` is not a number of seconds > 0.
    """
    cdir = _cache_dir()
    timeout = build_timeout_s()
    try:
        cxx = _compiler()
        std = cxx_standard()
        key = _build_key(cxx, std)
        _private_dir(cdir)
    except RuntimeError as err:
        return BuildReport("unavailable", cdir, error=str(err))
    if not force and (found := _lookup(cdir, key, std)) is not None:
        return found
    lib, record, failed = _paths(cdir, key)
    with _locked(cdir):
        if force:
            for f in (lib, record, failed):
                f.unlink(missing_ok=True)
        elif (found := _lookup(cdir, key, std)) is not None:  # another process built it
            return found
        elif lib.exists() or record.exists():
            _log.warning("brain_ai: discarding the cached native kernel %s (%s); rebuilding",
                         lib, _verify(lib, record, key))
            lib.unlink(missing_ok=True)
            record.unlink(missing_ok=True)
        _remove_stale_tmp(cdir)
        _log.warning("brain_ai: compiling the native LIF kernel (-std=%s) into %s; once per "
                     "torch version, compiler and CPU, typically 45-110 s (at most %g s, "
                     "$%s) ...", std, cdir, timeout, TIMEOUT_ENV)
        start = time.monotonic()
        tmp, reason, output = _compile(cxx, std, key, cdir, timeout)
        seconds = round(time.monotonic() - start, 1)
        facts = {"key": key, "torch": torch.__version__, "compiler": " ".join(cxx),
                 "std": std, "seconds": seconds,
                 "when": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        if tmp is None:
            _write_json(failed, {**facts, "error": reason, "output": output})
            _log.warning("brain_ai: building the native LIF kernel failed after %.1f s: %s. "
                         "The fused PyTorch kernel runs instead (same results, slower). "
                         "Recorded in %s: later runs do not retry; `%s` does", seconds, reason,
                         failed, RETRY_COMMAND)
            return BuildReport("failed", cdir, seconds=seconds, std=std,
                               error=f"{reason} (details: {failed})")
        os.chmod(tmp, 0o700)  # the linker's mode follows the umask
        _write_json(record, {**facts, "sha256": _sha256(tmp)})
        os.replace(tmp, lib)  # atomic: a reader never sees a partial file
        failed.unlink(missing_ok=True)
        problem = _verify(lib, record, key)
        if problem:
            return BuildReport("failed", cdir, seconds=seconds, std=std, error=problem)
        _log.info("brain_ai: built the native LIF kernel in %.1f s: %s", seconds, lib)
        return BuildReport("built", cdir, lib, seconds=seconds, std=std)


def build(force: bool = False) -> Path:
    """Compile ``lif_native.cpp`` into the cache (if not there yet); returns the verified
    library path (see :func:`build_report`).

    Raises:
        RuntimeError: no C++ compiler, a cache directory that is not private, or the build
            failed now or earlier (the reason, and where the compiler output is kept).
    """
    report = build_report(force)
    if report.path is None:
        raise RuntimeError(f"native LIF kernel {report.status}: {report.error}")
    return report.path


def _load() -> bool:
    if _state["tried"]:
        return bool(_state["ok"])
    pool_limit_mb()  # a malformed variable raises on every call, before anything loads
    build_timeout_s()
    with _lock:
        if _state["tried"]:
            return bool(_state["ok"])
        _state["tried"] = True
        report = build_report()
        if report.path is None:
            _state["error"] = report.error
            if report.status != "failed" or report.remembered:  # a fresh failure was logged
                _log.warning("brain_ai: the native LIF kernel is unavailable: %s. The fused "
                             "PyTorch kernel runs instead (same results, slower; "
                             "BRAIN_AI_KERNEL=fused skips this check)", report.error)
            return False
        try:
            torch.ops.load_library(str(report.path))  # verified by build_report just now
            _register_python_side()
        except (RuntimeError, OSError) as err:
            _state["error"] = f"loading {report.path} failed: {err}"
            _log.warning("brain_ai: %s. The fused PyTorch kernel runs instead", _state["error"])
            return False
        _state["ok"], _state["path"] = True, report.path
        return True


def available() -> bool:
    """Whether the native op is built and loaded (builds it on the first call).

    Raises:
        ConfigError: ``$BRAIN_AI_POOL_MB`` or ``$BRAIN_AI_BUILD_TIMEOUT`` is malformed
            (checked on every call, also once the library is loaded).
    """
    pool_limit_mb()
    build_timeout_s()
    return _load()


def loaded() -> bool:
    """Whether the native op is already loaded in this process (never builds)."""
    return bool(_state["ok"])


def load_error() -> str | None:
    """Why the native op is unavailable (``None`` when it loaded or was not tried)."""
    return _state["error"]


def empty_cache() -> int:
    """Free the blocks the native op's buffer pool keeps; returns the bytes freed (0 when the
    op is not loaded)."""
    return int(torch.ops.brain_ai_kernels.pool_empty()) if loaded() else 0


def cached_bytes() -> int:
    """Bytes of free blocks the native op's buffer pool keeps for reuse."""
    return int(torch.ops.brain_ai_kernels.pool_cached()) if loaded() else 0


def covers(c: FusedConfig) -> bool:
    """Whether the C++ loop implements every rule of ``c`` (deny by default)."""
    surrogate = type(c.surrogate)
    return (rules_covered(COVERED, c) and surrogate in S.SURROGATE_CODES
            and surrogate.name in COVERED_SURROGATES)


def native_config(c: FusedConfig, x: Tensor) -> NativeRules | None:
    """The op's named rule arguments for ``c``, or ``None`` where the native op does not apply
    (not CPU, not float32/float64, a rule or a user-defined surrogate it does not cover)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    if not covers(c):
        return None
    codes = rules.RULE_CODES
    return NativeRules(
        charge=codes["charge"][c.charge], reset=codes["reset"][c.reset],
        timing=codes["reset_timing"][c.timing], ge=c.comparator == ">=", synapse=c.synapse,
        detach_reset=c.detach_reset, surrogate=S.SURROGATE_CODES[type(c.surrogate)],
        adapt=c.adapt, recur=c.recur, refractory=int(c.refractory), graded_spikes=c.graded)


def _stores_h(reset: int, timing: int) -> bool:
    """:func:`brain_ai.physics.rules.stores_h` of the op's codes."""
    return rules.stores_h(rules.ALLOWED["reset"][reset], rules.ALLOWED["reset_timing"][timing])


def _saves_rbits(r: NativeRules) -> bool:
    """Whether the forward saves the carried resets (compensated timings on the op's fast
    loop, which covers every rule without a synapse, adaptation, recurrence, refractory period
    or graded spikes)."""
    timing = rules.ALLOWED["reset_timing"][r.timing]
    return (rules.is_compensated(rules.ALLOWED["reset"][r.reset], timing) and not r.synapse
            and not r.adapt and not r.recur and not r.refractory and not r.graded_spikes)


# ---------------------------------------------------------------- torch.library registration
def _register_python_side() -> None:
    """Fake (meta) implementations of the C++ ops, so that torch.compile can trace them."""
    if getattr(_register_python_side, "done", False):
        return
    lib = "brain_ai_kernels"

    @torch.library.register_fake(f"{lib}::lif_forward")
    def _fwd_fake(x, v0, i0, a0, p0, ref0, leak, threshold, alpha, kappa, rho, w, graded,
                  features, charge, reset, timing, ge, synapse, detach_reset, surrogate, adapt,
                  recur, refractory, graded_spikes, v_reset, surrogate_param, save_h, record_v):
        b, t, n = x.shape
        seq, row, none = x.new_empty((b, t, n)), x.new_empty((b, n)), x.new_empty((0,))
        r = NativeRules(charge, reset, timing, ge, synapse, detach_reset, surrogate, adapt,
                        recur, refractory, graded_spikes)
        return [seq, seq.clone() if save_h else none, row, row.clone() if synapse else none,
                row.clone() if adapt else none, row.clone() if recur else none,
                row.clone() if refractory else none,
                seq.clone() if record_v and not _stores_h(reset, timing) else none.clone(),
                x.new_empty((b, t, n) if save_h and _saves_rbits(r) else (0,),
                            dtype=torch.uint8)]

    @torch.library.register_fake(f"{lib}::lif_backward")
    def _bwd_fake(h, rbits, gspk, gv, gi, ga, gp, gtr, v0, i0, a0, p0, ref0, x, leak,
                  threshold, alpha, kappa, rho, w, graded, features, charge, reset, timing, ge,
                  synapse, detach_reset, surrogate, adapt, recur, refractory, graded_spikes,
                  v_reset, surrogate_param, window, needs, gx_into_h):
        b, t, n = h.shape
        flags = [bool(needs[0]), bool(needs[1]), synapse and needs[2], adapt and needs[3],
                 recur and needs[4]]
        sizes = [(b, t, n)] + [(b, n)] * 4
        outs = [h.new_empty(sz) if f else h.new_empty((0,))
                for f, sz in zip(flags, sizes, strict=True)]
        params = [leak, threshold, alpha, kappa, rho, w, graded]
        dflags = [needs[5], needs[6], synapse and needs[7], adapt and needs[8],
                  adapt and needs[9], recur and needs[10], graded_spikes and needs[11]]
        outs += [torch.empty_like(p) if f and p is not None else h.new_empty((0,))
                 for f, p in zip(dflags, params, strict=True)]
        return outs

    _register_python_side.done = True  # type: ignore[attr-defined]


def _contiguous(g: Tensor | None, allow_scalar: bool = False) -> Tensor | None:
    """``g`` contiguous; with ``allow_scalar``, a gradient broadcast from one value (all
    strides 0, as the gradient of ``spikes.sum()``) is passed as that one value, and a
    ``(B, T, N)`` gradient contiguous along ``N`` is passed as it is (the op takes any batch
    and time strides: a time-first gradient is not copied)."""
    if g is None:
        return None
    if allow_scalar and g.dim() and g.numel() > 1 and not any(g.stride()):
        return g.as_strided((1,), (1,))
    if allow_scalar and g.dim() == 3 and (g.shape[2] == 1 or g.stride(2) == 1):
        return g
    return g.contiguous()


class NativeLIF(torch.autograd.Function):
    """The C++ op as one autograd node (inputs flattened to ``(B, T, N)`` / ``(B, N)``).

    ``(rules, v_reset, surrogate_param, record_v, features, window, x, v0, i0, a0, p0, ref0,
    leak, θ, α, κ, ρ, w, g) -> (spikes, v_T[, i_T][, a_T][, p_T][, ref_T][, v_trace])`` (as
    :class:`brain_ai.kernels.fused.FusedLIF`); ``rules`` is the op's :class:`NativeRules`,
    ``features`` the neurons' shape (``N = prod(features)``), ``window`` the truncated-BPTT
    window (0: none; the state's gradient stops at the window edges, the parameters' runs on
    through the whole sequence, as autograd's does over the detached windows). The parameters
    keep their own shapes (anything that broadcasts to ``(B, *features)``) and dtypes; the op
    returns their gradients in those, reduced as autograd reduces them (one sum per use and
    step, added in reverse time). Saves ``h`` ``(B, T, N)``, with the compensated timings the
    carried resets (one bit per neuron-step), and the ``(B, N)`` inputs.
    """

    @staticmethod
    def forward(ctx, r: NativeRules, v_reset: float, surrogate_param: float,  # type: ignore[override]
                record_v: bool, features: tuple[int, ...], window: int, *ins: Tensor | None
                ) -> tuple[Tensor, ...]:
        # ins: x, v0, i0, a0, p0, ref0, leak, threshold, alpha, kappa, rho, w, graded
        ctx.set_materialize_grads(False)
        needs = ctx.needs_input_grad
        grad = any(needs[6:])
        delayed = _stores_h(r.reset, r.timing)
        spk, h, v_t, i_t, a_t, p_t, ref_t, trace, rbits = (
            torch.ops.brain_ai_kernels.lif_forward(
                *ins, list(features), *r, v_reset, surrogate_param,
                grad or (record_v and delayed), record_v))
        outs = [spk, v_t] + ([i_t] if r.synapse else []) + ([a_t] if r.adapt else []) + (
            [p_t] if r.recur else []) + ([ref_t] if r.refractory else [])
        if record_v:
            outs.append(h if delayed else trace)
        if grad:
            x, v0, i0, a0, p0, ref0, leak, thr, alpha, kappa, rho, w, graded = ins
            input_charge = rules.ALLOWED["charge"][r.charge] in rules.INPUT_CHARGES
            keep_x = (r.synapse and needs[14]) or (needs[12] and input_charge)
            ctx.save_for_backward(h, rbits if rbits.numel() else None, v0, i0, a0, p0, ref0,
                                  x if keep_x else None, leak, thr, alpha, kappa, rho, w,
                                  graded)
        ctx.rules, ctx.v_reset, ctx.sp, ctx.record_v = r, v_reset, surrogate_param, record_v
        ctx.features, ctx.window = list(features), int(window)
        ctx.hooked = saved_hooks_active()
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (h, rbits, v0, i0, a0, p0, ref0, x, leak, thr, alpha, kappa, rho, w,
         graded) = ctx.saved_tensors
        # gradients of x, v0, i0, a0, p0, leak, θ, α, κ, ρ, w, g (ref0: a counter, none)
        flags = ctx.needs_input_grad[6:]
        needs = [bool(n) for n in flags[:5] + flags[6:]]
        r: NativeRules = ctx.rules
        it = iter(grads)
        g_spk, g_v = next(it), next(it)
        g_i = next(it) if r.synapse else None
        g_a = next(it) if r.adapt else None
        g_p = next(it) if r.recur else None
        if r.refractory:
            next(it)  # ref_T: a counter, no gradient
        g_tr = next(it) if ctx.record_v else None
        outs = torch.ops.brain_ai_kernels.lif_backward(
            h, rbits, _contiguous(g_spk, True), _contiguous(g_v, True), _contiguous(g_i),
            _contiguous(g_a), _contiguous(g_p), _contiguous(g_tr, True), v0, i0, a0, p0, ref0, x,
            leak, thr, alpha, kappa, rho, w, graded, ctx.features, *r, ctx.v_reset, ctx.sp,
            ctx.window, [int(n) for n in needs],
            needs[0] and h_is_free(ctx.record_v and _stores_h(r.reset, r.timing), ctx.hooked))
        # outs: gx, gv0, gi0, ga0, gp0, then the parameters' (their own shapes and dtypes)
        res: list[Tensor | None] = [None] * 6  # rules, v_reset, sp, record_v, features, window
        for j, g in enumerate(outs):
            res.append(g if needs[j] and (g.numel() or j >= 5) else None)
        res.insert(11, None)  # ref0
        return no_second_order("native", tuple(res), lambda: (*ctx.saved_tensors, *grads))


def run_native(c: FusedConfig, x: Tensor, v0: Tensor, i0: Tensor | None, leak: Tensor,
               threshold: Tensor, alpha: Tensor | None, *, a0: Tensor | None = None,
               p0: Tensor | None = None, kappa: Tensor | None = None, rho: Tensor | None = None,
               w_rec: Tensor | None = None, ref0: Tensor | None = None,
               graded: Tensor | None = None) -> tuple[Tensor, ...] | None:
    """The native op on the same inputs as :func:`brain_ai.kernels.fused.run_fused`.

    Parameters are passed as they are (any shape that broadcasts to ``(B, *features)``, any
    float dtype no wider than the state's): the op reads them in place where their layout
    allows (one value, one row shared by the batch) and returns their gradients in their own
    shapes and dtypes. Returns ``None`` (caller runs the fused op) when the native op is
    unavailable or does not cover this call (non-CPU, dtype other than float32/float64,
    user-defined surrogate).
    """
    r = native_config(c, x)
    if r is None or not (loaded() or available()):
        return None
    b, steps = x.shape[0], x.shape[1]
    feat = tuple(x.shape[2:])
    n = math.prod(feat)
    full = torch.Size((b, *feat))
    one = len(feat) == 1  # (B, T, N) already: no reshapes (each would be an autograd node)

    def flat(t: Tensor | None) -> Tensor | None:
        if t is None:
            return None
        if t.shape == full and t.is_contiguous():
            return t if one else t.view(b, n)
        return t.expand(full).reshape(b, n).contiguous()

    sp = S.kernel_parameter(c.surrogate)
    xs = x if one else x.reshape(b, steps, n)  # a view where the features allow one
    if n > 1 and xs.stride(2) != 1:  # the op takes any batch/time strides, not a strided N
        xs = xs.contiguous()
    outs = NativeLIF.apply(
        r, c.v_reset, sp, c.record_v, feat, c.window, xs, flat(v0), flat(i0), flat(a0), flat(p0),
        flat(ref0), leak, threshold, alpha, kappa, rho, w_rec, graded)
    if one:
        return tuple(outs)
    seq = torch.Size((b, steps, *feat))
    return tuple(o.view(seq if o.dim() == 3 else full) for o in outs)
