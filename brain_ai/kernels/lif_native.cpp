// The native multi-step LIF op of brain_ai (see brain_ai/kernels/native.py).
//
// Same equations, same operation order as brain_ai/physics/rules.py, so the forward is
// bit-identical to the PyTorch reference; compile with -ffp-contract=off (no FMA contraction).
// Layout: batch-first x (B, T, N) contiguous; state and parameters pre-expanded to (B, N).
// Work items are (batch row, block of BLK neurons); each keeps its membrane in a local array
// for all T steps, and runs over the neurons of its block in simple (vectorizable) loops, one
// per rule, with the rule choice hoisted out of the loop.

#include <ATen/Dispatch.h>
#include <ATen/EmptyTensor.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------- buffer pool
// The op's outputs (spikes, the saved h, states, gradients; 16 KiB or more) come from a small
// cache of freed blocks. glibc hands freed memory back to the OS (munmap of big blocks, heap
// trims after other code frees), so a training loop would get fresh pages each step and fault
// them in one 4 KiB page at a time: at (32, 100, 512) that cost more than the op (a fault
// costs ~8 us on a virtualized host). Blocks are matched by exact size (a training loop
// repeats its shapes); the cache holds at most $BRAIN_AI_POOL_MB MiB of free blocks (default
// 512; 0 disables it) and 64 blocks, evicting the oldest first. Blocks in use are not
// counted: they are the tensors the caller holds. Tensors from the pool are ordinary CPU
// tensors (the storage keeps this allocator, so even resize_ works); only the memory's origin
// differs.
class Pool final : public c10::Allocator {
 public:
  static constexpr size_t kMin = size_t(16) << 10;  // smaller: the default CPU allocator
  static constexpr size_t kHeader = 64;               // keeps c10's 64-byte alignment
  static constexpr size_t kMaxBlocks = 64;

  Pool() {
    const char* env = std::getenv("BRAIN_AI_POOL_MB");
    limit_ = (env && *env) ? size_t(std::strtoull(env, nullptr, 10)) << 20 : size_t(512) << 20;
  }

