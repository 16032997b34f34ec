// Shared by the kernels: several operands seen as one index space, a loop over
// its chunks on the calling thread and XLA's intra-op thread pool, and the FFI
// signature of an in-place step.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace optaxish {

// Float32 operands laid end to end (a packed group's per-variable gradients,
// a tree's leaves): element i of the whole is element i - starts[k] of
// operand k.
class Pieces {
 public:
  // Empty operands take no room.
  void Add(const float* data, int64_t size) {
    if (size == 0) return;
    data_.push_back(data);
    starts_.push_back(starts_.back() + size);
  }
  int64_t size() const { return starts_.back(); }

  // Calls f(pointer, offset, count) for the runs of operands that cover
  // [lo, hi): `pointer` is operand data for elements offset..offset+count.
  template <typename F>
  void ForRange(int64_t lo, int64_t hi, F&& f) const {
    size_t k = std::upper_bound(starts_.begin(), starts_.end(), lo) - starts_.begin() - 1;
    while (lo < hi) {
      const int64_t end = std::min(hi, starts_[k + 1]);
      f(data_[k] + (lo - starts_[k]), lo, end - lo);
      lo = end;
      ++k;
    }
  }

 private:
  std::vector<const float*> data_;
  std::vector<int64_t> starts_{0};
};

// Calls body(c, lo, hi) for every chunk c = [lo, hi) of [0, total), chunks of
// `chunk` elements, and returns when all are done. The calling thread takes
// chunks, and so do helpers scheduled on XLA's pool (one a further
// `min_chunks_each` chunks, up to the pool's size): they start from a shared
// counter, so a helper that starts late, or never, only takes fewer. A
// helper that starts after the call has returned finds no chunk left and
// touches nothing but the counter, which it shares.
inline void ForEachChunk(xla::ffi::ThreadPool& pool, int64_t total, int64_t chunk,
                         int64_t min_chunks_each,
                         std::function<void(int64_t, int64_t, int64_t)> body) {
  struct Shared {
    std::function<void(int64_t, int64_t, int64_t)> body;
    int64_t total, chunk, chunks;
    std::atomic<int64_t> next{0}, done{0};
    void Work() {
      for (;;) {
        const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
        if (c >= chunks) return;
        body(c, c * chunk, std::min(total, (c + 1) * chunk));
        done.fetch_add(1, std::memory_order_release);
      }
    }
  };
  auto shared = std::make_shared<Shared>();
  shared->body = std::move(body);
  shared->total = total;
  shared->chunk = chunk;
  shared->chunks = (total + chunk - 1) / chunk;
  const int64_t helpers =
      std::min<int64_t>(pool.num_threads(), shared->chunks / min_chunks_each) - 1;
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([shared] { shared->Work(); });
  shared->Work();
  while (shared->done.load(std::memory_order_acquire) < shared->chunks) {
    std::this_thread::yield();  // a helper is finishing its last chunk
  }
}

// Reads a kernel's remaining operands, float32 buffers, as pieces laid end to
// end (the gradient pieces of a step, the leaves of a sum).
inline xla::ffi::Error AddPieces(xla::ffi::RemainingArgs operands, Pieces& pieces) {
  for (size_t i = 0; i < operands.size(); ++i) {
    auto piece = operands.get<xla::ffi::Buffer<xla::ffi::F32>>(i);
    if (piece.has_error()) return piece.error();
    pieces.Add(piece->typed_data(), piece->element_count());
  }
  return xla::ffi::Error::Success();
}

// The signature of a step over p, mu and nu in place (each aliased to its
// result) with a buffer of scalars and the gradient in pieces: the Adam
// kernel's, and the benchmarks' memory floor's.
inline auto InPlaceStepBinding() {
  using F32 = xla::ffi::Buffer<xla::ffi::F32>;
  return xla::ffi::Ffi::Bind()
      .Ctx<xla::ffi::ThreadPool>()
      .Arg<F32>()
      .Arg<F32>()
      .Arg<F32>()
      .Arg<F32>()
      .RemainingArgs()
      .Ret<F32>()
      .Ret<F32>()
      .Ret<F32>();
}

}  // namespace optaxish
