"""Writes notebooks/*.ipynb from the cell sources below (outputs stripped).

Run: ``.venv/bin/python tools/make_notebooks.py``. The test suite executes them.
"""

from pathlib import Path

import nbformat

QUICKSTART = [
    (
        "md",
        "# optaxish quick start\n\nThe functional core: optax's protocol, names and "
        "numbers, plus state you can read by name.",
    ),
    (
        "code",
        """import jax
import jax.numpy as jnp
import optaxish as ox

# A least-squares problem.
key_x, key_w = jax.random.split(jax.random.key(0))
x = jax.random.normal(key_x, (256, 8))
w_true = jax.random.normal(key_w, (8,))
y = x @ w_true

def loss_fn(params):
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)

params = {"w": jnp.zeros(8), "b": jnp.zeros(())}""",
    ),
    ("md", "## Compose a chain and train it in one compiled step"),
    (
        "code",
        """schedule = ox.warmup_cosine_decay_schedule(
    init_value=0.0, peak_value=0.1, warmup_steps=20, decay_steps=300)
tx = ox.chain(ox.clip_by_global_norm(1.0), ox.adamw(schedule, weight_decay=1e-4))
opt_state = tx.init(params)

@jax.jit
def step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return ox.apply_updates(params, updates), opt_state, loss

for i in range(300):
    params, opt_state, loss = step(params, opt_state)
print(f"final loss {float(loss):.2e}")
assert float(loss) < 1e-3""",
    ),
    (
        "md",
        "## Read the state by name\n\n`optaxish.slots` lists every piece of the "
        "state and reads or sets one by slot, transform, partition label and parameter.",
    ),
    (
        "code",
        """from optaxish import slots

print(slots.describe(opt_state))
print(slots.get(opt_state, "nu", param="b"))""",
    ),
    (
        "md",
        "Two Adams under `partition` are told apart by label (optax's `tree.get` "
        "fails here):",
    ),
    (
        "code",
        """tx2 = ox.partition({"fast": ox.adam(1e-2), "slow": ox.adam(1e-4)},
                   {"w": "fast", "b": "slow"})
state2 = tx2.init(params)
state2 = slots.set(state2, "count", 10, label="slow")
print(int(slots.get(state2, "count", label="slow")), int(slots.get(state2, "count", label="fast")))""",
    ),
    (
        "md",
        "## Hyperparameters in the state\n\n`inject_hyperparams` keeps them float32 "
        "even for bfloat16 parameters (optax rounds `b2=0.999` to 1.0 there).",
    ),
    (
        "code",
        """tx3 = ox.inject_hyperparams(ox.adam)(learning_rate=1e-3, b2=0.999)
bf16_params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
state3 = tx3.init(bf16_params)
print(state3.hyperparams["b2"].dtype, float(state3.hyperparams["b2"]))
state3.hyperparams["learning_rate"] = jnp.asarray(5e-4)  # change it, no recompilation""",
    ),
    (
        "md",
        "## Gradient accumulation\n\n`MultiSteps` runs the inner optimizer only when "
        "it emits an update.",
    ),
    (
        "code",
        """acc = ox.MultiSteps(ox.adam(1e-2), every_k_schedule=4)
acc_state = acc.init(params)
grads = jax.grad(loss_fn)(params)
for i in range(4):
    updates, acc_state = acc.update(grads, acc_state, params)
    print(i, bool(acc.has_updated(acc_state)))""",
    ),
]


def build(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for kind, src in cells:
        nb.cells.append(
            nbformat.v4.new_markdown_cell(src)
            if kind == "md"
            else nbformat.v4.new_code_cell(src)
        )
    return nb


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "notebooks"
    out.mkdir(exist_ok=True)
    nbformat.write(build(QUICKSTART), out / "quickstart.ipynb")
    print("wrote", out / "quickstart.ipynb")
