// The native multi-step LIF op of brain_ai (see brain_ai/kernels/native.py).
//
// Same equations, same operation order as brain_ai/physics/rules.py, so the forward is
// bit-identical to the PyTorch reference; compile with -ffp-contract=off (no FMA contraction).
// Layout: batch-first x (B, T, N) (any batch/time strides); state (B, N); parameters as
// rows: one value, one (N,) row shared by the batch, or (B, N).
// Work items are (batch row, block of BLK neurons); each keeps its membrane in a local array
// for all T steps, and runs over the neurons of its block in simple (vectorizable) loops, one
// per rule, with the rule choice hoisted out of the loop.

#include <ATen/Dispatch.h>
#include <ATen/EmptyTensor.h>
#include <ATen/ExpandUtils.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <ATen/Version.h>
#include <torch/library.h>

#if defined(__AVX2__)
#include <immintrin.h>
#include <sleef.h>
#endif

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
#include <string>
#include <type_traits>
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

  Pool() : limit_(limit_from_env()) {}

  // $BRAIN_AI_POOL_MB: a whole number of MiB, <= 2^40 (surrounding white space allowed).
  // brain_ai.kernels.native.pool_limit_mb() refuses anything else before this library is
  // loaded; here anything else keeps the default rather than reading a prefix ("1e3" -> 1) or
  // wrapping around ("-1").
  static size_t limit_from_env() {
    constexpr size_t kDefault = size_t(512) << 20;
    constexpr size_t kMaxMB = size_t(1) << 40;
    auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    const char* p = std::getenv("BRAIN_AI_POOL_MB");
    if (p == nullptr) return kDefault;
    while (space(*p)) ++p;
    if (*p == '\0') return kDefault;
    size_t mb = 0;
    const char* digits = p;
    for (; *p >= '0' && *p <= '9'; ++p) {
      mb = mb * 10 + size_t(*p - '0');
      if (mb > kMaxMB) return kDefault;
    }
    while (space(*p)) ++p;
    return (p == digits || *p != '\0') ? kDefault : mb << 20;
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
  // truncated BPTT: the state's gradient stops at steps t > 0 with t % window == 0 (0: none)
  int64_t window = 0;
  bool edge(int64_t t) const { return window > 0 && t > 0 && t % window == 0; }
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

constexpr int64_t FWD_BLK = 2048;  // neurons per work item of the fast forward
constexpr int64_t BWD_BLK = 512;   // and of the fast backward

// The surrogate's backward, in the operation order of brain_ai/physics/surrogates.py.
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

// exp as torch.exp computes it on CPU: MKL's VML (high accuracy mode, as ATen's vml.h calls
// it) where torch is built with MKL (the symbols are found at load time; without them,
// std::exp, which may differ in the last bit).
extern "C" {
__attribute__((weak)) void vmsExp(int n, const float* a, float* r, long long mode);
__attribute__((weak)) void vmdExp(int n, const double* a, double* r, long long mode);
}
constexpr long long kVmlMode = 0x2 | 0x00140000 | 0x100;  // HA | FTZDAZ_OFF | ERRMODE_IGNORE

inline void exp_row(const float* a, float* r, int64_t n) {
  if (vmsExp != nullptr) {
    vmsExp(static_cast<int>(n), a, r, kVmlMode);
  } else {
    for (int64_t k = 0; k < n; ++k) r[k] = std::exp(a[k]);
  }
}

inline void exp_row(const double* a, double* r, int64_t n) {
  if (vmdExp != nullptr) {
    vmdExp(static_cast<int>(n), a, r, kVmlMode);
  } else {
    for (int64_t k = 0; k < n; ++k) r[k] = std::exp(a[k]);
  }
}

// torch.sigmoid on CPU: ATen's vectorized loop computes 1 / (exp(0 - a) + 1) with SLEEF's exp
// on whole vectors, and 1 / (1 + std::exp(-a)) on the last n mod 2V elements of each chunk a
// thread runs (V: elements per vector of torch's CPU capability, the loop unrolled twice;
// chunks as at::parallel_for cuts the (B, *f) tensor of one step, M elements). Those ranges,
// as flat indices into the step's tensor, give the native op torch's bits.
struct ScalarTails {
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [lo, hi)
};

ScalarTails scalar_tails(int64_t M, int64_t elem_size) {
  ScalarTails st;
  const std::string cap = at::get_cpu_capability();
  const int64_t vbytes = cap == "AVX512" ? 64 : (cap == "AVX2" ? 32 : 0);
  const int64_t step = vbytes ? 2 * vbytes / elem_size : 0;  // 0: every element scalar
  const int64_t grain = 32768;  // at::internal::GRAIN_SIZE (ATen/TensorIterator.h)
  const int64_t threads = at::get_num_threads();
  int64_t chunk = M;
  if (M > grain && threads > 1) {  // TensorIterator::for_each -> at::parallel_for
    const int64_t tasks = std::min<int64_t>(threads, (M + grain - 1) / grain);
    chunk = (M + tasks - 1) / tasks;
  }
  for (int64_t lo = 0; lo < M; lo += chunk) {
    const int64_t n = std::min(chunk, M - lo);
    st.ranges.emplace_back(lo + (step ? n - n % step : 0), lo + n);
  }
  return st;
}

// exp(0 - d·k) of whole vectors as ATen's Vectorized computes it (SLEEF, 1.0 ULP; its 256-bit
// and 512-bit versions agree lane for lane), the product and difference rounded as the
// scalar code rounds them; without AVX2 at build time, std::exp (not torch's bits).
inline void sleef_exp_neg_row(const float* d, float k, float* r, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 kv = _mm512_set1_ps(k), zero = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    const __m512 a = _mm512_sub_ps(zero, _mm512_mul_ps(_mm512_loadu_ps(d + i), kv));
    _mm512_storeu_ps(r + i, Sleef_expf16_u10(a));
  }
#endif
#if defined(__AVX2__)
  const __m256 kh = _mm256_set1_ps(k), zh = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_sub_ps(zh, _mm256_mul_ps(_mm256_loadu_ps(d + i), kh));
    _mm256_storeu_ps(r + i, Sleef_expf8_u10(a));
  }
  if (i < n) {
    alignas(32) float buf[8] = {0};
    for (int64_t j = 0; j < n - i; ++j) buf[j] = 0.0f - d[i + j] * k;
    _mm256_store_ps(buf, Sleef_expf8_u10(_mm256_load_ps(buf)));
    std::memcpy(r + i, buf, static_cast<size_t>(n - i) * sizeof(float));
    i = n;
  }
#endif
  for (; i < n; ++i) r[i] = std::exp(0.0f - d[i] * k);
}

inline void sleef_exp_neg_row(const double* d, double k, double* r, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512d kv = _mm512_set1_pd(k), zero = _mm512_setzero_pd();
  for (; i + 8 <= n; i += 8) {
    const __m512d a = _mm512_sub_pd(zero, _mm512_mul_pd(_mm512_loadu_pd(d + i), kv));
    _mm512_storeu_pd(r + i, Sleef_expd8_u10(a));
  }
#endif
#if defined(__AVX2__)
  const __m256d kh = _mm256_set1_pd(k), zh = _mm256_setzero_pd();
  for (; i + 4 <= n; i += 4) {
    const __m256d a = _mm256_sub_pd(zh, _mm256_mul_pd(_mm256_loadu_pd(d + i), kh));
    _mm256_storeu_pd(r + i, Sleef_expd4_u10(a));
  }
  if (i < n) {
    alignas(32) double buf[4] = {0};
    for (int64_t j = 0; j < n - i; ++j) buf[j] = 0.0 - d[i + j] * k;
    _mm256_store_pd(buf, Sleef_expd4_u10(_mm256_load_pd(buf)));
    std::memcpy(r + i, buf, static_cast<size_t>(n - i) * sizeof(double));
    i = n;
  }
#endif
  for (; i < n; ++i) r[i] = std::exp(0.0 - d[i] * k);
}

// std::exp of one value (the library's scalar exp: never a vectorized variant)
template <typename T>
__attribute__((noinline)) T scalar_exp(T a) {
  return std::exp(a);
}

// sg = surrogate'(d)·g over one row (the surrogate is a template argument: one vectorized
// loop per surrogate, chosen once per row). The exp of piecewise_exp and erf is torch's, and
// sigmoid's too (i0: the row's flat index in its step's tensor, for the scalar tails).
// With gr (the fast backward): out = gr + sg, the gradient of h (the same-step reset's part
// first, then the firing's), and sg itself into sg_out where SG.
template <typename T, int64_t S, bool SG>
__attribute__((noinline)) void surr_rows(double p, const T* __restrict d,
                                         const T* __restrict g, const T* __restrict gr,
                                         T* __restrict out, T* __restrict sg_out, int64_t len,
                                         int64_t i0, const ScalarTails* tails) {
  const SurrFn<T, S> f(p);
#if defined(__AVX512F__)
  if constexpr (S == SIGMOID && !SG && std::is_same_v<T, float>) {
    if (gr != nullptr) {  // one pass: exp, sigmoid, its derivative, + gr (the same roundings)
      const __m512 k = _mm512_set1_ps(f.k1), one = _mm512_set1_ps(1.0f),
                   zero = _mm512_setzero_ps();
      int64_t i = 0;
      for (; i + 16 <= len; i += 16) {
        const __m512 a = _mm512_sub_ps(zero, _mm512_mul_ps(_mm512_loadu_ps(d + i), k));
        const __m512 e = Sleef_expf16_u10(a);
        const __m512 sgm = _mm512_div_ps(one, _mm512_add_ps(one, e));
        const __m512 der = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(one, sgm), sgm), k);
        _mm512_storeu_ps(out + i, _mm512_add_ps(_mm512_loadu_ps(gr + i),
                                                _mm512_mul_ps(_mm512_loadu_ps(g + i), der)));
      }
      auto one_elem = [&](int64_t j, float e) {
        const float sgm = 1.0f / (1.0f + e);
        out[j] = gr[j] + g[j] * (((1.0f - sgm) * sgm) * f.k1);
      };
      if (i < len) {  // the last partial vector: SLEEF on a padded copy
        alignas(64) float buf[16] = {0};
        for (int64_t j = i; j < len; ++j) buf[j - i] = 0.0f - d[j] * f.k1;
        _mm512_store_ps(buf, Sleef_expf16_u10(_mm512_load_ps(buf)));
        for (int64_t j = i; j < len; ++j) one_elem(j, buf[j - i]);
      }
      if (tails != nullptr) {  // torch's scalar elements
        for (const auto& rg : tails->ranges) {
          const int64_t lo = std::max<int64_t>(rg.first - i0, 0);
          const int64_t hi = std::min<int64_t>(rg.second - i0, len);
          for (int64_t j = lo; j < hi; ++j) one_elem(j, scalar_exp(-(d[j] * f.k1)));
        }
      }
      return;
    }
  }
