// One-pass Adam step for a float32 buffer, as an XLA FFI custom call (CPU).
//
// An experiment for benchmarks/native_adam.py, not part of the package. XLA:CPU
// runs an Adam step as three loops (first moment, second moment, then the
// parameters, which read both new moments back): about 40 bytes per parameter.
// This loop reads the gradient, both moments and the parameter once and writes
// the three once: the 28 bytes per parameter of DESIGN.md's limit.
//
// Operands: params, mu, nu (each aliased to its result, so updated in place),
// grads, and 8 float32 scalars [b1, 1 - b1, b2, 1 - b2, mu_scale, nu_scale,
// learning_rate, eps] (the scales are the reciprocal bias corrections, computed
// by the caller's graph). The update is optax's:
//   p <- p - lr * (mu * mu_scale) / (sqrt(nu * nu_scale) + eps).
#include <cmath>
#include <cstdint>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Scalars {
  float b1, a1, b2, a2, mu_scale, nu_scale, lr, eps;
};

void Step(float* __restrict__ p, float* __restrict__ mu, float* __restrict__ nu,
          const float* __restrict__ g, int64_t lo, int64_t hi, Scalars s) {
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = g[i];
    const float m = s.b1 * mu[i] + s.a1 * gi;
    const float v = s.b2 * nu[i] + s.a2 * (gi * gi);
    mu[i] = m;
    nu[i] = v;
    p[i] -= s.lr * ((m * s.mu_scale) / (std::sqrt(v * s.nu_scale) + s.eps));
  }
}

ffi::Error FusedAdamImpl(ffi::Buffer<ffi::F32> p, ffi::Buffer<ffi::F32> mu,
                         ffi::Buffer<ffi::F32> nu, ffi::Buffer<ffi::F32> g,
                         ffi::Buffer<ffi::F32> scalars,
                         ffi::ResultBuffer<ffi::F32> p_out,
                         ffi::ResultBuffer<ffi::F32> mu_out,
                         ffi::ResultBuffer<ffi::F32> nu_out) {
  const int64_t n = p.element_count();
  if (scalars.element_count() != 8) {
    return ffi::Error::InvalidArgument("fused_adam: expected 8 scalars");
  }
  if (p_out->typed_data() != p.typed_data() || mu_out->typed_data() != mu.typed_data() ||
      nu_out->typed_data() != nu.typed_data()) {
    return ffi::Error::InvalidArgument("fused_adam: results must alias the operands");
  }
  const float* s = scalars.typed_data();
  const Scalars k{s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]};
  float* P = p_out->typed_data();
  float* M = mu_out->typed_data();
  float* V = nu_out->typed_data();
  const float* G = g.typed_data();
  // Two threads fill this machine's memory bandwidth; a thread costs tens of
  // microseconds to start, more than a small buffer's whole step.
  if (n < (int64_t{1} << 18)) {
    Step(P, M, V, G, 0, n, k);
    return ffi::Error::Success();
  }
  const int64_t half = (n / 2) & ~int64_t{63};
  std::thread other([&] { Step(P, M, V, G, half, n, k); });
  Step(P, M, V, G, 0, half, k);
  other.join();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(FusedAdam, FusedAdamImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
