"""``python -m ckptfix``."""

from .cli import main

main()
