// The memory floor of an Adam step on this machine, for benchmarks only: an
// XLA FFI custom call with the native Adam kernel's operands, chunks and
// threads (optaxish/_native/adam.cc), that reads the parameter, gradient and
// both moments and writes the three back in place, 28 bytes per element, with
// one multiply-add each instead of Adam's square root and division. Nothing
// an Adam step of that layout does can move its bytes faster.
//
// Operands: p, mu, nu (each aliased to its result), then the gradient.
// (The build's cache key covers this file and the headers beside it, not
// chunks.h: a change there needs the cache cleared, see _build.cache_dir.)
#include <cstdint>

#include "../optaxish/_native/chunks.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kChunk = 1 << 16;  // as the Adam kernel

ffi::Error StreamImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> p,
                      ffi::Buffer<ffi::F32> mu, ffi::Buffer<ffi::F32> nu,
                      ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> p_out,
                      ffi::ResultBuffer<ffi::F32> mu_out,
                      ffi::ResultBuffer<ffi::F32> nu_out) {
  const int64_t n = p.element_count();
  if (mu.element_count() != n || nu.element_count() != n || g.element_count() != n ||
      p_out->typed_data() != p.typed_data() || mu_out->typed_data() != mu.typed_data() ||
      nu_out->typed_data() != nu.typed_data()) {
    return ffi::Error::InvalidArgument("stream_floor: sizes differ or not in place");
  }
  float* __restrict__ P = p_out->typed_data();
  float* __restrict__ M = mu_out->typed_data();
  float* __restrict__ V = nu_out->typed_data();
  const float* __restrict__ G = g.typed_data();
  optaxish::ForEachChunk(pool, n, kChunk, 4, [&](int64_t, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float gi = G[i];
      M[i] = 0.9f * M[i] + gi;
      V[i] = 0.999f * V[i] + gi;
      P[i] = P[i] + 1e-3f * gi;
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(OptaxishStreamFloor, StreamImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
