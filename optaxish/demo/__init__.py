"""The demo behind the README's main command: ``python -m optaxish.demo``."""
