"""Parameter trees of about 100 M parameters, for accelerator runs.

The shared shapes (``../shared/bench/shapes.py``) top out at 15 M parameters,
which a GPU streams through in microseconds; issue 5 asks for Adam on 100 M
parameters there too. These trees are ours, only used when named explicitly
(``python -m benchmarks.run --shapes single_100m,gpt2_small_like ...``), and
are built with the shared ``make_tree``.

  single_100m      1 leaf,   100,000,000 params (the bandwidth-bound reference)
  gpt2_small_like  148 leaves, 124,439,808 params (GPT-2 small's parameter list)
"""

from __future__ import annotations

N_100M = 100_000_000


def single_100m() -> dict[str, tuple[int, ...]]:
    """One flat leaf of 100 M parameters."""
    return {"w": (N_100M,)}


def gpt2_small_like(
    d: int = 768, layers: int = 12, vocab: int = 50257, context: int = 1024
) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of GPT-2 small (token and position embeddings,
    twelve blocks of attention and MLP with their layer norms, a final norm)."""
    shapes: dict[str, tuple[int, ...]] = {"wte": (vocab, d), "wpe": (context, d)}
    for i in range(layers):
        block = {
            "ln1_scale": (d,),
            "ln1_bias": (d,),
            "attn_qkv_w": (d, 3 * d),
            "attn_qkv_b": (3 * d,),
            "attn_out_w": (d, d),
            "attn_out_b": (d,),
            "ln2_scale": (d,),
            "ln2_bias": (d,),
            "mlp_in_w": (d, 4 * d),
            "mlp_in_b": (4 * d,),
            "mlp_out_w": (4 * d, d),
            "mlp_out_b": (d,),
        }
        shapes.update({f"h{i:02d}/{name}": shape for name, shape in block.items()})
    shapes["lnf_scale"] = (d,)
    shapes["lnf_bias"] = (d,)
    return shapes


LARGE = {f.__name__: f for f in (single_100m, gpt2_small_like)}