#endif
  if constexpr (S == PIECEWISE_EXP || S == ERF || S == SIGMOID) {
    T arg[BWD_BLK], e[BWD_BLK];
    if constexpr (S == PIECEWISE_EXP) {  // g·(α/2·exp(-α·|x|))
      for (int64_t k = 0; k < len; ++k) arg[k] = f.k1 * std::abs(d[k]);
      exp_row(arg, e, len);
    } else if constexpr (S == ERF) {  // g·(α/√π·exp(-z·z)), z = α·x
      for (int64_t k = 0; k < len; ++k) {
        const T z = f.k1 * d[k];
        arg[k] = -z * z;
      }
      exp_row(arg, e, len);
    } else {  // g·((1 - s)·s·α), s = sigmoid(α·x) = 1 / (1 + exp(-α·x))
      sleef_exp_neg_row(d, f.k1, e, len);
      if (tails != nullptr) {
        for (const auto& rg : tails->ranges) {
          const int64_t lo = std::max<int64_t>(rg.first - i0, 0);
          const int64_t hi = std::min<int64_t>(rg.second - i0, len);
          for (int64_t k = lo; k < hi; ++k) e[k] = scalar_exp(-(d[k] * f.k1));
        }
      }
    }
    auto sg_of = [&](int64_t k) -> T {
      if constexpr (S == SIGMOID) {
        const T sgm = T(1) / (T(1) + e[k]);
        return g[k] * (((T(1) - sgm) * sgm) * f.k1);
      } else {
        return g[k] * (f.k2 * e[k]);
      }
    };
    if (gr != nullptr) {
      for (int64_t k = 0; k < len; ++k) {
        const T u = sg_of(k);
        if constexpr (SG) sg_out[k] = u;
        out[k] = gr[k] + u;
      }
    } else {
      for (int64_t k = 0; k < len; ++k) out[k] = sg_of(k);
    }
  } else if (gr != nullptr) {
    for (int64_t k = 0; k < len; ++k) {
      const T sg = f(d[k], g[k]);
      if constexpr (SG) sg_out[k] = sg;
      out[k] = gr[k] + sg;
    }
  } else {
    for (int64_t k = 0; k < len; ++k) out[k] = f(d[k], g[k]);
  }
}

// out = gr + sg (gr nullptr: out = sg), sg also into sg_out unless nullptr.
template <typename T>
void surr_row(const Cfg& c, const T* d, const T* g, T* out, int64_t len, int64_t i0,
              const ScalarTails* tails, const T* gr = nullptr, T* sg_out = nullptr) {
  auto go = [&](auto fn_sg, auto fn) {
    if (sg_out) {
      fn_sg(c.sp, d, g, gr, out, sg_out, len, i0, tails);
    } else {
      fn(c.sp, d, g, gr, out, nullptr, len, i0, tails);
    }
  };
  switch (c.surr) {
    case ATAN: go(surr_rows<T, ATAN, true>, surr_rows<T, ATAN, false>); break;
    case FAST_SIGMOID: go(surr_rows<T, FAST_SIGMOID, true>, surr_rows<T, FAST_SIGMOID, false>); break;
    case STE: go(surr_rows<T, STE, true>, surr_rows<T, STE, false>); break;
    case SIGMOID: go(surr_rows<T, SIGMOID, true>, surr_rows<T, SIGMOID, false>); break;
    case TRIANGULAR: go(surr_rows<T, TRIANGULAR, true>, surr_rows<T, TRIANGULAR, false>); break;
    case PIECEWISE_QUADRATIC:
      go(surr_rows<T, PIECEWISE_QUADRATIC, true>, surr_rows<T, PIECEWISE_QUADRATIC, false>);
      break;
    case PIECEWISE_EXP: go(surr_rows<T, PIECEWISE_EXP, true>, surr_rows<T, PIECEWISE_EXP, false>); break;
    case SOFT_SIGN: go(surr_rows<T, SOFT_SIGN, true>, surr_rows<T, SOFT_SIGN, false>); break;
    case SUPER_SPIKE: go(surr_rows<T, SUPER_SPIKE, true>, surr_rows<T, SUPER_SPIKE, false>); break;
    default: go(surr_rows<T, ERF, true>, surr_rows<T, ERF, false>); break;
  }
}

