"""An SR-LUT engine against the pattern net it was transferred from (``source/*.onnx``).

Two comparisons of the RTL's HR frames, both computed anew with onnxruntime from the user's
ONNX file:

- **judged**: the net sampled on the table grid (``frontends.lutnet.transfer``: each entry
  ``round(clamp(y, -1, 1) * 127)``) and interpolated as the engine does. This is the quantized
  model as given: the RTL must equal it within the usual tolerance (it is exact: the
  interpolation and its round-half-to-even are integer arithmetic).
- **reported**: the float ensemble, the net itself on every LR pixel's four rotated patterns
  (its outputs clamped to [-1, 1], times 127, summed): how far the table's grid and int8
  entries move the picture from the net, in HR pixel levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnxruntime as ort

    from frontends.lutnet.srlut import SrlutPlan
    from rtl_gen.artefact import Artefact

__all__ = ["srlut_references", "float_ensemble"]


def srlut_references(artefact: Artefact, source: Path) -> list[tuple[str, np.ndarray, bool]]:
    """(framework name, (N, K) HR codes, judged) of the SR-LUT ``artefact`` against the ONNX
    pattern net ``source``: the net on the table grid (judged), the float net (reported).
    Raises ``TableError`` for a net that does not fit the artefact."""
    from frontends.lutnet.srlut import TableError
    from frontends.lutnet.transfer import onnx_session, transfer_onnx

    params = artefact.manifest["parameters"]
    plan = transfer_onnx(source, interval_bits=int(params["interval_bits"]))
    if (plan.pattern, plan.scale) != (params["pattern"], params["scale"]):
        raise TableError(
            f"{source}: a pattern {plan.pattern} x{plan.scale} net; the artefact is pattern "
            f"{params['pattern']} x{params['scale']}"
        )
    frames = np.asarray(artefact.vectors()["inputs"])
    sampled = np.stack([plan.reference(f) for f in frames]).reshape(len(frames), -1)
    session = onnx_session(source)
    ensemble = np.stack([float_ensemble(session, plan, f) for f in frames])
    return [
        (f"onnxruntime ({source.name}, on the table grid)", sampled, True),
        (f"onnxruntime ({source.name}, float net)", ensemble.reshape(len(frames), -1), False),
    ]


def float_ensemble(session: ort.InferenceSession, plan: SrlutPlan, frame: np.ndarray) -> np.ndarray:
    """The net of ``session`` run as SR-LUT's rotation ensemble on one uint8 frame, without
    table or rounding: (rH, rW) float HR levels, clamped to 0..255."""
    from frontends.lutnet.pattern import BLOCK_ROT, rotated_pattern
    from frontends.lutnet.transfer import run_batched

    x = np.asarray(frame, dtype=np.float64)
    h, w = x.shape
    p, r, n = plan.radius, plan.scale, plan.n
    shape = tuple(int(d) for d in session.get_inputs()[0].shape[2:])
    padded = np.pad(x, p, mode="reflect")
    total = np.zeros((h, w, r, r))
    for k in range(4):
        v = np.stack(
            [
                padded[p + dy : p + dy + h, p + dx : p + dx + w]
                for dy, dx in rotated_pattern(plan.offsets, k)
            ]
        )
        y = run_batched(session, (v.reshape(n, -1).T / 255.0).reshape(-1, 1, *shape))
        block = np.clip(y, -1.0, 1.0).reshape(h, w, r, r) * 127
        total += np.rot90(block, BLOCK_ROT[k], axes=(2, 3))
    return np.clip(total, 0, 255).transpose(0, 2, 1, 3).reshape(h * r, w * r)
