// lm_app's native CPU kernels: plain C++, no TensorFlow (ops.cc wraps them as TensorFlow ops).
//
// kernels.cc is compiled for the machine it runs on (-march=native), so its vector code uses the
// widest registers the CPU has; ops.cc is compiled without, because TensorFlow's headers do not
// all build with every -m flag that a new CPU turns on.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lm_app {

// Floats in the packed form of a [K, N] matrix (see pack_panels).
size_t packed_size(int K, int N);

// B [K, N] (row stride ldb), or B^T when `transposed` (B is then [N, K] in memory), copied into
// column panels that the matrix product reads front to back: each panel is K rows of a fixed
// number of columns, the last one padded with zeros.
void pack_panels(const float* B, int K, int N, long ldb, bool transposed, float* out);

// The LSTM recurrence over `rows` consecutive rows of a batch of `batch` rows, every pointer
// already at the first of those rows.  Time-major: zx [T, batch, 4H] holds x_t W + b for every
// step; h0, c0 [rows, H]; U packed from the recurrent kernel [H, 4H].  Writes hs, cs [T, batch, H]
// and the activated gates i, f, g, o [T, batch, 4H] that the backward pass reuses.
void lstm_forward(int T, int batch, int rows, int H, const float* zx, const float* h0, const float* c0,
                  const float* packed_u, float* hs, float* cs, float* gates);

// Backpropagation through time for the same rows: from dhs [T, batch, H] (the gradient reaching
// each h_t from above) and dc_last [rows, H], writes dz [T, batch, 4H] (the gradient of every
// step's gate pre-activations) and dh0, dc0 [rows, H].  packed_ut is the recurrent kernel packed
// transposed, [4H, H].
void lstm_backward(int T, int batch, int rows, int H, const float* dhs, const float* dc_last,
                   const float* cs, const float* gates, const float* c0, const float* packed_ut,
                   float* dz, float* dh0, float* dc0);

// The GRU recurrence (reset after the recurrent product: n_t = tanh(x_t W_n + b_n + r_t (h_{t-1} U_n
// + b'_n)), gates z, r, n as Keras lays them out) over `rows` rows of a batch of `batch`, as
// lstm_forward.  zx [T, batch, 3H] holds x_t W + b (the input bias); h0 [rows, H]; U packed from the
// recurrent kernel [H, 3H]; recurrent_bias [3H].  Writes hs [T, batch, H] and gates [T, batch, 4H]:
// z, r, n after their activations and h_{t-1} U_n + b'_n, which the backward pass reuses.
void gru_forward(int T, int batch, int rows, int H, const float* zx, const float* h0, const float* packed_u,
                 const float* recurrent_bias, float* hs, float* gates);

// Its backpropagation through time: from dhs [T, batch, H], writes dzx [T, batch, 3H] (the gradient
// of x_t W + b), dhu [T, batch, 3H] (of h_{t-1} U + b'; it differs from dzx by r_t on the candidate's
// third) and dh0 [rows, H].  packed_ut is the recurrent kernel packed transposed, [3H, H].
void gru_backward(int T, int batch, int rows, int H, const float* dhs, const float* hs, const float* gates,
                  const float* h0, const float* packed_ut, float* dzx, float* dhu, float* dh0);

// Softmax cross-entropy of `rows` rows of logits z = xw [rows, V] + bias [V] (bias may be null):
// losses[r] = log sum_v exp(z_v) - z_label, ranks[r] = how many logits exceed the label's (top-k
// holds the label when its rank is below k), and, unless d_logits is null, the loss's gradient
// softmax(z) - one_hot(label), [rows, V].  Labels must lie in [0, V).
void softmax_cross_entropy(int rows, int V, const float* xw, const float* bias, const int32_t* labels,
                           float* losses, int32_t* ranks, float* d_logits);

// Dropout with TensorFlow's own random numbers: u is the draw of tf.random.stateless_uniform (Philox4x32-10
// from `key` and the 128-bit `counter` of StatelessRandomGetKeyCounter, four floats per counter value),
// mask = (u >= rate) * scale and y = x * mask, bit for bit as TensorFlow computes them.  x, y, mask
// are [T, B, F] and the draw is indexed as for [B, T, F]: element (t, b, f) takes u[(b T + t) F + f],
// so a time-major model gets the masks of its batch-major twin (a batch-major tensor is T = 1).
// Does batch rows [first_b, first_b + count_b), so that cores can share the work.
void dropout(int T, int B, int F, uint64_t key, const uint64_t counter[2], float rate, float scale,
             const float* x, float* y, float* mask, int first_b, int count_b);


// word2vec with negative sampling, as gensim's word2vec_inner.pyx (and word2vec.c) trains it: one
// sentence of a batch, updating the tables syn0 and syn1neg [vocab, dim] in place (Hogwild: other
// threads train other sentences at once).  The sentence is ids[splits[s] .. splits[s + 1]); its
// random stream (48-bit LCG) starts from (seed, epoch, first_sentence + s); its learning rate is
// interpolated from alpha_start to alpha_end by where it starts in the batch.  Draw order: one
// 32-bit draw per word for subsampling (kept when draw <= sample_int[word]), one per kept word for
// the window reduction b in [0, window), then one per noise word (upper bound of draw % cum_table's
// total in cum_table).  Returns the number of kept words.  `scratch` holds 2 x the sentence's
// length ints, `neu1` and `work` dim floats each.
struct Word2vecBatch {
  float* syn0;
  float* syn1neg;
  int dim, vocab;
  const int32_t* ids;
  const int64_t* splits;
  int sentences;
  const int64_t* sample_int;
  const int64_t* cum_table;
  float alpha_start, alpha_end;
  uint64_t seed, epoch, first_sentence;
  bool cbow;
  int window, negative;
};
uint64_t word2vec_seed(uint64_t seed, uint64_t epoch, uint64_t sentence);
int64_t word2vec_sentence(const Word2vecBatch& batch, int s, int32_t* scratch, float* neu1, float* work);

}  // namespace lm_app