  c10::DataPtr allocate(size_t n) override {
    if (n < kMin || limit_ == 0) return c10::GetDefaultCPUAllocator()->allocate(n);
    void* base = take(n);
    if (base == nullptr) {
      base = c10::alloc_cpu(n + kHeader);
      *static_cast<size_t*>(base) = n;
    }
    return {static_cast<char*>(base) + kHeader, base, &Pool::release,
            c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  static Pool& get() {
    static Pool* pool = new Pool();  // never destroyed: tensors may be freed at exit
    return *pool;
  }

  // Frees every cached block; returns the bytes freed.
  int64_t empty() {
    std::deque<std::pair<size_t, void*>> blocks;
    {
      std::lock_guard<std::mutex> g(mu_);
      blocks.swap(free_);
      cached_ = 0;
    }
    int64_t bytes = 0;
    for (auto& b : blocks) {
      bytes += int64_t(b.first);
      c10::free_cpu(b.second);
    }
    return bytes;
  }

  int64_t cached() {
    std::lock_guard<std::mutex> g(mu_);
    return int64_t(cached_);
  }

 private:
  void* take(size_t n) {
    std::lock_guard<std::mutex> g(mu_);
    for (auto it = free_.rbegin(); it != free_.rend(); ++it) {  // newest first: warmest
      if (it->first == n) {
        void* base = it->second;
        free_.erase(std::next(it).base());
        cached_ -= n;
        return base;
      }
    }
    return nullptr;
  }

  static void release(void* base) {
    Pool& p = get();
    const size_t n = *static_cast<size_t*>(base);
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> g(p.mu_);
      if (n > p.limit_) {
        evicted.push_back(base);
      } else {
        while (!p.free_.empty() && (p.cached_ + n > p.limit_ || p.free_.size() >= kMaxBlocks)) {
          evicted.push_back(p.free_.front().second);
          p.cached_ -= p.free_.front().first;
          p.free_.pop_front();
        }
        p.free_.emplace_back(n, base);
        p.cached_ += n;
      }
    }
    for (void* b : evicted) c10::free_cpu(b);
  }

  std::mutex mu_;
  std::deque<std::pair<size_t, void*>> free_;  // (bytes, block), oldest first
  size_t cached_ = 0;
  size_t limit_;
};

// An uninitialized contiguous CPU tensor from the pool.
at::Tensor pooled_empty(at::IntArrayRef size, at::ScalarType dt) {
  return at::detail::empty_generic(size, &Pool::get(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   dt, std::nullopt);
}

constexpr int64_t BLK = 64;

// enum Charge / Reset / Timing / Surr: generated from brain_ai.physics.rules.RULE_CODES and
// brain_ai.physics.surrogates.SURROGATE_CODES by brain_ai.kernels.native.rules_header() into
// the build directory; never written by hand.
#include "brain_ai_rules.h"

struct Cfg {
  int64_t charge, reset, timing, surr;
  bool ge, syn, detach, adapt, recur;  // adapt: θ + κ·a, a' = ρ·a + s; recur: + w ⊙ out_{t-1}
  double vr, sp;
  int64_t refr = 0;     // refractory steps R: h <- v_reset while ref > 0 (0: none)
  bool graded = false;  // the output is s·g
  bool carried() const { return timing != IMMEDIATE && reset != NONE; }
  bool pre() const { return timing == DELAYED_PRE || timing == COMPENSATED_PRE; }
  bool delayed() const { return timing == DELAYED || timing == DELAYED_PRE || reset == NONE; }
  bool comp() const { return timing == COMPENSATED || timing == COMPENSATED_PRE; }
};

// The op's named rule arguments (codes from the generated header) as one struct.
Cfg parse(int64_t charge, int64_t reset, int64_t timing, bool ge, bool synapse,
          bool detach_reset, int64_t surrogate, bool adapt, bool recur, int64_t refractory,
          bool graded, double vr, double sp) {
  return Cfg{charge, reset, timing, surrogate, ge,    synapse, detach_reset,
             adapt,  recur, vr,     sp,        refractory, graded};
}

template <typename T>
inline T spike(T d, bool ge) {
  return ge ? (d >= T(0) ? T(1) : T(0)) : (d > T(0) ? T(1) : T(0));
}

template <typename T>
inline void spikes_of(const T* d, T* s, int64_t len, bool ge) {
  if (ge) {
    for (int64_t k = 0; k < len; ++k) s[k] = d[k] >= T(0) ? T(1) : T(0);
  } else {
    for (int64_t k = 0; k < len; ++k) s[k] = d[k] > T(0) ? T(1) : T(0);
  }
}

// v' = apply_reset(h, s, r) of rules.py (the stored membrane).
template <typename T>
inline void reset_of(const Cfg& c, const T* h, const T* s, const T* r, const T* th, T* v,
                     int64_t len) {
  const T vr = T(c.vr);
  if (c.delayed()) {
    for (int64_t k = 0; k < len; ++k) v[k] = h[k];
  } else if (c.timing == IMMEDIATE) {
    if (c.reset == SUBTRACT) {
      for (int64_t k = 0; k < len; ++k) v[k] = h[k] - s[k] * th[k];
    } else {
      for (int64_t k = 0; k < len; ++k) v[k] = s[k] * vr + (T(1) - s[k]) * h[k];
    }
  } else if (c.reset == SUBTRACT) {
    for (int64_t k = 0; k < len; ++k) v[k] = h[k] - (s[k] - r[k]) * th[k];
  } else if (c.vr == 0.0) {
    for (int64_t k = 0; k < len; ++k) v[k] = h[k] - (s[k] - r[k]) * h[k];
  } else {
    for (int64_t k = 0; k < len; ++k) v[k] = h[k] - (s[k] - r[k]) * (h[k] - vr);
  }
}

// Carried reset before the charge (*_pre timings), in place on v.
template <typename T>
inline void pre_reset(const Cfg& c, const T* r, const T* th, T* v, int64_t len) {
  const T vr = T(c.vr);
  if (c.reset == SUBTRACT) {
    for (int64_t k = 0; k < len; ++k) v[k] = v[k] - r[k] * th[k];
  } else if (c.vr == 0.0) {
    for (int64_t k = 0; k < len; ++k) v[k] = (T(1) - r[k]) * v[k];
  } else {
    for (int64_t k = 0; k < len; ++k) v[k] = (T(1) - r[k]) * v[k] + r[k] * vr;
  }
}

// The surrogate's backward, in the operation order of brain_ai/core/surrogates.py.
template <typename T>
void surrogate(const Cfg& c, const T* x, const T* g, T* out, int64_t len) {
  const double a = c.sp;
  switch (c.surr) {
    case ATAN: {  // alpha/2 / (1 + (pi/2*alpha*x)^2) * g
      const T k1 = T(M_PI / 2 * a), k2 = T(a / 2);
      for (int64_t k = 0; k < len; ++k) {
        T y = k1 * x[k];
        T z = T(1) + y * y;
        out[k] = ((T(1) / z) * k2) * g[k];
      }
      break;
    }
    case FAST_SIGMOID: {  // g / (slope*|x| + 1)^2
      const T k1 = T(a);
      for (int64_t k = 0; k < len; ++k) {
        T y = k1 * std::abs(x[k]) + T(1);
        out[k] = g[k] / (y * y);
      }
      break;
    }
    case STE:
      for (int64_t k = 0; k < len; ++k) out[k] = g[k];
      break;
    case SIGMOID: {  // g * ((1 - s) * s * alpha), s = sigmoid(alpha*x)
      const T k1 = T(a);
      for (int64_t k = 0; k < len; ++k) {
        T s = T(1) / (T(1) + std::exp(-(k1 * x[k])));
        out[k] = g[k] * (((T(1) - s) * s) * k1);
      }
      break;
    }
    case TRIANGULAR: {  // where(x >= 0, -g*thr, g*thr)
      const T k1 = T(a);
      for (int64_t k = 0; k < len; ++k) {
        T y = g[k] * k1;
        out[k] = x[k] >= T(0) ? -y : y;
      }
      break;
    }
    case PIECEWISE_QUADRATIC: {  // g * max(alpha - alpha^2*|x|, 0)
      const T k1 = T(a * a), k2 = T(a);
      for (int64_t k = 0; k < len; ++k) {
        T y = k2 - k1 * std::abs(x[k]);
        out[k] = g[k] * (y < T(0) ? T(0) : y);
      }
      break;
    }
    case PIECEWISE_EXP: {  // g * (alpha/2 * exp(-alpha*|x|))
      const T k1 = T(-a), k2 = T(a / 2);
      for (int64_t k = 0; k < len; ++k) out[k] = g[k] * (k2 * std::exp(k1 * std::abs(x[k])));
      break;
    }
    case SOFT_SIGN: {  // g * 1 / (2*alpha*z*z), z = 1/alpha + |x|
      const T k1 = T(1 / a), k2 = T(2 * a);
      for (int64_t k = 0; k < len; ++k) {
        T z = k1 + std::abs(x[k]);
        out[k] = g[k] * (T(1) / ((k2 * z) * z));
      }
      break;
    }
    case SUPER_SPIKE: {  // g * alpha / (z*z), z = 1 + |x|
      const T k1 = T(a);
      for (int64_t k = 0; k < len; ++k) {
        T z = T(1) + std::abs(x[k]);
        out[k] = g[k] * ((T(1) / (z * z)) * k1);
      }
      break;
    }
    default: {  // ERF: g * (alpha/sqrt(pi) * exp(-(alpha*x)^2))
      const T k1 = T(a), k2 = T(a / std::sqrt(M_PI));
      for (int64_t k = 0; k < len; ++k) {
        T z = k1 * x[k];
        out[k] = g[k] * (k2 * std::exp(-z * z));
      }
      break;
    }
  }
}

template <typename T>
struct FwdArgs {
  const T *x, *v0, *i0, *leak, *th, *al;
  T *spk, *h, *trace, *vT, *iT;
  int64_t T_, N;
  int64_t lrs, trs, ars;  // row stride of leak, threshold, alpha: N, or 0 (shared by the batch)
  int64_t xsb, xst;       // strides of x over batch and time (a window of a longer sequence)
  // adaptation (a0, κ, ρ -> a_T) and one-to-one recurrence (p0, w -> p_T), when configured
  const T *a0 = nullptr, *p0 = nullptr, *kp = nullptr, *rh = nullptr, *w = nullptr;
  T *aT = nullptr, *pT = nullptr;
  int64_t krs = 0, rrs = 0, wrs = 0;
  // refractory counter (ref0 -> ref_T) and graded-spike factor g, when configured
  const T *ref0 = nullptr, *g = nullptr;
  T* refT = nullptr;
  int64_t grs = 0;
};

// The rows of batch row b, neurons n0.., of every parameter (leak, θ, α, κ, ρ, w, g; nullptr
// where not configured) in the forward or backward arguments.
template <typename T>
struct ParamRows {
  const T *lk, *th, *al, *kp, *rh, *w, *gg;
  template <typename Args>
  ParamRows(const Cfg& c, const Args& a, int64_t b, int64_t n0)
      : lk(a.leak + b * a.lrs + n0),
        th(a.th + b * a.trs + n0),
        al(c.syn ? a.al + b * a.ars + n0 : nullptr),
        kp(c.adapt ? a.kp + b * a.krs + n0 : nullptr),
        rh(c.adapt ? a.rh + b * a.rrs + n0 : nullptr),
        w(c.recur ? a.w + b * a.wrs + n0 : nullptr),
        gg(c.graded ? a.g + b * a.grs + n0 : nullptr) {}
};

template <typename T>
void fwd_block(const Cfg& c, const FwdArgs<T>& a, int64_t b, int64_t n0, int64_t len) {
  T v[BLK], cur[BLK], h[BLK], r[BLK], s[BLK], d[BLK], ad[BLK], pr[BLK], rec[BLK], the[BLK],
      rf[BLK], out[BLK];
  const int64_t base = b * a.N + n0;
  const ParamRows<T> pm(c, a, b, n0);
  const T *lk = pm.lk, *th = pm.th, *al = pm.al, *kp = pm.kp, *rh = pm.rh, *w = pm.w,
          *gg = pm.gg;
  const T* thf = c.adapt ? the : th;  // the threshold compared: θ + κ·a with adaptation
  const T* outp = c.graded ? out : s;  // the output: s·g with graded spikes
  const T vr = T(c.vr);
  const T R = T(c.refr);
  for (int64_t k = 0; k < len; ++k) v[k] = a.v0[base + k];
  if (c.syn) for (int64_t k = 0; k < len; ++k) cur[k] = a.i0[base + k];
  if (c.adapt) for (int64_t k = 0; k < len; ++k) ad[k] = a.a0[base + k];
  if (c.recur) for (int64_t k = 0; k < len; ++k) pr[k] = a.p0[base + k];
  if (c.refr) for (int64_t k = 0; k < len; ++k) rf[k] = a.ref0[base + k];
  for (int64_t t = 0; t < a.T_; ++t) {
    const int64_t off = (b * a.T_ + t) * a.N + n0;
    const T* xt = a.x + b * a.xsb + t * a.xst + n0;
    if (c.carried()) {
      for (int64_t k = 0; k < len; ++k) d[k] = v[k] - th[k];
      spikes_of(d, r, len, c.ge);
      if (c.pre()) pre_reset(c, r, th, v, len);
    }
    const T* dr = xt;
    if (c.recur) for (int64_t k = 0; k < len; ++k) rec[k] = pr[k] * w[k];
    if (c.syn) {
      for (int64_t k = 0; k < len; ++k) cur[k] = al[k] * cur[k] + xt[k];
      if (c.recur) for (int64_t k = 0; k < len; ++k) cur[k] = cur[k] + rec[k];
      dr = cur;
    }
    switch (c.charge) {
      case BETA:
        for (int64_t k = 0; k < len; ++k) h[k] = lk[k] * v[k] + dr[k];
        break;
      case TAU:
        for (int64_t k = 0; k < len; ++k) h[k] = v[k] - (v[k] - vr) / lk[k] + dr[k];
        break;
      case TAU_INPUT:
        for (int64_t k = 0; k < len; ++k) h[k] = v[k] + (dr[k] - (v[k] - vr)) / lk[k];
        break;
      case RATE:
        for (int64_t k = 0; k < len; ++k) h[k] = v[k] - (v[k] - vr) * lk[k] + dr[k];
        break;
      default:
        for (int64_t k = 0; k < len; ++k) h[k] = v[k] + (dr[k] - (v[k] - vr)) * lk[k];
        break;
    }
    if (c.recur && !c.syn) for (int64_t k = 0; k < len; ++k) h[k] = h[k] + rec[k];
    if (c.carried() && !c.pre()) {
      if (c.reset == SUBTRACT) {
        for (int64_t k = 0; k < len; ++k) h[k] = h[k] - r[k] * th[k];
      } else if (c.vr == 0.0) {
        for (int64_t k = 0; k < len; ++k) h[k] = h[k] - r[k] * h[k];
      } else {
        for (int64_t k = 0; k < len; ++k) h[k] = h[k] - r[k] * (h[k] - vr);
      }
    }
    if (c.refr) for (int64_t k = 0; k < len; ++k) h[k] = rf[k] > T(0) ? vr : h[k];
    if (c.adapt) for (int64_t k = 0; k < len; ++k) the[k] = th[k] + kp[k] * ad[k];
    for (int64_t k = 0; k < len; ++k) d[k] = h[k] - thf[k];
    spikes_of(d, s, len, c.ge);
    reset_of(c, h, s, r, thf, v, len);
    if (c.adapt) for (int64_t k = 0; k < len; ++k) ad[k] = rh[k] * ad[k] + s[k];
    if (c.refr) {  // where(s > 0, R, max(ref - 1, 0))
      for (int64_t k = 0; k < len; ++k) {
        const T dec = rf[k] - T(1);
        rf[k] = s[k] > T(0) ? R : (dec < T(0) ? T(0) : dec);
      }
    }
    if (c.graded) for (int64_t k = 0; k < len; ++k) out[k] = s[k] * gg[k];
    if (c.recur) for (int64_t k = 0; k < len; ++k) pr[k] = outp[k];
    T* so = a.spk + off;
    for (int64_t k = 0; k < len; ++k) so[k] = outp[k];
    if (a.h) {
      T* ho = a.h + off;
      for (int64_t k = 0; k < len; ++k) ho[k] = h[k];
    }
    if (a.trace) {
      T* to = a.trace + off;
      for (int64_t k = 0; k < len; ++k) to[k] = v[k];
    }
  }
  for (int64_t k = 0; k < len; ++k) a.vT[base + k] = v[k];
  if (c.syn) for (int64_t k = 0; k < len; ++k) a.iT[base + k] = cur[k];
  if (c.adapt) for (int64_t k = 0; k < len; ++k) a.aT[base + k] = ad[k];
  if (c.recur) for (int64_t k = 0; k < len; ++k) a.pT[base + k] = pr[k];
  if (c.refr) for (int64_t k = 0; k < len; ++k) a.refT[base + k] = rf[k];
}

template <typename T>
struct BwdArgs {
  const T *h, *gspk, *gvT, *giT, *gtr, *v0, *i0, *x, *leak, *th, *al;
  T *gx, *gv0, *gi0;
  double *gleak, *gth, *gal;
  int64_t T_, N;
  int64_t lrs, trs, ars;  // row stride of leak, threshold, alpha: N, or 0 (shared by the batch)
  int64_t xsb, xst;       // strides of x over batch and time
  bool gspk_scalar, gtr_scalar, gv_scalar;  // broadcast from one value (e.g. of a .sum())
  // adaptation and one-to-one recurrence (see FwdArgs): inputs, output gradients, gradients
  const T *gaT = nullptr, *gpT = nullptr, *a0 = nullptr, *p0 = nullptr, *kp = nullptr,
          *rh = nullptr, *w = nullptr;
  T *ga0 = nullptr, *gp0 = nullptr;
  double *gk = nullptr, *gr = nullptr, *gw = nullptr;
  int64_t krs = 0, rrs = 0, wrs = 0;
  const T *ref0 = nullptr, *g = nullptr;  // refractory counter, graded-spike factor
  double* gg = nullptr;
  int64_t grs = 0;
};

// Scratch rows of one backward work item, kept per thread across calls.
template <typename T>
struct BwdScratch {
  std::vector<uint8_t> rbuf;  // carried resets r_t of the compensated timings
  std::vector<uint8_t> sbuf;  // spikes s_t (adaptation / recurrence / refractory / graded)
  std::vector<uint8_t> mbuf;  // refractory masks: ref > 0 before step t
  std::vector<T> ibuf;        // drives i_t (and i0)
  std::vector<T> abuf;        // adaptation a_{t-1} before each step
};

template <typename T>
void bwd_block(const Cfg& c, const BwdArgs<T>& a, int64_t b, int64_t n0, int64_t len,
               BwdScratch<T>& sc) {
  T gv[BLK], gi[BLK], r[BLK], d[BLK], s[BLK], gs[BLK], ghr[BLK], sg[BLK], gh[BLK], gv1[BLK],
      gd[BLK], vp[BLK], v1[BLK], hp[BLK], sp[BLK], rp[BLK], ga[BLK], gp[BLK], the[BLK],
      thq[BLK], gte[BLK], ad[BLK], grc[BLK], rf[BLK];
  double accl[BLK], acct[BLK], acca[BLK], acck[BLK], accr[BLK], accw[BLK], accg[BLK];
  const int64_t Tn = a.T_, N = a.N;
  const int64_t base = b * N + n0;
  const ParamRows<T> pm(c, a, b, n0);
  const T *lk = pm.lk, *th = pm.th, *al = pm.al, *kp = pm.kp, *rh = pm.rh, *w = pm.w,
          *gg = pm.gg;
  const T vr = T(c.vr);
  const T R = T(c.refr);
  const bool need_leak = a.gleak != nullptr, need_th = a.gth != nullptr;
  const bool need_al = a.gal != nullptr;
  // the gradient w.r.t. the threshold compared (θ + κ·a) feeds a's recursion too
  const bool need_te = need_th || c.adapt;
  const bool need_drive = need_leak && (c.charge == TAU_INPUT || c.charge == RATE_INPUT);
  const bool need_i = need_drive || need_al;
  const bool scan_s = c.adapt || c.recur || c.refr || c.graded;
  for (int64_t k = 0; k < len; ++k) {
    gv[k] = a.gvT ? a.gvT[a.gv_scalar ? 0 : base + k] : T(0);
    gi[k] = (c.syn && a.giT) ? a.giT[base + k] : T(0);
    ga[k] = (c.adapt && a.gaT) ? a.gaT[base + k] : T(0);
    gp[k] = (c.recur && a.gpT) ? a.gpT[base + k] : T(0);
    accl[k] = acct[k] = acca[k] = acck[k] = accr[k] = accw[k] = accg[k] = 0.0;
  }
  // Forward scan: the carried resets of the compensated timings; with adaptation or
  // recurrence also a_{t-1} and the spikes (s_t = H(h_t - θ - κ·a_{t-1}) needs a_{t-1}).
  const bool scan_r = c.carried() && c.comp();
  if (scan_r || scan_s) {
    if (scan_r) sc.rbuf.resize(static_cast<size_t>(Tn * len));
    if (scan_s) sc.sbuf.resize(static_cast<size_t>(Tn * len));
    if (c.adapt) sc.abuf.resize(static_cast<size_t>(Tn * len));
    if (c.refr) sc.mbuf.resize(static_cast<size_t>(Tn * len));
    if (c.refr) for (int64_t k = 0; k < len; ++k) rf[k] = a.ref0[base + k];
    if (scan_r) {
      for (int64_t k = 0; k < len; ++k) d[k] = a.v0[base + k] - th[k];
      spikes_of(d, r, len, c.ge);
    }
    if (c.adapt) for (int64_t k = 0; k < len; ++k) ad[k] = a.a0[base + k];
    const T* thf = c.adapt ? the : th;
    for (int64_t t = 0; t < Tn; ++t) {
      const T* ht = a.h + (b * Tn + t) * N + n0;
      if (scan_r) for (int64_t k = 0; k < len; ++k) sc.rbuf[t * len + k] = r[k] != T(0);
      if (c.refr) for (int64_t k = 0; k < len; ++k) sc.mbuf[t * len + k] = rf[k] > T(0);
      if (c.adapt) {
        for (int64_t k = 0; k < len; ++k) sc.abuf[t * len + k] = ad[k];
        for (int64_t k = 0; k < len; ++k) the[k] = th[k] + kp[k] * ad[k];
      }
      for (int64_t k = 0; k < len; ++k) d[k] = ht[k] - thf[k];
      spikes_of(d, s, len, c.ge);
      if (scan_s) for (int64_t k = 0; k < len; ++k) sc.sbuf[t * len + k] = s[k] != T(0);
      if (scan_r) {
        reset_of(c, ht, s, r, thf, vp, len);
        for (int64_t k = 0; k < len; ++k) d[k] = vp[k] - th[k];
        spikes_of(d, r, len, c.ge);
      }
      if (c.adapt) for (int64_t k = 0; k < len; ++k) ad[k] = rh[k] * ad[k] + s[k];
      if (c.refr) {
        for (int64_t k = 0; k < len; ++k) {
          const T dec = rf[k] - T(1);
          rf[k] = s[k] > T(0) ? R : (dec < T(0) ? T(0) : dec);
        }
      }
    }
  }
  // the output of step t-1 (the recurrent input of step t): s, or s·g with graded spikes
  auto prev_out = [&](int64_t t, int64_t k) -> T {
    if (t == 0) return a.p0[base + k];
    const T sk = T(sc.sbuf[(t - 1) * len + k]);
    return c.graded ? sk * gg[k] : sk;
  };
  if (need_i) {  // ibuf[t] = drive of step t (i_t, or x_t without a synapse); ibuf[-1] = i0
    sc.ibuf.resize(static_cast<size_t>((Tn + 1) * len));
    T* ib = sc.ibuf.data() + len;
    for (int64_t k = 0; k < len; ++k) sc.ibuf[k] = c.syn ? a.i0[base + k] : T(0);
    for (int64_t t = 0; t < Tn; ++t) {
      const T* xt = a.x + b * a.xsb + t * a.xst + n0;
      const T* prev = ib + (t - 1) * len;
      T* cur = ib + t * len;
      if (c.syn) {
        for (int64_t k = 0; k < len; ++k) cur[k] = al[k] * prev[k] + xt[k];
        if (c.recur) {
          for (int64_t k = 0; k < len; ++k) cur[k] = cur[k] + prev_out(t, k) * w[k];
        }
      } else {
        for (int64_t k = 0; k < len; ++k) cur[k] = xt[k];
      }
    }
  }
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const int64_t off = (b * Tn + t) * N + n0;
    const T* ht = a.h + off;
    // the thresholds compared at t and t-1 (θ + κ·a_{t-1}, θ + κ·a_{t-2} with adaptation)
    const T* tht = th;
    const T* thp = th;
    if (c.adapt) {
      const T* at = sc.abuf.data() + t * len;
      for (int64_t k = 0; k < len; ++k) the[k] = th[k] + kp[k] * at[k];
      tht = the;
      if (t > 0) {
        const T* aq = at - len;
        for (int64_t k = 0; k < len; ++k) thq[k] = th[k] + kp[k] * aq[k];
        thp = thq;
      }
    }
    // carried reset r_t and the previous step's h, s, r (for the previous stored membrane)
    const bool need_prev = need_leak || (c.carried() && !c.comp());
    if (need_prev) {
      if (t > 0) {
        const T* hq = a.h + off - N;
        for (int64_t k = 0; k < len; ++k) hp[k] = hq[k];
        for (int64_t k = 0; k < len; ++k) d[k] = hp[k] - thp[k];
        spikes_of(d, sp, len, c.ge);
        if (c.carried() && c.comp()) {  // the delayed timings store h itself: rp unused
          for (int64_t k = 0; k < len; ++k) rp[k] = T(sc.rbuf[(t - 1) * len + k]);
        }
        reset_of(c, hp, sp, rp, thp, vp, len);
      } else {
        for (int64_t k = 0; k < len; ++k) vp[k] = a.v0[base + k];
      }
    }
    if (c.carried()) {
      if (c.comp()) {
        for (int64_t k = 0; k < len; ++k) r[k] = T(sc.rbuf[t * len + k]);
      } else {  // delayed: r_t = H(v_{t-1} - θ), v_{t-1} = h_{t-1} (or v0)
        for (int64_t k = 0; k < len; ++k) d[k] = vp[k] - th[k];
        spikes_of(d, r, len, c.ge);
      }
    }
    for (int64_t k = 0; k < len; ++k) d[k] = ht[k] - tht[k];
    spikes_of(d, s, len, c.ge);
    if (a.gtr && a.gtr_scalar) {
      const T g0 = a.gtr[0];
      for (int64_t k = 0; k < len; ++k) gv[k] = gv[k] + g0;
    } else if (a.gtr) {
      const T* g = a.gtr + off;
      for (int64_t k = 0; k < len; ++k) gv[k] = gv[k] + g[k];
    }
    if (a.gspk && a.gspk_scalar) {
      for (int64_t k = 0; k < len; ++k) gs[k] = a.gspk[0];
    } else if (a.gspk) {
      const T* g = a.gspk + off;
      for (int64_t k = 0; k < len; ++k) gs[k] = g[k];
    } else {
      for (int64_t k = 0; k < len; ++k) gs[k] = T(0);
    }
    if (c.recur) for (int64_t k = 0; k < len; ++k) gs[k] = gs[k] + gp[k];  // out_t feeds t+1
    if (c.graded) {  // out = s·g
      if (a.gg) for (int64_t k = 0; k < len; ++k) accg[k] += double(gs[k] * s[k]);
      for (int64_t k = 0; k < len; ++k) gs[k] = gs[k] * gg[k];
    }
    if (c.adapt) for (int64_t k = 0; k < len; ++k) gs[k] = gs[k] + ga[k];  // a_t = ρ·a + s_t
    for (int64_t k = 0; k < len; ++k) gte[k] = T(0);
    // same-step reset
    if (c.delayed()) {
      for (int64_t k = 0; k < len; ++k) ghr[k] = gv[k];
    } else if (c.reset == SUBTRACT) {
      for (int64_t k = 0; k < len; ++k) ghr[k] = gv[k];
      if (!c.detach) for (int64_t k = 0; k < len; ++k) gs[k] = gs[k] + (-gv[k]) * tht[k];
      if (need_te) {
        if (c.comp()) {
          for (int64_t k = 0; k < len; ++k) gte[k] = (-gv[k]) * (s[k] - r[k]);
        } else {
          for (int64_t k = 0; k < len; ++k) gte[k] = (-gv[k]) * s[k];
        }
      }
    } else if (c.comp()) {  // zero, compensated
      for (int64_t k = 0; k < len; ++k) ghr[k] = gv[k] + (-(gv[k] * (s[k] - r[k])));
      if (!c.detach) {
        if (c.vr == 0.0) {
          for (int64_t k = 0; k < len; ++k) gs[k] = gs[k] + (-(gv[k] * ht[k]));
        } else {
          for (int64_t k = 0; k < len; ++k) gs[k] = gs[k] + (-(gv[k] * (ht[k] - vr)));
        }
      }
    } else {  // zero, immediate
      for (int64_t k = 0; k < len; ++k) ghr[k] = gv[k] * (T(1) - s[k]);
      if (!c.detach) {
        for (int64_t k = 0; k < len; ++k) gs[k] = gs[k] + (gv[k] * vr + (-(gv[k] * ht[k])));
      }
    }
    surrogate(c, d, gs, sg, len);
    for (int64_t k = 0; k < len; ++k) gh[k] = ghr[k] + sg[k];
    if (c.refr) {  // h = where(ref > 0, v_reset, h)
      const uint8_t* m = sc.mbuf.data() + t * len;
      for (int64_t k = 0; k < len; ++k) gh[k] = m[k] ? T(0) : gh[k];
    }
    if (need_te) {
      if (c.adapt) {
        for (int64_t k = 0; k < len; ++k) gte[k] = gte[k] + (-sg[k]);
      } else {  // the threshold terms reduced one by one, in autograd's (reverse) order
        for (int64_t k = 0; k < len; ++k) acct[k] += double(gte[k]);
        for (int64_t k = 0; k < len; ++k) acct[k] -= double(sg[k]);
      }
    }
    // carried reset after the charge
    if (c.carried() && !c.pre()) {
      if (c.reset == SUBTRACT) {
        if (need_th) for (int64_t k = 0; k < len; ++k) acct[k] += double((-gh[k]) * r[k]);
      } else {
        for (int64_t k = 0; k < len; ++k) gh[k] = gh[k] + (-(gh[k] * r[k]));
      }
    }
    if (c.recur && !c.syn) for (int64_t k = 0; k < len; ++k) grc[k] = gh[k];  // h = ... + rec
    // the membrane before the charge (learnable leak only)
    if (need_leak) {
      for (int64_t k = 0; k < len; ++k) v1[k] = vp[k];
      if (c.carried() && c.pre()) pre_reset(c, r, th, v1, len);
    }
    const T* drv = need_drive ? sc.ibuf.data() + (t + 1) * len : nullptr;
    // charge
    switch (c.charge) {
      case BETA:
        for (int64_t k = 0; k < len; ++k) {
          gv1[k] = gh[k] * lk[k];
          gd[k] = gh[k];
        }
        if (need_leak) for (int64_t k = 0; k < len; ++k) accl[k] += double(gh[k] * v1[k]);
        break;
      case TAU:
        for (int64_t k = 0; k < len; ++k) {
          gv1[k] = gh[k] + (-gh[k]) / lk[k];
          gd[k] = gh[k];
        }
        if (need_leak) {
          for (int64_t k = 0; k < len; ++k)
            accl[k] += double(gh[k] * (((v1[k] - vr) / lk[k]) / lk[k]));
        }
        break;
      case TAU_INPUT:
        for (int64_t k = 0; k < len; ++k) {
          T ge = gh[k] / lk[k];
          gv1[k] = gh[k] + (-ge);
          gd[k] = ge;
        }
        if (need_leak) {
          for (int64_t k = 0; k < len; ++k)
            accl[k] += double((-gh[k]) * (((drv[k] - (v1[k] - vr)) / lk[k]) / lk[k]));
        }
        break;
      case RATE:
        for (int64_t k = 0; k < len; ++k) {
          gv1[k] = gh[k] + (-gh[k]) * lk[k];
          gd[k] = gh[k];
        }
        if (need_leak) {
          for (int64_t k = 0; k < len; ++k) accl[k] += double((-gh[k]) * (v1[k] - vr));
        }
        break;
      default:
        for (int64_t k = 0; k < len; ++k) {
          T ge = gh[k] * lk[k];
          gv1[k] = gh[k] + (-ge);
          gd[k] = ge;
        }
        if (need_leak) {
          for (int64_t k = 0; k < len; ++k) accl[k] += double(gh[k] * (drv[k] - (v1[k] - vr)));
        }
        break;
    }
    if (c.syn) {
      for (int64_t k = 0; k < len; ++k) gd[k] = gd[k] + gi[k];
      if (need_al) {
        const T* ip = sc.ibuf.data() + t * len;  // i_{t-1}
        for (int64_t k = 0; k < len; ++k) acca[k] += double(gd[k] * ip[k]);
      }
      for (int64_t k = 0; k < len; ++k) gi[k] = gd[k] * al[k];
      if (c.recur) for (int64_t k = 0; k < len; ++k) grc[k] = gd[k];  // i = α·i + x + rec
    }
    if (a.gx) {  // may be h's own buffer (gx_into_h): h[t] is not read after this point
      T* g = a.gx + off;
      for (int64_t k = 0; k < len; ++k) g[k] = gd[k];
    }
    if (c.recur) {  // rec = p_{t-1}·w
      if (a.gw) {
        for (int64_t k = 0; k < len; ++k) accw[k] += double(grc[k] * prev_out(t, k));
      }
      for (int64_t k = 0; k < len; ++k) gp[k] = grc[k] * w[k];
    }
    // carried reset before the charge
    if (c.carried() && c.pre()) {
      if (c.reset == SUBTRACT) {
        if (need_th) for (int64_t k = 0; k < len; ++k) acct[k] += double((-gv1[k]) * r[k]);
      } else {
        for (int64_t k = 0; k < len; ++k) gv1[k] = gv1[k] * (T(1) - r[k]);
      }
    }
    if (c.adapt) {  // θ_t = θ + κ·a_{t-1};  a_t = ρ·a_{t-1} + s_t
      const T* at = sc.abuf.data() + t * len;
      if (a.gr) for (int64_t k = 0; k < len; ++k) accr[k] += double(ga[k] * at[k]);
      if (a.gk) for (int64_t k = 0; k < len; ++k) acck[k] += double(gte[k] * at[k]);
      if (need_th) for (int64_t k = 0; k < len; ++k) acct[k] += double(gte[k]);
      for (int64_t k = 0; k < len; ++k) ga[k] = ga[k] * rh[k] + gte[k] * kp[k];
    }
    for (int64_t k = 0; k < len; ++k) gv[k] = gv1[k];
  }
  if (a.gv0) for (int64_t k = 0; k < len; ++k) a.gv0[base + k] = gv[k];
  if (a.gi0) for (int64_t k = 0; k < len; ++k) a.gi0[base + k] = gi[k];
  if (a.ga0) for (int64_t k = 0; k < len; ++k) a.ga0[base + k] = ga[k];
  if (a.gp0) for (int64_t k = 0; k < len; ++k) a.gp0[base + k] = gp[k];
  if (need_leak) for (int64_t k = 0; k < len; ++k) a.gleak[base + k] = accl[k];
  if (need_th) for (int64_t k = 0; k < len; ++k) a.gth[base + k] = acct[k];
  if (need_al) for (int64_t k = 0; k < len; ++k) a.gal[base + k] = acca[k];
  if (a.gk) for (int64_t k = 0; k < len; ++k) a.gk[base + k] = acck[k];
  if (a.gr) for (int64_t k = 0; k < len; ++k) a.gr[base + k] = accr[k];
  if (a.gw) for (int64_t k = 0; k < len; ++k) a.gw[base + k] = accw[k];
  if (a.gg) for (int64_t k = 0; k < len; ++k) a.gg[base + k] = accg[k];
}

// Threads and stragglers. Items (batch row x neuron block) are claimed one chunk at a time
// from an atomic counter inside one OpenMP region (at::parallel_for), so a thread that starts
// late finds less work instead of a fixed share. The region still ends at a barrier: on an
// oversubscribed or virtualized machine a worker may not run for a whole scheduler tick
// (measured: 4 ms per region on a 2-vCPU VM whose host is busy, against 0.5 ms for the op),
// and the caller waits for it (or the caller itself is the one that does not run: measured
// too). So each call compares its wall time with what one thread alone would have needed
// (the pace of the thread that did the most chunks x all chunks); when threads lost, calls
// run on the calling thread alone for a while (50 ms, doubling while it keeps happening, at
// most 2 s), then threads are tried again. Results never depend on this: items are
// independent and each is computed the same way on any thread.
struct Straggle {
  std::atomic<int64_t> serial_until{0};  // steady_clock ns
  std::atomic<int64_t> backoff{50'000'000};
};

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Straggle& straggle() {
  static Straggle s;
  return s;
}

// fn(b, n0, len) for items = B x ceil(N / blk); problems under ~64k neuron-steps stay on the
// calling thread; at most at::get_num_threads() threads work on one call.
template <typename F>
void for_blocks(int64_t B, int64_t T_, int64_t N, int64_t blk, const F& fn) {
  const int64_t nb = (N + blk - 1) / blk;
  const int64_t items = B * nb;
  const int64_t per_item = std::max<int64_t>(1, T_ * std::min<int64_t>(N, blk));
  const int64_t grain = std::max<int64_t>(1, 65536 / per_item);
  const int64_t chunks = (items + grain - 1) / grain;
  auto run_chunk = [&](int64_t ch) {
    const int64_t hi = std::min(items, (ch + 1) * grain);
    for (int64_t it = ch * grain; it < hi; ++it) {
      const int64_t b = it / nb, n0 = (it % nb) * blk;
      fn(b, n0, std::min<int64_t>(blk, N - n0));
    }
  };
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), chunks);
  Straggle& st = straggle();
  const int64_t t0 = threads > 1 ? now_ns() : 0;
  if (threads <= 1 || at::in_parallel_region() ||
      t0 < st.serial_until.load(std::memory_order_relaxed)) {
    for (int64_t ch = 0; ch < chunks; ++ch) run_chunk(ch);
    return;
  }
  std::atomic<int64_t> next{0};
  std::vector<int64_t> done(threads, 0), busy(threads, 0);  // per thread: chunks, ns on them
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    const int64_t tid = at::get_thread_num();
    const int64_t start = now_ns();
    int64_t mine = 0;
    for (int64_t ch; (ch = next.fetch_add(1, std::memory_order_relaxed)) < chunks; ++mine) {
      run_chunk(ch);
    }
    if (tid >= 0 && tid < threads) {
      done[tid] = mine;
      busy[tid] = now_ns() - start;
    }
  });
  const int64_t wall = now_ns() - t0;
  // one thread's pace (the one that did the most chunks) times all chunks
  const int64_t most = std::max_element(done.begin(), done.end()) - done.begin();
  const int64_t alone = done[most] > 0 ? busy[most] / done[most] * chunks : wall;
  if (wall > alone) {  // the other threads cost more than they did
    const int64_t back = st.backoff.load(std::memory_order_relaxed);
    st.serial_until.store(t0 + wall + back, std::memory_order_relaxed);
    st.backoff.store(std::min<int64_t>(back * 2, 2'000'000'000), std::memory_order_relaxed);
  } else {
    st.backoff.store(50'000'000, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------- fast paths
// The common case, one loop per step with every rule fixed at compile time: charge "beta",
// no carried reset (timing "immediate", or reset "none"), no synapse; backward also without
// learnable leak/threshold. Same operations in the same order as the generic blocks above.
constexpr int64_t FAST_BLK = 2048;
constexpr int64_t PREFETCH = 4;  // steps ahead

bool fast_fwd_ok(const Cfg& c) {
  return c.charge == BETA && !c.carried() && !c.syn && !c.adapt && !c.recur && !c.refr &&
         !c.graded;
}

template <typename T, int64_t RS>
void fwd_fast(const Cfg& c, const FwdArgs<T>& a, int64_t b, int64_t n0, int64_t len) {
  T v[FAST_BLK];
  const int64_t base = b * a.N + n0;
  const T* __restrict lk = a.leak + b * a.lrs + n0;
  const T* __restrict th = a.th + b * a.trs + n0;
  const T vr = T(c.vr);
  const bool ge = c.ge;
  for (int64_t k = 0; k < len; ++k) v[k] = a.v0[base + k];
  for (int64_t t = 0; t < a.T_; ++t) {
    const int64_t off = (b * a.T_ + t) * a.N + n0;
    const T* __restrict xt = a.x + b * a.xsb + t * a.xst + n0;
    T* __restrict so = a.spk + off;
    T* __restrict ho = a.h ? a.h + off : nullptr;
    T* __restrict to = a.trace ? a.trace + off : nullptr;
    for (int64_t k = 0; k < len; ++k) {
      const T hh = lk[k] * v[k] + xt[k];
      const T d = hh - th[k];
      const T sk = ge ? (d >= T(0) ? T(1) : T(0)) : (d > T(0) ? T(1) : T(0));
      T vn;
      if constexpr (RS == SUBTRACT) {
        vn = hh - sk * th[k];
      } else if constexpr (RS == ZERO) {
        vn = sk * vr + (T(1) - sk) * hh;
      } else {
        vn = hh;
      }
      v[k] = vn;
      so[k] = sk;
      if (ho) ho[k] = hh;
      if (to) to[k] = vn;
    }
  }
  for (int64_t k = 0; k < len; ++k) a.vT[base + k] = v[k];
}

// Surrogate functors (same formulas and order as surrogate() above).
template <typename T, int64_t S>
struct SurrFn {
  T k1, k2;
  explicit SurrFn(double a) {
    if constexpr (S == ATAN) { k1 = T(M_PI / 2 * a); k2 = T(a / 2); }
    else if constexpr (S == PIECEWISE_QUADRATIC) { k1 = T(a * a); k2 = T(a); }
    else if constexpr (S == PIECEWISE_EXP) { k1 = T(-a); k2 = T(a / 2); }
    else if constexpr (S == SOFT_SIGN) { k1 = T(1 / a); k2 = T(2 * a); }
    else if constexpr (S == ERF) { k1 = T(a); k2 = T(a / std::sqrt(M_PI)); }
    else { k1 = T(a); k2 = T(0); }
  }
  inline T operator()(T x, T g) const {
    if constexpr (S == ATAN) {
      const T y = k1 * x;
      return ((T(1) / (T(1) + y * y)) * k2) * g;
    } else if constexpr (S == FAST_SIGMOID) {
      const T y = k1 * std::abs(x) + T(1);
      return g / (y * y);
    } else if constexpr (S == STE) {
      return g;
    } else if constexpr (S == SIGMOID) {
      const T sg = T(1) / (T(1) + std::exp(-(k1 * x)));
      return g * (((T(1) - sg) * sg) * k1);
    } else if constexpr (S == TRIANGULAR) {
      const T y = g * k1;
      return x >= T(0) ? -y : y;
    } else if constexpr (S == PIECEWISE_QUADRATIC) {
      const T y = k2 - k1 * std::abs(x);
      return g * (y < T(0) ? T(0) : y);
    } else if constexpr (S == PIECEWISE_EXP) {
      return g * (k2 * std::exp(k1 * std::abs(x)));
    } else if constexpr (S == SOFT_SIGN) {
      const T z = k1 + std::abs(x);
      return g * (T(1) / ((k2 * z) * z));
    } else if constexpr (S == SUPER_SPIKE) {
      const T z = T(1) + std::abs(x);
      return g * ((T(1) / (z * z)) * k1);
    } else {
      const T z = k1 * x;
      return g * (k2 * std::exp(-z * z));
    }
  }
};

template <typename T>
bool fast_bwd_ok(const Cfg& c, const BwdArgs<T>& a) {
  return fast_fwd_ok(c) && !a.gal;
}

template <typename T, int64_t RS, int64_t S>
void bwd_fast(const Cfg& c, const BwdArgs<T>& a, int64_t b, int64_t n0, int64_t len) {
  // Every per-call choice is hoisted out of the inner loop, so that it vectorizes: a spike
  // gradient broadcast from one value reads a row filled with it, a missing input gradient
  // goes to a scratch row, the trace gradient is added to gv in a pass of its own (the same
  // sum as inline), detach_reset and the comparator are selects. Learnable leak/threshold:
  // the loop also keeps g_v' and the surrogate term of the step in rows, and passes of their
  // own accumulate the parameter gradients with the terms and order of bwd_block.
  T gv[FAST_BLK], gsrow[FAST_BLK], gxrow[FAST_BLK], gvprow[FAST_BLK], sgrow[FAST_BLK];
  const bool need_l = a.gleak != nullptr, need_t = a.gth != nullptr;
  thread_local std::vector<double> acc;
  double* accl = nullptr;
  double* acct = nullptr;
  if (need_l || need_t) {
    acc.assign(static_cast<size_t>(2 * len), 0.0);
    accl = acc.data();
    acct = acc.data() + len;
  }
  const int64_t base = b * a.N + n0;
  const T* __restrict lk = a.leak + b * a.lrs + n0;
  const T* __restrict th = a.th + b * a.trs + n0;
  const T vr = T(c.vr);
  const bool ge = c.ge, detach = c.detach;
  const SurrFn<T, S> surr(c.sp);
  const bool gspk_full = a.gspk && !a.gspk_scalar;
  if (!gspk_full) {
    const T gs0 = a.gspk ? a.gspk[0] : T(0);
    for (int64_t k = 0; k < len; ++k) gsrow[k] = gs0;
  }
  const bool gtr_scalar = a.gtr && a.gtr_scalar;
  const T gt0 = gtr_scalar ? a.gtr[0] : T(0);
  for (int64_t k = 0; k < len; ++k) gv[k] = a.gvT ? a.gvT[a.gv_scalar ? 0 : base + k] : T(0);
  // gx may share h's buffer (gx_into_h): each step then writes its gradient into a local row
  // and copies it over h[t] after its last read of h[t], outside the scope of the restrict
  // pointers; h[t-1] (read at step t) is overwritten only at step t-1.
  const bool into_h = a.gx != nullptr && a.gx == a.h;
  for (int64_t t = a.T_ - 1; t >= 0; --t) {
    const int64_t off = (b * a.T_ + t) * a.N + n0;
    {
    const T* __restrict ht = a.h + off;
    const T* __restrict gso = gspk_full ? a.gspk + off : gsrow;
    T* __restrict gxo = (a.gx && !into_h) ? a.gx + off : gxrow;
    if (t >= PREFETCH) {  // time runs backwards: help the hardware prefetcher
      const int64_t back = PREFETCH * a.N;
      for (int64_t k = 0; k < len; k += 64 / int64_t(sizeof(T))) {
        __builtin_prefetch(ht - back + k);
        if (gspk_full) __builtin_prefetch(gso - back + k);
        if (a.gx && !into_h) __builtin_prefetch(gxo - back + k, 1);
      }
    }
    if (a.gtr && !gtr_scalar) {
      const T* __restrict gto = a.gtr + off;
      for (int64_t k = 0; k < len; ++k) gv[k] = gv[k] + gto[k];
    } else if (gtr_scalar) {
      for (int64_t k = 0; k < len; ++k) gv[k] = gv[k] + gt0;
    }
    for (int64_t k = 0; k < len; ++k) {
      const T hh = ht[k];
      const T d = hh - th[k];
      const T gvp = gv[k];
      T gs = gso[k];
      T ghr;
      if constexpr (RS == SUBTRACT) {
        ghr = gvp;
        const T gsr = gs + (-gvp) * th[k];
        gs = detach ? gs : gsr;
      } else if constexpr (RS == ZERO) {
        const T sk = (d > T(0) || (ge && d == T(0))) ? T(1) : T(0);
        ghr = gvp * (T(1) - sk);
        const T gsr = gs + (gvp * vr + (-(gvp * hh)));
        gs = detach ? gs : gsr;
      } else {
        ghr = gvp;
      }
      const T sg = surr(d, gs);
      const T gh = ghr + sg;
      gvprow[k] = gvp;
      sgrow[k] = sg;
      gxo[k] = gh;
      gv[k] = gh * lk[k];
    }
    if (need_t) {
      for (int64_t k = 0; k < len; ++k) {
        if constexpr (RS == SUBTRACT) {
          const T d = ht[k] - th[k];
          const T sk = (d > T(0) || (ge && d == T(0))) ? T(1) : T(0);
          acct[k] += double((-gvprow[k]) * sk);
        }
        acct[k] -= double(sgrow[k]);
      }
    }
    if (need_l) {  // h = leak·v + x: the gradient of leak is g_h · v (the previous membrane)
      if (t > 0) {
        const T* __restrict hq = ht - a.N;
        for (int64_t k = 0; k < len; ++k) {
          const T hp = hq[k];
          T vp = hp;
          if constexpr (RS != NONE) {
            const T d = hp - th[k];
            const T sk = (d > T(0) || (ge && d == T(0))) ? T(1) : T(0);
            if constexpr (RS == SUBTRACT) {
              vp = hp - sk * th[k];
            } else {
              vp = sk * vr + (T(1) - sk) * hp;
            }
          }
          accl[k] += double(gxo[k] * vp);
        }
      } else {
        for (int64_t k = 0; k < len; ++k) accl[k] += double(gxo[k] * a.v0[base + k]);
      }
    }
    }
    if (into_h) std::memcpy(a.gx + off, gxrow, static_cast<size_t>(len) * sizeof(T));
  }
  if (a.gv0) for (int64_t k = 0; k < len; ++k) a.gv0[base + k] = gv[k];
  if (need_l) for (int64_t k = 0; k < len; ++k) a.gleak[base + k] = accl[k];
  if (need_t) for (int64_t k = 0; k < len; ++k) a.gth[base + k] = acct[k];
}

template <typename T, int64_t RS>
void bwd_fast_dispatch(const Cfg& c, const BwdArgs<T>& a, int64_t B) {
  auto go = [&](auto fn) {
    for_blocks(B, a.T_, a.N, FAST_BLK, [&](int64_t b, int64_t n0, int64_t len) {
      fn(c, a, b, n0, len);
    });
  };
  switch (c.surr) {
    case ATAN: go(bwd_fast<T, RS, ATAN>); break;
    case FAST_SIGMOID: go(bwd_fast<T, RS, FAST_SIGMOID>); break;
    case STE: go(bwd_fast<T, RS, STE>); break;
    case SIGMOID: go(bwd_fast<T, RS, SIGMOID>); break;
    case TRIANGULAR: go(bwd_fast<T, RS, TRIANGULAR>); break;
    case PIECEWISE_QUADRATIC: go(bwd_fast<T, RS, PIECEWISE_QUADRATIC>); break;
    case PIECEWISE_EXP: go(bwd_fast<T, RS, PIECEWISE_EXP>); break;
    case SOFT_SIGN: go(bwd_fast<T, RS, SOFT_SIGN>); break;
    case SUPER_SPIKE: go(bwd_fast<T, RS, SUPER_SPIKE>); break;
    default: go(bwd_fast<T, RS, ERF>); break;
  }
}

template <typename T>
const T* ptr_or_null(const std::optional<at::Tensor>& t) {
  return (t.has_value() && t->defined() && t->numel() > 0) ? t->data_ptr<T>() : nullptr;
}

// x (B, T, N): contiguous along N; batch and time may have any strides (a TBPTT window is a
// view into the whole sequence, time-first data a transposed view): no copy is needed.
void check_x(const at::Tensor& x, at::ScalarType dt, int64_t B, int64_t T_, int64_t N) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 3 && x.scalar_type() == dt && x.size(0) == B &&
                  x.size(1) == T_ && x.size(2) == N && (N == 1 || x.stride(2) == 1),
              "brain_ai lif: x must be a (B, T, N) CPU tensor of the state dtype, contiguous "
              "along N");
}

void check(const at::Tensor& t, const char* name, at::ScalarType dt, int64_t numel) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == dt &&
                  t.numel() == numel,
              "brain_ai lif: ", name, " must be a contiguous CPU tensor of the input dtype with ",
              numel, " elements");
}

