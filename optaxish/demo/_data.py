"""A small classification dataset generated on the fly (no downloads)."""

from __future__ import annotations

import numpy as np


def spirals(
    n_per_class: int = 400, n_classes: int = 3, noise: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spirals, one arm per class.

    Returns:
      ``(x, y)``: float32 features of shape ``(n, 2)`` and int32 labels.

    Examples:
      >>> x, y = spirals(n_per_class=10, n_classes=2)
      >>> x.shape, y.shape, sorted(set(y.tolist()))
      ((20, 2), (20,), [0, 1])
    """
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(n_classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(0, 3.5, n_per_class) + c * 2 * np.pi / n_classes
        t = t + rng.normal(0, noise, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(n_per_class, c))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.int32)
    order = rng.permutation(len(y))
    return x[order], y[order]
