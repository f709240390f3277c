"""Bit flips in an artefact's weight memories: random campaigns, a T-BFA-style targeted
attack, and the RTL run on a flipped memory image (``nnloom faults``).

Every figure comes from the engine's own golden model of a flipped memory
(``rtl_gen.dense.plan.faulted_reference``: what the decoders pass on, the accumulators
wrapping at the engine's widths), the model the RTL is checked against bit for bit; the
flipped bits are the words the bitstream initialises (``plan.weight_image()`` and
``param_image()``, check bits included; on the overlay also the instruction memory: a
flipped instruction the decoder passes on runs as the instruction it decodes to, and when
that changes the input or output stream, or the model refuses it, the inference has no
answer, as a host waiting on the board would time out).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from frontends.errors import NnloomError
from rtl_gen.artefact import Artefact
from rtl_gen.dense import DenseEngine, DensePlan
from rtl_gen.dense.plan import WEIGHT_BITS, faulted_reference

if TYPE_CHECKING:
    from rtl_gen.gemm.program import Program

# One protection variant of an artefact's engine: a dense plan or a gemm program.
Variant = "DensePlan | Program"
# Where weight bit (layer, out, in, bit) of the attacked chain lives: (memory, word, bit).
Locate = Callable[[int, int, int, int], "tuple[int, int, int] | None"]

__all__ = [
    "FaultError",
    "Design",
    "load_design",
    "campaign",
    "targeted_attack",
    "check_rtl",
    "modelled_picks",
    "MODES",
    "SPREADS",
]

MODES = ("random", "targeted")
SPREADS = ("word", "any")


class FaultError(NnloomError):
    """An artefact or a request ``nnloom faults`` cannot serve."""


class Design:
    """An artefact's engine, rebuilt from its copy of the model, as fault injection sees it:
    the memories bits may be flipped in (``memories``), their stored images and word widths
    under any protection (``variant``), and the golden of flipped images (``run``).

    ``plan`` is the artefact's own variant (a ``DensePlan``, or a gemm ``Program``)."""

    memories: tuple[str, ...] = ()

    def __init__(
        self,
        artefact: Artefact,
        plan: Variant,
        inputs: np.ndarray,
        labels: np.ndarray,
        golden: np.ndarray,
    ):
        self.artefact, self.plan = artefact, plan
        self.inputs, self.labels, self.golden = inputs, labels, golden

    # per engine ---------------------------------------------------------------------------
    def variant(self, protect: str) -> Variant:
        raise NotImplementedError

    def variant_images(self, variant: Variant) -> list[list[int]]:
        raise NotImplementedError

    def variant_widths(self, variant: Variant) -> list[int]:
        raise NotImplementedError

    def run(
        self, variant: Variant, images: list[list[int]], inputs: np.ndarray
    ) -> tuple[np.ndarray | None, dict]:
        """Output codes of ``variant`` with its memories holding ``images`` on ``inputs``,
        and the words used with a corrected flip / an uncorrectable error per inference;
        ``None`` and ``counts["undefined"]`` (why) when the golden cannot say what the
        engine computes (a flipped instruction that changes its streams)."""
        raise NotImplementedError

    @property
    def weight_data_bits(self) -> int:
        raise NotImplementedError

    def engine_verilog(self, images: list[list[int]]) -> str:
        """The artefact's top with its memories initialised with ``images``."""
        raise NotImplementedError

    # shared -------------------------------------------------------------------------------
    def restrict(self, names: list[str]) -> None:
        """Flip bits in ``names`` only (``--memory``); ``FaultError`` names a memory the
        engine does not have."""
        unknown = [n for n in names if n not in self.memories]
        if unknown:
            raise FaultError(
                f"--memory {','.join(unknown)}: {self.artefact.name} has the memories "
                f"{', '.join(self.memories)}"
            )
        self.memories = tuple(n for n in self.memories if n in names)

    @property
    def protect(self) -> str:
        return self.variant_protect(self.plan)

    @staticmethod
    def variant_protect(variant: Variant) -> str:
        return getattr(variant, "protect", None) or variant.config.protect

    def with_protection(self, protect: str) -> Variant:
        return self.variant(protect)

    @property
    def images(self) -> list[list[int]]:
        return self.variant_images(self.plan)

    @property
    def memory_bits(self) -> int:
        widths = self.variant_widths(self.plan)
        return sum(len(img) * w for img, w in zip(self.images, widths))