// A parameter (leak, threshold, alpha): (B, N) rows, one (N,) row shared by the batch, or one
// value. Returns the row stride (N or 0); one value is spread over `row` (N entries).
int64_t check_param(const at::Tensor& t, const char* name, at::ScalarType dt, int64_t B,
                    int64_t N) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == dt &&
                  ((t.dim() == 2 && t.numel() == B * N) || t.numel() == N || t.numel() == 1),
              "brain_ai lif: ", name, " must be a contiguous CPU tensor of the input dtype with ",
              "shape (B, N), N or 1 elements");
  return (t.dim() == 2 && t.numel() == B * N) ? N : 0;
}

template <typename T>
const T* param_rows(const at::Tensor& t, int64_t N, std::vector<T>& row) {
  if (t.numel() != 1 || N == 1) return t.data_ptr<T>();  // (B, N) or (N,)
  row.assign(static_cast<size_t>(N), t.data_ptr<T>()[0]);
  return row.data();
}

using Opt = std::optional<at::Tensor>;

bool given(const Opt& t) { return t.has_value() && t->defined(); }

// The optional features' inputs (adaptation, recurrence, refractory period, graded spikes):
// present where configured, of the right sizes; returns the parameters' row strides.
struct ExtraRows {
  int64_t krs = 0, rrs = 0, wrs = 0, grs = 0;
};

