// lm_app's native CPU kernels (see kernels.h).
//
// Why by hand: the recipe's LSTM steps are small matrix products, [10, 200] x [200, 800] per core
// and step, between elementwise gate math.  XLA's loop ran them at ~60 GFLOP/s per core here; the
// register-blocked product (vectors.h) reaches the core's peak (~180 GFLOP/s), and the gates are done
// with vector exp/tanh on data still in cache.
#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "vectors.h"

namespace lm_app {

size_t packed_size(int K, int N) { return (size_t)panels_of(N) * K * W; }

void pack_panels(const float* B, int K, int N, long ldb, bool transposed, float* out) {
  for (int p = 0; p < panels_of(N); ++p)
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < W; ++j) {
        const int n = p * W + j;  // columns past N pad the last panel with zeros
        out[((size_t)p * K + k) * W + j] = n >= N ? 0.0f : transposed ? B[(long)n * ldb + k] : B[(long)k * ldb + n];
      }
}

void lstm_forward(int T, int batch, int rows, int H, const float* zx, const float* h0, const float* c0,
                  const float* packed_u, float* hs, float* cs, float* gates) {
  const int N = 4 * H, panels = panels_of(N), ldz = panels * W;
  std::unique_ptr<float[]> hu(new float[(size_t)rows * ldz]);  // h_{t-1} U, written before it is read
  for (int t = 0; t < T; ++t) {
    const long step = (long)t * batch;
    const float* h_prev = t ? hs + (step - batch) * H : h0;
    const float* c_prev = t ? cs + (step - batch) * H : c0;
    product(rows, h_prev, H, packed_u, H, panels, hu.get(), ldz);
    for (int r = 0; r < rows; ++r) {
      const float* x = zx + (step + r) * N;
      const float* s = hu.get() + (long)r * ldz;
      const float* cp = c_prev + (long)r * H;
      float* g = gates + (step + r) * N;
      float* c = cs + (step + r) * H;
      float* h = hs + (step + r) * H;
      chunks(H, [&](int j, auto n) {
        vf i = vsigmoid(load_n(x + j, n) + load_n(s + j, n));
        vf f = vsigmoid(load_n(x + H + j, n) + load_n(s + H + j, n));
        vf gg = vtanh(load_n(x + 2 * H + j, n) + load_n(s + 2 * H + j, n));
        vf o = vsigmoid(load_n(x + 3 * H + j, n) + load_n(s + 3 * H + j, n));
        vf cc = f * load_n(cp + j, n) + i * gg;  // the carousel
        store_n(c + j, cc, n);
        store_n(h + j, o * vtanh(cc), n);
        store_n(g + j, i, n);
        store_n(g + H + j, f, n);
        store_n(g + 2 * H + j, gg, n);
        store_n(g + 3 * H + j, o, n);
      });
    }
  }
}

void lstm_backward(int T, int batch, int rows, int H, const float* dhs, const float* dc_last,
                   const float* cs, const float* gates, const float* c0, const float* packed_ut,
                   float* dz, float* dh0, float* dc0) {
  const int N = 4 * H, panels = panels_of(H), ldh = panels * W;
  std::vector<float> dh_next((size_t)rows * ldh, 0.0f), dc_next((size_t)rows * H);
  for (int r = 0; r < rows; ++r) std::memcpy(&dc_next[(size_t)r * H], dc_last + (long)r * H, H * sizeof(float));
  for (int t = T - 1; t >= 0; --t) {
    const long step = (long)t * batch;
    const float* c_prev = t ? cs + (step - batch) * H : c0;
    for (int r = 0; r < rows; ++r) {
      const float* g = gates + (step + r) * N;
      const float* c = cs + (step + r) * H;
      const float* cp = c_prev + (long)r * H;
      const float* dh_out = dhs + (step + r) * H;
      float* d = dz + (step + r) * N;
      float* dhn = dh_next.data() + (long)r * ldh;
      float* dcn = dc_next.data() + (long)r * H;
      chunks(H, [&](int j, auto n) {
        vf i = load_n(g + j, n), f = load_n(g + H + j, n), gg = load_n(g + 2 * H + j, n),
           o = load_n(g + 3 * H + j, n);
        vf tc = vtanh(load_n(c + j, n));
        vf dh = load_n(dh_out + j, n) + load_n(dhn + j, n);
        vf dc = load_n(dcn + j, n) + dh * o * (splat(1.0f) - tc * tc);
        store_n(d + j, dc * gg * i * (splat(1.0f) - i), n);
        store_n(d + H + j, dc * load_n(cp + j, n) * f * (splat(1.0f) - f), n);
        store_n(d + 2 * H + j, dc * i * (splat(1.0f) - gg * gg), n);
        store_n(d + 3 * H + j, dh * tc * o * (splat(1.0f) - o), n);
        store_n(dcn + j, dc * f, n);  // dc flows on through f alone: the carousel
      });
    }
    product(rows, dz + step * N, N, packed_ut, N, panels, dh_next.data(), ldh);  // dh_{t-1} = dz_t U^T
  }
  for (int r = 0; r < rows; ++r) {
    std::memcpy(dh0 + (long)r * H, &dh_next[(size_t)r * ldh], H * sizeof(float));
    std::memcpy(dc0 + (long)r * H, &dc_next[(size_t)r * H], H * sizeof(float));
  }
}