class DenseDesign(Design):
    memories = ("weights", "params")

    def variant(self, protect: str) -> DensePlan:
        return DensePlan(self.plan.layers, self.plan.lanes, protect)

    def variant_images(self, plan: DensePlan) -> list[list[int]]:
        return [plan.weight_image(), plan.param_image()]

    def variant_widths(self, plan: DensePlan) -> list[int]:
        return [plan.weight_code.word_bits, plan.param_code.word_bits]

    def run(
        self, plan: DensePlan, images: list[list[int]], inputs: np.ndarray
    ) -> tuple[np.ndarray, dict]:
        outs, counts = faulted_reference(plan, inputs, *images)
        return outs[-1], counts

    @property
    def weight_data_bits(self) -> int:
        return len(self.plan.weight_image()) * WEIGHT_BITS * self.plan.lanes

    def engine_verilog(self, images: list[list[int]]) -> str:
        from rtl_gen.emit import emit_verilog

        return emit_verilog(DenseEngine(self.plan, tuple(images)), self.artefact.manifest["top"])

    def attack_view(self) -> tuple[DensePlan, Locate]:
        """The dense chain the targeted search runs on, and where a weight bit lives."""
        plan = self.variant("none")
        return plan, lambda layer, out, inp, bit: _word_of(plan, layer, out, inp, bit)


class GemmDesign(Design):
    """A gemm artefact: bits flip in the instruction (``imem``), weight (``wd``, ``wl``)
    and parameter memories. A flipped instruction the decoder passes on changes the
    program the golden runs; when the golden cannot say what the engine then does (an
    opcode no instruction has, a different input or output stream: a host would time out)
    the inference is ``undefined`` (``protect.faulted_instructions``)."""

    def __init__(self, *args: object):
        super().__init__(*args)
        cfg = self.plan.config
        present = {"imem": 1, "wd": cfg.dsp_lanes, "wl": cfg.lut_lanes, "params": 1}
        self.memories = tuple(
            name
            for name in ("imem", "wd", "wl", "params")
            if present[name] and len(self._stored(self.plan)[name])
        )

    @staticmethod
    def _stored(program) -> dict:
        from rtl_gen.gemm.emit import stored_images

        return stored_images(program)

    def variant(self, protect: str) -> Program:
        from dataclasses import replace

        return replace(self.plan, config=replace(self.plan.config, protect=protect))

    def variant_images(self, program: Program) -> list[list[int]]:
        stored = self._stored(program)
        return [list(stored[name]) for name in self.memories]

    def variant_widths(self, program: Program) -> list[int]:
        from rtl_gen.gemm.protect import codes

        coded = codes(program.config)
        return [coded[name].word_bits for name in self.memories]

    def _words(self, program, images) -> dict:
        words = self._stored(program)
        words.update(zip(self.memories, images))
        return words

    def run(
        self, program: Program, images: list[list[int]], inputs: np.ndarray
    ) -> tuple[np.ndarray | None, dict]:
        from rtl_gen.gemm import model
        from rtl_gen.gemm.protect import faulted_program

        faulted, counts = faulted_program(program, self._words(program, images))
        if faulted is not None:
            try:
                outs = model.run(faulted, inputs)
            except Exception as exc:  # noqa: BLE001 - a flipped program the model refuses
                outs, why = None, f"the model refuses the flipped program ({exc})"
            else:
                why = "the flipped program reads past a memory"
            if outs is not None and outs.shape == (len(inputs), program.n_out):
                return outs, counts
            counts = {**counts, "undefined": why}
        return None, counts

    @property
    def weight_data_bits(self) -> int:
        from rtl_gen.gemm.protect import data_bits

        bits = data_bits(self.plan.config)
        stored = self._stored(self.plan)
        return sum(len(stored[n]) * bits[n] for n in ("wd", "wl") if n in self.memories)

    def engine_verilog(self, images: list[list[int]]) -> str:
        from rtl_gen.emit import emit_verilog
        from rtl_gen.gemm.emit import TOP, create_engine

        return emit_verilog(create_engine(self.plan, images=self._words(self.plan, images)), TOP)

    def attack_view(self) -> tuple[DensePlan, Locate]:
        """The dense chain the targeted search runs on (the program's graph as a
        ``DensePlan``: the same integer weights) and where each DSP-core weight bit lives in
        ``wd`` (LUT-core channels are not attacked); ``FaultError`` for a network that is not
        a chain of dense layers."""
        from frontends.errors import ModelError
        from rtl_gen.gemm.model import unpack_lanes

        try:
            search = DensePlan.from_graph(self.plan.graph, lanes=1)
        except ModelError as exc:
            raise FaultError(
                f"{self.artefact.path}: --mode targeted searches chains of dense layers; {exc}"
            ) from None
        program, cfg = self.plan, self.plan.config
        if "wd" not in self.memories:
            raise FaultError(
                f"{self.artefact.path}: --mode targeted flips int8 DSP-core weights; "
                f"this overlay has none"
            )
        wd = [int(w) for w in program.wd]
        where: dict[tuple[int, int, int], tuple[int, int]] = {}  # (layer, out, in) -> word, bit
        # the DSP core's GEMMs, in program order, are the layers with DSP channels in order
        # (a dense layer is one GEMM a core; the first may run ahead of the LOAD)
        dsp_layers = iter(li for li, info in enumerate(program.layers) if info.n_dsp)
        core_cfg = {}
        for ins in program.instrs:
            if ins.op == "CFG":
                core_cfg[ins.core] = ins.fields
            if ins.op != "GEMM" or ins.core != "dsp":
                continue
            li = next(dsp_layers, None)
            if li is None or core_cfg["dsp"]["k"] != search.layers[li].n_in:
                raise FaultError(
                    f"{self.artefact.path}: its program's GEMMs do not match the model's "
                    f"dense layers; --mode targeted cannot place the weights"
                )
            c, base, lanes = core_cfg["dsp"], ins.fields["w"], cfg.dsp_lanes
            weight = search.layers[li].weight
            taken = set()
            for t in range(c["tiles"]):
                for j in range(lanes):
                    column = [
                        unpack_lanes(wd[base + t * c["k"] + kk], lanes, 8)[j]
                        for kk in range(c["k"])
                    ]
                    rows = [
                        o
                        for o in np.flatnonzero((weight == np.array(column)).all(axis=1))
                        if int(o) not in taken
                    ]
                    if not rows:
                        continue  # a padding lane
                    o = int(rows[0])
                    taken.add(o)
                    for kk in range(c["k"]):
                        where[li, o, kk] = (base + t * c["k"] + kk, 8 * j)
        m = self.memories.index("wd")

        def locate(layer, out, inp, bit):
            spot = where.get((layer, out, inp))
            return None if spot is None else (m, spot[0], spot[1] + bit)

        return search, locate