ExtraRows check_extras(const Cfg& c, const Opt& a0, const Opt& p0, const Opt& ref0,
                       const Opt& kappa, const Opt& rho, const Opt& w, const Opt& graded,
                       at::ScalarType dt, int64_t B, int64_t N) {
  ExtraRows er;
  if (c.adapt) {
    TORCH_CHECK(given(a0) && given(kappa) && given(rho), "brain_ai lif: adaptation needs a0, "
                "kappa, rho");
    check(*a0, "a0", dt, B * N);
    er.krs = check_param(*kappa, "kappa", dt, B, N);
    er.rrs = check_param(*rho, "rho", dt, B, N);
  }
  if (c.recur) {
    TORCH_CHECK(given(p0) && given(w), "brain_ai lif: recurrence needs p0, w");
    check(*p0, "p0", dt, B * N);
    er.wrs = check_param(*w, "w", dt, B, N);
  }
  if (c.refr) {
    TORCH_CHECK(given(ref0), "brain_ai lif: a refractory period needs ref0");
    check(*ref0, "ref0", dt, B * N);
  }
  if (c.graded) {
    TORCH_CHECK(given(graded), "brain_ai lif: graded spikes need the factor");
    er.grs = check_param(*graded, "graded", dt, B, N);
  }
  return er;
}