// Three passes over each row, which stays in cache between them: the maximum and the label's rank;
// exp(z - max), summed and kept as the gradient's numerator; the gradient itself.  The bias is
// added as each row is read, so the product before this kernel is a plain one (oneDNN's product
// with the bias fused in was 0.26 ms slower for the recipe's softmax layer here).
void softmax_cross_entropy(int rows, int V, const float* xw, const float* bias, const int32_t* labels,
                           float* losses, int32_t* ranks, float* d_logits) {
  std::unique_ptr<float[]> no_bias;
  if (!bias) {
    no_bias.reset(new float[V]());
    bias = no_bias.get();
  }
  for (int r = 0; r < rows; ++r) {
    const float* z = xw + (long)r * V;
    const int label = labels[r];
    const float target = z[label] + bias[label];
    vf top = splat(-__builtin_inff()), target_v = splat(target);
    vi above = vi{};
    chunks(V, [&](int j, auto n) {
      vf x = first_lanes(load_n(z + j, n) + load_n(bias + j, n), n, -__builtin_inff());  // past V: -inf
      top = vmax(top, x);
      above -= x > target_v;  // a comparison is -1 where true
    });
    float max = top[0];
    int rank = 0;
    for (int i = 0; i < VL; ++i) {
      max = std::max(max, top[i]);
      rank += above[i];
    }
    vf total_v = vf{}, max_v = splat(max);
    float* d = d_logits ? d_logits + (long)r * V : nullptr;
    chunks(V, [&](int j, auto n) {
      vf e = first_lanes(vexp(load_n(z + j, n) + load_n(bias + j, n) - max_v), n, 0.0f);  // count V only
      total_v += e;
      if (d) store_n(d + j, e, n);
    });
    const float total = sum(total_v);
    losses[r] = std::log(total) + max - target;
    ranks[r] = rank;
    if (!d) continue;
    const vf scale = splat(1.0f / total);
    chunks(V, [&](int j, auto n) { store_n(d + j, load_n(d + j, n) * scale, n); });
    d[label] -= 1.0f;
  }
}

