"""Bit flips in an artefact's weight memories: random campaigns, a T-BFA-style targeted
attack, and the RTL run on a flipped memory image (``nnloom faults``).

Every figure comes from the engine's own golden model of a flipped memory
(``rtl_gen.dense.plan.faulted_reference``: what the decoders pass on, the accumulators
wrapping at the engine's widths), the model the RTL is checked against bit for bit; the
flipped bits are the words the bitstream initialises (``plan.weight_image()`` and
``param_image()``, check bits included).

The targeted attack follows T-BFA's progressive bit search: at each step the gradient of a
straight-through float surrogate of the integer network ranks every weight bit by the first-
order change of the attack loss (cross-entropy towards the target class on the source
class's samples), the best ``candidates`` are tried exactly on the integer model, and the one
that lowers the exact loss most is kept. It stops when the attack success rate (source-class
samples classified as the target) reaches ``success`` or after ``max_flips``. The same flip
sequence is then replayed on the parity- and SECDED-protected memories.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from frontends.errors import NnloomError
from rtl_gen.artefact import Artefact
from rtl_gen.dense import DenseEngine, DensePlan
from rtl_gen.dense.plan import WEIGHT_BITS, faulted_reference

__all__ = [
    "FaultError",
    "Design",
    "load_design",
    "campaign",
    "targeted_attack",
    "check_rtl",
    "MODES",
    "SPREADS",
]

MODES = ("random", "targeted")
SPREADS = ("word", "any")


class FaultError(NnloomError):
    """An artefact or a request ``nnloom faults`` cannot serve."""


@dataclass
class Design:
    """An artefact's engine plan and golden vectors, rebuilt from its copy of the model."""

    artefact: Artefact
    plan: DensePlan
    inputs: np.ndarray
    labels: np.ndarray
    golden: np.ndarray

    @property
    def images(self) -> tuple[list[int], list[int]]:
        return self.plan.weight_image(), self.plan.param_image()

    @property
    def weight_data_bits(self) -> int:
        return len(self.plan.weight_image()) * WEIGHT_BITS * self.plan.lanes

    @property
    def memory_bits(self) -> int:
        w, p = self.images
        return len(w) * self.plan.weight_code.word_bits + len(p) * self.plan.param_code.word_bits

    def with_protection(self, protect: str) -> DensePlan:
        return DensePlan(self.plan.layers, self.plan.lanes, protect)


def load_design(path: Path) -> Design:
    """The dense artefact at ``path`` with its plan rebuilt from ``source/*.onnx``; refused
    by name when the artefact has no weight memories nnloom can flip, or when the rebuilt
    plan does not reproduce the artefact's memories."""
    from frontends.onnx_import import import_onnx
    from sim.agreement import source_model

    art = Artefact(path)
    manifest = art.manifest
    engine = manifest.get("engine")
    if engine != "dense":
        raise FaultError(
            f"{art.path}: a {engine} artefact; `nnloom faults` flips the weight "
            f"memories of dense-engine artefacts (generate with --engine dense)"
        )
    source = source_model(art)
    if source is None:
        raise FaultError(
            f"{art.path}: no copy of its ONNX model in source/; regenerate it "
            f"with `nnloom generate`"
        )
    params = manifest["parameters"]
    plan = DensePlan.from_graph(
        import_onnx(source), lanes=params["lanes"], protect=params.get("protect", "none")
    )
    if plan.lanes != params["lanes"] or len(plan.weight_image()) != params["weight_words"]:
        raise FaultError(
            f"{art.path}: source/{source.name} does not rebuild the artefact's "
            f"weight memory ({params['weight_words']} words)"
        )
    vectors = art.vectors()
    golden = plan.reference(vectors["inputs"])[-1]
    if not np.array_equal(golden, vectors["outputs"]):
        raise FaultError(
            f"{art.path}: the rebuilt engine's golden differs from "
            f"vectors/golden.npz; regenerate the artefact"
        )
    return Design(art, plan, vectors["inputs"], vectors["labels"], golden)