def load_design(path: Path) -> Design:
    """The dense or gemm artefact at ``path`` with its engine rebuilt from
    ``source/*.onnx``; refused by name when the artefact has no weight memories nnloom can
    flip, or when the rebuilt engine does not reproduce the artefact's."""
    from frontends.onnx_import import import_onnx
    from sim.agreement import source_model

    art = Artefact(path)
    manifest = art.manifest
    engine = manifest.get("engine")
    if engine not in ("dense", "gemm"):
        raise FaultError(
            f"{art.path}: a {engine} artefact; `nnloom faults` flips the weight "
            f"memories of dense and gemm artefacts (generate with --engine dense or gemm)"
        )
    source = source_model(art)
    if source is None:
        raise FaultError(
            f"{art.path}: no copy of its ONNX model in source/; regenerate it "
            f"with `nnloom generate`"
        )
    params = manifest["parameters"]
    vectors = art.vectors()
    if engine == "dense":
        plan = DensePlan.from_graph(
            import_onnx(source), lanes=params["lanes"], protect=params.get("protect", "none")
        )
        if plan.lanes != params["lanes"] or len(plan.weight_image()) != params["weight_words"]:
            raise FaultError(
                f"{art.path}: source/{source.name} does not rebuild the artefact's "
                f"weight memory ({params['weight_words']} words)"
            )
        golden = plan.reference(vectors["inputs"])[-1]
        design: Design = DenseDesign(art, plan, vectors["inputs"], vectors["labels"], golden)
    else:
        from rtl_gen.gemm import GemmConfig, compile_graph, model

        program = compile_graph(import_onnx(source), GemmConfig(**params))
        listing = art.path / "program.asm"
        if program.config.to_json() != params or (
            listing.is_file() and listing.read_text() != program.listing()
        ):
            raise FaultError(
                f"{art.path}: source/{source.name} does not rebuild the artefact's "
                f"program (program.asm); regenerate it with `nnloom generate`"
            )
        golden = model.run(program, vectors["inputs"])
        design = GemmDesign(art, program, vectors["inputs"], vectors["labels"], golden)
    if not np.array_equal(design.golden, vectors["outputs"]):
        raise FaultError(
            f"{art.path}: the rebuilt engine's golden differs from "
            f"vectors/golden.npz; regenerate the artefact"
        )
    return design