std::vector<at::Tensor> lif_forward(const at::Tensor& x, const at::Tensor& v0, const Opt& i0,
                                    const Opt& a0, const Opt& p0, const Opt& ref0,
                                    const at::Tensor& leak, const at::Tensor& th,
                                    const Opt& alpha, const Opt& kappa, const Opt& rho,
                                    const Opt& w, const Opt& graded, int64_t charge, int64_t reset,
                                    int64_t timing, bool ge, bool synapse, bool detach_reset,
                                    int64_t surrogate, bool adapt, bool recur,
                                    int64_t refractory, bool graded_spikes, double v_reset,
                                    double surrogate_param, bool save_h, bool record_v) {
  const Cfg c = parse(charge, reset, timing, ge, synapse, detach_reset, surrogate, adapt, recur,
                      refractory, graded_spikes, v_reset, surrogate_param);
  TORCH_CHECK(x.dim() == 3, "brain_ai lif: x must be (B, T, N)");
  const int64_t B = x.size(0), T_ = x.size(1), N = x.size(2);
  const auto dt = x.scalar_type();
  check_x(x, dt, B, T_, N);
  check(v0, "v0", dt, B * N);
  const int64_t lrs = check_param(leak, "leak", dt, B, N);
  const int64_t trs = check_param(th, "threshold", dt, B, N);
  int64_t ars = 0;
  if (c.syn) {
    TORCH_CHECK(i0.has_value() && alpha.has_value(), "brain_ai lif: synapse needs i0, alpha");
    check(*i0, "i0", dt, B * N);
    ars = check_param(*alpha, "alpha", dt, B, N);
  }
  const ExtraRows er = check_extras(c, a0, p0, ref0, kappa, rho, w, graded, dt, B, N);
  const int64_t krs = er.krs, rrs = er.rrs, wrs = er.wrs, grs = er.grs;
  auto opts = x.options();
  at::Tensor spk = pooled_empty({B, T_, N}, dt);
  at::Tensor h = save_h ? pooled_empty({B, T_, N}, dt) : at::empty({0}, opts);
  at::Tensor trace = (record_v && !c.delayed()) ? pooled_empty({B, T_, N}, dt)
                                                : at::empty({0}, opts);
  at::Tensor vT = pooled_empty({B, N}, dt);
  at::Tensor iT = c.syn ? pooled_empty({B, N}, dt) : at::empty({0}, opts);
  at::Tensor aT = c.adapt ? pooled_empty({B, N}, dt) : at::empty({0}, opts);
  at::Tensor pT = c.recur ? pooled_empty({B, N}, dt) : at::empty({0}, opts);
  at::Tensor refT = c.refr ? pooled_empty({B, N}, dt) : at::empty({0}, opts);
  AT_DISPATCH_FLOATING_TYPES(dt, "brain_ai_lif_forward", [&] {
    std::vector<scalar_t> lrow, trow, arow, krow, rrow, wrow, grow;
    FwdArgs<scalar_t> a{x.data_ptr<scalar_t>(), v0.data_ptr<scalar_t>(),
                        c.syn ? i0->data_ptr<scalar_t>() : nullptr,
                        param_rows<scalar_t>(leak, N, lrow), param_rows<scalar_t>(th, N, trow),
                        c.syn ? param_rows<scalar_t>(*alpha, N, arow) : nullptr,
                        spk.data_ptr<scalar_t>(), save_h ? h.data_ptr<scalar_t>() : nullptr,
                        trace.numel() ? trace.data_ptr<scalar_t>() : nullptr,
                        vT.data_ptr<scalar_t>(), c.syn ? iT.data_ptr<scalar_t>() : nullptr,
                        T_, N, lrs, trs, ars, x.stride(0), x.stride(1)};
    if (c.adapt) {
      a.a0 = a0->data_ptr<scalar_t>();
      a.kp = param_rows<scalar_t>(*kappa, N, krow);
      a.rh = param_rows<scalar_t>(*rho, N, rrow);
      a.aT = aT.data_ptr<scalar_t>();
      a.krs = krs;
      a.rrs = rrs;
    }
    if (c.recur) {
      a.p0 = p0->data_ptr<scalar_t>();
      a.w = param_rows<scalar_t>(*w, N, wrow);
      a.pT = pT.data_ptr<scalar_t>();
      a.wrs = wrs;
    }
    if (c.refr) {
      a.ref0 = ref0->data_ptr<scalar_t>();
      a.refT = refT.data_ptr<scalar_t>();
    }
    if (c.graded) {
      a.g = param_rows<scalar_t>(*graded, N, grow);
      a.grs = grs;
    }
    if (fast_fwd_ok(c)) {
      auto go = [&](auto fn) {
        for_blocks(B, T_, N, FAST_BLK, [&](int64_t b, int64_t n0, int64_t len) {
          fn(c, a, b, n0, len);
        });
      };
      if (c.reset == SUBTRACT) go(fwd_fast<scalar_t, SUBTRACT>);
      else if (c.reset == ZERO) go(fwd_fast<scalar_t, ZERO>);
      else go(fwd_fast<scalar_t, NONE>);
    } else {
      for_blocks(B, T_, N, BLK, [&](int64_t b, int64_t n0, int64_t len) {
        fwd_block(c, a, b, n0, len);
      });
    }
  });
  return {spk, h, vT, iT, aT, pT, refT, trace};
}

