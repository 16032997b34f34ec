// The memory floor of an Adam step on this machine, for benchmarks only: an
// XLA FFI custom call with the native Adam kernel's operands, chunks and
// threads (optaxish/_native/adam.cc), that reads the parameter, gradient and
// both moments and writes the three back in place, 28 bytes per element, with
// a multiply-add each instead of Adam's square root and division. Nothing
// an Adam step of that layout does can move its bytes faster.
//
// Operands: p, mu, nu (each aliased to its result), the scalars [b1, b2, lr],
// then the gradient in one or more pieces that tile p in order, as the Adam kernel takes them (the facade's
// apply_gradients hands it the user's per-variable arrays).
// (The build's cache key covers this file and the headers beside it, not
// chunks.h: a change there needs the cache cleared, see _build.cache_dir.)
#include <cstdint>

#include "../optaxish/_native/chunks.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kChunk = 1 << 16;  // as the Adam kernel

void Stream(float* __restrict__ p, float* __restrict__ mu, float* __restrict__ nu,
            const float* __restrict__ g, int64_t n, float b1, float b2, float lr) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    mu[i] = b1 * mu[i] + gi;
    nu[i] = b2 * nu[i] + gi;
    p[i] = p[i] + lr * gi;
  }
}

ffi::Error StreamImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> p,
                      ffi::Buffer<ffi::F32> mu, ffi::Buffer<ffi::F32> nu,
                      ffi::Buffer<ffi::F32> scalars, ffi::RemainingArgs grads,
                      ffi::ResultBuffer<ffi::F32> p_out,
                      ffi::ResultBuffer<ffi::F32> mu_out,
                      ffi::ResultBuffer<ffi::F32> nu_out) {
  const int64_t n = p.element_count();
  optaxish::Pieces g;
  if (auto error = optaxish::AddPieces(grads, g); error.failure()) return error;
  if (mu.element_count() != n || nu.element_count() != n || g.size() != n ||
      scalars.element_count() != 3 || p_out->typed_data() != p.typed_data() ||
      mu_out->typed_data() != mu.typed_data() || nu_out->typed_data() != nu.typed_data()) {
    return ffi::Error::InvalidArgument("stream_floor: sizes differ or not in place");
  }
  float* P = p_out->typed_data();
  float* M = mu_out->typed_data();
  float* V = nu_out->typed_data();
  const float* s = scalars.typed_data();
  optaxish::ForEachChunk(pool, n, kChunk, 4, [&](int64_t, int64_t lo, int64_t hi) {
    g.ForRange(lo, hi, [&](const float* gi, int64_t at, int64_t size) {
      Stream(P + at, M + at, V + at, gi, size, s[0], s[1], s[2]);
    });
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(OptaxishStreamFloor, StreamImpl,
                              optaxish::InPlaceStepBinding());