def _accuracy(outputs: np.ndarray, labels: np.ndarray) -> float | None:
    known = labels >= 0
    return float((outputs.argmax(axis=1) == labels)[known].mean()) if known.any() else None


def _flip(images, codes, picks) -> tuple[list[int], list[int]]:
    """``images`` with bit ``b`` of word ``w`` of memory ``m`` flipped for each pick."""
    out = [list(images[0]), list(images[1])]
    for m, w, b in picks:
        out[m][w] ^= 1 << b
    return out[0], out[1]


def _random_picks(
    design: Design, plan: DensePlan, flips: int, spread: str, rng: np.random.Generator
) -> list[tuple[int, int, int]]:
    sizes = [len(design.images[0]), len(design.images[1])]
    widths = [plan.weight_code.word_bits, plan.param_code.word_bits]
    if spread == "word":
        words = rng.choice(sum(sizes), size=flips, replace=False)
        picks = []
        for w in words:
            m = int(w >= sizes[0])
            picks.append((m, int(w) - m * sizes[0], int(rng.integers(widths[m]))))
        return picks
    bits = rng.choice(sizes[0] * widths[0] + sizes[1] * widths[1], size=flips, replace=False)
    cut = sizes[0] * widths[0]
    return [
        (0, int(b) // widths[0], int(b) % widths[0])
        if b < cut
        else (1, (int(b) - cut) // widths[1], (int(b) - cut) % widths[1])
        for b in bits
    ]


@dataclass
class CampaignRow:
    protect: str
    flips: int
    trials: int
    accuracy_mean: float | None
    accuracy_min: float | None
    trials_changed: int  # trials where some output differs from the fault-free golden
    vectors_changed: float  # mean fraction of vectors whose output differs
    trials_detected: int  # trials whose memories report an uncorrectable error
    corrected_mean: float  # words read with a corrected flip, per inference
    errors_mean: float  # words read with a detected error, per inference

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def campaign(
    design: Design,
    flips: list[int],
    *,
    trials: int,
    spread: str,
    seed: int,
    protections: tuple[str, ...],
) -> list[CampaignRow]:
    """Random flips, ``trials`` draws per flip count and protection (the same draws of
    words and bits for every protection, each on its own coded memory)."""
    rows = []
    for protect in protections:
        plan = design.with_protection(protect)
        images = (plan.weight_image(), plan.param_image())
        for n in flips:
            rng = np.random.default_rng([seed, n])
            acc, changed, frac, detected, corrected, errors = [], 0, [], 0, [], []
            for _ in range(trials):
                picks = _random_picks(design, plan, n, spread, rng)
                outs, counts = faulted_reference(plan, design.inputs, *_flip(images, None, picks))
                diff = (outs[-1] != design.golden).any(axis=1)
                acc.append(_accuracy(outs[-1], design.labels))
                changed += bool(diff.any())
                frac.append(float(diff.mean()))
                detected += counts["errors"] > 0
                corrected.append(counts["corrected"])
                errors.append(counts["errors"])
            known = [a for a in acc if a is not None]
            rows.append(
                CampaignRow(
                    protect,
                    n,
                    trials,
                    float(np.mean(known)) if known else None,
                    float(np.min(known)) if known else None,
                    changed,
                    float(np.mean(frac)),
                    detected,
                    float(np.mean(corrected)),
                    float(np.mean(errors)),
                )
            )
    return rows


def check_size(design: Design, flips: list[int], spread: str) -> None:
    """Refuse a flip count the memories cannot hold (before anything runs)."""
    plan = design.plan
    words = len(design.images[0]) + len(design.images[1])
    limit = words if spread == "word" else design.memory_bits
    what = "words (one flip per word with --spread word)" if spread == "word" else "bits"
    for n in flips:
        if n < 1 or n > limit:
            raise FaultError(
                f"--flips {n}: the weight and parameter memories of "
                f"{design.artefact.name} hold {limit} {what}"
                f"{'' if plan.protect == 'none' else ' with check bits'}"
            )


# --- targeted attack ---------------------------------------------------------------------------


@dataclass
class AttackResult:
    source: int
    target: int
    samples: int
    flips: list[tuple[int, int, int]] = field(default_factory=list)  # (memory, word, bit)
    success: list[float] = field(default_factory=list)  # after each flip, unprotected
    accuracy: list[float | None] = field(default_factory=list)
    protected: dict[str, dict] = field(default_factory=dict)

    def flips_to(self, rate: float) -> int | None:
        for i, s in enumerate(self.success):
            if s >= rate:
                return i + 1
        return None


def _forward(plan: DensePlan, weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    from frontends.fixedpoint import requantize
    from rtl_gen.dense.plan import _wrap

    for layer, w in zip(plan.layers, weights):
        acc = _wrap(x @ w.T, plan.acc_bits)
        total = _wrap(acc + layer.bias, plan.sum_bits)
        x = requantize(total, layer.multiplier, layer.shift, layer.zero_point, layer.lo, layer.hi)
    return x


def _loss(outputs: np.ndarray, targets: np.ndarray, zero_point: int) -> float:
    z = (outputs - zero_point).astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), targets]))


