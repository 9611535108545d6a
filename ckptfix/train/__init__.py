"""Data-parallel training that saves the single model's checkpoint from the start.

The only part of ckptfix that uses TensorFlow (``pip install 'ckptfix[tf]'``); it is imported
inside these modules' functions, so ``import ckptfix.train`` itself stays cheap.
"""

from __future__ import annotations

from .checkpoint import TemplateCheckpoint
from .factory import build_model, load_factory
from .strategy import make_strategy
from .trainer import (
    EpochReport,
    TrainResult,
    TrainState,
    checkpoint_files,
    load_arrays,
    train,
    training_state,
)

__all__ = [
    "EpochReport",
    "TemplateCheckpoint",
    "TrainResult",
    "TrainState",
    "build_model",
    "checkpoint_files",
    "load_arrays",
    "load_factory",
    "make_strategy",
    "train",
    "training_state",
]
