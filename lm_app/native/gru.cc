// The GRU recurrence (see kernels.h): lm_app/layers/gru.py's equations, reset after the recurrent
// product (as Keras' reset_after=True, cuDNN and PyTorch's nn.GRU), with the LSTM kernel's layout and
// method: time-major, one register-blocked product h_{t-1} U per step, the gates in vector registers.
#include <cstring>
#include <memory>
#include <vector>

#include "kernels.h"
#include "vectors.h"

namespace lm_app {

void gru_forward(int T, int batch, int rows, int H, const float* zx, const float* h0, const float* packed_u,
                 const float* recurrent_bias, float* hs, float* gates) {
  const int N = 3 * H, panels = panels_of(N), ldu = panels * W;
  const float* b = recurrent_bias;
  std::unique_ptr<float[]> hu(new float[(size_t)rows * ldu]);  // h_{t-1} U, written before it is read
  for (int t = 0; t < T; ++t) {
    const long step = (long)t * batch;
    const float* h_prev = t ? hs + (step - batch) * H : h0;
    product(rows, h_prev, H, packed_u, H, panels, hu.get(), ldu);
    for (int r = 0; r < rows; ++r) {
      const float* x = zx + (step + r) * N;
      const float* s = hu.get() + (long)r * ldu;
      const float* hp = h_prev + (long)r * H;
      float* g = gates + (step + r) * 4 * H;
      float* h = hs + (step + r) * H;
      chunks(H, [&](int j, auto n) {
        vf z = vsigmoid(load_n(x + j, n) + (load_n(s + j, n) + load_n(b + j, n)));
        vf rr = vsigmoid(load_n(x + H + j, n) + (load_n(s + H + j, n) + load_n(b + H + j, n)));
        vf hn = load_n(s + 2 * H + j, n) + load_n(b + 2 * H + j, n);
        vf cand = vtanh(load_n(x + 2 * H + j, n) + rr * hn);
        store_n(h + j, z * load_n(hp + j, n) + (splat(1.0f) - z) * cand, n);
        store_n(g + j, z, n);
        store_n(g + H + j, rr, n);
        store_n(g + 2 * H + j, cand, n);
        store_n(g + 3 * H + j, hn, n);
      });
    }
  }
}

void gru_backward(int T, int batch, int rows, int H, const float* dhs, const float* hs, const float* gates,
                  const float* h0, const float* packed_ut, float* dzx, float* dhu, float* dh0) {
  const int N = 3 * H, panels = panels_of(H), ldh = panels * W;
  // dh_{t-1} = dhu_t U^T (the product, into `through_u`) + dh_t z_t (the gated path, into `direct`).
  std::vector<float> through_u((size_t)rows * ldh, 0.0f), direct((size_t)rows * H, 0.0f);
  for (int t = T - 1; t >= 0; --t) {
    const long step = (long)t * batch;
    const float* h_prev = t ? hs + (step - batch) * H : h0;
    for (int r = 0; r < rows; ++r) {
      const float* g = gates + (step + r) * 4 * H;
      const float* hp = h_prev + (long)r * H;
      const float* dh_out = dhs + (step + r) * H;
      float* dx = dzx + (step + r) * N;
      float* du = dhu + (step + r) * N;
      float* thu = through_u.data() + (long)r * ldh;
      float* dir = direct.data() + (long)r * H;
      chunks(H, [&](int j, auto n) {
        vf z = load_n(g + j, n), rr = load_n(g + H + j, n), cand = load_n(g + 2 * H + j, n),
           hn = load_n(g + 3 * H + j, n);
        vf dh = load_n(dh_out + j, n) + load_n(thu + j, n) + load_n(dir + j, n);
        vf dz = dh * (load_n(hp + j, n) - cand) * z * (splat(1.0f) - z);
        vf dn = dh * (splat(1.0f) - z) * (splat(1.0f) - cand * cand);
        vf dr = dn * hn * rr * (splat(1.0f) - rr);
        store_n(dx + j, dz, n);
        store_n(dx + H + j, dr, n);
        store_n(dx + 2 * H + j, dn, n);
        store_n(du + j, dz, n);
        store_n(du + H + j, dr, n);
        store_n(du + 2 * H + j, dn * rr, n);  // the reset gate scales the product's share
        store_n(dir + j, dh * z, n);
      });
    }
    product(rows, dhu + step * N, N, packed_ut, N, panels, through_u.data(), ldh);
  }
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < H; ++j) dh0[(long)r * H + j] = through_u[(size_t)r * ldh + j] + direct[(size_t)r * H + j];
}

}  // namespace lm_app