std::vector<at::Tensor> lif_backward(
    const at::Tensor& h, const Opt& gspk, const Opt& gvT, const Opt& giT, const Opt& gaT,
    const Opt& gpT, const Opt& gtr, const at::Tensor& v0, const Opt& i0, const Opt& a0,
    const Opt& p0, const Opt& ref0, const Opt& x, const at::Tensor& leak, const at::Tensor& th,
    const Opt& alpha, const Opt& kappa, const Opt& rho, const Opt& w, const Opt& graded,
    int64_t charge, int64_t reset, int64_t timing, bool ge, bool synapse, bool detach_reset,
    int64_t surrogate, bool adapt, bool recur, int64_t refractory, bool graded_spikes,
    double v_reset, double surr_param, c10::IntArrayRef needs, bool gx_into_h) {
  // needs: x, v0, i0, a0, p0, leak, threshold, alpha, kappa, rho, w, graded
  TORCH_CHECK(needs.size() == 12, "brain_ai lif: needs must have 12 entries");
  const bool need_x = needs[0] != 0, need_v0 = needs[1] != 0, need_leak = needs[5] != 0,
             need_th = needs[6] != 0;
  const Cfg c = parse(charge, reset, timing, ge, synapse, detach_reset, surrogate, adapt, recur,
                      refractory, graded_spikes, v_reset, surr_param);
  const bool need_i0 = c.syn && needs[2] != 0, need_alpha = c.syn && needs[7] != 0;
  const bool need_a0 = c.adapt && needs[3] != 0, need_kappa = c.adapt && needs[8] != 0,
             need_rho = c.adapt && needs[9] != 0;
  const bool need_p0 = c.recur && needs[4] != 0, need_w = c.recur && needs[10] != 0;
  const bool need_g = c.graded && needs[11] != 0;
  const int64_t B = h.size(0), T_ = h.size(1), N = h.size(2);
  const auto dt = h.scalar_type();
  check(h, "h", dt, B * T_ * N);
  check(v0, "v0", dt, B * N);
  const int64_t lrs = check_param(leak, "leak", dt, B, N);
  const int64_t trs = check_param(th, "threshold", dt, B, N);
  int64_t ars = 0;
  const bool gspk_scalar = gspk && gspk->numel() == 1 && B * T_ * N != 1;
  const bool gtr_scalar = gtr && gtr->numel() == 1 && B * T_ * N != 1;
  const bool gv_scalar = gvT && gvT->numel() == 1 && B * N != 1;
  if (gspk && gspk->numel()) check(*gspk, "grad spikes", dt, gspk_scalar ? 1 : B * T_ * N);
  if (gtr && gtr->numel()) check(*gtr, "grad trace", dt, gtr_scalar ? 1 : B * T_ * N);
  if (gvT && gvT->numel()) check(*gvT, "grad v", dt, gv_scalar ? 1 : B * N);
  const bool need_drive = need_leak && (c.charge == TAU_INPUT || c.charge == RATE_INPUT);
  if (c.syn) {
    TORCH_CHECK(i0.has_value() && alpha.has_value(), "brain_ai lif: synapse needs i0, alpha");
    ars = check_param(*alpha, "alpha", dt, B, N);
    check(*i0, "i0", dt, B * N);
    if (giT && giT->numel()) check(*giT, "grad i", dt, B * N);
  }
  const ExtraRows er = check_extras(c, a0, p0, ref0, kappa, rho, w, graded, dt, B, N);
  const int64_t krs = er.krs, rrs = er.rrs, wrs = er.wrs, grs = er.grs;
  if (c.adapt && gaT && gaT->numel()) check(*gaT, "grad a", dt, B * N);
  if (c.recur && gpT && gpT->numel()) check(*gpT, "grad prev_spk", dt, B * N);
  if (need_drive || (c.syn && need_alpha)) {
    TORCH_CHECK(x.has_value() && x->defined(), "brain_ai lif: this gradient needs x");
    check_x(*x, dt, B, T_, N);
  }
  const bool has_x = x.has_value() && x->defined() && x->numel() > 0;
  const int64_t xs_b = has_x ? x->stride(0) : 0, xs_t = has_x ? x->stride(1) : 0;
  auto opts = h.options();
  auto dopts = opts.dtype(at::kDouble);
  at::Tensor empty = at::empty({0}, opts);
  // gx_into_h: the caller gives up h (the graph is not kept): x's gradient overwrites it step
  // by step, one (B, T, N) buffer less at the peak of backward
  at::Tensor gx = need_x ? (gx_into_h ? h : pooled_empty({B, T_, N}, dt)) : empty;
  at::Tensor gv0 = need_v0 ? pooled_empty({B, N}, dt) : empty;
  at::Tensor gi0 = (c.syn && need_i0) ? pooled_empty({B, N}, dt) : empty;
  at::Tensor gl = need_leak ? at::empty({B, N}, dopts) : at::empty({0}, dopts);
  at::Tensor gt = need_th ? at::empty({B, N}, dopts) : at::empty({0}, dopts);
  at::Tensor ga = (c.syn && need_alpha) ? at::empty({B, N}, dopts) : at::empty({0}, dopts);
  at::Tensor ga0 = need_a0 ? pooled_empty({B, N}, dt) : empty;
  at::Tensor gp0 = need_p0 ? pooled_empty({B, N}, dt) : empty;
  at::Tensor gk = need_kappa ? at::empty({B, N}, dopts) : at::empty({0}, dopts);
  at::Tensor gr = need_rho ? at::empty({B, N}, dopts) : at::empty({0}, dopts);
  at::Tensor gw = need_w ? at::empty({B, N}, dopts) : at::empty({0}, dopts);
  at::Tensor ggr = need_g ? at::empty({B, N}, dopts) : at::empty({0}, dopts);
  AT_DISPATCH_FLOATING_TYPES(dt, "brain_ai_lif_backward", [&] {
    std::vector<scalar_t> lrow, trow, arow, krow, rrow, wrow, grow;
    BwdArgs<scalar_t> a{h.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(gspk),
                        ptr_or_null<scalar_t>(gvT), ptr_or_null<scalar_t>(giT),
                        ptr_or_null<scalar_t>(gtr), v0.data_ptr<scalar_t>(),
                        c.syn ? i0->data_ptr<scalar_t>() : nullptr, ptr_or_null<scalar_t>(x),
                        param_rows<scalar_t>(leak, N, lrow), param_rows<scalar_t>(th, N, trow),
                        c.syn ? param_rows<scalar_t>(*alpha, N, arow) : nullptr,
                        need_x ? gx.data_ptr<scalar_t>() : nullptr,
                        need_v0 ? gv0.data_ptr<scalar_t>() : nullptr,
                        gi0.numel() ? gi0.data_ptr<scalar_t>() : nullptr,
                        need_leak ? gl.data_ptr<double>() : nullptr,
                        need_th ? gt.data_ptr<double>() : nullptr,
                        ga.numel() ? ga.data_ptr<double>() : nullptr, T_, N, lrs, trs, ars,
                        xs_b, xs_t, gspk_scalar, gtr_scalar, gv_scalar};
    if (c.adapt) {
      a.gaT = ptr_or_null<scalar_t>(gaT);
      a.a0 = a0->data_ptr<scalar_t>();
      a.kp = param_rows<scalar_t>(*kappa, N, krow);
      a.rh = param_rows<scalar_t>(*rho, N, rrow);
      a.ga0 = need_a0 ? ga0.data_ptr<scalar_t>() : nullptr;
      a.gk = need_kappa ? gk.data_ptr<double>() : nullptr;
      a.gr = need_rho ? gr.data_ptr<double>() : nullptr;
      a.krs = krs;
      a.rrs = rrs;
    }
    if (c.recur) {
      a.gpT = ptr_or_null<scalar_t>(gpT);
      a.p0 = p0->data_ptr<scalar_t>();
      a.w = param_rows<scalar_t>(*w, N, wrow);
      a.gp0 = need_p0 ? gp0.data_ptr<scalar_t>() : nullptr;
      a.gw = need_w ? gw.data_ptr<double>() : nullptr;
      a.wrs = wrs;
    }
    if (c.refr) a.ref0 = ref0->data_ptr<scalar_t>();
    if (c.graded) {
      a.g = param_rows<scalar_t>(*graded, N, grow);
      a.gg = need_g ? ggr.data_ptr<double>() : nullptr;
      a.grs = grs;
    }
    if (fast_bwd_ok(c, a)) {
      if (c.reset == SUBTRACT) bwd_fast_dispatch<scalar_t, SUBTRACT>(c, a, B);
      else if (c.reset == ZERO) bwd_fast_dispatch<scalar_t, ZERO>(c, a, B);
      else bwd_fast_dispatch<scalar_t, NONE>(c, a, B);
      return;
    }
    for_blocks(B, T_, N, BLK, [&](int64_t b, int64_t n0, int64_t len) {
      thread_local BwdScratch<scalar_t> scratch;
      bwd_block(c, a, b, n0, len, scratch);
    });
  });
  return {gx, gv0, gi0, ga0, gp0, gl, gt, ga, gk, gr, gw, ggr};
}

}  // namespace

