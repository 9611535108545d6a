"""Data-parallel training that saves the single model's checkpoint from the start.

The only part of ckptfix that uses TensorFlow (``pip install 'ckptfix[tf]'``); it is imported
inside these modules' functions, so ``import ckptfix.train`` itself stays cheap.
"""

from __future__ import annotations

from .checkpoint import TemplateCheckpoint
from .strategy import make_strategy
from .trainer import EpochReport, TrainResult, load_arrays, load_factory, train

__all__ = [
    "EpochReport",
    "TemplateCheckpoint",
    "TrainResult",
    "load_arrays",
    "load_factory",
    "make_strategy",
    "train",
]
