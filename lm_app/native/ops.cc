// The kernels of kernels.h as TensorFlow ops (CPU), loaded with tf.load_op_library by native/__init__.py.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels.h"
#include "ops.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

namespace tensorflow {
namespace {

using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

REGISTER_OP("LmAppLstmForward")
    .Input("z_x: float")               // [T, B, 4H]: every step's x_t W + b
    .Input("h0: float")                // [B, H]
    .Input("c0: float")                // [B, H]
    .Input("recurrent_kernel: float")  // [H, 4H]
    .Output("hs: float")               // [T, B, H]
    .Output("cs: float")               // [T, B, H]
    .Output("gates: float")            // [T, B, 4H]: i, f, g, o after their activations
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle z, h;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &z));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &h));
      ShapeHandle hs = c->MakeShape({c->Dim(z, 0), c->Dim(z, 1), c->Dim(h, 1)});
      c->set_output(0, hs);
      c->set_output(1, hs);
      c->set_output(2, z);
      return absl::OkStatus();
    });

REGISTER_OP("LmAppLstmBackward")
    .Input("dhs: float")               // [T, B, H]: the gradient reaching each h_t from above
    .Input("dc_last: float")           // [B, H]
    .Input("cs: float")                // the forward pass's outputs
    .Input("gates: float")
    .Input("c0: float")
    .Input("recurrent_kernel: float")
    .Output("dz: float")               // [T, B, 4H]: the gradient of every step's gate pre-activations
    .Output("dh0: float")
    .Output("dc0: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(3));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return absl::OkStatus();
    });

REGISTER_OP("LmAppSoftmaxCrossEntropy")
    .Input("logits: float")           // [N, V], before the bias
    .Input("bias: float")             // [V], or [0] for none
    .Input("labels: int32")           // [N]
    .Attr("gradient: bool")
    .Output("losses: float")          // [N]: log sum exp(logits) - logits[label]
    .Output("ranks: int32")           // [N]: how many logits exceed the label's
    .Output("d_logits: float")        // [N, V]: softmax - one_hot(label); [0, V] without `gradient`
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle logits;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &logits));
      bool gradient;
      TF_RETURN_IF_ERROR(c->GetAttr("gradient", &gradient));
      c->set_output(0, c->Vector(c->Dim(logits, 0)));
      c->set_output(1, c->Vector(c->Dim(logits, 0)));
      c->set_output(2, gradient ? logits : c->Matrix(0, c->Dim(logits, 1)));
      return absl::OkStatus();
    });

REGISTER_OP("LmAppDropout")
    .Input("x: float")                // [T, B, ...] with time_major, else any shape
    .Input("key: uint64")             // [1] and [2]: StatelessRandomGetKeyCounter of the seed
    .Input("counter: uint64")
    .Attr("rate: float")
    .Attr("scale: float")             // 1 / (1 - rate), as the caller rounds it
    .Attr("time_major: bool")
    .Output("y: float")               // x * mask
    .Output("mask: float")            // (u >= rate) * scale
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(0));
      return absl::OkStatus();
    });

absl::Status check_lstm(const Tensor& z, const Tensor& state, const Tensor& kernel) {
  if (z.dims() != 3 || state.dims() != 2 || kernel.dims() != 2)
    return errors::InvalidArgument("the LSTM wants z [T, B, 4H], states [B, H], kernel [H, 4H]");
  const int64_t B = z.dim_size(1), H = state.dim_size(1);
  if (z.dim_size(0) < 1) return errors::InvalidArgument("the LSTM needs at least one step");
  if (state.dim_size(0) != B || z.dim_size(2) != 4 * H || kernel.dim_size(0) != H || kernel.dim_size(1) != 4 * H)
    return errors::InvalidArgument("the LSTM's shapes disagree: z ", z.shape().DebugString(), ", state ",
                                   state.shape().DebugString(), ", kernel ", kernel.shape().DebugString());
  return absl::OkStatus();
}