template <typename T>
void surrogate(const Cfg& c, const T* x, const T* g, T* out, int64_t len, int64_t i0,
               const ScalarTails* tails) {
  surr_row(c, x, g, out, len, i0, tails);
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
  uint8_t* rbits = nullptr;  // carried resets r_t, one bit each (compensated, fast loop)
  int64_t NB = 0;            // bytes per (b, t) row of rbits: ceil(N / 8)
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

// Parameter gradients, as autograd computes them: each use of a parameter in a step gives a
// term (B, *f) that is summed to the parameter's shape on its own (at::sum_to, what autograd's
// engine calls), and the sums are added in the order autograd's engine adds them: step by
// step in reverse time, within a step in the order of the slots below. The loops write the
// terms into a (T, S, B, N) buffer; lif_backward reduces it (reduce_terms).
struct Slots {
  int64_t S = 0;  // slots per step
  // slot of each term (-1: not computed). Leak: l1 (charge), l2 (the second evaluation of the
  // charge of snnTorch's zero reset, whose term autograd adds first). Threshold: A (same-step
  // subtract reset), B (firing), C (carried reset after the charge), D (before it), E (the
  // compared threshold θ + κ·a, adaptation). Then α, κ, ρ, w, graded factor.
  int64_t l1 = -1, l2 = -1, thA = -1, thB = -1, thC = -1, thD = -1, thE = -1;
  int64_t al = -1, kp = -1, rh = -1, w = -1, g = -1;
  // per parameter (leak, θ, α, κ, ρ, w, g): its slots in the order autograd adds them
  std::vector<int64_t> order[7];
};

template <typename T>
struct Terms {
  T* base = nullptr;
  int64_t S = 0, B = 0, N = 0;
  T* row(int64_t t, int64_t slot, int64_t b, int64_t n0) const {
    return base + ((t * S + slot) * B + b) * N + n0;
  }
};

template <typename T>
struct BwdArgs {
  const T *h, *gspk, *gvT, *giT, *gtr, *v0, *i0, *x, *leak, *th, *al;
  T *gx, *gv0, *gi0;
  int64_t T_, N;
  int64_t lrs, trs, ars;  // row stride of leak, threshold, alpha: N, or 0 (shared by the batch)
  int64_t xsb, xst;       // strides of x over batch and time
  bool gspk_scalar, gtr_scalar, gv_scalar;  // broadcast from one value (e.g. of a .sum())
  // strides over batch and time of the spike and trace gradients (contiguous along N)
  int64_t gsb = 0, gst = 0, tsb = 0, tst = 0;
  // adaptation and one-to-one recurrence (see FwdArgs): inputs, output gradients, gradients
  const T *gaT = nullptr, *gpT = nullptr, *a0 = nullptr, *p0 = nullptr, *kp = nullptr,
          *rh = nullptr, *w = nullptr;
  T *ga0 = nullptr, *gp0 = nullptr;
  int64_t krs = 0, rrs = 0, wrs = 0;
  const T *ref0 = nullptr, *g = nullptr;  // refractory counter, graded-spike factor
  int64_t grs = 0;
  const uint8_t* rbits = nullptr;  // carried resets r_t saved by the forward (compensated)
  int64_t NB = 0;                  // bytes per (b, t) row of rbits
  int64_t B = 0;
  const Slots* sl = nullptr;  // where the parameter terms go
  const ScalarTails* tails = nullptr;  // torch.sigmoid's scalar elements (sigmoid surrogate)
  Terms<T> tm;
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
  const Slots& sl = *a.sl;
  auto term = [&](int64_t t, int64_t slot) { return a.tm.row(t, slot, b, n0); };
  const int64_t Tn = a.T_, N = a.N;
  const int64_t base = b * N + n0;
  const ParamRows<T> pm(c, a, b, n0);
  const T *lk = pm.lk, *th = pm.th, *al = pm.al, *kp = pm.kp, *rh = pm.rh, *w = pm.w,
          *gg = pm.gg;
  const T vr = T(c.vr);
  const T R = T(c.refr);
  const bool need_leak = sl.l1 >= 0, need_th = !sl.order[1].empty();
  const bool need_al = sl.al >= 0;
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
      const T* g = a.gtr + b * a.tsb + t * a.tst + n0;
      for (int64_t k = 0; k < len; ++k) gv[k] = gv[k] + g[k];
    }
    if (a.gspk && a.gspk_scalar) {
      for (int64_t k = 0; k < len; ++k) gs[k] = a.gspk[0];
    } else if (a.gspk) {
      const T* g = a.gspk + b * a.gsb + t * a.gst + n0;
      for (int64_t k = 0; k < len; ++k) gs[k] = g[k];
    } else {
      for (int64_t k = 0; k < len; ++k) gs[k] = T(0);
    }
    if (c.recur) for (int64_t k = 0; k < len; ++k) gs[k] = gs[k] + gp[k];  // out_t feeds t+1
    if (c.graded) {  // out = s·g
      if (sl.g >= 0) {
        T* o = term(t, sl.g);
        for (int64_t k = 0; k < len; ++k) o[k] = gs[k] * s[k];
      }
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
    surrogate(c, d, gs, sg, len, base, a.tails);
    for (int64_t k = 0; k < len; ++k) gh[k] = ghr[k] + sg[k];
    if (c.refr) {  // h = where(ref > 0, v_reset, h)
      const uint8_t* m = sc.mbuf.data() + t * len;
      for (int64_t k = 0; k < len; ++k) gh[k] = m[k] ? T(0) : gh[k];
    }
    if (need_te) {
      if (c.adapt) {
        for (int64_t k = 0; k < len; ++k) gte[k] = gte[k] + (-sg[k]);
      } else if (need_th) {  // the threshold terms, each reduced on its own
        if (sl.thA >= 0) {
          T* o = term(t, sl.thA);
          for (int64_t k = 0; k < len; ++k) o[k] = gte[k];
        }
        T* o = term(t, sl.thB);
        for (int64_t k = 0; k < len; ++k) o[k] = -sg[k];
      }
    }
    // carried reset after the charge
    if (c.carried() && !c.pre()) {
      if (c.reset == SUBTRACT) {
        if (need_th) {
          T* o = term(t, sl.thC);
          for (int64_t k = 0; k < len; ++k) o[k] = (-gh[k]) * r[k];
        }
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
    T* tl = need_leak ? term(t, sl.l1) : nullptr;
    // charge
    switch (c.charge) {
      case BETA:
        for (int64_t k = 0; k < len; ++k) {
          gv1[k] = gh[k] * lk[k];
          gd[k] = gh[k];
        }
        if (need_leak) for (int64_t k = 0; k < len; ++k) tl[k] = gh[k] * v1[k];
        break;
      case TAU:
        for (int64_t k = 0; k < len; ++k) {
          gv1[k] = gh[k] + (-gh[k]) / lk[k];
          gd[k] = gh[k];
        }
        if (need_leak) {
          for (int64_t k = 0; k < len; ++k)
            tl[k] = gh[k] * (((v1[k] - vr) / lk[k]) / lk[k]);
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
            tl[k] = (-gh[k]) * (((drv[k] - (v1[k] - vr)) / lk[k]) / lk[k]);
        }
        break;
      case RATE:
        for (int64_t k = 0; k < len; ++k) {
          gv1[k] = gh[k] + (-gh[k]) * lk[k];
          gd[k] = gh[k];
        }
        if (need_leak) {
          for (int64_t k = 0; k < len; ++k) tl[k] = (-gh[k]) * (v1[k] - vr);
        }
        break;
      default:
        for (int64_t k = 0; k < len; ++k) {
          T ge = gh[k] * lk[k];
          gv1[k] = gh[k] + (-ge);
          gd[k] = ge;
        }
        if (need_leak) {
          for (int64_t k = 0; k < len; ++k) tl[k] = gh[k] * (drv[k] - (v1[k] - vr));
        }
        break;
    }
    if (c.syn) {
      for (int64_t k = 0; k < len; ++k) gd[k] = gd[k] + gi[k];
      if (need_al) {
        const T* ip = sc.ibuf.data() + t * len;  // i_{t-1}
        T* o = term(t, sl.al);
        for (int64_t k = 0; k < len; ++k) o[k] = gd[k] * ip[k];
      }
      for (int64_t k = 0; k < len; ++k) gi[k] = gd[k] * al[k];
      if (c.recur) for (int64_t k = 0; k < len; ++k) grc[k] = gd[k];  // i = α·i + x + rec
    }
    if (a.gx) {  // may be h's own buffer (gx_into_h): h[t] is not read after this point
      T* g = a.gx + off;
      for (int64_t k = 0; k < len; ++k) g[k] = gd[k];
    }
    if (c.recur) {  // rec = p_{t-1}·w
      if (sl.w >= 0) {
        T* o = term(t, sl.w);
        for (int64_t k = 0; k < len; ++k) o[k] = grc[k] * prev_out(t, k);
      }
      for (int64_t k = 0; k < len; ++k) gp[k] = grc[k] * w[k];
    }
    // carried reset before the charge
    if (c.carried() && c.pre()) {
      if (c.reset == SUBTRACT) {
        if (need_th) {
          T* o = term(t, sl.thD);
          for (int64_t k = 0; k < len; ++k) o[k] = (-gv1[k]) * r[k];
        }
      } else {
        for (int64_t k = 0; k < len; ++k) gv1[k] = gv1[k] * (T(1) - r[k]);
      }
    }
    if (c.adapt) {  // θ_t = θ + κ·a_{t-1};  a_t = ρ·a_{t-1} + s_t
      const T* at = sc.abuf.data() + t * len;
      if (sl.rh >= 0) {
        T* o = term(t, sl.rh);
        for (int64_t k = 0; k < len; ++k) o[k] = ga[k] * at[k];
      }
      if (sl.kp >= 0) {
        T* o = term(t, sl.kp);
        for (int64_t k = 0; k < len; ++k) o[k] = gte[k] * at[k];
      }
      if (need_th) {
        T* o = term(t, sl.thE);
        for (int64_t k = 0; k < len; ++k) o[k] = gte[k];
      }
      for (int64_t k = 0; k < len; ++k) ga[k] = ga[k] * rh[k] + gte[k] * kp[k];
    }
    for (int64_t k = 0; k < len; ++k) gv[k] = gv1[k];
    if (c.edge(t)) {  // truncated BPTT: the state before this step was detached
      for (int64_t k = 0; k < len; ++k) gv[k] = gi[k] = ga[k] = gp[k] = T(0);
    }
  }
  if (a.gv0) for (int64_t k = 0; k < len; ++k) a.gv0[base + k] = gv[k];
  if (a.gi0) for (int64_t k = 0; k < len; ++k) a.gi0[base + k] = gi[k];
  if (a.ga0) for (int64_t k = 0; k < len; ++k) a.ga0[base + k] = ga[k];
  if (a.gp0) for (int64_t k = 0; k < len; ++k) a.gp0[base + k] = gp[k];
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

// ---------------------------------------------------------------- fast loops
// Every rule of the table (charge x reset x timing x comparator) without a synapse,
// adaptation, recurrence, refractory period or graded spikes. The rules are template
// arguments (the comparator too in the forward), so each step is one loop over the neurons of
// a block with no branch left in it, which vectorizes. Same operations in the same order as
// rules.py (forward) and as autograd's engine (backward: where a tensor is used more than
// once in a step, its gradients are added in the order the engine adds them; see bwd_rule).
constexpr int64_t PREFETCH = 4;  // steps ahead

template <int64_t V>
using IC = std::integral_constant<int64_t, V>;

// rules.py's predicates, at compile time.
template <int64_t RS, int64_t TM>
struct RuleOf {
  static constexpr bool carried = RS != NONE && TM != IMMEDIATE;
  static constexpr bool pre = carried && (TM == DELAYED_PRE || TM == COMPENSATED_PRE);
  static constexpr bool comp = carried && (TM == COMPENSATED || TM == COMPENSATED_PRE);
  static constexpr bool stores_h = RS == NONE || TM == DELAYED || TM == DELAYED_PRE;
  // snnTorch's zero reset after the charge, h - r·h': the charge evaluated twice
  static constexpr bool two = carried && !pre && RS == ZERO;
};

bool fast_ok(const Cfg& c) { return !c.syn && !c.adapt && !c.recur && !c.refr && !c.graded; }

// f(IC<charge>, IC<reset>, IC<timing>) for the rules of c (reset "none": timing "immediate").
template <typename F>
void with_rule(const Cfg& c, const F& f) {
  auto by_reset = [&](auto ch) {
    auto by_timing = [&](auto rs) {
      switch (c.timing) {
        case IMMEDIATE: f(ch, rs, IC<IMMEDIATE>{}); break;
        case DELAYED: f(ch, rs, IC<DELAYED>{}); break;
        case DELAYED_PRE: f(ch, rs, IC<DELAYED_PRE>{}); break;
        case COMPENSATED: f(ch, rs, IC<COMPENSATED>{}); break;
        default: f(ch, rs, IC<COMPENSATED_PRE>{}); break;
      }
    };
    if (c.reset == NONE) {
      f(ch, IC<NONE>{}, IC<IMMEDIATE>{});
    } else if (c.reset == SUBTRACT) {
      by_timing(IC<SUBTRACT>{});
    } else {
      by_timing(IC<ZERO>{});
    }
  };
  switch (c.charge) {
    case BETA: by_reset(IC<BETA>{}); break;
    case TAU: by_reset(IC<TAU>{}); break;
    case TAU_INPUT: by_reset(IC<TAU_INPUT>{}); break;
    case RATE: by_reset(IC<RATE>{}); break;
    default: by_reset(IC<RATE_INPUT>{}); break;
  }
}

// H(d) with the comparator a runtime flag; bitwise operators, not || and &&, so that no
// branch is left (a branch on the data would keep the loop from vectorizing).
template <typename T>
inline T heav_rt(T d, bool ge) {
  return ((d > T(0)) | (ge & (d == T(0)))) ? T(1) : T(0);
}

// rules.charge, in its operation order.
template <int64_t CH, typename T>
inline T charge_of(T v, T x, T l, T vr) {
  if constexpr (CH == BETA) {
    return l * v + x;
  } else if constexpr (CH == TAU) {
    return v - (v - vr) / l + x;
  } else if constexpr (CH == TAU_INPUT) {
    return v + (x - (v - vr)) / l;
  } else if constexpr (CH == RATE) {
    return v - (v - vr) * l + x;
  } else {
    return v + (x - (v - vr)) * l;
  }
}

// rules.apply_carried_reset_pre.
template <int64_t RS, typename T>
inline T pre_of(T v, T r, T th, T vr, bool vr0) {
  if constexpr (RS == SUBTRACT) {
    return v - r * th;
  } else {
    const T o = (T(1) - r) * v;
    return vr0 ? o : o + r * vr;
  }
}

// rules.apply_reset: the stored membrane. (For v_reset = 0, h - x·(h - 0) has the bits of
// rules.py's h - x·h: h - 0 is h, signed zeros included.)
template <int64_t RS, int64_t TM, typename T>
inline T stored_of(T h, T s, T r, T th, T vr) {
  using R = RuleOf<RS, TM>;
  if constexpr (R::stores_h) {
    return h;
  } else if constexpr (!R::carried) {
    if constexpr (RS == SUBTRACT) {
      return h - s * th;
    } else {
      return s * vr + (T(1) - s) * h;
    }
  } else {
    const T dr = s - r;
    if constexpr (RS == SUBTRACT) {
      return h - dr * th;
    } else {
      return h - dr * (h - vr);
    }
  }
}

// The carried resets of the compensated timings, saved one bit per neuron-step (bit j of byte
// i: neuron 8i + j of the row; blocks start at multiples of 8).
template <typename T>
__attribute__((noinline)) void pack_bits(const T* __restrict r, uint8_t* __restrict out,
                                         int64_t len) {
  alignas(64) uint8_t u8[FWD_BLK + 8];
  for (int64_t k = 0; k < len; ++k) u8[k] = r[k] != T(0);  // one byte each (vectorized)
  for (int64_t k = len; k < ((len + 7) & ~int64_t(7)); ++k) u8[k] = 0;
  for (int64_t i = 0; i < (len + 7) / 8; ++i) {  // 8 bytes of 0/1 -> 8 bits
    uint64_t x;
    std::memcpy(&x, u8 + 8 * i, 8);
    out[i] = static_cast<uint8_t>((x * 0x0102040810204080ULL) >> 56);
  }
}

template <typename T>
__attribute__((noinline)) void unpack_bits(const uint8_t* __restrict in, T* __restrict r,
                                           int64_t len) {
  alignas(64) uint8_t u8[FWD_BLK + 8];
  for (int64_t i = 0; i < (len + 7) / 8; ++i) {  // 8 bits -> 8 bytes of 0/1
    const uint64_t y = (uint64_t(in[i]) * 0x0101010101010101ULL) & 0x8040201008040201ULL;
    const uint64_t w = ((y + 0x7F7F7F7F7F7F7F7FULL) >> 7) & 0x0101010101010101ULL;
    std::memcpy(u8 + 8 * i, &w, 8);
  }
  for (int64_t k = 0; k < len; ++k) r[k] = T(u8[k]);  // vectorized
}

// One step of one block. A function of its own, with restrict-qualified arguments: inlined
// into the time loop, where its output rows are picked per call (an output that is not wanted
// goes to a scratch row), the compiler gives up vectorizing it.
template <typename T, int64_t CH, int64_t RS, int64_t TM, bool TRACE>
__attribute__((noinline)) void fwd_step(const T* __restrict xt, const T* __restrict lk,
                                        const T* __restrict th, T* __restrict v,
                                        T* __restrict so, T* __restrict ho, T* __restrict to,
                                        T* __restrict rrow, int64_t len, T vr, bool vr0,
                                        bool ge) {
  using R = RuleOf<RS, TM>;
  for (int64_t k = 0; k < len; ++k) {
    T vk = v[k];
    T r = T(0);
    if constexpr (R::carried) r = heav_rt(vk - th[k], ge);
    if constexpr (R::pre) {
      if constexpr (RS == SUBTRACT) {
        vk = vk - r * th[k];
      } else {  // (1 - r)·v, then + r·vr where v_reset != 0 (a select: no branch)
        const T o = (T(1) - r) * vk;
        const T o2 = o + r * vr;
        vk = vr0 ? o : o2;
      }
    }
    T hh = charge_of<CH>(vk, xt[k], lk[k], vr);
    if constexpr (R::carried && !R::pre) {
      if constexpr (RS == SUBTRACT) {
        hh = hh - r * th[k];
      } else {
        hh = hh - r * (hh - vr);
      }
    }
    const T sk = heav_rt(hh - th[k], ge);
    const T vn = stored_of<RS, TM>(hh, sk, r, th[k], vr);
    v[k] = vn;
    so[k] = sk;
    ho[k] = hh;
    if constexpr (TRACE) to[k] = vn;
    if constexpr (R::comp) rrow[k] = r;
  }
}

template <typename T, int64_t CH, int64_t RS, int64_t TM>
void fwd_rule(const Cfg& c, const FwdArgs<T>& a, int64_t b, int64_t n0, int64_t len) {
  using R = RuleOf<RS, TM>;
  T v[FWD_BLK], sink[FWD_BLK], sink2[FWD_BLK], rrow[FWD_BLK];
  const int64_t base = b * a.N + n0;
  const T* lk = a.leak + b * a.lrs + n0;
  const T* th = a.th + b * a.trs + n0;
  const T vr = T(c.vr);
  for (int64_t k = 0; k < len; ++k) v[k] = a.v0[base + k];
  for (int64_t t = 0; t < a.T_; ++t) {
    const int64_t off = (b * a.T_ + t) * a.N + n0;
    const T* xt = a.x + b * a.xsb + t * a.xst + n0;
    T* ho = a.h ? a.h + off : sink;
    if (a.trace) {
      fwd_step<T, CH, RS, TM, true>(xt, lk, th, v, a.spk + off, ho, a.trace + off, rrow, len,
                                    vr, c.vr == 0.0, c.ge);
    } else {
      fwd_step<T, CH, RS, TM, false>(xt, lk, th, v, a.spk + off, ho, sink2, rrow, len, vr,
                                     c.vr == 0.0, c.ge);
    }
    if (R::comp && a.rbits) {  // the carried resets, for the backward: one bit each
      pack_bits(rrow, a.rbits + (b * a.T_ + t) * a.NB + n0 / 8, len);
    }
  }
  for (int64_t k = 0; k < len; ++k) a.vT[base + k] = v[k];
}

template <typename T>
void fwd_fast(const Cfg& c, const FwdArgs<T>& a, int64_t B) {
  with_rule(c, [&](auto ch, auto rs, auto tm) {
    auto go = [&](auto fn) {
      for_blocks(B, a.T_, a.N, FWD_BLK, [&](int64_t b, int64_t n0, int64_t len) {
        fn(c, a, b, n0, len);
      });
    };
    go(fwd_rule<T, decltype(ch)::value, decltype(rs)::value, decltype(tm)::value>);
  });
}

// The charge's backward for the gradient g of h: the gradients it sends to the membrane before
// the charge, in the order autograd's engine delivers them (qa: the v term itself, qb: the
// leak term's v, absent for "beta"), and to the drive x.
template <int64_t CH, typename T>
inline void charge_bwd(T g, T l, T& qa, T& qb, T& gx) {
  if constexpr (CH == BETA) {  // h = l·v + x
    qa = g * l;
    qb = T(0);
    gx = g;
  } else if constexpr (CH == TAU) {  // h = (v - (v - vr)/l) + x
    qa = g;
    qb = (-g) / l;
    gx = g;
  } else if constexpr (CH == TAU_INPUT) {  // h = v + (x - (v - vr))/l
    const T ge = g / l;
    qa = g;
    qb = -ge;
    gx = ge;
  } else if constexpr (CH == RATE) {  // h = (v - (v - vr)·l) + x
    qa = g;
    qb = (-g) * l;
    gx = g;
  } else {  // h = v + (x - (v - vr))·l
    const T ge = g * l;
    qa = g;
    qb = -ge;
    gx = ge;
  }
}

// The leak's term of one charge: g·∂h/∂l, as autograd's Mul/Div backward computes it.
template <int64_t CH, typename T>
inline T leak_term(T g, T v1, T x, T l, T vr) {
  if constexpr (CH == BETA) {
    return g * v1;
  } else if constexpr (CH == TAU) {
    return g * (((v1 - vr) / l) / l);
  } else if constexpr (CH == TAU_INPUT) {
    return (-g) * (((x - (v1 - vr)) / l) / l);
  } else if constexpr (CH == RATE) {
    return (-g) * (v1 - vr);
  } else {
    return g * (x - (v1 - vr));
  }
}

// The stored membrane before step t (v_{t-1}, from h_{t-1}; v0 at t = 0) and the carried reset
// r_t of the delayed timings, H(v_{t-1} - θ) (the compensated ones read theirs from rbits).
template <typename T, int64_t RS, int64_t TM>
__attribute__((noinline)) void bwd_prev(const T* __restrict hq, const uint8_t* __restrict rq,
                                        const uint8_t* __restrict rt, const T* __restrict v0,
                                        const T* __restrict th, T* __restrict vp,
                                        T* __restrict rr, int64_t len, T vr, bool ge,
                                        bool need_vp) {
  using R = RuleOf<RS, TM>;
  T rpr[BWD_BLK];  // r_{t-1} (compensated)
  if (need_vp) {
    if (R::comp && hq != nullptr) unpack_bits(rq, rpr, len);
    if (hq != nullptr) {
      for (int64_t k = 0; k < len; ++k) {
        const T hp = hq[k];
        const T sp = heav_rt(hp - th[k], ge);
        const T rp = R::comp ? rpr[k] : T(0);
        vp[k] = stored_of<RS, TM>(hp, sp, rp, th[k], vr);
      }
    } else {
      for (int64_t k = 0; k < len; ++k) vp[k] = v0[k];
    }
  }
  if constexpr (R::comp) {
    unpack_bits(rt, rr, len);
  } else if constexpr (R::carried) {
    for (int64_t k = 0; k < len; ++k) rr[k] = heav_rt(vp[k] - th[k], ge);
  }
}

// Pass A of a step: the gradient g of the stored membrane v_t (outside gradient e first, then
// the arrivals q from step t+1, in order; kept in gvr for the threshold's terms), d = h - θ,
// the spike's gradient (the outside one, then the same-step reset's, in the engine's order)
// and the same-step reset's part gr of h's gradient. After this pass h[t] is not read again.
template <typename T, int64_t CH, int64_t RS, int64_t TM, int64_t NQ, bool GV>
__attribute__((noinline)) void bwd_pass_a(const T* __restrict e, const T* __restrict q,
                                          const T* __restrict ht, const T* __restrict th,
                                          const T* __restrict gso, const T* __restrict rr,
                                          T* __restrict gvr, T* __restrict drow,
                                          T* __restrict gsr, T* __restrict grr, int64_t len,
                                          T vr, bool detach, bool ge) {
  using R = RuleOf<RS, TM>;
  for (int64_t k = 0; k < len; ++k) {
    T g = e[k] + q[k];
    if constexpr (NQ > 1) g = g + q[BWD_BLK + k];
    if constexpr (NQ > 2) g = g + q[2 * BWD_BLK + k];
    if constexpr (NQ > 3) g = g + q[3 * BWD_BLK + k];
    if constexpr (GV) gvr[k] = g;  // for the threshold's terms
    const T hh = ht[k];
    const T d = hh - th[k];
    drow[k] = d;
    T gs = gso[k];
    T gr = g;
    if constexpr (!R::stores_h) {  // the same-step reset: its gradient to the spike and to h
      T gsd;
      if constexpr (RS == SUBTRACT) {  // h - s·θ, h - (s - r)·θ
        gsd = gs + (-g) * th[k];
      } else if constexpr (!R::carried) {  // s·vr + (1 - s)·h: through (1 - s)·h first
        gsd = (gs + (-(g * hh))) + g * vr;
        gr = g * (T(1) - heav_rt(d, ge));
      } else {  // h - (s - r)·(h - vr)
        gsd = gs + (-g) * (hh - vr);
        gr = g + (-g) * (heav_rt(d, ge) - rr[k]);
      }
      gs = detach ? gs : gsd;
    }
    gsr[k] = gs;
    grr[k] = gr;
  }
}

// Pass B of a step: from the gradient gh of h, through the carried reset and the charge: the
// input's gradient, and the arrivals q at v_{t-1}.
template <typename T, int64_t CH, int64_t RS, int64_t TM, int64_t NQ>
__attribute__((noinline)) void bwd_pass_b(const T* __restrict ghr, const T* __restrict rr,
                                          const T* __restrict lk, T* __restrict gv1r,
                                          T* __restrict q, T* __restrict gxo, int64_t len) {
  using R = RuleOf<RS, TM>;
  constexpr int64_t NQ1 = CH == BETA ? 1 : 2;
  for (int64_t k = 0; k < len; ++k) {
    const T gh = ghr[k];
    T qa, qb, gx;
    charge_bwd<CH>(gh, lk[k], qa, qb, gx);
    if constexpr (R::two) {  // h = h1 - r·h2: the engine runs h2's chain first
      T qa2, qb2, gx2;
      charge_bwd<CH>((-gh) * rr[k], lk[k], qa2, qb2, gx2);
      gx = gx2 + gx;
      q[k] = qa2;
      if constexpr (NQ1 > 1) {
        q[BWD_BLK + k] = qb2;
        q[2 * BWD_BLK + k] = qa;
        q[3 * BWD_BLK + k] = qb;
      } else {
        q[BWD_BLK + k] = qa;
      }
    } else if constexpr (R::pre) {
      T gv1 = qa;
      if constexpr (NQ1 > 1) gv1 = gv1 + qb;
      gv1r[k] = gv1;
      if constexpr (RS == SUBTRACT) {
        q[k] = gv1;
      } else {
        q[k] = gv1 * (T(1) - rr[k]);
      }
    } else {
      q[k] = qa;
      if constexpr (NQ1 > 1) q[BWD_BLK + k] = qb;
    }
    gxo[k] = gx;
  }
}

// The threshold's terms of a step (slots A, B, C, D; see Slots), each where it is computed.
template <typename T, bool CARRIED>
__attribute__((noinline)) void theta_terms(const Slots& sl, const Terms<T>& tm, int64_t t,
                                           int64_t b, int64_t n0, const T* __restrict gvr,
                                           const T* __restrict drow, const T* __restrict sgr,
                                           const T* __restrict ghr, const T* __restrict gv1r,
                                           const T* __restrict rr, int64_t len, bool ge) {
  if (sl.thA >= 0) {
    T* __restrict o = tm.row(t, sl.thA, b, n0);
    for (int64_t k = 0; k < len; ++k) {
      const T sk = heav_rt(drow[k], ge);
      o[k] = CARRIED ? (-gvr[k]) * (sk - rr[k]) : (-gvr[k]) * sk;
    }
  }
  {
    T* __restrict o = tm.row(t, sl.thB, b, n0);
    for (int64_t k = 0; k < len; ++k) o[k] = -sgr[k];
  }
  if (sl.thC >= 0) {
    T* __restrict o = tm.row(t, sl.thC, b, n0);
    for (int64_t k = 0; k < len; ++k) o[k] = (-ghr[k]) * rr[k];
  }
  if (sl.thD >= 0) {
    T* __restrict o = tm.row(t, sl.thD, b, n0);
    for (int64_t k = 0; k < len; ++k) o[k] = (-gv1r[k]) * rr[k];
  }
}

// The leak's terms of a step: g_h·∂h/∂l with the membrane v1 the charge saw (after a carried
// reset before the charge); with snnTorch's zero reset also the second charge's (slot l2).
template <typename T, int64_t CH, int64_t RS, int64_t TM>
__attribute__((noinline)) void leak_terms(T* __restrict o1, T* __restrict o2,
                                          const T* __restrict ghr, const T* __restrict vpr,
                                          const T* __restrict rr, const T* __restrict th,
                                          const T* __restrict xt, const T* __restrict lk,
                                          int64_t len, T vr, bool vr0) {
  using R = RuleOf<RS, TM>;
  for (int64_t k = 0; k < len; ++k) {
    T v1 = vpr[k];
    if constexpr (R::pre) {
      if constexpr (RS == SUBTRACT) {
        v1 = v1 - rr[k] * th[k];
      } else {
        const T o = (T(1) - rr[k]) * v1;
        const T o2 = o + rr[k] * vr;
        v1 = vr0 ? o : o2;
      }
    }
    const T x = (CH == TAU_INPUT || CH == RATE_INPUT) ? xt[k] : T(0);
    o1[k] = leak_term<CH>(ghr[k], v1, x, lk[k], vr);
    if constexpr (R::two) o2[k] = leak_term<CH>((-ghr[k]) * rr[k], v1, x, lk[k], vr);
  }
}

// Backward of one block over all steps, in reverse. Autograd's engine adds the gradients
// that reach one tensor in the order it runs their nodes: the outputs' first (the spikes, the
// final membrane and the trace come from outside), then by decreasing creation order, so for
// the stored membrane v_t: (its outside gradients), then what step t+1's charge sends (the v
// term, then the leak term's v; with snnTorch's zero reset the second evaluation of the
// charge first), then, where v_t is h_t itself (delayed timings, no reset), the firing's. The
// loop keeps those arrivals in rows (q) from step t+1 to step t and adds them in that order.
// Per step: pass A up to the spike's gradient, the surrogate over the row, pass B the rest.
template <typename T, int64_t CH, int64_t RS, int64_t TM>
void bwd_rule(const Cfg& c, const BwdArgs<T>& a, int64_t b, int64_t n0, int64_t len) {
  using R = RuleOf<RS, TM>;
  constexpr int64_t NQ1 = CH == BETA ? 1 : 2;  // arrivals at v from one charge
  constexpr int64_t NQ = R::pre ? 1 : (R::two ? 2 * NQ1 : NQ1);
  T q[NQ * BWD_BLK];
  T zrow[BWD_BLK], erow[BWD_BLK], gsz[BWD_BLK], gvr[BWD_BLK], drow[BWD_BLK], gsr[BWD_BLK],
      sgr[BWD_BLK], rr[BWD_BLK], gxr[BWD_BLK], vpr[BWD_BLK], ghr[BWD_BLK], gv1r[BWD_BLK],
      grr[BWD_BLK];
  const Slots& sl = *a.sl;
  const int64_t Tn = a.T_, N = a.N;
  const int64_t base = b * N + n0;
  const T* lk = a.leak + b * a.lrs + n0;
  const T* th = a.th + b * a.trs + n0;
  const T vr = T(c.vr);
  const bool ge = c.ge, vr0 = c.vr == 0.0;
  const bool need_l = sl.l1 >= 0, need_t = !sl.order[1].empty();
  const bool need_vp = (R::carried && !R::comp) || need_l;  // v_{t-1}: r_t of delayed, leak
  const bool gspk_full = a.gspk && !a.gspk_scalar;
  const bool gtr_full = a.gtr && !a.gtr_scalar;
  for (int64_t k = 0; k < len; ++k) zrow[k] = T(0);
  for (int64_t k = 0; k < NQ * BWD_BLK; ++k) q[k] = T(0);
  if (!gspk_full) {
    const T g0 = a.gspk ? a.gspk[0] : T(0);
    for (int64_t k = 0; k < len; ++k) gsz[k] = g0;
  }
  const T gt0 = (a.gtr && a.gtr_scalar) ? a.gtr[0] : T(0);
  // gx may share h's buffer (gx_into_h): h[t] is last read by pass A of step t (and h[t-1],
  // read at step t, is overwritten at step t-1)
  const bool into_h = a.gx != nullptr && a.gx == a.h;
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const int64_t off = (b * Tn + t) * N + n0;
    const T* ht = a.h + off;
    const T* gso = gspk_full ? a.gspk + b * a.gsb + t * a.gst + n0 : gsz;
    const T* gto = gtr_full ? a.gtr + b * a.tsb + t * a.tst + n0 : nullptr;
    if (t >= PREFETCH) {  // time runs backwards: help the hardware prefetcher
      const int64_t back = PREFETCH * N;
      for (int64_t k = 0; k < len; k += 64 / int64_t(sizeof(T))) {
        __builtin_prefetch(ht - back + k);
        if (gspk_full) __builtin_prefetch(gso - PREFETCH * a.gst + k);
        if (gtr_full) __builtin_prefetch(gto - PREFETCH * a.tst + k);
        if (a.gx && !into_h) __builtin_prefetch(a.gx + off - back + k, 1);
      }
      if constexpr (R::comp) {
        const uint8_t* rb = a.rbits + (b * Tn + t - PREFETCH) * a.NB + n0 / 8;
        for (int64_t k = 0; k < (len + 7) / 8; k += 64) __builtin_prefetch(rb + k);
      }
    }
    // the outside gradient of v_t: v_T's (last step) and the trace's
    const T* e = zrow;
    if (t == Tn - 1 && (a.gvT || a.gtr)) {
      for (int64_t k = 0; k < len; ++k)
        erow[k] = a.gvT ? a.gvT[a.gv_scalar ? 0 : base + k] : T(0);
      if (gtr_full) {
        const T* g = gto;
        for (int64_t k = 0; k < len; ++k) erow[k] = erow[k] + g[k];
      } else if (a.gtr) {
        for (int64_t k = 0; k < len; ++k) erow[k] = erow[k] + gt0;
      }
      e = erow;
    } else if (gtr_full) {
      e = gto;
    } else if (a.gtr) {
      if (t == Tn - 2) {
        for (int64_t k = 0; k < len; ++k) erow[k] = gt0;
      }
      e = erow;
    }
    const uint8_t* rb = R::comp ? a.rbits + (b * Tn + t) * a.NB + n0 / 8 : nullptr;
    bwd_prev<T, RS, TM>(t > 0 ? ht - N : nullptr, (R::comp && t > 0) ? rb - a.NB : nullptr, rb,
                        a.v0 + base, th, vpr, rr, len, vr, ge,
                        need_vp);
    if (need_t) {
      bwd_pass_a<T, CH, RS, TM, NQ, true>(e, q, ht, th, gso, rr, gvr, drow, gsr, grr, len, vr,
                                          c.detach, ge);
    } else {
      bwd_pass_a<T, CH, RS, TM, NQ, false>(e, q, ht, th, gso, rr, gvr, drow, gsr, grr, len,
                                           vr, c.detach, ge);
    }
    surr_row(c, drow, gsr, ghr, len, base, a.tails, grr, need_t ? sgr : nullptr);
    // h[t] is not read after pass A: x's gradient may overwrite it (gx_into_h)
    bwd_pass_b<T, CH, RS, TM, NQ>(ghr, rr, lk, gv1r, q, a.gx ? a.gx + off : gxr, len);
    if (c.edge(t)) {  // truncated BPTT: the state before this step was detached
      for (int64_t k = 0; k < NQ * BWD_BLK; ++k) q[k] = T(0);
    }
    if (need_t) theta_terms<T, R::carried>(sl, a.tm, t, b, n0, gvr, drow, sgr, ghr, gv1r, rr, len, ge);
    if (need_l) {
      const T* xt = (CH == TAU_INPUT || CH == RATE_INPUT) ? a.x + b * a.xsb + t * a.xst + n0
                                                          : zrow;
      leak_terms<T, CH, RS, TM>(a.tm.row(t, sl.l1, b, n0),
                                R::two ? a.tm.row(t, sl.l2, b, n0) : nullptr, ghr, vpr, rr, th,
                                xt, lk, len, vr, vr0);
    }
  }
  if (a.gv0) {  // v0's gradient: what step 0 sends, in order
    for (int64_t k = 0; k < len; ++k) {
      T g = q[k];
      if constexpr (NQ > 1) g = g + q[BWD_BLK + k];
      if constexpr (NQ > 2) g = g + q[2 * BWD_BLK + k];
      if constexpr (NQ > 3) g = g + q[3 * BWD_BLK + k];
      a.gv0[base + k] = g;
    }
  }
}

template <typename T>
void bwd_fast(const Cfg& c, const BwdArgs<T>& a, int64_t B) {
  with_rule(c, [&](auto ch, auto rs, auto tm) {
    for_blocks(B, a.T_, a.N, BWD_BLK, [&](int64_t b, int64_t n0, int64_t len) {
      bwd_rule<T, decltype(ch)::value, decltype(rs)::value, decltype(tm)::value>(c, a, b, n0,
                                                                                  len);
    });
  });
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

// The layout of the neurons: (B, *features), N = prod(features).
struct Layout {
  int64_t B, N;
  std::vector<int64_t> full;  // (B, *features)
};

Layout layout_of(int64_t B, int64_t N, c10::IntArrayRef features) {
  Layout l{B, N, {B}};
  int64_t n = 1;
  for (int64_t f : features) {
    l.full.push_back(f);
    n *= f;
  }
  TORCH_CHECK(n == N, "brain_ai lif: features must multiply to N");
  return l;
}

// A parameter (leak, θ, α, κ, ρ, w, g) of any shape that broadcasts to (B, *features) and of a
// dtype no wider than the state's, as the rows the loops read: one value, one (N,) row shared
// by the batch (row stride 0) or (B, N) rows (stride N). No copy where it is laid out so.
struct PRow {
  at::Tensor t;
  int64_t rs;
};

PRow param_row(const at::Tensor& p, const char* name, at::ScalarType dt, const Layout& l) {
  TORCH_CHECK(p.device().is_cpu() && p.is_floating_point() &&
                  at::is_expandable_to(p.sizes(), l.full),
              "brain_ai lif: ", name, " must be a floating-point CPU tensor that broadcasts to "
              "(B, *features)");
  at::Tensor q = p.scalar_type() == dt ? p : p.to(dt);
  if (q.numel() == 1) return {q.reshape({1}), 0};
  at::Tensor e = q.expand(l.full);
  if (l.B == 1 || e.stride(0) == 0) return {e.select(0, 0).reshape({l.N}).contiguous(), 0};
  return {e.reshape({l.B, l.N}).contiguous(), l.N};
}

template <typename T>
const T* param_rows(const at::Tensor& t, int64_t N, std::vector<T>& row) {
  if (t.numel() != 1 || N == 1) return t.data_ptr<T>();  // (B, N) or (N,)
  row.assign(static_cast<size_t>(N), t.data_ptr<T>()[0]);
  return row.data();
}

using Opt = std::optional<at::Tensor>;

bool given(const Opt& t) { return t.has_value() && t->defined(); }

// All parameters as rows (absent ones: undefined, stride 0), in the op's order.
struct Params {
  PRow leak, th, al, kp, rh, w, g;
};

Params params_of(const Cfg& c, const at::Tensor& leak, const at::Tensor& th, const Opt& alpha,
                 const Opt& kappa, const Opt& rho, const Opt& w, const Opt& graded,
                 at::ScalarType dt, const Layout& l) {
  Params p;
  p.leak = param_row(leak, "leak", dt, l);
  p.th = param_row(th, "threshold", dt, l);
  if (c.syn) {
    TORCH_CHECK(given(alpha), "brain_ai lif: a synapse needs alpha");
    p.al = param_row(*alpha, "alpha", dt, l);
  }
  if (c.adapt) {
    TORCH_CHECK(given(kappa) && given(rho), "brain_ai lif: adaptation needs kappa, rho");
    p.kp = param_row(*kappa, "kappa", dt, l);
    p.rh = param_row(*rho, "rho", dt, l);
  }
  if (c.recur) {
    TORCH_CHECK(given(w), "brain_ai lif: recurrence needs w");
    p.w = param_row(*w, "w", dt, l);
  }
  if (c.graded) {
    TORCH_CHECK(given(graded), "brain_ai lif: graded spikes need the factor");
    p.g = param_row(*graded, "graded", dt, l);
  }
  return p;
}

// The optional features' states (adaptation, recurrence, refractory period).
void check_states(const Cfg& c, const Opt& a0, const Opt& p0, const Opt& ref0, at::ScalarType dt,
                  int64_t numel) {
  if (c.adapt) {
    TORCH_CHECK(given(a0), "brain_ai lif: adaptation needs a0");
    check(*a0, "a0", dt, numel);
  }
  if (c.recur) {
    TORCH_CHECK(given(p0), "brain_ai lif: recurrence needs p0");
    check(*p0, "p0", dt, numel);
  }
  if (c.refr) {
    TORCH_CHECK(given(ref0), "brain_ai lif: a refractory period needs ref0");
    check(*ref0, "ref0", dt, numel);
  }
}

std::vector<at::Tensor> lif_forward(const at::Tensor& x, const at::Tensor& v0, const Opt& i0,
                                    const Opt& a0, const Opt& p0, const Opt& ref0,
                                    const at::Tensor& leak, const at::Tensor& th,
                                    const Opt& alpha, const Opt& kappa, const Opt& rho,
                                    const Opt& w, const Opt& graded, c10::IntArrayRef features,
                                    int64_t charge, int64_t reset, int64_t timing, bool ge,
                                    bool synapse, bool detach_reset, int64_t surrogate, bool adapt,
                                    bool recur, int64_t refractory, bool graded_spikes,
                                    double v_reset, double surrogate_param, bool save_h,
                                    bool record_v) {
  const Cfg c = parse(charge, reset, timing, ge, synapse, detach_reset, surrogate, adapt, recur,
                      refractory, graded_spikes, v_reset, surrogate_param);
  TORCH_CHECK(x.dim() == 3, "brain_ai lif: x must be (B, T, N)");
  const int64_t B = x.size(0), T_ = x.size(1), N = x.size(2);
  const auto dt = x.scalar_type();
  check_x(x, dt, B, T_, N);
  check(v0, "v0", dt, B * N);
  const Layout l = layout_of(B, N, features);
  const Params pr = params_of(c, leak, th, alpha, kappa, rho, w, graded, dt, l);
  if (c.syn) {
    TORCH_CHECK(given(i0), "brain_ai lif: a synapse needs i0");
    check(*i0, "i0", dt, B * N);
  }
  check_states(c, a0, p0, ref0, dt, B * N);
  const bool fast = fast_ok(c);
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
  // the carried resets of the compensated timings, for the fast backward (one byte each)
  const int64_t NB = (N + 7) / 8;
  at::Tensor rbits = (fast && save_h && c.carried() && c.comp())
                         ? pooled_empty({B, T_, NB}, at::kByte)
                         : at::empty({0}, opts.dtype(at::kByte));
  AT_DISPATCH_FLOATING_TYPES(dt, "brain_ai_lif_forward", [&] {
    std::vector<scalar_t> lrow, trow, arow, krow, rrow, wrow, grow;
    FwdArgs<scalar_t> a{x.data_ptr<scalar_t>(), v0.data_ptr<scalar_t>(),
                        c.syn ? i0->data_ptr<scalar_t>() : nullptr,
                        param_rows<scalar_t>(pr.leak.t, N, lrow),
                        param_rows<scalar_t>(pr.th.t, N, trow),
                        c.syn ? param_rows<scalar_t>(pr.al.t, N, arow) : nullptr,
                        spk.data_ptr<scalar_t>(), save_h ? h.data_ptr<scalar_t>() : nullptr,
                        trace.numel() ? trace.data_ptr<scalar_t>() : nullptr,
                        vT.data_ptr<scalar_t>(), c.syn ? iT.data_ptr<scalar_t>() : nullptr,
                        T_, N, pr.leak.rs, pr.th.rs, c.syn ? pr.al.rs : 0, x.stride(0),
                        x.stride(1)};
    if (c.adapt) {
      a.a0 = a0->data_ptr<scalar_t>();
      a.kp = param_rows<scalar_t>(pr.kp.t, N, krow);
      a.rh = param_rows<scalar_t>(pr.rh.t, N, rrow);
      a.aT = aT.data_ptr<scalar_t>();
      a.krs = pr.kp.rs;
      a.rrs = pr.rh.rs;
    }
    if (c.recur) {
      a.p0 = p0->data_ptr<scalar_t>();
      a.w = param_rows<scalar_t>(pr.w.t, N, wrow);
      a.pT = pT.data_ptr<scalar_t>();
      a.wrs = pr.w.rs;
    }
    if (c.refr) {
      a.ref0 = ref0->data_ptr<scalar_t>();
      a.refT = refT.data_ptr<scalar_t>();
    }
    if (c.graded) {
      a.g = param_rows<scalar_t>(pr.g.t, N, grow);
      a.grs = pr.g.rs;
    }
    a.rbits = rbits.numel() ? rbits.data_ptr<uint8_t>() : nullptr;
    a.NB = NB;
    if (fast) {
      fwd_fast(c, a, B);
    } else {
      for_blocks(B, T_, N, BLK, [&](int64_t b, int64_t n0, int64_t len) {
        fwd_block(c, a, b, n0, len);
      });
    }
  });
  return {spk, h, vT, iT, aT, pT, refT, trace, rbits};
}

// The slots of the parameters' per-step terms (see Slots) for this call.
Slots slots_of(const Cfg& c, bool fast, const bool need[7]) {
  Slots s;
  auto add = [&](int64_t& slot, int which) {
    slot = s.S++;
    s.order[which].push_back(slot);
  };
  const bool post = c.carried() && !c.pre(), pre = c.carried() && c.pre();
  if (need[0]) {
    if (fast && post && c.reset == ZERO) add(s.l2, 0);  // the second charge's, added first
    add(s.l1, 0);
  }
  if (need[1]) {
    if (!c.adapt) {
      if (c.reset == SUBTRACT && !c.delayed()) add(s.thA, 1);
      add(s.thB, 1);
    }
    if (post && c.reset == SUBTRACT) add(s.thC, 1);
    if (pre && c.reset == SUBTRACT) add(s.thD, 1);
    if (c.adapt) add(s.thE, 1);
  }
  if (need[2] && c.syn) add(s.al, 2);
  if (need[3] && c.adapt) add(s.kp, 3);
  if (need[4] && c.adapt) add(s.rh, 4);
  if (need[5] && c.recur) add(s.w, 5);
  if (need[6] && c.graded) add(s.g, 6);
  return s;
}

// A parameter's gradient from its per-step terms ((T, S, B, N) buffer), as autograd's engine
// forms it: each term summed to the parameter's shape on its own (at::sum_to, in the state
// dtype, then cast to the parameter's), the sums added from the last step to the first and
// within a step in slot order. A step's term of fewer elements than ATen's grain
// (at::internal::GRAIN_SIZE) is summed serially by at::sum; so is each row of one at::sum over
// all steps' terms at once (the rows split over threads, each row within one), with the same
// loop: for a one-value or per-neuron parameter that one call replaces T·S of them. Larger
// terms (at::sum splits one term over threads) and other shapes: one at::sum_to per term.
// Runs outside any parallel region, as autograd's reductions do.
at::Tensor reduce_terms(const at::Tensor& buf, const std::vector<int64_t>& order,
                        const Layout& l, const at::Tensor& param) {
  if (order.empty()) return at::zeros_like(param);
  const int64_t Tn = buf.size(0), S = buf.size(1), P = param.numel();
  const c10::IntArrayRef feats = c10::IntArrayRef(l.full).slice(1);
  const bool scalar = param.dim() == 0, per_neuron = param.sizes() == feats;
  at::Tensor sums;  // (T, S, P): the sum of every term, state dtype
  if (l.B * l.N < 32768 && (scalar || per_neuron)) {
    sums = scalar ? buf.view({Tn, S, l.B * l.N}).sum(2).unsqueeze(2)
                  : buf.view({Tn, S, l.B, l.N}).sum(2);
  } else {
    sums = at::empty({Tn, S, P}, buf.options());
    for (int64_t t = 0; t < Tn; ++t) {
      for (int64_t slot : order) {
        sums.select(0, t).select(0, slot).copy_(
            at::sum_to(buf.select(0, t).select(0, slot).view(l.full), param.sizes())
                .reshape({P}));
      }
    }
  }
  sums = sums.to(param.scalar_type()).contiguous();  // each sum cast on its own
  at::Tensor out = at::empty(param.sizes(), param.options().memory_format(
                                                at::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES(param.scalar_type(), "brain_ai_lif_reduce", [&] {
    const scalar_t* sp = sums.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    bool first = true;
    for (int64_t t = Tn - 1; t >= 0; --t) {
      for (int64_t slot : order) {
        const scalar_t* r = sp + (t * S + slot) * P;
        if (first) {
          for (int64_t k = 0; k < P; ++k) o[k] = r[k];
          first = false;
        } else {
          for (int64_t k = 0; k < P; ++k) o[k] = o[k] + r[k];
        }
      }
    }
  });
  return out;
}

std::vector<at::Tensor> lif_backward(
    const at::Tensor& h, const Opt& rbits, const Opt& gspk, const Opt& gvT, const Opt& giT,
    const Opt& gaT, const Opt& gpT, const Opt& gtr, const at::Tensor& v0, const Opt& i0,
    const Opt& a0, const Opt& p0, const Opt& ref0, const Opt& x, const at::Tensor& leak,
    const at::Tensor& th, const Opt& alpha, const Opt& kappa, const Opt& rho, const Opt& w,
    const Opt& graded, c10::IntArrayRef features, int64_t charge, int64_t reset, int64_t timing,
    bool ge, bool synapse, bool detach_reset, int64_t surrogate, bool adapt, bool recur,
    int64_t refractory, bool graded_spikes, double v_reset, double surr_param, int64_t window,
    c10::IntArrayRef needs, bool gx_into_h) {
  // needs: x, v0, i0, a0, p0, leak, threshold, alpha, kappa, rho, w, graded
  TORCH_CHECK(needs.size() == 12, "brain_ai lif: needs must have 12 entries");
  const bool need_x = needs[0] != 0, need_v0 = needs[1] != 0;
  Cfg c = parse(charge, reset, timing, ge, synapse, detach_reset, surrogate, adapt, recur,
                refractory, graded_spikes, v_reset, surr_param);
  TORCH_CHECK(window >= 0, "brain_ai lif: window must be >= 0");
  c.window = window;
  const bool need_i0 = c.syn && needs[2] != 0, need_a0 = c.adapt && needs[3] != 0;
  const bool need_p0 = c.recur && needs[4] != 0;
  const bool need_par[7] = {needs[5] != 0,           needs[6] != 0,
                            c.syn && needs[7] != 0,  c.adapt && needs[8] != 0,
                            c.adapt && needs[9] != 0, c.recur && needs[10] != 0,
                            c.graded && needs[11] != 0};
  const int64_t B = h.size(0), T_ = h.size(1), N = h.size(2);
  const auto dt = h.scalar_type();
  check(h, "h", dt, B * T_ * N);
  check(v0, "v0", dt, B * N);
  const Layout l = layout_of(B, N, features);
  const Params pr = params_of(c, leak, th, alpha, kappa, rho, w, graded, dt, l);
  const bool fast = fast_ok(c);
  const bool need_rbits = fast && c.carried() && c.comp();
  if (need_rbits) {
    TORCH_CHECK(given(rbits) && rbits->scalar_type() == at::kByte && rbits->is_contiguous() &&
                    rbits->numel() == B * T_ * ((N + 7) / 8),
                "brain_ai lif: the compensated timings need the forward's carried resets");
  }
  const bool gspk_scalar = gspk && gspk->numel() == 1 && B * T_ * N != 1;
  const bool gtr_scalar = gtr && gtr->numel() == 1 && B * T_ * N != 1;
  const bool gv_scalar = gvT && gvT->numel() == 1 && B * N != 1;
  // the spike and trace gradients: one value, or (B, T, N) with any batch/time strides
  if (gspk && gspk->numel()) {
    if (gspk_scalar) check(*gspk, "grad spikes", dt, 1); else check_x(*gspk, dt, B, T_, N);
  }
  if (gtr && gtr->numel()) {
    if (gtr_scalar) check(*gtr, "grad trace", dt, 1); else check_x(*gtr, dt, B, T_, N);
  }
  if (gvT && gvT->numel()) check(*gvT, "grad v", dt, gv_scalar ? 1 : B * N);
  const bool need_drive = need_par[0] && (c.charge == TAU_INPUT || c.charge == RATE_INPUT);
  if (c.syn) {
    TORCH_CHECK(given(i0), "brain_ai lif: a synapse needs i0");
    check(*i0, "i0", dt, B * N);
    if (giT && giT->numel()) check(*giT, "grad i", dt, B * N);
  }
  check_states(c, a0, p0, ref0, dt, B * N);
  if (c.adapt && gaT && gaT->numel()) check(*gaT, "grad a", dt, B * N);
  if (c.recur && gpT && gpT->numel()) check(*gpT, "grad prev_spk", dt, B * N);
  if (need_drive || need_par[2]) {
    TORCH_CHECK(given(x), "brain_ai lif: this gradient needs x");
    check_x(*x, dt, B, T_, N);
  }
  const bool has_x = given(x) && x->numel() > 0;
  const int64_t xs_b = has_x ? x->stride(0) : 0, xs_t = has_x ? x->stride(1) : 0;
  auto opts = h.options();
  at::Tensor empty = at::empty({0}, opts);
  // gx_into_h: the caller gives up h (the graph is not kept): x's gradient overwrites it step
  // by step, one (B, T, N) buffer less at the peak of backward
  at::Tensor gx = need_x ? (gx_into_h ? h : pooled_empty({B, T_, N}, dt)) : empty;
  at::Tensor gv0 = need_v0 ? pooled_empty({B, N}, dt) : empty;
  at::Tensor gi0 = need_i0 ? pooled_empty({B, N}, dt) : empty;
  at::Tensor ga0 = need_a0 ? pooled_empty({B, N}, dt) : empty;
  at::Tensor gp0 = need_p0 ? pooled_empty({B, N}, dt) : empty;
  const Slots sl = slots_of(c, fast, need_par);
  const ScalarTails tails = c.surr == SIGMOID ? scalar_tails(B * N, at::elementSize(dt))
                                              : ScalarTails{};
  at::Tensor terms = sl.S ? pooled_empty({T_, sl.S, B, N}, dt) : empty;
  AT_DISPATCH_FLOATING_TYPES(dt, "brain_ai_lif_backward", [&] {
    std::vector<scalar_t> lrow, trow, arow, krow, rrow, wrow, grow;
    BwdArgs<scalar_t> a{h.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(gspk),
                        ptr_or_null<scalar_t>(gvT), ptr_or_null<scalar_t>(giT),
                        ptr_or_null<scalar_t>(gtr), v0.data_ptr<scalar_t>(),
                        c.syn ? i0->data_ptr<scalar_t>() : nullptr, ptr_or_null<scalar_t>(x),
                        param_rows<scalar_t>(pr.leak.t, N, lrow),
                        param_rows<scalar_t>(pr.th.t, N, trow),
                        c.syn ? param_rows<scalar_t>(pr.al.t, N, arow) : nullptr,
                        need_x ? gx.data_ptr<scalar_t>() : nullptr,
                        need_v0 ? gv0.data_ptr<scalar_t>() : nullptr,
                        need_i0 ? gi0.data_ptr<scalar_t>() : nullptr, T_, N, pr.leak.rs,
                        pr.th.rs, c.syn ? pr.al.rs : 0, xs_b, xs_t, gspk_scalar, gtr_scalar,
                        gv_scalar};
    if (gspk && gspk->numel() && !gspk_scalar) {
      a.gsb = gspk->stride(0);
      a.gst = gspk->stride(1);
    }
    if (gtr && gtr->numel() && !gtr_scalar) {
      a.tsb = gtr->stride(0);
      a.tst = gtr->stride(1);
    }
    if (c.adapt) {
      a.gaT = ptr_or_null<scalar_t>(gaT);
      a.a0 = a0->data_ptr<scalar_t>();
      a.kp = param_rows<scalar_t>(pr.kp.t, N, krow);
      a.rh = param_rows<scalar_t>(pr.rh.t, N, rrow);
      a.ga0 = need_a0 ? ga0.data_ptr<scalar_t>() : nullptr;
      a.krs = pr.kp.rs;
      a.rrs = pr.rh.rs;
    }
    if (c.recur) {
      a.gpT = ptr_or_null<scalar_t>(gpT);
      a.p0 = p0->data_ptr<scalar_t>();
      a.w = param_rows<scalar_t>(pr.w.t, N, wrow);
      a.gp0 = need_p0 ? gp0.data_ptr<scalar_t>() : nullptr;
      a.wrs = pr.w.rs;
    }
    if (c.refr) a.ref0 = ref0->data_ptr<scalar_t>();
    if (c.graded) {
      a.g = param_rows<scalar_t>(pr.g.t, N, grow);
      a.grs = pr.g.rs;
    }
    a.rbits = need_rbits ? rbits->data_ptr<uint8_t>() : nullptr;
    a.NB = (N + 7) / 8;
    a.B = B;
    a.sl = &sl;
    a.tails = &tails;
    a.tm = Terms<scalar_t>{sl.S ? terms.data_ptr<scalar_t>() : nullptr, sl.S, B, N};
    if (fast) {
      bwd_fast(c, a, B);
    } else {
      for_blocks(B, T_, N, BLK, [&](int64_t b, int64_t n0, int64_t len) {
        thread_local BwdScratch<scalar_t> scratch;
        bwd_block(c, a, b, n0, len, scratch);
      });
    }
  });
  // the parameters' gradients, each of its parameter's shape and dtype
  const at::Tensor* ps[7] = {&leak, &th, given(alpha) ? &*alpha : nullptr,
                             given(kappa) ? &*kappa : nullptr, given(rho) ? &*rho : nullptr,
                             given(w) ? &*w : nullptr, given(graded) ? &*graded : nullptr};
  std::vector<at::Tensor> out = {gx, gv0, gi0, ga0, gp0};
  for (int j = 0; j < 7; ++j) {
    out.push_back(need_par[j] && ps[j] ? reduce_terms(terms, sl.order[j], l, *ps[j]) : empty);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY(brain_ai_kernels, m) {
  m.def(
      "lif_forward(Tensor x, Tensor v0, Tensor? i0, Tensor? a0, Tensor? p0, Tensor? ref0, "
      "Tensor leak, Tensor threshold, Tensor? alpha, Tensor? kappa, Tensor? rho, Tensor? w, "
      "Tensor? graded, int[] features, "
      "int charge, int reset, int timing, bool ge, bool synapse, bool detach_reset, "
      "int surrogate, bool adapt, bool recur, int refractory, bool graded_spikes, "
      "float v_reset, float surrogate_param, bool save_h, bool record_v) -> Tensor[]");
  m.def(
      "lif_backward(Tensor h, Tensor? rbits, Tensor? grad_spikes, Tensor? grad_v, "
      "Tensor? grad_i, Tensor? grad_a, Tensor? grad_p, Tensor? grad_trace, Tensor v0, "
      "Tensor? i0, Tensor? a0, Tensor? p0, Tensor? ref0, Tensor? x, Tensor leak, "
      "Tensor threshold, Tensor? alpha, Tensor? kappa, Tensor? rho, Tensor? w, "
      "Tensor? graded, int[] features, "
      "int charge, int reset, int timing, bool ge, bool synapse, bool detach_reset, "
      "int surrogate, bool adapt, bool recur, int refractory, bool graded_spikes, "
      "float v_reset, float surrogate_param, int window, int[] needs, bool gx_into_h) "
      "-> Tensor[]");
  m.def("pool_empty() -> int", [] { return Pool::get().empty(); });
  m.def("pool_cached() -> int", [] { return Pool::get().cached(); });
}

TORCH_LIBRARY_IMPL(brain_ai_kernels, CPU, m) {
  m.impl("lif_forward", &lif_forward);
  m.impl("lif_backward", &lif_backward);
}
