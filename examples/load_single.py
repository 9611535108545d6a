"""Load converted files with Keras itself and compare with the trained template's predictions.

Usage: python examples/load_single.py FIXTURE_DIR FULL_MODEL.h5 WEIGHTS.h5
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _as_list(y: object) -> list:
    import numpy as np

    return [np.asarray(v) for v in (y if isinstance(y, list) else [y])]


def main() -> int:
    case, full, weights = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    import numpy as np
    import tf_keras

    with np.load(case / "inputs.npz") as z:
        x = [z[k] for k in sorted(z.files)]
    with np.load(case / "predictions.npz") as z:
        want = [z[k] for k in sorted(z.files)]
    x_in = x if len(x) > 1 else x[0]

    model = tf_keras.models.load_model(full)
    got = _as_list(model.predict(x_in, verbose=0))
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want, strict=True))
    print(
        f"tf_keras.models.load_model({Path(full).name}): predictions match the trained "
        f"template's (max |diff| = {diff:g}); optimizer at iteration "
        f"{int(model.optimizer.iterations.numpy())}"
    )

    template = tf_keras.models.model_from_json((case / "template.json").read_text())
    template.load_weights(weights)
    got = _as_list(template.predict(x_in, verbose=0))
    diff2 = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want, strict=True))
    print(
        f"template.load_weights({Path(weights).name}): predictions match "
        f"(max |diff| = {diff2:g})"
    )
    return 0 if diff == 0 and diff2 == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