namespace {

typedef uint32_t vu __attribute__((vector_size(VL * sizeof(uint32_t))));
typedef uint64_t vu2 __attribute__((vector_size(VL * sizeof(uint32_t))));

// Lanes 0, 2, 4, ... and 1, 3, 5, ... of a times m, each as a 64-bit product (vpmuludq where the CPU
// has it; GCC's generic 64-bit lane multiply is several times slower).
inline void widening_products(vu a, uint32_t m, vu2* even, vu2* odd) {
#if defined(__AVX512F__)
  const __m512i mv = _mm512_set1_epi64(m);
  *even = (vu2)_mm512_mul_epu32((__m512i)a, mv);
  *odd = (vu2)_mm512_mul_epu32(_mm512_srli_epi64((__m512i)a, 32), mv);
#elif defined(__AVX2__)
  const __m256i mv = _mm256_set1_epi64x(m);
  *even = (vu2)_mm256_mul_epu32((__m256i)a, mv);
  *odd = (vu2)_mm256_mul_epu32(_mm256_srli_epi64((__m256i)a, 32), mv);
#else
  *even = ((vu2)a & 0xffffffffull) * (uint64_t)m;
  *odd = ((vu2)a >> 32) * (uint64_t)m;
#endif
}

// Philox4x32-10 (Salmon et al. 2011) with TensorFlow's constants, on VL counters at once: word k of
// counter l is c[k][l].
inline void philox(vu c[4], uint32_t k0, uint32_t k1) {
  const vu2 high32 = vu2{} + 0xffffffff00000000ull;
  const uint32_t m[2] = {0xD2511F53u, 0xCD9E8D57u};
  for (int round = 0; round < 10; ++round) {
    vu hi[2], lo[2];
    for (int w = 0; w < 2; ++w) {
      vu2 even, odd;
      widening_products(c[2 * w], m[w], &even, &odd);
      lo[w] = (vu)((even & ~high32) | (odd << 32));
      hi[w] = (vu)((even >> 32) | (odd & high32));
    }
    vu next[4] = {hi[1] ^ c[1] ^ k0, lo[1], hi[0] ^ c[3] ^ k1, lo[0]};
    for (int w = 0; w < 4; ++w) c[w] = next[w];
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// TensorFlow's uniform float from 32 random bits: 1.m - 1 with the low 23 bits as mantissa m.
inline vf to_uniform(vu bits) {
  vu f = (bits & 0x7fffffu) | 0x3f800000u;
  vf one_m;
  std::memcpy(&one_m, &f, sizeof one_m);
  return one_m - splat(1.0f);
}

// u[first, first + n) of the stream TensorFlow fills: group g (four values) is Philox of counter + g.
void uniform_stream(uint64_t key, const uint64_t counter[2], long first, long n, float* u) {
  const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  const long first_group = first / 4, end_group = (first + n + 3) / 4;
  float block[4 * VL];
  for (long g0 = first_group; g0 < end_group; g0 += VL) {
    vu c[4];
    const uint64_t first_lo = counter[0] + (uint64_t)g0, first_hi = counter[1] + (first_lo < counter[0]);
    if ((uint32_t)first_lo <= 0xffffffffu - VL && first_lo >= counter[0]) {  // no carry in this block
      vu lane;
      for (int l = 0; l < VL; ++l) lane[l] = l;
      c[0] = lane + (uint32_t)first_lo, c[1] = vu{} + (uint32_t)(first_lo >> 32);
      c[2] = vu{} + (uint32_t)first_hi, c[3] = vu{} + (uint32_t)(first_hi >> 32);
    } else {
      for (int l = 0; l < VL; ++l) {  // counter + g with its carries, as PhiloxRandom::Skip adds it
        uint64_t lo = counter[0] + (uint64_t)(g0 + l), hi = counter[1] + (lo < counter[0]);
        c[0][l] = (uint32_t)lo, c[1][l] = (uint32_t)(lo >> 32), c[2][l] = (uint32_t)hi, c[3][l] = (uint32_t)(hi >> 32);
      }
    }
    philox(c, k0, k1);
    vf values[4] = {to_uniform(c[0]), to_uniform(c[1]), to_uniform(c[2]), to_uniform(c[3])};
    for (int l = 0; l < VL; ++l)
      for (int w = 0; w < 4; ++w) block[4 * l + w] = values[w][l];
    const long from = std::max(first, 4 * g0), to = std::min(first + n, 4 * (g0 + VL));
    std::memcpy(u + (from - first), block + (from - 4 * g0), (to - from) * sizeof(float));
  }
}

}  // namespace

void dropout(int T, int B, int F, uint64_t key, const uint64_t counter[2], float rate, float scale,
             const float* x, float* y, float* mask, int first_b, int count_b) {
  // Batch row b is the draw's rows b T .. (b + 1) T - 1: one stretch, drawn into a buffer that
  // stays in cache (and is not zeroed first: every element is written).
  std::unique_ptr<float[]> u(new float[(size_t)T * F]);
  const vf rate_v = splat(rate), scale_v = splat(scale);
  for (int b = first_b; b < first_b + count_b; ++b) {
    uniform_stream(key, counter, (long)b * T * F, (long)T * F, u.get());
    for (int t = 0; t < T; ++t) {
      const long row = (long)t * B + b;  // where (t, b) lies in x
      const float* ur = u.get() + (long)t * F;
      const float* xr = x + row * F;
      float* yr = y + row * F;
      float* mr = mask + row * F;
      chunks(F, [&](int j, auto n) {
        vf m = load_n(ur + j, n) >= rate_v ? scale_v : vf{};
        store_n(mr + j, m, n);
        store_n(yr + j, load_n(xr + j, n) * m, n);
      });
    }
  }
}


// ---- word2vec (see kernels.h).  The sigmoid is word2vec.c's and gensim's: read from a table of 1000
// values over (-6, 6), a pair whose dot product lies beyond skipped (its gradient is nearly 0).  So the
// kernel trains exactly gensim's function, and skip-gram, which scores 6 pairs per (centre, context),
// spends no exp on each.
namespace {

constexpr uint64_t kLcgMask = (uint64_t{1} << 48) - 1;
constexpr int kExpTableSize = 1000;
constexpr float kMaxExp = 6;

struct SigmoidTable {
  float value[kExpTableSize];
  SigmoidTable() {
    for (int i = 0; i < kExpTableSize; ++i) {
      const float e = (float)std::exp(((double)i / kExpTableSize * 2 - 1) * kMaxExp);
      value[i] = e / (e + 1);
    }
  }
};
const SigmoidTable kSigmoid;

inline uint64_t lcg_draw(uint64_t& state) {
  const uint64_t value = state;
  state = (state * 25214903917ULL + 11) & kLcgMask;
  return value;
}

inline float dot(const float* a, const float* b, int n) {
  vf acc = {};
  chunks(n, [&](int j, auto m) { acc += load_n(a + j, m) * load_n(b + j, m); });
  return sum(acc);
}

inline void axpy(float a, const float* x, float* y, int n) {
  const vf av = splat(a);
  chunks(n, [&](int j, auto m) { store_n(y + j, load_n(y + j, m) + av * load_n(x + j, m), m); });
}

// The positive pair (h -> target) and `negative` noise words: gensim's fast_sentence_*_neg.
inline void negative_sampling(const Word2vecBatch& b, int target, const float* h, float alpha, uint64_t& rng,
                              float* work) {
  const int64_t total = b.cum_table[b.vocab - 1];
  for (int d = 0; d <= b.negative; ++d) {
    int word = target;
    float label = 1;
    if (d) {
      const int64_t x = (int64_t)((lcg_draw(rng) >> 16) % (uint64_t)total);
      word = (int)(std::upper_bound(b.cum_table, b.cum_table + b.vocab, x) - b.cum_table);
      if (word == target) continue;
      label = 0;
    }
    float* out = b.syn1neg + (long)word * b.dim;
    const float f = dot(h, out, b.dim);
    if (f <= -kMaxExp || f >= kMaxExp) continue;
    const float g = (label - kSigmoid.value[(int)((f + kMaxExp) * (kExpTableSize / kMaxExp / 2))]) * alpha;
    axpy(g, out, work, b.dim);
    axpy(g, h, out, b.dim);
  }
}

}  // namespace

uint64_t word2vec_seed(uint64_t seed, uint64_t epoch, uint64_t sentence) {  // splitmix64's finaliser
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + epoch * 0xD1B54A32D192ED03ULL + sentence * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return (z ^ (z >> 31)) & kLcgMask;
}

int64_t word2vec_sentence(const Word2vecBatch& b, int s, int32_t* scratch, float* neu1, float* work) {
  const int64_t begin = b.splits[s], end = b.splits[s + 1], batch_words = b.splits[b.sentences];
  const float alpha = b.alpha_start + (b.alpha_end - b.alpha_start) * (batch_words ? (float)begin / batch_words : 0.f);
  uint64_t rng = word2vec_seed(b.seed, b.epoch, b.first_sentence + s);
  int32_t* kept = scratch;
  int n = 0;
  for (int64_t p = begin; p < end; ++p) {
    const int w = b.ids[p];
    if ((int64_t)(lcg_draw(rng) >> 16) <= b.sample_int[w]) kept[n++] = w;
  }
  int32_t* reduced = scratch + (end - begin);
  for (int i = 0; i < n; ++i) reduced[i] = (int32_t)((lcg_draw(rng) >> 16) % (uint64_t)b.window);
  const int dim = b.dim;
  for (int i = 0; i < n; ++i) {
    const int first = std::max(0, i - b.window + reduced[i]), last = std::min(n, i + b.window + 1 - reduced[i]);
    if (b.cbow) {
      std::fill(neu1, neu1 + dim, 0.f);
      int count = 0;
      for (int m = first; m < last; ++m)
        if (m != i) axpy(1.f, b.syn0 + (long)kept[m] * dim, neu1, dim), ++count;
      if (!count) continue;
      for (int k = 0; k < dim; ++k) neu1[k] /= count;
      std::fill(work, work + dim, 0.f);
      negative_sampling(b, kept[i], neu1, alpha, rng, work);
      for (int m = first; m < last; ++m)
        if (m != i) axpy(1.f, work, b.syn0 + (long)kept[m] * dim, dim);
    } else {
      for (int m = first; m < last; ++m) {
        if (m == i) continue;
        float* row = b.syn0 + (long)kept[m] * dim;  // the context word's vector predicts the centre word
        std::fill(work, work + dim, 0.f);
        negative_sampling(b, kept[i], row, alpha, rng, work);
        axpy(1.f, work, row, dim);
      }
    }
  }
  return n;
}

}  // namespace lm_app