class LstmForward : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor &z = ctx->input(0), &h0 = ctx->input(1), &c0 = ctx->input(2), &kernel = ctx->input(3);
    OP_REQUIRES_OK(ctx, check_lstm(z, h0, kernel));
    OP_REQUIRES(ctx, c0.shape() == h0.shape(), errors::InvalidArgument("h0 and c0 differ in shape"));
    const int T = z.dim_size(0), B = z.dim_size(1), H = h0.dim_size(1);
    Tensor *hs, *cs, *gates;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, H}), &hs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, H}), &cs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, z.shape(), &gates));
    std::unique_ptr<float[]> u(new float[lm_app::packed_size(H, 4 * H)]);  // every element is written
    lm_app::pack_panels(data(kernel), H, 4 * H, 4 * H, false, u.get());
    over_rows(ctx, B, [&](int r0, int rows) {
      const long h = (long)r0 * H, g = 4 * h;
      lm_app::lstm_forward(T, B, rows, H, data(z) + g, data(h0) + h, data(c0) + h, u.get(), data(hs) + h,
                           data(cs) + h, data(gates) + g);
    });
  }
};

class LstmBackward : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor &dhs = ctx->input(0), &dc_last = ctx->input(1), &cs = ctx->input(2), &gates = ctx->input(3),
                 &c0 = ctx->input(4), &kernel = ctx->input(5);
    OP_REQUIRES_OK(ctx, check_lstm(gates, c0, kernel));
    const int T = gates.dim_size(0), B = gates.dim_size(1), H = c0.dim_size(1);
    OP_REQUIRES(ctx, dhs.shape() == TensorShape({T, B, H}) && cs.shape() == dhs.shape() &&
                         dc_last.shape() == c0.shape(),
                errors::InvalidArgument("the LSTM gradient's shapes disagree"));
    Tensor *dz, *dh0, *dc0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, gates.shape(), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c0.shape(), &dh0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, c0.shape(), &dc0));
    std::unique_ptr<float[]> ut(new float[lm_app::packed_size(4 * H, H)]);
    lm_app::pack_panels(data(kernel), 4 * H, H, 4 * H, true, ut.get());
    over_rows(ctx, B, [&](int r0, int rows) {
      const long h = (long)r0 * H, g = 4 * h;
      lm_app::lstm_backward(T, B, rows, H, data(dhs) + h, data(dc_last) + h, data(cs) + h, data(gates) + g,
                            data(c0) + h, ut.get(), data(dz) + g, data(dh0) + h, data(dc0) + h);
    });
  }
};

class SoftmaxCrossEntropy : public OpKernel {
 public:
  explicit SoftmaxCrossEntropy(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("gradient", &gradient_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor &logits = ctx->input(0), &bias = ctx->input(1), &labels = ctx->input(2);
    OP_REQUIRES(ctx, logits.dims() == 2 && labels.dims() == 1 && labels.dim_size(0) == logits.dim_size(0),
                errors::InvalidArgument("the cross-entropy wants logits [N, V] and labels [N], got ",
                                        logits.shape().DebugString(), " and ", labels.shape().DebugString()));
    const int N = logits.dim_size(0), V = logits.dim_size(1);
    OP_REQUIRES(ctx, bias.dims() == 1 && (bias.dim_size(0) == V || bias.dim_size(0) == 0),
                errors::InvalidArgument("the bias must be [V] or [0], got ", bias.shape().DebugString()));
    const int32_t* label = labels.flat<int32_t>().data();
    for (int r = 0; r < N; ++r)
      OP_REQUIRES(ctx, label[r] >= 0 && label[r] < V,
                  errors::InvalidArgument("label ", label[r], " is outside the vocabulary [0, ", V, ")"));
    Tensor *losses, *ranks, *d_logits;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({N}), &losses));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({N}), &ranks));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({gradient_ ? N : 0, V}), &d_logits));
    over_rows(ctx, N, [&](int r0, int rows) {
      lm_app::softmax_cross_entropy(rows, V, data(logits) + (long)r0 * V, bias.NumElements() ? data(bias) : nullptr,
                                    label + r0, data(losses) + r0,
                                    ranks->flat<int32_t>().data() + r0,
                                    gradient_ ? data(d_logits) + (long)r0 * V : nullptr);
    });
  }

 private:
  bool gradient_;
};