def _accuracy(outputs: np.ndarray, labels: np.ndarray) -> float | None:
    known = labels >= 0
    return float((outputs.argmax(axis=1) == labels)[known].mean()) if known.any() else None


def _flip(images, codes, picks) -> list[list[int]]:
    """``images`` with bit ``b`` of word ``w`` of memory ``m`` flipped for each pick."""
    out = [list(img) for img in images]
    for m, w, b in picks:
        out[m][w] ^= 1 << b
    return out


def _random_picks(
    design: Design, plan, flips: int, spread: str, rng: np.random.Generator
) -> list[tuple[int, int, int]]:
    images = design.variant_images(plan)
    sizes = [len(img) for img in images]
    widths = design.variant_widths(plan)
    starts = np.cumsum([0] + sizes)
    if spread == "word":
        words = rng.choice(sum(sizes), size=flips, replace=False)
        picks = []
        for w in words:
            m = int(np.searchsorted(starts, w, side="right") - 1)
            picks.append((m, int(w) - int(starts[m]), int(rng.integers(widths[m]))))
        return picks
    bit_starts = np.cumsum([0] + [s * w for s, w in zip(sizes, widths)])
    bits = rng.choice(int(bit_starts[-1]), size=flips, replace=False)
    picks = []
    for b in bits:
        m = int(np.searchsorted(bit_starts, b, side="right") - 1)
        off = int(b) - int(bit_starts[m])
        picks.append((m, off // widths[m], off % widths[m]))
    return picks


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
    # trials with a flipped instruction whose effect the golden cannot say (a host waits
    # for elements that never come: a timeout), counted as no answer (accuracy 0)
    trials_undefined: int = 0
    # trials with a changed answer and no error reported: silently wrong
    trials_silent: int = 0

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
        images = design.variant_images(plan)
        for n in flips:
            rng = np.random.default_rng([seed, n])
            acc, changed, frac, detected, corrected, errors = [], 0, [], 0, [], []
            undefined = silent = 0
            for _ in range(trials):
                picks = _random_picks(design, plan, n, spread, rng)
                out, counts = design.run(plan, _flip(images, None, picks), design.inputs)
                if out is None:  # no answer: every vector changed
                    diff = np.ones(len(design.golden), bool)
                    acc.append(0.0 if _accuracy(design.golden, design.labels) is not None else None)
                    undefined += 1
                else:
                    diff = (out != design.golden).any(axis=1)
                    acc.append(_accuracy(out, design.labels))
                changed += bool(diff.any())
                silent += out is not None and bool(diff.any()) and counts["errors"] == 0
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
                    undefined,
                    silent,
                )
            )
    return rows