def _gradients(
    plan: DensePlan, weights: list[np.ndarray], x: np.ndarray, targets: np.ndarray
) -> list[np.ndarray]:
    """d(loss)/d(weight) of a straight-through float surrogate of the integer network."""
    import torch

    ws = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    h = torch.tensor(x, dtype=torch.float64)
    for layer, w in zip(plan.layers, ws):
        acc = h @ w.T + torch.tensor(layer.bias, dtype=torch.float64)
        y = acc * torch.tensor(layer.multiplier, dtype=torch.float64) / 2.0**layer.shift
        y = y + (torch.round(y) - y).detach() + layer.zero_point
        h = y + (y.clamp(layer.lo, layer.hi) - y).detach()
    z = h - plan.layers[-1].zero_point
    loss = torch.nn.functional.cross_entropy(z, torch.tensor(targets, dtype=torch.long))
    loss.backward()
    return [w.grad.numpy() for w in ws]


def _word_of(plan: DensePlan, layer: int, out: int, inp: int, bit: int) -> tuple[int, int, int]:
    base = sum(l.groups(plan.lanes) * l.n_in for l in plan.layers[:layer])
    n_in = plan.layers[layer].n_in
    return 0, base + (out // plan.lanes) * n_in + inp, WEIGHT_BITS * (out % plan.lanes) + bit


def targeted_attack(
    design: Design,
    *,
    source: int,
    target: int,
    max_flips: int,
    success: float,
    candidates: int = 24,
) -> AttackResult:
    """T-BFA-style progressive bit search on the unprotected weights (see the module
    docstring), then the same flips on parity- and SECDED-coded memories."""
    plan = design.with_protection("none")
    labels = design.labels
    if source == target:
        raise FaultError(f"--source and --target are both class {source}")
    chosen = labels == source
    if not chosen.any():
        raise FaultError(
            f"no labelled vector of class {source} in "
            f"{design.artefact.name}/vectors/golden.npz (use --data at generate)"
        )
    n_classes = design.golden.shape[1]
    if not 0 <= target < n_classes:
        raise FaultError(f"--target {target}: the model has {n_classes} outputs")
    x_attack = design.inputs[chosen].astype(np.int64)
    # T-BFA's second term: the other classes' samples keep their labels (stealth)
    keep = np.flatnonzero((labels >= 0) & ~chosen)[: 4 * len(x_attack)]
    x = np.concatenate([x_attack, design.inputs[keep].astype(np.int64)])
    goal = np.concatenate([np.full(len(x_attack), target), labels[keep]])
    zp = plan.layers[-1].zero_point
    weights = [l.weight.copy() for l in plan.layers]
    result = AttackResult(source, target, int(chosen.sum()))
    used: set[tuple[int, int, int, int]] = set()
    mask = (1 << WEIGHT_BITS) - 1
    for _ in range(max_flips):
        grads = _gradients(plan, weights, x, goal)
        scored = []
        for li, (w, g) in enumerate(zip(weights, grads)):
            codes = w & mask
            for bit in range(WEIGHT_BITS):
                flipped = codes ^ (1 << bit)
                new = flipped - ((flipped >> (WEIGHT_BITS - 1)) << WEIGHT_BITS)
                gain = g * (new - w)  # first-order change of the loss
                flat = np.argsort(gain, axis=None)[:candidates]
                for f in flat:
                    o, i = np.unravel_index(f, w.shape)
                    if (li, int(o), int(i), bit) not in used:
                        scored.append((float(gain[o, i]), li, int(o), int(i), bit, int(new[o, i])))
        scored.sort()
        best = None
        for _, li, o, i, bit, new in scored[:candidates]:
            trial = [w.copy() for w in weights]
            trial[li][o, i] = new
            loss = _loss(_forward(plan, trial, x), goal, zp)
            if best is None or loss < best[0]:
                best = (loss, li, o, i, bit, new)
        if best is None:
            break
        _, li, o, i, bit, new = best
        weights[li][o, i] = new
        used.add((li, o, i, bit))
        result.flips.append(_word_of(plan, li, o, i, bit))
        outs = _forward(plan, weights, x_attack)
        result.success.append(float((outs.argmax(axis=1) == target).mean()))
        result.accuracy.append(_accuracy(_forward(plan, weights, design.inputs), labels))
        if result.success[-1] >= success:
            break
    for protect in ("parity", "secded"):
        coded = design.with_protection(protect)
        images = (coded.weight_image(), coded.param_image())
        first_detected, rate = None, 0.0
        for k in range(1, len(result.flips) + 1):
            outs, counts = faulted_reference(
                coded, x_attack, *_flip(images, None, result.flips[:k])
            )
            if counts["errors"] and first_detected is None:
                first_detected = k
            rate = float((outs[-1].argmax(axis=1) == target).mean())
        result.protected[protect] = {
            "first_detected_flip": first_detected,
            "success_after_all": rate,
        }
    return result


# --- the RTL on a flipped image ----------------------------------------------------------------


def check_rtl(
    design: Design, picks: list[tuple[int, int, int]], *, vectors: int, simulator: str = "verilator"
) -> tuple[int, int]:
    """Simulate the artefact's engine with ``picks`` flipped in its ROM images on the first
    ``vectors`` golden inputs, against the golden of the same flipped images; returns
    (vectors run, mismatches reported, 0 when bit-exact). The artefact is left as it was."""
    from rtl_gen.artefact import atomic_write
    from rtl_gen.emit import emit_verilog
    from sim.runner import run_sim

    plan = design.plan
    images = _flip(design.images, None, picks)
    n = min(vectors, len(design.inputs))
    outs, _ = faulted_reference(plan, design.inputs[:n], *images)
    with tempfile.TemporaryDirectory(prefix="nnloom-faults-") as tmp:
        work = Path(tmp) / design.artefact.name
        shutil.copytree(
            design.artefact.path, work, ignore=shutil.ignore_patterns("sim", "build", "report.*")
        )
        top = design.artefact.manifest["top"]
        atomic_write(work / "rtl" / f"{top}.v", emit_verilog(DenseEngine(plan, images), top))
        old = design.artefact.vectors()
        new = {k: v[:n] for k, v in old.items()}
        new["outputs"] = outs[-1]
        for i, layer_out in enumerate(outs):
            if f"layer{i}" in new:
                new[f"layer{i}"] = layer_out
        import io

        buf = io.BytesIO()
        np.savez(buf, **{k: new[k] for k in sorted(new)})
        atomic_write(work / "vectors" / "golden.npz", buf.getvalue())
        result = run_sim(work, simulator=simulator)
    return result.vectors, len(result.mismatches) if not result.passed else 0