TORCH_LIBRARY(brain_ai_kernels, m) {
  m.def(
      "lif_forward(Tensor x, Tensor v0, Tensor? i0, Tensor? a0, Tensor? p0, Tensor? ref0, "
      "Tensor leak, Tensor threshold, Tensor? alpha, Tensor? kappa, Tensor? rho, Tensor? w, "
      "Tensor? graded, "
      "int charge, int reset, int timing, bool ge, bool synapse, bool detach_reset, "
      "int surrogate, bool adapt, bool recur, int refractory, bool graded_spikes, "
      "float v_reset, float surrogate_param, bool save_h, bool record_v) -> Tensor[]");
  m.def(
      "lif_backward(Tensor h, Tensor? grad_spikes, Tensor? grad_v, Tensor? grad_i, "
      "Tensor? grad_a, Tensor? grad_p, Tensor? grad_trace, Tensor v0, Tensor? i0, "
      "Tensor? a0, Tensor? p0, Tensor? ref0, Tensor? x, Tensor leak, Tensor threshold, "
      "Tensor? alpha, Tensor? kappa, Tensor? rho, Tensor? w, Tensor? graded, "
      "int charge, int reset, int timing, bool ge, bool synapse, bool detach_reset, "
      "int surrogate, bool adapt, bool recur, int refractory, bool graded_spikes, "
      "float v_reset, float surrogate_param, int[] needs, bool gx_into_h) -> Tensor[]");
  m.def("pool_empty() -> int", [] { return Pool::get().empty(); });
  m.def("pool_cached() -> int", [] { return Pool::get().cached(); });
}

TORCH_LIBRARY_IMPL(brain_ai_kernels, CPU, m) {
  m.impl("lif_forward", &lif_forward);
  m.impl("lif_backward", &lif_backward);
}