class Dropout : public OpKernel {
 public:
  explicit Dropout(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("rate", &rate_));
    OP_REQUIRES_OK(c, c->GetAttr("scale", &scale_));
    OP_REQUIRES_OK(c, c->GetAttr("time_major", &time_major_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &key = ctx->input(1), &counter = ctx->input(2);
    OP_REQUIRES(ctx, key.NumElements() == 1 && counter.NumElements() == 2,
                errors::InvalidArgument("dropout wants a key of 1 and a counter of 2 uint64s"));
    OP_REQUIRES(ctx, !time_major_ || x.dims() >= 2,
                errors::InvalidArgument("time-major dropout wants [T, B, ...], got ", x.shape().DebugString()));
    OP_REQUIRES(ctx, x.NumElements() < (int64_t{1} << 31), errors::InvalidArgument("dropout input too large"));
    // A batch-major tensor is its draw's order already: T = 1, rows of its last dimension.
    const int F = x.dims() == 0 ? 1 : x.dim_size(x.dims() - 1);
    const int T = time_major_ ? x.dim_size(0) : 1;
    const int B = time_major_ ? x.dim_size(1) : (F ? x.NumElements() / F : 0);
    const int inner = time_major_ && T * B ? x.NumElements() / ((int64_t)T * B) : F;
    Tensor *y, *mask;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, x.shape(), &mask));
    if (x.NumElements() == 0) return;
    const uint64_t k = key.flat<uint64_t>()(0);
    const uint64_t* c = counter.flat<uint64_t>().data();
    over_rows(ctx, B, [&](int b0, int rows) {
      lm_app::dropout(T, B, inner, k, c, rate_, scale_, data(x), data(y), data(mask), b0, rows);
    });
  }

 private:
  float rate_, scale_;
  bool time_major_;
};

REGISTER_OP("LmAppWord2vec")
    .Input("syn0: resource")          // [V, dim] float: the input vectors, updated in place
    .Input("syn1neg: resource")       // [V, dim] float: the output vectors, updated in place
    .Input("ids: int32")              // [N]: the batch's sentences, one after another
    .Input("splits: int64")           // [S + 1]: sentence s is ids[splits[s] .. splits[s + 1])
    .Input("sample_int: int64")       // [V]: keep a word when a 32-bit draw is <= this
    .Input("cum_table: int64")        // [V]: cumulative unigram^0.75 weights
    .Input("alpha: float")            // [2]: the learning rate at the batch's start and end
    .Input("seed: int64")             // [3]: seed, epoch, index of the batch's first sentence
    .Attr("cbow: bool")
    .Attr("window: int >= 1")
    .Attr("negative: int >= 0")
    .Attr("threads: int >= 1")
    .Output("kept: int64")            // words left after subsampling
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Scalar());
      return absl::OkStatus();
    });

// A variable's buffer, unshared so it can be written in place (as TensorFlow's own in-place updates do:
// a tensor read from it earlier may still hold the old buffer, and must keep seeing the old values).
absl::Status writable(OpKernelContext* ctx, Var* var, Tensor** out) {
  Tensor* t = var->tensor();
  if (!var->is_initialized || t->dtype() != DT_FLOAT || t->dims() != 2)
    return errors::InvalidArgument("word2vec wants initialised float [vocab, dim] variables");
  if (!t->RefCountIsOne()) {
    Tensor copy;
    TF_RETURN_IF_ERROR(ctx->allocate_temp(DT_FLOAT, t->shape(), &copy));
    std::copy_n(t->flat<float>().data(), t->NumElements(), copy.flat<float>().data());
    *t = copy;
  }
  *out = t;
  return absl::OkStatus();
}

