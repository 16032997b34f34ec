"""optax's older ``tree_utils`` spelling: ``tree_X`` for ``optaxish.tree.X``."""

__all__ = [n for n in dir() if n.startswith("tree_")]
