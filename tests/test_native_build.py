"""Building, caching and loading the native kernel: a private cache, verified libraries,
failures reported once and remembered, a compile timeout, validated environment variables.

Most tests drive :func:`native.build_report` with a fake compiler (a shell script that writes
a small file where ``-o`` points, fails, or hangs), so they run in milliseconds and never load
what they build; one test builds (or finds) the real library.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from pathlib import Path

import pytest
from torch.utils import cpp_extension

from brain_ai.apps.cli import main
from brain_ai.errors import ConfigError
from brain_ai.kernels import native

FAKE_CXX = """#!/bin/sh
case "$1" in --version) echo "fakecxx 1.0"; exit 0;; esac
echo compile >> "$FAKECXX_LOG"
out=""; prev=""
for a in "$@"; do if [ "$prev" = "-o" ]; then out="$a"; fi; prev="$a"; done
case "$FAKECXX_MODE" in
  ok) printf 'fake library' > "$out";;
  fail) printf 'partial' > "$out"
        echo "lif_native.cpp:1:10: error: C++20 or later required" >&2; exit 1;;
  hang) sleep 30;;
esac
"""
LIBRARY = b"fake library"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A private cache under ``tmp_path`` and a fake ``$CXX`` (mode ``ok``)."""
    cxx = tmp_path / "fakecxx"
    cxx.write_text(FAKE_CXX)
    cxx.chmod(0o755)
    log = tmp_path / "compiles.log"
    monkeypatch.setenv("CXX", str(cxx))
    monkeypatch.setenv("FAKECXX_LOG", str(log))
    monkeypatch.setenv("FAKECXX_MODE", "ok")
    monkeypatch.setenv("BRAIN_AI_CACHE", str(tmp_path / "cache"))
    for var in ("BRAIN_AI_BUILD_TIMEOUT", "BRAIN_AI_POOL_MB"):
        monkeypatch.delenv(var, raising=False)
    return {"cache": tmp_path / "cache" / "kernels", "log": log}


def compiles(fake: dict[str, Path]) -> int:
    log = fake["log"]
    return len(log.read_text().splitlines()) if log.exists() else 0


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("*tmp*"))


