// The GRU kernels of kernels.h (gru.cc) as TensorFlow ops (CPU), beside the LSTM's in ops.cc.
#include <memory>

#include "kernels.h"
#include "ops.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace {

using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

REGISTER_OP("LmAppGruForward")
    .Input("z_x: float")               // [T, B, 3H]: every step's x_t W + b (the input bias)
    .Input("h0: float")                // [B, H]
    .Input("recurrent_kernel: float")  // [H, 3H]
    .Input("recurrent_bias: float")    // [3H]
    .Output("hs: float")               // [T, B, H]
    .Output("gates: float")            // [T, B, 4H]: z, r, n after their activations, h_{t-1} U_n + b'_n
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle z, h;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &z));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &h));
      c->set_output(0, c->MakeShape({c->Dim(z, 0), c->Dim(z, 1), c->Dim(h, 1)}));
      shape_inference::DimensionHandle four_h;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(h, 1), 4, &four_h));
      c->set_output(1, c->MakeShape({c->Dim(z, 0), c->Dim(z, 1), four_h}));
      return absl::OkStatus();
    });

REGISTER_OP("LmAppGruBackward")
    .Input("dhs: float")               // [T, B, H]: the gradient reaching each h_t from above
    .Input("hs: float")                // the forward pass's outputs
    .Input("gates: float")
    .Input("h0: float")
    .Input("recurrent_kernel: float")
    .Output("dzx: float")              // [T, B, 3H]: the gradient of every step's x_t W + b
    .Output("dhu: float")              // [T, B, 3H]: ... and of its h_{t-1} U + b'
    .Output("dh0: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle z;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &z));
      shape_inference::DimensionHandle three_h;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(z, 2), 3, &three_h));
      c->set_output(0, c->MakeShape({c->Dim(z, 0), c->Dim(z, 1), three_h}));
      c->set_output(1, c->output(0));
      c->set_output(2, c->input(3));
      return absl::OkStatus();
    });

absl::Status check_gru(const Tensor& sequence, int gates, const Tensor& h0, const Tensor& kernel) {
  if (sequence.dims() != 3 || h0.dims() != 2 || kernel.dims() != 2)
    return errors::InvalidArgument("the GRU wants sequences [T, B, 3H], states [B, H], kernel [H, 3H]");
  const int64_t B = h0.dim_size(0), H = h0.dim_size(1);
  if (sequence.dim_size(0) < 1) return errors::InvalidArgument("the GRU needs at least one step");
  if (sequence.dim_size(1) != B || sequence.dim_size(2) != gates * H || kernel.dim_size(0) != H ||
      kernel.dim_size(1) != 3 * H)
    return errors::InvalidArgument("the GRU's shapes disagree: ", sequence.shape().DebugString(), ", state ",
                                   h0.shape().DebugString(), ", kernel ", kernel.shape().DebugString());
  return absl::OkStatus();
}

class GruForward : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor &z = ctx->input(0), &h0 = ctx->input(1), &kernel = ctx->input(2), &bias = ctx->input(3);
    OP_REQUIRES_OK(ctx, check_gru(z, 3, h0, kernel));
    const int T = z.dim_size(0), B = z.dim_size(1), H = h0.dim_size(1);
    OP_REQUIRES(ctx, bias.shape() == TensorShape({3 * H}),
                errors::InvalidArgument("the GRU's recurrent bias must be [3H], got ", bias.shape().DebugString()));
    Tensor *hs, *gates;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, H}), &hs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, 4 * H}), &gates));
    std::unique_ptr<float[]> u(new float[lm_app::packed_size(H, 3 * H)]);  // every element is written
    lm_app::pack_panels(data(kernel), H, 3 * H, 3 * H, false, u.get());
    over_rows(ctx, B, [&](int r0, int rows) {
      const long h = (long)r0 * H;
      lm_app::gru_forward(T, B, rows, H, data(z) + 3 * h, data(h0) + h, u.get(), data(bias), data(hs) + h,
                          data(gates) + 4 * h);
    });
  }
};

class GruBackward : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor &dhs = ctx->input(0), &hs = ctx->input(1), &gates = ctx->input(2), &h0 = ctx->input(3),
                 &kernel = ctx->input(4);
    OP_REQUIRES_OK(ctx, check_gru(gates, 4, h0, kernel));
    const int T = gates.dim_size(0), B = gates.dim_size(1), H = h0.dim_size(1);
    OP_REQUIRES(ctx, dhs.shape() == TensorShape({T, B, H}) && hs.shape() == dhs.shape(),
                errors::InvalidArgument("the GRU gradient's shapes disagree"));
    Tensor *dzx, *dhu, *dh0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, 3 * H}), &dzx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, 3 * H}), &dhu));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, h0.shape(), &dh0));
    std::unique_ptr<float[]> ut(new float[lm_app::packed_size(3 * H, H)]);
    lm_app::pack_panels(data(kernel), 3 * H, H, 3 * H, true, ut.get());
    over_rows(ctx, B, [&](int r0, int rows) {
      const long h = (long)r0 * H;
      lm_app::gru_backward(T, B, rows, H, data(dhs) + h, data(hs) + h, data(gates) + 4 * h, data(h0) + h,
                           ut.get(), data(dzx) + 3 * h, data(dhu) + 3 * h, data(dh0) + h);
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("LmAppGruForward").Device(DEVICE_CPU), GruForward);
REGISTER_KERNEL_BUILDER(Name("LmAppGruBackward").Device(DEVICE_CPU), GruBackward);

}  // namespace
}  // namespace tensorflow
