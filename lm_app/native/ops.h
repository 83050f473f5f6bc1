// What lm_app's TensorFlow ops share (ops.cc, gru_ops.cc): running a kernel over parts of the batch
// on TensorFlow's intra-op threads, and a tensor's floats.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/threadpool.h"

namespace tensorflow {
namespace {

// work(first_row, rows) over parts of the batch, one part per intra-op thread: rows never interact,
// so each part runs the whole sequence on its own core.  The parts go to the pool and this thread
// sleeps: running a part here measured slower (it was often delayed by the pool's own threads).
// But a part no thread has started within 2 ms (they start in microseconds) is run here, so this never waits on work
// nobody will do: with the pool's threads all blocked (say, in ops like this one), waiting alone
// would deadlock.  Parts are claimed from a counter; a helper that starts late finds none left.
template <class Work>
void over_rows(OpKernelContext* ctx, int batch, Work work) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  const int parts = std::max(1, std::min(pool->NumThreads(), batch / 4));
  if (parts == 1) return work(0, batch);
  struct Parts {
    Parts(int batch, int parts, Work* work) : batch(batch), parts(parts), work(work) {}
    const int batch, parts;
    Work* const work;  // dereferenced only by whoever claims a part, so only while the call waits
    std::atomic<int> next{0};
    int finished = 0;
    std::mutex mutex;
    std::condition_variable changed;

    void claim() {
      for (int p; (p = next.fetch_add(1)) < parts;) {
        const int first = batch * p / parts;
        (*work)(first, batch * (p + 1) / parts - first);
        std::lock_guard<std::mutex> lock(mutex);
        if (++finished == parts) changed.notify_all();
      }
    }
    bool all_done() { return finished == parts; }
  };
  auto shared = std::make_shared<Parts>(batch, parts, &work);  // outlives this call for late helpers
  for (int p = 0; p < parts; ++p) pool->Schedule([shared] { shared->claim(); });
  std::unique_lock<std::mutex> lock(shared->mutex);
  if (shared->changed.wait_for(lock, std::chrono::microseconds(2000), [&] { return shared->all_done(); })) return;
  lock.unlock();
  shared->claim();  // whatever no helper has started yet
  lock.lock();
  shared->changed.wait(lock, [&] { return shared->all_done(); });
}

const float* data(const Tensor& t) { return t.flat<float>().data(); }
float* data(Tensor* t) { return t->flat<float>().data(); }

}  // namespace
}  // namespace tensorflow
