// One-pass Adam step over float32 buffers: an XLA FFI custom call for CPU.
//
// XLA:CPU runs an Adam step as three loops (the first moment, the second, then
// the parameters, which read both new moments back): about 40 bytes of memory
// traffic per parameter. This loop reads the gradient, both moments and the
// parameter once and writes the three once, 28 bytes per parameter.
//
// The arithmetic is the jaxpr's it replaces, in its order (see
// optaxish/_native/__init__.py); compiled with -ffp-contract=fast, it is
// contracted into FMAs as XLA:CPU's LLVM usually contracts it, so the results
// are XLA's, bit for bit in the common case, else within the last bit:
//   mu <- a1 * g + b1 * mu          (a1 = 1 - b1, from the graph)
//   nu <- a2 * (g * g) + b2 * nu    (a2 = 1 - b2)
//   p  <- p + neg_lr * ((factor * mu) / (sqrt(nu + eps_root) + eps))
//
// Operands: p, mu, nu (each aliased to its result: updated in place), float32
// scalars [b1, a1, b2, a2, factor, eps_root, eps, neg_lr] (and weight_decay,
// AdamW's: then u <- u + weight_decay * p before the learning rate), then the
// gradient
// in one or more pieces that tile p in order (a packed group's per-variable
// gradients, read where they are: gathering them first costs more than the
// step on a model of many small variables).
//
// The buffers are cut into chunks that the calling thread and XLA's intra-op
// pool share (chunks.h): on one VM a single thread reached the memory's
// bandwidth, on another it needed two.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "chunks.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kChunk = 1 << 16;  // elements a thread takes at a time

struct Scalars {
  float b1, a1, b2, a2, factor, eps_root, eps, neg_lr, weight_decay;
};

// kDecay: AdamW's decoupled weight decay, added to the update before the
// learning rate scales it (add_decayed_weights between scale_by_adam and
// scale(-lr)).
template <bool kDecay>
void Step(float* __restrict__ p, float* __restrict__ mu, float* __restrict__ nu,
          const float* __restrict__ g, int64_t n, const Scalars s) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float m = s.a1 * gi + s.b1 * mu[i];
    const float v = s.a2 * (gi * gi) + s.b2 * nu[i];
    mu[i] = m;
    nu[i] = v;
    float u = (s.factor * m) / (std::sqrt(v + s.eps_root) + s.eps);
    if constexpr (kDecay) u = u + s.weight_decay * p[i];
    p[i] = p[i] + s.neg_lr * u;
  }
}

ffi::Error AdamImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> p,
                    ffi::Buffer<ffi::F32> mu, ffi::Buffer<ffi::F32> nu,
                    ffi::Buffer<ffi::F32> scalars, ffi::RemainingArgs grads,
                    ffi::ResultBuffer<ffi::F32> p_out,
                    ffi::ResultBuffer<ffi::F32> mu_out,
                    ffi::ResultBuffer<ffi::F32> nu_out) {
  const int64_t n = p.element_count();
  const int64_t count = scalars.element_count();
  if (mu.element_count() != n || nu.element_count() != n || count < 8 || count > 9) {
    return ffi::Error::InvalidArgument("optaxish_adam: operand sizes differ");
  }
  optaxish::Pieces g;
  if (auto error = optaxish::AddPieces(grads, g); error.failure()) return error;
  if (g.size() != n) {
    return ffi::Error::InvalidArgument(
        "optaxish_adam: the gradient pieces do not tile the parameters");
  }
  float* P = p_out->typed_data();
  float* M = mu_out->typed_data();
  float* V = nu_out->typed_data();
  // XLA aliases each result to its operand (input_output_aliases); should it
  // ever copy instead, start from the operand's values.
  if (P != p.typed_data()) std::copy(p.typed_data(), p.typed_data() + n, P);
  if (M != mu.typed_data()) std::copy(mu.typed_data(), mu.typed_data() + n, M);
  if (V != nu.typed_data()) std::copy(nu.typed_data(), nu.typed_data() + n, V);
  const float* s = scalars.typed_data();
  const Scalars k{s[0], s[1], s[2], s[3], s[4],
                  s[5], s[6], s[7], count == 9 ? s[8] : 0.0f};
  // Each element's arithmetic is the same whichever thread runs it: the
  // results do not depend on the split.
  optaxish::ForEachChunk(
      pool, n, kChunk, 4, [&](int64_t, int64_t lo, int64_t hi) {
        g.ForRange(lo, hi, [&](const float* gi, int64_t at, int64_t size) {
          if (count == 9) {
            Step<true>(P + at, M + at, V + at, gi, size, k);
          } else {
            Step<false>(P + at, M + at, V + at, gi, size, k);
          }
        });
      });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(OptaxishAdam, AdamImpl, optaxish::InPlaceStepBinding());
