"""Choosing the ``tf.distribute`` strategy: GPUs, logical CPUs, one device, or several workers."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import TrainingError
from ._keras import import_tensorflow


def multi_worker_configured() -> bool:
    """True when ``TF_CONFIG`` describes a cluster of more than one task."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return False
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (ValueError, AttributeError):
        raise TrainingError(
            "expected TF_CONFIG to be JSON with a 'cluster' and a 'task'; found "
            f"{raw[:60]!r}; fix or unset TF_CONFIG"
        ) from None
    tasks = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
    return tasks > 1


def make_strategy(devices: int | None = None) -> Any:
    """The strategy for ``devices`` replicas on this machine (or for the TF_CONFIG cluster).

    ``None`` uses every visible GPU (the default strategy when there is at most one);
    ``devices=N`` uses N GPUs when there are that many, else N logical CPU devices (configured
    here when TensorFlow has not started its devices yet); ``1`` is the default strategy.

    Raises:
        TrainingError: fewer devices than asked for and no way to add logical CPUs.
    """
    tf = import_tensorflow()
    if multi_worker_configured():
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if devices is None:
        devices = max(len(gpus), 1)
    if devices < 1:
        raise TrainingError(
            f"expected devices to be at least 1; found {devices}; pass devices=1 or more"
        )
    if devices == 1:
        return tf.distribute.get_strategy()
    if len(gpus) >= devices:
        names = [d.name for d in tf.config.list_logical_devices("GPU")][:devices]
        return tf.distribute.MirroredStrategy(names)
    cpus = tf.config.list_physical_devices("CPU")
    if cpus and tf.config.get_logical_device_configuration(cpus[0]) is None:
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * devices
            )
        except RuntimeError:
            pass  # TensorFlow already started its devices; use what exists
    logical = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(logical) < devices:
        raise TrainingError(
            f"expected {devices} devices; found {len(gpus)} GPUs and {len(logical)} CPU "
            f"devices; pass devices={max(len(gpus), len(logical))} or call train() before "
            "TensorFlow starts so it can split the CPU into logical devices"
        )
    return tf.distribute.MirroredStrategy(
        logical[:devices], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def is_multi_worker(strategy: Any) -> bool:
    """True for a strategy that spans several workers."""
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def strategy_name(strategy: Any) -> str:
    """A short name: ``MirroredStrategy``, ``MultiWorkerMirroredStrategy``, ``default``."""
    tf = import_tensorflow()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    name = type(strategy).__name__
    return "default" if name.startswith("_Default") else name