def check_size(design: Design, flips: list[int], spread: str) -> None:
    """Refuse a flip count the memories cannot hold (before anything runs)."""
    plan = design.plan
    words = sum(len(img) for img in design.images)
    limit = words if spread == "word" else design.memory_bits
    what = "words (one flip per word with --spread word)" if spread == "word" else "bits"
    for n in flips:
        if n < 1 or n > limit:
            raise FaultError(
                f"--flips {n}: the memories of {design.artefact.name} bits flip in "
                f"({', '.join(design.memories)}) hold {limit} {what}"
                f"{'' if design.variant_protect(plan) == 'none' else ' with check bits'}"
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
    docstring), then the same flips on parity- and SECDED-coded memories. Candidates are
    ranked on the dense chain of ``design.attack_view()`` and judged, like every figure,
    on the engine's own golden of the flipped memory."""
    search, locate = design.attack_view()
    plan = design.with_protection("none")
    images = design.variant_images(plan)
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
    zp = search.layers[-1].zero_point
    weights = [l.weight.copy() for l in search.layers]
    result = AttackResult(source, target, int(chosen.sum()))
    used: set[tuple[int, int, int, int]] = set()
    mask = (1 << WEIGHT_BITS) - 1

    def exact(picks, inputs):
        return design.run(plan, _flip(images, None, picks), inputs)[0]

    for _ in range(max_flips):
        grads = _gradients(search, weights, x, goal)
        scored = []
        for li, (w, g) in enumerate(zip(weights, grads)):
            codes = w & mask
            for bit in range(WEIGHT_BITS):
                flipped = codes ^ (1 << bit)
                new = flipped - ((flipped >> (WEIGHT_BITS - 1)) << WEIGHT_BITS)
                gain = g * (new - w)  # first-order change of the loss
                flat = np.argsort(gain, axis=None)[: 4 * candidates]
                taken = 0
                for f in flat:
                    o, i = np.unravel_index(f, w.shape)
                    spot = locate(li, int(o), int(i), bit)
                    if spot is None or (li, int(o), int(i), bit) in used:
                        continue
                    scored.append(
                        (float(gain[o, i]), li, int(o), int(i), bit, int(new[o, i]), spot)
                    )
                    taken += 1
                    if taken == candidates:
                        break
        scored.sort(key=lambda c: c[:5])
        best = None
        for _, li, o, i, bit, new, spot in scored[:candidates]:
            loss = _loss(exact(result.flips + [spot], x), goal, zp)
            if best is None or loss < best[0]:
                best = (loss, li, o, i, bit, new, spot)
        if best is None:
            break
        _, li, o, i, bit, new, spot = best
        weights[li][o, i] = new
        used.add((li, o, i, bit))
        result.flips.append(spot)
        outs = exact(result.flips, x_attack)
        result.success.append(float((outs.argmax(axis=1) == target).mean()))
        result.accuracy.append(_accuracy(exact(result.flips, design.inputs), labels))
        if result.success[-1] >= success:
            break
    for protect in ("parity", "secded"):
        coded = design.with_protection(protect)
        coded_images = design.variant_images(coded)
        first_detected, rates = None, []
        for k in range(1, len(result.flips) + 1):
            outs, counts = design.run(coded, _flip(coded_images, None, result.flips[:k]), x_attack)
            if counts["errors"] and first_detected is None:
                first_detected = k
            rates.append(float((outs.argmax(axis=1) == target).mean()))
        result.protected[protect] = {
            "first_detected_flip": first_detected,
            "success_after_all": rates[-1] if rates else 0.0,
            "success": rates,
        }
    return result


# --- the RTL on a flipped image ----------------------------------------------------------------


def modelled_picks(design: Design, picks: list[tuple[int, int, int]]) -> list:
    """``picks`` without its instruction flips when they leave the golden unable to say
    what the engine computes (the RTL check needs a golden)."""
    outs, _ = design.run(design.plan, _flip(design.images, None, picks), design.inputs[:1])
    if outs is not None or "imem" not in design.memories:
        return picks
    m = design.memories.index("imem")
    return [p for p in picks if p[0] != m]


def check_rtl(
    design: Design, picks: list[tuple[int, int, int]], *, vectors: int, simulator: str = "verilator"
) -> tuple[int, int]:
    """Simulate the artefact's engine with ``picks`` flipped in its ROM images on the first
    ``vectors`` golden inputs, against the golden of the same flipped images; returns
    (vectors run, mismatches reported, 0 when bit-exact). The artefact is left as it was."""
    from rtl_gen.artefact import atomic_write
    from sim.runner import run_sim

    images = _flip(design.images, None, picks)
    n = min(vectors, len(design.inputs))
    outs, counts = design.run(design.plan, images, design.inputs[:n])
    if outs is None:
        raise FaultError(
            f"--rtl: {counts['undefined']}, so the golden cannot say what the RTL computes; "
            f"draw again (--seed) or leave the instruction memory out (--memory)"
        )
    with tempfile.TemporaryDirectory(prefix="nnloom-faults-") as tmp:
        work = Path(tmp) / design.artefact.name
        shutil.copytree(
            design.artefact.path, work, ignore=shutil.ignore_patterns("sim", "build", "report.*")
        )
        top = design.artefact.manifest["top"]
        atomic_write(work / "rtl" / f"{top}.v", design.engine_verilog(images))
        old = design.artefact.vectors()
        # per-layer outputs of the unflipped golden no longer hold: only the output is checked
        new = {k: v[:n] for k, v in old.items() if not k.startswith("layer")}
        new["outputs"] = outs
        import io

        buf = io.BytesIO()
        np.savez(buf, **{k: new[k] for k in sorted(new)})
        atomic_write(work / "vectors" / "golden.npz", buf.getvalue())
        result = run_sim(work, simulator=simulator)
    return result.vectors, len(result.mismatches) if not result.passed else 0
