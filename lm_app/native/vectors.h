// The vector helpers and the register-blocked matrix product that lm_app's kernels share (kernels.cc,
// gru.cc), each file compiled with -march=native.  Everything here is internal to the file that
// includes it.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lm_app {
namespace {

#if defined(__AVX512F__)
constexpr int VL = 16;    // floats per vector register
constexpr int RMAX = 10;  // rows per block of the product: 2 * RMAX accumulators of 32 registers
#else
constexpr int VL = 8;
constexpr int RMAX = 6;   // of 16 registers
#endif
constexpr int W = 2 * VL;  // columns per panel of a packed matrix

typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(float))));
using Full = std::integral_constant<int, VL>;  // a chunk of VL floats, known at compile time

inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf load_n(const float* p, Full) { return load(p); }
inline void store_n(float* p, vf v, Full) { store(p, v); }
#if defined(__AVX512F__)
inline vf load_n(const float* p, int n) { return (vf)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
inline void store_n(float* p, vf v, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v); }
#else
inline vf load_n(const float* p, int n) { vf v = {}; std::memcpy(&v, p, n * sizeof(float)); return v; }
inline void store_n(float* p, vf v, int n) { std::memcpy(p, &v, n * sizeof(float)); }
#endif

// A broadcast, spelled so that it becomes one instruction (`vf{} + x` adds a zero first).
inline vf splat(float x) {
#if defined(__AVX512F__)
  return (vf)_mm512_set1_ps(x);
#elif defined(__AVX__)
  return (vf)_mm256_set1_ps(x);
#else
  return vf{} + x;
#endif
}

// 1 / x: the approximate reciprocal instruction and one Newton step (>= 23 bits), where there is one.
inline vf recip(vf x) {
#if defined(__AVX512F__)
  vf r = (vf)_mm512_rcp14_ps((__m512)x);  // 14 bits
  return r * (splat(2.0f) - x * r);
#elif defined(__AVX__)
  vf r = (vf)_mm256_rcp_ps((__m256)x);  // 12 bits
  return r * (splat(2.0f) - x * r);
#else
  return splat(1.0f) / x;
#endif
}

// exp(x) = 2^n p(r), x = n ln 2 + r, |r| <= ln 2 / 2 (Cephes' expf); within 1e-7 relative.
inline vf vexp(vf x) {
  x = x < splat(88.0f) ? x : splat(88.0f);
  x = x > splat(-87.0f) ? x : splat(-87.0f);
  vf t = x * splat(1.44269504088896341f) + splat(0.5f);
  vf n = __builtin_convertvector(__builtin_convertvector(t, vi), vf);
  n = n > t ? n - splat(1.0f) : n;  // truncation -> floor, so n = round(x / ln 2)
  vf r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
  vf p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * r * r + r + splat(1.0f);
  vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  vf scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sum(vf v) {
  float total = 0.0f;
  for (int i = 0; i < VL; ++i) total += v[i];
  return total;
}

inline vf vmax(vf a, vf b) { return a > b ? a : b; }

inline vf vsigmoid(vf x) { return recip(splat(1.0f) + vexp(-x)); }

// tanh x = 1 - 2 / (exp(2x) + 1); near 0, where that cancels, Cephes' odd polynomial.
inline vf vtanh(vf x) {
  vf large = splat(1.0f) - splat(2.0f) * recip(splat(1.0f) + vexp(splat(2.0f) * x));
  vf z = x * x;
  vf p = splat(-5.70498872745e-3f);
  p = p * z + splat(2.06390887954e-2f);
  p = p * z + splat(-5.37397155531e-2f);
  p = p * z + splat(1.33314422036e-1f);
  p = p * z + splat(-3.33332819422e-1f);
  vf small = p * z * x + x;
  return z < splat(0.625f * 0.625f) ? small : large;
}

// v with the lanes from n on set to `fill`, so that a chunk's tail adds nothing to a sum or a max.
inline vf first_lanes(vf v, Full, float) { return v; }
inline vf first_lanes(vf v, int n, float fill) {
  vf kept = splat(fill);
  std::memcpy(&kept, &v, n * sizeof(float));
  return kept;
}

// f(j, n) over [0, H) in chunks of VL floats (n a compile-time Full), the last one shorter.
template <class F>
inline void chunks(int H, F f) {
  int j = 0;
  for (; j + VL <= H; j += VL) f(j, Full{});
  if (j < H) f(j, H - j);
}

// C[R, panels * W] = A[R, K] B, B packed.  The 2R accumulators stay in registers for all of K;
// each step of k loads one panel row (two vectors) and broadcasts one value of each row of A.
template <int R>
void product_block(const float* A, long lda, const float* P, int K, int panels, float* C, long ldc) {
  for (int p = 0; p < panels; ++p, P += (long)K * W) {
    vf acc0[R], acc1[R];
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = vf{};
    for (int k = 0; k < K; ++k) {
      vf b0 = load(P + k * W), b1 = load(P + k * W + VL);
      for (int r = 0; r < R; ++r) {
        vf a = splat(A[r * lda + k]);
        acc0[r] += a * b0;
        acc1[r] += a * b1;
      }
    }
    for (int r = 0; r < R; ++r) {
      store(C + r * ldc + p * W, acc0[r]);
      store(C + r * ldc + p * W + VL, acc1[r]);
    }
  }
}

template <int... Rs>
void product_block_of(std::integer_sequence<int, Rs...>, int R, const float* A, long lda, const float* P,
                      int K, int panels, float* C, long ldc) {
  using Block = void (*)(const float*, long, const float*, int, int, float*, long);
  static constexpr Block blocks[] = {&product_block<Rs + 1>...};
  blocks[R - 1](A, lda, P, K, panels, C, ldc);
}

// C[rows, panels * W] = A[rows, K] B in blocks of at most RMAX rows, as equal as they can be.
// Each output is summed over k in order, so a row's result does not depend on its block.
void product(int rows, const float* A, long lda, const float* P, int K, int panels, float* C, long ldc) {
  int blocks = (rows + RMAX - 1) / RMAX;
  for (int b = 0, done = 0; b < blocks; ++b) {
    int n = (rows - done) / (blocks - b);
    product_block_of(std::make_integer_sequence<int, RMAX>{}, n, A + done * lda, lda, P, K, panels,
                     C + done * ldc, ldc);
    done += n;
  }
}

int panels_of(int N) { return (N + W - 1) / W; }

}  // namespace
}  // namespace lm_app
