r"""The native (C++) multi-step LIF op: compiled on first use, cached, registered as a torch op.

``lif_native.cpp`` holds the time loop (OpenMP over batch x neuron blocks through
``at::parallel_for``, bit-identical forward: ``-ffp-contract=off``). On first use it is
compiled with the system C++ compiler against the installed torch's headers (no ninja, no
build-time torch, no install step) into ``$BRAIN_AI_CACHE`` or ``~/.cache/brain_ai/kernels``,
keyed by the source, torch version and CPU, and loaded with ``torch.ops.load_library``. A
missing compiler or a failed build leaves :func:`available` ``False`` (:func:`load_error` says
why) and the dispatcher runs the pure-PyTorch fused op instead.

The ops ``brain_ai_kernels::lif_forward`` / ``lif_backward`` are registered through
``torch.library`` (``TORCH_LIBRARY`` in C++, fake implementations here), so ``torch.compile``
keeps a whole window as one opaque op instead of unrolling time; :class:`NativeLIF` (an
``autograd.Function``, cheaper per call than ``register_autograd``) ties them together.

Memory: the op's outputs of 16 KiB or more (spikes, the saved ``h``, states, gradients) come
from a small pool of freed blocks (exact size match, at most ``$BRAIN_AI_POOL_MB`` MiB of free
blocks kept, default 512, ``0`` disables it; :func:`empty_cache` frees them), so that a
training loop reuses warm pages instead of faulting in fresh ones each step. They are ordinary
CPU tensors. Inputs are read in place: ``x`` needs a contiguous last axis only (a truncated-BPTT
window or transposed time-first data is not copied), a parameter without a gradient is passed
as one value or one row shared by the batch rather than expanded to ``(B, N)``. Backward
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

import hashlib
import os
import platform
import shutil
import subprocess
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from brain_ai.kernels.fused import FusedConfig, h_is_free, saved_hooks_active
from brain_ai.physics import surrogates as S

__all__ = ["NativeLIF", "available", "build", "cached_bytes", "empty_cache", "load_error",
           "loaded", "native_config", "run_native"]

_SOURCE = Path(__file__).with_name("lif_native.cpp")
_CHARGES = {"beta": 0, "tau": 1, "tau_input": 2, "rate": 3, "rate_input": 4}
_RESETS = {"subtract": 0, "zero": 1, "none": 2}
_TIMINGS = {"immediate": 0, "delayed": 1, "delayed_pre": 2, "compensated": 3,
            "compensated_pre": 4}
# surrogate class -> (id in lif_native.cpp, name of its one parameter)
_SURROGATES: dict[type, tuple[int, str | None]] = {
    S.ATan: (0, "alpha"), S.FastSigmoid: (1, "slope"), S.STE: (2, None),
    S.Sigmoid: (3, "alpha"), S.Triangular: (4, "threshold"), S.PiecewiseQuadratic: (5, "alpha"),
    S.PiecewiseExp: (6, "alpha"), S.SoftSign: (7, "alpha"), S.SuperSpike: (8, "alpha"),
    S.Erf: (9, "alpha"),
}

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "ok": False, "error": None, "path": None}


def _cache_dir() -> Path:
    root = os.environ.get("BRAIN_AI_CACHE")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return (base if root else base / "brain_ai") / "kernels"


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


def _compile_cmd(cxx: str, src: Path, out: Path, march: bool) -> list[str]:
    from torch.utils import cpp_extension

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [cxx, "-O3", "-std=c++17", "-fPIC", "-shared", "-ffp-contract=off", "-fopenmp",
           "-fno-math-errno", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-DTORCH_API_INCLUDE_EXTENSION_H"]
    if march:
        cmd.append("-march=native")
    for inc in cpp_extension.include_paths():
        cmd += ["-isystem", inc]
    cmd += ["-isystem", sysconfig.get_paths()["include"], str(src), "-o", str(out)]
    for lib in cpp_extension.library_paths():
        cmd += [f"-L{lib}", f"-Wl,-rpath,{lib}"]
    cmd += ["-lc10", "-ltorch_cpu", "-ltorch"]
    return cmd


def build() -> Path:
    """Compile ``lif_native.cpp`` into the cache (if not there yet); returns the library path.

    Raises:
        RuntimeError: no C++ compiler, or the build failed (the compiler's output attached).
    """
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise RuntimeError("no C++ compiler found (set $CXX or install g++)")
    src = _SOURCE.read_bytes()
    key = hashlib.sha256(src + torch.__version__.encode() + _cpu_signature().encode()
                         + cxx.encode()).hexdigest()[:16]
    out_dir = _cache_dir()
    out = out_dir / f"brain_ai_lif_{key}.so"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for march in (True, False):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        proc = subprocess.run(_compile_cmd(cxx, _SOURCE, Path(tmp), march),
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            os.replace(tmp, out)  # atomic: concurrent builders never see a partial file
            return out
        os.unlink(tmp)
        errors.append(proc.stderr[-4000:])
    raise RuntimeError("building lif_native.cpp failed:\n" + "\n".join(errors))


def _load() -> bool:
    if _state["tried"]:
        return bool(_state["ok"])
    with _lock:
        if _state["tried"]:
            return _state["ok"]
        _state["tried"] = True
        try:
            path = build()
            torch.ops.load_library(str(path))
            _register_python_side()
        except (RuntimeError, OSError) as err:
            _state["error"] = str(err)
            return False
        _state["ok"], _state["path"] = True, path
        return True


def available() -> bool:
    """Whether the native op is built and loaded (builds it on the first call)."""
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


def native_config(c: FusedConfig, x: Tensor) -> list[int] | None:
    """The op's integer config for ``c``, or ``None`` where the native op does not apply."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    surr = _SURROGATES.get(type(c.surrogate))
    if surr is None:  # a user-defined surrogate: only the fused op calls its backward
        return None
    return [_CHARGES[c.charge], _RESETS[c.reset], _TIMINGS[c.timing], int(c.comparator == ">="),
            int(c.synapse), int(c.detach_reset), surr[0], int(c.adapt), int(c.recur),
            int(c.refractory), int(c.graded)]


def _surrogate_param(cfg: list[int]) -> tuple[int, str | None]:
    for sid, name in _SURROGATES.values():
        if sid == cfg[6]:
            return sid, name
    raise KeyError(cfg[6])


def _is_delayed(cfg: list[int]) -> bool:
    return cfg[2] in (1, 2) or cfg[1] == 2


# ---------------------------------------------------------------- torch.library registration
def _register_python_side() -> None:
    """Fake (meta) implementations of the C++ ops, so that torch.compile can trace them."""
    if getattr(_register_python_side, "done", False):
        return
    lib = "brain_ai_kernels"

    @torch.library.register_fake(f"{lib}::lif_forward")
    def _fwd_fake(x, v0, i0, a0, p0, ref0, leak, threshold, alpha, kappa, rho, w, graded, cfg,
                  v_reset, surrogate_param, save_h, record_v):
        b, t, n = x.shape
        seq, row, none = x.new_empty((b, t, n)), x.new_empty((b, n)), x.new_empty((0,))
        return [seq, seq.clone() if save_h else none, row, row.clone() if cfg[4] else none,
                row.clone() if cfg[7] else none, row.clone() if cfg[8] else none,
                row.clone() if cfg[9] else none,
                seq.clone() if record_v and not _is_delayed(cfg) else none.clone()]

    @torch.library.register_fake(f"{lib}::lif_backward")
    def _bwd_fake(h, gspk, gv, gi, ga, gp, gtr, v0, i0, a0, p0, ref0, x, leak, threshold,
                  alpha, kappa, rho, w, graded, cfg, v_reset, surrogate_param, needs, gx_into_h):
        b, t, n = h.shape
        flags = [bool(needs[0]), bool(needs[1]), cfg[4] and needs[2], cfg[7] and needs[3],
                 cfg[8] and needs[4]]
        sizes = [(b, t, n)] + [(b, n)] * 4
        outs = [h.new_empty(sz) if f else h.new_empty((0,))
                for f, sz in zip(flags, sizes, strict=True)]
        dflags = [needs[5], needs[6], cfg[4] and needs[7], cfg[7] and needs[8],
                  cfg[7] and needs[9], cfg[8] and needs[10], cfg[10] and needs[11]]
        outs += [h.new_empty((b, n) if f else (0,), dtype=torch.float64) for f in dflags]
        return outs

    _register_python_side.done = True  # type: ignore[attr-defined]


def _contiguous(g: Tensor | None, allow_scalar: bool = False) -> Tensor | None:
    """``g`` contiguous; with ``allow_scalar``, a gradient broadcast from one value (all
    strides 0, as the gradient of ``spikes.sum()``) is passed as that one value."""
    if g is None:
        return None
    if allow_scalar and g.dim() and g.numel() > 1 and not any(g.stride()):
        return g.as_strided((1,), (1,))
    return g.contiguous()


class NativeLIF(torch.autograd.Function):
    """The C++ op as one autograd node (inputs flattened to ``(B, T, N)`` / ``(B, N)``).

    ``(cfg, v_reset, surrogate_param, record_v, x, v0, i0, a0, p0, ref0, leak, θ, α, κ, ρ, w,
    g) -> (spikes, v_T[, i_T][, a_T][, p_T][, ref_T][, v_trace])`` (as
    :class:`brain_ai.kernels.fused.FusedLIF`);
    saves ``h`` ``(B, T, N)`` and the ``(B, N)`` inputs.
    """

    @staticmethod
    def forward(ctx, cfg: list[int], v_reset: float, surrogate_param: float,  # type: ignore[override]
                record_v: bool, *ins: Tensor | None) -> tuple[Tensor, ...]:
        # ins: x, v0, i0, a0, p0, ref0, leak, threshold, alpha, kappa, rho, w, graded
        ctx.set_materialize_grads(False)
        needs = ctx.needs_input_grad
        grad = any(needs[4:])
        delayed = _is_delayed(cfg)
        spk, h, v_t, i_t, a_t, p_t, ref_t, trace = torch.ops.brain_ai_kernels.lif_forward(
            *ins, cfg, v_reset, surrogate_param, grad or (record_v and delayed), record_v)
        outs = [spk, v_t] + ([i_t] if cfg[4] else []) + ([a_t] if cfg[7] else []) + (
            [p_t] if cfg[8] else []) + ([ref_t] if cfg[9] else [])
        if record_v:
            outs.append(h if delayed else trace)
        if grad:
            x, v0, i0, a0, p0, ref0, leak, thr, alpha, kappa, rho, w, graded = ins
            keep_x = (cfg[4] and needs[12]) or (needs[10] and cfg[0] in (2, 4))
            ctx.save_for_backward(h, v0, i0, a0, p0, ref0, x if keep_x else None, leak, thr,
                                  alpha, kappa, rho, w, graded)
        ctx.cfg, ctx.v_reset, ctx.sp, ctx.record_v = cfg, v_reset, surrogate_param, record_v
        ctx.hooked = saved_hooks_active()
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        h, v0, i0, a0, p0, ref0, x, leak, thr, alpha, kappa, rho, w, graded = ctx.saved_tensors
        # gradients of x, v0, i0, a0, p0, leak, θ, α, κ, ρ, w, g (ref0: a counter, none)
        flags = ctx.needs_input_grad[4:]
        needs = [bool(n) for n in flags[:5] + flags[6:]]
        cfg = ctx.cfg
        it = iter(grads)
        g_spk, g_v = next(it), next(it)
        g_i = next(it) if cfg[4] else None
        g_a = next(it) if cfg[7] else None
        g_p = next(it) if cfg[8] else None
        if cfg[9]:
            next(it)  # ref_T: a counter, no gradient
        g_tr = next(it) if ctx.record_v else None
        outs = torch.ops.brain_ai_kernels.lif_backward(
            h, _contiguous(g_spk, True), _contiguous(g_v, True), _contiguous(g_i),
            _contiguous(g_a), _contiguous(g_p), _contiguous(g_tr, True), v0, i0, a0, p0, ref0, x,
            leak, thr, alpha, kappa, rho, w, graded, cfg, ctx.v_reset, ctx.sp,
            [int(n) for n in needs],
            needs[0] and h_is_free(ctx.record_v and _is_delayed(cfg), ctx.hooked))
        dt = h.dtype
        # outs: gx, gv0, gi0, ga0, gp0 (state dtype), then g leak, θ, α, κ, ρ, w, g (float64)
        res: list[Tensor | None] = [None, None, None, None]
        for j, g in enumerate(outs):
            res.append((g if j < 5 else g.to(dt)) if needs[j] and g.numel() else None)
        res.insert(9, None)  # ref0
        return tuple(res)


def run_native(c: FusedConfig, x: Tensor, v0: Tensor, i0: Tensor | None, leak: Tensor,
               threshold: Tensor, alpha: Tensor | None, *, a0: Tensor | None = None,
               p0: Tensor | None = None, kappa: Tensor | None = None, rho: Tensor | None = None,
               w_rec: Tensor | None = None, ref0: Tensor | None = None,
               graded: Tensor | None = None) -> tuple[Tensor, ...] | None:
    """The native op on the same inputs as :func:`brain_ai.kernels.fused.run_fused`.

    Returns ``None`` (caller runs the fused op) when the native op is unavailable or does not
    cover this call (non-CPU, dtype other than float32/float64, user-defined surrogate).
    """
    cfg = native_config(c, x)
    if cfg is None or not (loaded() or available()):
        return None
    b, steps = x.shape[0], x.shape[1]
    feat = x.shape[2:]
    n = 1
    for f in feat:
        n *= f
    full = torch.Size((b, *feat))
    one = len(feat) == 1  # (B, T, N) already: no reshapes (each would be an autograd node)

    def flat(t: Tensor | None) -> Tensor | None:
        if t is None:
            return None
        if t.shape == full and t.is_contiguous():
            return t if one else t.view(b, n)
        return t.expand(full).reshape(b, n).contiguous()

    def param(t: Tensor | None) -> Tensor | None:
        """A parameter without a gradient goes without a copy where its layout allows (one
        value, or one row shared by the batch); one with a gradient goes as ``(B, N)`` rows,
        as it always has (autograd reduces the op's per-row gradient to its shape)."""
        if t is None:
            return None
        if not t.requires_grad and t.is_contiguous():
            if t.numel() == 1 or (t.shape == feat if one else
                                  t.numel() == n and t.shape[t.dim() - len(feat):] == feat):
                return t
        return flat(t)

    _, pname = _surrogate_param(cfg)
    sp = float(getattr(c.surrogate, pname)) if pname else 0.0
    xs = x if one else x.reshape(b, steps, n)  # a view where the features allow one
    if n > 1 and xs.stride(2) != 1:  # the op takes any batch/time strides, not a strided N
        xs = xs.contiguous()
    outs = NativeLIF.apply(
        cfg, c.v_reset, sp, c.record_v, xs, flat(v0), flat(i0), flat(a0), flat(p0), flat(ref0),
        param(leak), param(threshold), param(alpha), param(kappa), param(rho), param(w_rec),
        param(graded))
    if one:
        return tuple(outs)
    seq = torch.Size((b, steps, *feat))
    return tuple(o.view(seq if o.dim() == 3 else full) for o in outs)
