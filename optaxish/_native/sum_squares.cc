// Sum of the squares of every element of several float32 buffers: an XLA FFI
// custom call for CPU, the reduction behind optaxish.global_norm on trees of
// several leaves (clip_by_global_norm, loss scaling's finiteness check).
//
// XLA:CPU reduces each leaf of a gradient tree in its own kernel, at 13-25
// GB/s on the development machine, and a kernel per leaf costs microseconds
// of dispatch on a model of hundreds of small tensors. This call reads every
// leaf (its operands, in place) in one pass, split into fixed chunks that the
// calling thread and XLA's intra-op pool take in turn.
//
// The result does not depend on which thread took which chunk: each chunk's
// sum lands in its own slot, and the slots are added in chunk order. Inside a
// chunk, blocks of kBlock elements are summed in float32 vector lanes and the
// block sums in double, so the float32 result is at least as accurate as
// XLA's float32 tree reduction. A NaN or infinity anywhere makes it NaN or
// infinite, which is what the finiteness check reads.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "chunks.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kChunk = 1 << 16;  // elements a thread takes at a time
constexpr int64_t kBlock = 1 << 12;  // elements summed in float32 lanes

// Portable SIMD (GCC and Clang vector extensions): four independent
// accumulators of eight lanes hide the latency of the multiply-adds.
typedef float Lanes __attribute__((vector_size(32)));

double SumSquaresOf(const float* x, int64_t n) {
  double total = 0;
  for (int64_t lo = 0; lo < n; lo += kBlock) {
    const int64_t hi = std::min(n, lo + kBlock);
    Lanes a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int64_t i = lo;
    for (; i + 32 <= hi; i += 32) {
      Lanes x0, x1, x2, x3;
      __builtin_memcpy(&x0, x + i, sizeof(Lanes));
      __builtin_memcpy(&x1, x + i + 8, sizeof(Lanes));
      __builtin_memcpy(&x2, x + i + 16, sizeof(Lanes));
      __builtin_memcpy(&x3, x + i + 24, sizeof(Lanes));
      a0 += x0 * x0;
      a1 += x1 * x1;
      a2 += x2 * x2;
      a3 += x3 * x3;
    }
    const Lanes a = (a0 + a1) + (a2 + a3);
    float block = 0;
    for (; i < hi; ++i) block += x[i] * x[i];
    for (int j = 0; j < 8; ++j) block += a[j];
    total += block;
  }
  return total;
}

ffi::Error SumSquaresImpl(ffi::ThreadPool pool, ffi::RemainingArgs operands,
                          ffi::ResultBuffer<ffi::F32> out) {
  optaxish::Pieces pieces;
  for (size_t i = 0; i < operands.size(); ++i) {
    auto x = operands.get<ffi::Buffer<ffi::F32>>(i);
    if (x.has_error()) return x.error();
    pieces.Add(x->typed_data(), x->element_count());
  }
  std::vector<double> partial((pieces.size() + kChunk - 1) / kChunk, 0.0);
  // A helper only pays for itself with a few chunks each.
  optaxish::ForEachChunk(pool, pieces.size(), kChunk, 4,
                         [&](int64_t c, int64_t lo, int64_t hi) {
                           double sum = 0;
                           pieces.ForRange(lo, hi, [&](const float* x, int64_t, int64_t n) {
                             sum += SumSquaresOf(x, n);
                           });
                           partial[c] = sum;
                         });
  double total = 0;
  for (double p : partial) total += p;
  *out->typed_data() = static_cast<float>(total);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(OptaxishSumSquares, SumSquaresImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .RemainingArgs()
                                  .Ret<ffi::Buffer<ffi::F32>>());