# ---------------------------------------------------------------- a private, verified cache
def test_cache_is_created_private_and_the_build_recorded(fake: dict[str, Path],
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    caplog.set_level(logging.INFO, logger="brain_ai")
    report = native.build_report()
    assert report.status == "built" and report.path is not None
    assert report.std == native.cxx_standard() and report.seconds is not None
    assert stat.S_IMODE(os.stat(fake["cache"]).st_mode) == 0o700
    assert report.path.parent == fake["cache"] and report.path.read_bytes() == LIBRARY
    assert stat.S_IMODE(os.stat(report.path).st_mode) & 0o022 == 0
    record = json.loads(report.path.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(LIBRARY).hexdigest()
    assert compiles(fake) == 1 and leftovers(fake["cache"]) == []
    # announced once, visibly (WARNING), with where; the time it took at INFO
    announced = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(announced) == 1 and "compiling" in announced[0].getMessage()
    assert str(fake["cache"]) in announced[0].getMessage()
    assert announced[0].name == "brain_ai.kernels.native"
    assert any("built the native LIF kernel in" in r.getMessage() for r in caplog.records)


def test_a_verified_library_is_reused_without_compiling(fake: dict[str, Path]) -> None:
    first = native.build_report()
    second = native.build_report()
    assert (first.status, second.status) == ("built", "cached")
    assert second.path == first.path and compiles(fake) == 1
    assert native.build() == first.path


def test_a_tampered_library_is_rebuilt_not_loaded(fake: dict[str, Path],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    lib = native.build()
    lib.write_bytes(b"planted library")  # same name, other bytes: the sha256 differs
    report = native.build_report()
    assert report.status == "built" and compiles(fake) == 2
    assert lib.read_bytes() == LIBRARY
    assert any("differs from the sha256" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("attack", ["world_writable", "symlink", "no_record"])
def test_an_untrusted_library_is_rebuilt(fake: dict[str, Path], tmp_path: Path,
                                         attack: str) -> None:
    lib = native.build()
    if attack == "world_writable":
        lib.chmod(0o777)
    elif attack == "symlink":
        other = tmp_path / "elsewhere.so"
        other.write_bytes(LIBRARY)  # even the right bytes: a link is not followed
        lib.unlink()
        lib.symlink_to(other)
    else:
        lib.with_suffix(".json").unlink()
    report = native.build_report()
    assert report.status == "built" and compiles(fake) == 2
    assert not lib.is_symlink() and stat.S_IMODE(os.stat(lib).st_mode) & 0o022 == 0


def test_a_cache_dir_open_to_others_is_refused(fake: dict[str, Path]) -> None:
    native.build()
    fake["cache"].chmod(0o777)
    report = native.build_report()
    assert report.status == "unavailable" and report.path is None
    assert "writable by group or others (mode 777)" in str(report.error)
    assert "Hint:" in str(report.error) and compiles(fake) == 1
    with pytest.raises(RuntimeError, match="not private"):
        native.build()


def test_a_cache_dir_of_another_user_is_refused(fake: dict[str, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    native.build()
    me = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: me + 1)
    report = native.build_report()
    assert report.status == "unavailable"
    assert f"owned by uid {me}, not by this user (uid {me + 1})" in str(report.error)


# ---------------------------------------------------------------- failures: once, remembered
def test_a_failed_build_is_logged_once_remembered_and_leaves_no_tmp_file(
        fake: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FAKECXX_MODE", "fail")
    report = native.build_report()
    assert report.status == "failed" and not report.remembered
    assert "error: C++20 or later required" in str(report.error)
    assert compiles(fake) == 2  # -march=native, then without
    assert leftovers(fake["cache"]) == []  # the partial outputs are gone
    failures = [r for r in caplog.records if r.levelno == logging.WARNING
                and "building the native LIF kernel failed" in r.getMessage()]
    assert len(failures) == 1 and native.RETRY_COMMAND in failures[0].getMessage()
    # a later process finds the record: no retry, no compiler run
    again = native.build_report()
    assert again.status == "failed" and again.remembered and compiles(fake) == 2
    assert native.RETRY_COMMAND in str(again.error)
    # --force retries
    monkeypatch.setenv("FAKECXX_MODE", "ok")
    assert native.build_report(force=True).status == "built" and compiles(fake) == 3
    assert not list(fake["cache"].glob("*.failed.json"))


def test_a_remembered_failure_is_logged_once_per_process(
        fake: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FAKECXX_MODE", "fail")
    native.build_report()
    caplog.clear()
    monkeypatch.setattr(native, "_state", {"tried": False, "ok": False, "error": None,
                                           "path": None})
    assert native.available() is False and native.available() is False
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(logged) == 1 and native.RETRY_COMMAND in logged[0]
    assert "not retried" in str(native.load_error()) and compiles(fake) == 2


def test_the_compile_times_out(fake: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKECXX_MODE", "hang")
    monkeypatch.setenv("BRAIN_AI_BUILD_TIMEOUT", "1")
    start = time.monotonic()
    report = native.build_report()
    assert time.monotonic() - start < 10  # the hanging compiler (sleep 30) was killed
    assert report.status == "failed" and "longer than 1 s" in str(report.error)
    assert compiles(fake) == 1 and leftovers(fake["cache"]) == []


def test_a_compiler_that_cannot_run_leaves_no_tmp_file(fake: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    report = native.build_report()
    assert report.status == "unavailable" and "$CXX='/nonexistent/c++'" in str(report.error)
    assert leftovers(fake["cache"]) == []
    with pytest.raises(RuntimeError, match="is not an executable"):
        native.build()


def test_partial_libraries_of_killed_builds_are_removed(fake: dict[str, Path]) -> None:
    fake["cache"].mkdir(parents=True, mode=0o700)
    mine = fake["cache"] / "tmp-brain_ai_lif_0123-abcd.so"  # this version's: stale under lock
    old = fake["cache"] / "tmpk2j3.so"  # an earlier version's, an hour old
    young = fake["cache"] / "tmpx9y8.so"  # maybe an earlier version still compiling: kept
    for f in (mine, old, young):
        f.write_bytes(b"")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    native.build()
    assert leftovers(fake["cache"]) == ["tmpx9y8.so"]


# ---------------------------------------------------------------- the C++ standard
def test_the_cxx_standard_is_the_one_torch_builds_extensions_with(tmp_path: Path) -> None:
    """torch 2.13's cpp_extension compiles with -std=c++20 (2.14's headers need it); the old
    fixed -std=c++17 is gone from the command."""
    assert "'-std=c++20'" in Path(cpp_extension.__file__).read_text()
    assert native.cxx_standard() == "c++20"
    cmd = native._compile_cmd(["c++"], Path("a.cpp"), tmp_path / "a.so", False, tmp_path)
    assert [a for a in cmd if a.startswith("-std=")] == ["-std=c++20"]


# ---------------------------------------------------------------- environment variables
@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "12 MiB", "0x10", str((1 << 40) + 1)])
def test_a_malformed_pool_limit_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAIN_AI_POOL_MB", value)
    with pytest.raises(ConfigError) as info:
        native.pool_limit_mb()
    msg = str(info.value)
    assert msg.startswith("BRAIN_AI_POOL_MB: the buffer pool limit must be a whole number")
    assert f"(got {value!r};" in msg and "\n  Hint: " in msg
    with pytest.raises(ConfigError):
        native.available()  # refused before the library reads it, loaded or not


@pytest.mark.parametrize(("value", "mb"), [(None, 512), ("", 512), ("0", 0), (" 64 ", 64)])
def test_a_valid_pool_limit_is_read(value: str | None, mb: int,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if value is None:
        monkeypatch.delenv("BRAIN_AI_POOL_MB", raising=False)
    else:
        monkeypatch.setenv("BRAIN_AI_POOL_MB", value)
    assert native.pool_limit_mb() == mb


@pytest.mark.parametrize("value", ["0", "-5", "abc", "nan", "inf"])
def test_a_malformed_build_timeout_is_refused(value: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAIN_AI_BUILD_TIMEOUT", value)
    with pytest.raises(ConfigError, match=r"^BRAIN_AI_BUILD_TIMEOUT: .*\n  Hint: "):
        native.build_timeout_s()


# ---------------------------------------------------------------- the real library and the CLI
def test_the_real_library_builds_verified_and_loads(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """With the system compiler: built or cached in the user's private cache, its sha256 the
    recorded one, loaded; ``brain-ai build-kernels`` lists every kernel and exits 0."""
    for var in ("BRAIN_AI_POOL_MB", "BRAIN_AI_BUILD_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    report = native.build_report()
    assert report.status in ("built", "cached"), report.error
    assert report.path is not None
    record = json.loads(report.path.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(report.path.read_bytes()).hexdigest()
    assert record["std"] == native.cxx_standard()
    assert native.available(), native.load_error()
    assert main(["build-kernels"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["reference", "fused", "native", "triton"]
    assert "cached" in out[2] and str(report.path) in out[2]


def test_build_kernels_reports_a_failure_with_the_cache_and_the_retry(
        fake: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKECXX_MODE", "fail")
    assert main(["build-kernels"]) == 1
    native_line = capsys.readouterr().out.splitlines()[2]
    assert native_line.startswith("native:") and "failed:" in native_line
    assert "error: C++20 or later required" in native_line
    assert str(fake["cache"]) in native_line and native.RETRY_COMMAND in native_line
    assert main(["build-kernels"]) == 1 and compiles(fake) == 2  # remembered: no retry


def test_build_kernels_refuses_a_malformed_pool_limit(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    monkeypatch.setenv("BRAIN_AI_POOL_MB", "1e3")
    assert main(["build-kernels"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "BRAIN_AI_POOL_MB" in err[0] and "Hint:" in err[0]