// Trains a batch of sentences, Hogwild: `threads` threads claim sentences one at a time and update the
// shared tables without locks, as word2vec.c and gensim do; each sentence's random numbers are its own.
class Word2vec : public OpKernel {
 public:
  explicit Word2vec(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("cbow", &cbow_));
    OP_REQUIRES_OK(c, c->GetAttr("window", &window_));
    OP_REQUIRES_OK(c, c->GetAttr("negative", &negative_));
    OP_REQUIRES_OK(c, c->GetAttr("threads", &threads_));
  }

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<Var> syn0, syn1neg;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &syn0));
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 1), &syn1neg));
    mutex_lock lock0(*syn0->mu());
    mutex_lock lock1(*syn1neg->mu());
    Tensor *in, *out;
    OP_REQUIRES_OK(ctx, writable(ctx, syn0.get(), &in));
    OP_REQUIRES_OK(ctx, writable(ctx, syn1neg.get(), &out));
    const Tensor &ids = ctx->input(2), &splits = ctx->input(3), &sample = ctx->input(4), &cum = ctx->input(5),
                 &alpha = ctx->input(6), &seed = ctx->input(7);
    const int64_t V = in->dim_size(0), dim = in->dim_size(1);
    OP_REQUIRES(ctx, out->shape() == in->shape() && sample.NumElements() == V && cum.NumElements() == V && V > 0,
                errors::InvalidArgument("word2vec: syn0, syn1neg, sample_int and cum_table disagree on the vocabulary"));
    OP_REQUIRES(ctx, alpha.NumElements() == 2 && seed.NumElements() == 3 && splits.NumElements() >= 1,
                errors::InvalidArgument("word2vec wants alpha [2], seed [3] and splits [S + 1]"));
    const int32_t* id = ids.flat<int32_t>().data();
    const int64_t* split = splits.flat<int64_t>().data();
    const int64_t S = splits.NumElements() - 1;
    OP_REQUIRES(ctx, split[0] == 0 && split[S] == ids.NumElements(),
                errors::InvalidArgument("word2vec: splits must run from 0 to the number of ids"));
    int64_t longest = 0;
    for (int64_t s = 0; s < S; ++s) {
      OP_REQUIRES(ctx, split[s + 1] >= split[s], errors::InvalidArgument("word2vec: splits must not decrease"));
      longest = std::max(longest, split[s + 1] - split[s]);
    }
    for (int64_t i = 0; i < ids.NumElements(); ++i)
      OP_REQUIRES(ctx, id[i] >= 0 && id[i] < V, errors::InvalidArgument("word2vec: id ", id[i], " outside [0, ", V, ")"));
    OP_REQUIRES(ctx, negative_ == 0 || cum.flat<int64_t>()(V - 1) > 0,
                errors::InvalidArgument("word2vec: the noise table is empty"));
    const auto* s = seed.flat<int64_t>().data();
    const lm_app::Word2vecBatch batch{in->flat<float>().data(), out->flat<float>().data(), (int)dim, (int)V,
                                      id, split, (int)S, sample.flat<int64_t>().data(), cum.flat<int64_t>().data(),
                                      alpha.flat<float>()(0), alpha.flat<float>()(1), (uint64_t)s[0],
                                      (uint64_t)s[1], (uint64_t)s[2], cbow_, window_, negative_};
    std::atomic<int64_t> next{0}, kept{0};
    auto run = [&] {
      std::vector<int32_t> scratch(2 * longest + 1);
      std::vector<float> neu1(dim), work(dim);
      int64_t mine = 0;
      for (int64_t k; (k = next.fetch_add(1)) < S;)
        mine += lm_app::word2vec_sentence(batch, (int)k, scratch.data(), neu1.data(), work.data());
      kept += mine;
    };
    std::vector<std::thread> helpers;
    for (int t = 1; t < std::min<int64_t>(threads_, S); ++t) helpers.emplace_back(run);
    run();
    for (auto& h : helpers) h.join();
    Tensor* result;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &result));
    result->scalar<int64_t>()() = kept;
  }

 private:
  bool cbow_;
  int window_, negative_, threads_;
};

REGISTER_KERNEL_BUILDER(Name("LmAppLstmForward").Device(DEVICE_CPU), LstmForward);
REGISTER_KERNEL_BUILDER(Name("LmAppLstmBackward").Device(DEVICE_CPU), LstmBackward);
REGISTER_KERNEL_BUILDER(Name("LmAppSoftmaxCrossEntropy").Device(DEVICE_CPU), SoftmaxCrossEntropy);
REGISTER_KERNEL_BUILDER(Name("LmAppDropout").Device(DEVICE_CPU), Dropout);
REGISTER_KERNEL_BUILDER(Name("LmAppWord2vec").Device(DEVICE_CPU), Word2vec);

}  // namespace
}  // namespace tensorflow
