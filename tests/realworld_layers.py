"""The custom layers of the real-world files, written here (never loaded from the files).

A converted ``.keras`` keeps a custom layer's class name and weights; Keras 3 loads it once the
user passes the class as ``custom_objects``. These are the classes, re-written from the
projects' code for Keras 3 (``keras.ops``) and tf_keras (the reference predictions):

- ``AttentionWithContext`` (lkpiel/mastersthesis, after the well-known gist by cbaziotis):
  ``a = softmax-like(exp(tanh(x W + b) u))`` over time, output ``sum_t a_t x_t``;
- ``L1Dist`` (Arpx22/Online-Signature-Verification-using-Python): ``|x - validation_embed|``.

    classes(keras) -> {"mastersthesis": {"AttentionWithContext": cls}, "signature": {...}}
"""

from __future__ import annotations

from typing import Any

#: the class names each file's config uses, by file kind (what ``inspect`` must list)
CLASS_NAMES = {"mastersthesis": ("AttentionWithContext",), "signature": ("L1Dist",)}


def classes(keras: Any) -> dict[str, dict[str, Any]]:
    """The custom classes for ``keras`` (Keras 3, or tf_keras for the reference)."""
    if hasattr(keras, "ops"):
        ops = keras.ops
        epsilon = keras.config.epsilon()

        def dot(x: Any, w: Any) -> Any:
            return ops.tensordot(x, w, axes=1)

        def cast(x: Any) -> Any:
            return ops.cast(x, "float32")

        def total(x: Any, axis: int, keepdims: bool = False) -> Any:
            return ops.sum(x, axis=axis, keepdims=keepdims)

    else:
        import tensorflow as tf

        ops = tf.math
        epsilon = keras.backend.epsilon()

        def dot(x: Any, w: Any) -> Any:
            return tf.tensordot(x, w, axes=1)

        def cast(x: Any) -> Any:
            return tf.cast(x, "float32")

        def total(x: Any, axis: int, keepdims: bool = False) -> Any:
            return tf.reduce_sum(x, axis=axis, keepdims=keepdims)

    class AttentionWithContext(keras.layers.Layer):
        """Attention over time with a learned context vector (weights W, b, u)."""

        def __init__(self, bias: bool = True, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.bias = bias
            self.supports_masking = True

        def build(self, input_shape: Any) -> None:
            d = int(input_shape[-1])
            self.W = self.add_weight(
                name=f"{self.name}_W", shape=(d, d), initializer="glorot_uniform"
            )
            if self.bias:
                self.b = self.add_weight(name=f"{self.name}_b", shape=(d,), initializer="zeros")
            self.u = self.add_weight(
                name=f"{self.name}_u", shape=(d,), initializer="glorot_uniform"
            )
            super().build(input_shape)

        def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
            return None

        def call(self, x: Any, mask: Any = None) -> Any:
            uit = dot(x, self.W)
            if self.bias:
                uit = uit + self.b
            uit = ops.tanh(uit)
            a = ops.exp(dot(uit, self.u))
            if mask is not None:
                a = a * cast(mask)
            a = a / (total(a, axis=1, keepdims=True) + epsilon)
            return total(x * a[..., None], axis=1)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return (input_shape[0], input_shape[-1])

    class L1Dist(keras.layers.Layer):
        """The siamese distance: |input_embed - validation_embed|."""

        def call(self, input_embed: Any, validation_embed: Any) -> Any:
            return ops.abs(input_embed - validation_embed)

    found = {
        "mastersthesis": {"AttentionWithContext": AttentionWithContext},
        "signature": {"L1Dist": L1Dist},
    }
    assert {k: tuple(v) for k, v in found.items()} == CLASS_NAMES
    return found
