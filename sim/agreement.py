"""The simulated RTL against the user's framework: onnxruntime (or qonnx's executor for
QONNX graphs) running the user's own quantized ONNX file, a float ONNX reference, or a
PyTorch module.

The golden input codes are dequantized with the manifest's input scale and zero point and fed
to the framework; its outputs are brought to the RTL's output codes with the manifest's
output scale and zero point (round half to even, as QuantizeLinear). Per element the RTL code
and the framework's code are equal, one code apart, or further apart.

Tolerance (the quantized model as given): every element within ``TOLERANCE_CODES`` = 1 code,
but ``TOLERANCE_FRACTION`` = 1 % of them, which a multi-layer network may move further by
carrying a hidden layer's one-code difference onward.
The integer parts (accumulation, zero points, clamps, max pooling, ReLU, data movement) are
exact in both; a code may move by one where the rounding conventions differ: requantization
after Gemm/Conv/MatMul (the golden's exact accumulator times a 15-bit multiplier, rounded half
up, against onnxruntime's float32 product rounded half to even), average pooling (division
rounding), and the table-driven nonlinear ops (Sigmoid/Tanh/GELU/Exp). A float reference
(``--reference``, ``--torch``) is reported, never judged: quantization itself moves its
outputs.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from frontends.errors import NnloomError

from .layer_agreement import ARGMAX

if TYPE_CHECKING:
    import torch

    from rtl_gen.artefact import Artefact

__all__ = [
    "Agreement",
    "AgreementError",
    "FrameworkOutputs",
    "compare_codes",
    "framework_outputs",
    "onnx_outputs",
    "torch_outputs",
    "framework_codes",
    "source_model",
    "agreements",
    "check_reference",
    "TOLERANCE_CODES",
    "TOLERANCE_FRACTION",
    "SOURCE_DIR",
    "load_torch_factory",
]

SOURCE_DIR = "source"  # the artefact's copy of the ONNX model it was generated from

TOLERANCE_CODES = 1
# A network of several layers may carry a hidden layer's one-code difference onward (the
# next layer's accumulator moves by a weight): that many elements may be further apart.
TOLERANCE_FRACTION = 0.01


class AgreementError(NnloomError):
    """A reference model that does not fit the artefact (inputs, outputs), or cannot run."""


@dataclass(frozen=True)
class Agreement:
    """RTL output codes against a framework's, over ``vectors`` vectors."""

    framework: str
    vectors: int
    elements: int
    equal: int
    off_by_one: int
    worse: int
    max_diff: float  # in output codes
    argmax: float | None  # fraction of vectors whose argmax agrees (None: one output)
    first_outside: str | None  # the first element outside the tolerance, named
    judged: bool  # False for float references: reported only
    outside: int = 0  # elements outside the tolerance
    rule: str = "codes"  # "transformer": the argmax judged too (``sim.layer_agreement``)

    @property
    def passed(self) -> bool:
        if not self.judged:
            return True
        if self.rule == "transformer" and self.argmax is not None and self.argmax < ARGMAX:
            return False
        return self.outside <= TOLERANCE_FRACTION * self.elements

    def why(self) -> str:
        """What of the rule a failed comparison breaks."""
        if self.outside <= TOLERANCE_FRACTION * self.elements:  # a transformer's argmax
            return (
                f"its argmax agrees on {100 * (self.argmax or 0):.2f} % of the vectors (at "
                f"least {100 * ARGMAX:g} % must for a transformer)"
            )
        return (
            f"beyond the tolerance in {self.outside} of {self.elements} elements (at most "
            f"{TOLERANCE_FRACTION:.0%} may): first {self.first_outside}"
        )

    def line(self) -> str:
        pct = 100.0 / max(self.elements, 1)
        arg = "" if self.argmax is None else f"; argmax agrees on {100 * self.argmax:.2f} %"
        return (
            f"RTL vs {self.framework}: {self.equal}/{self.elements} elements equal "
            f"({self.equal * pct:.2f} %), {self.off_by_one} off by one code, "
            f"{self.worse} worse; max difference {self.max_diff:g} codes{arg}"
        )

    def as_dict(self) -> dict:
        return {
            "framework": self.framework,
            "vectors": self.vectors,
            "elements": self.elements,
            "equal": self.equal,
            "off_by_one": self.off_by_one,
            "worse": self.worse,
            "max_diff_codes": self.max_diff,
            "argmax_agreement": self.argmax,
            "first_outside": self.first_outside,
            "judged": self.judged,
            "rule": self.rule,
            "tolerance_codes": TOLERANCE_CODES if self.judged else None,
        }


def compare_codes(
    rtl: np.ndarray,
    ref: np.ndarray,
    *,
    framework: str,
    output: str,
    judged: bool = True,
    step: float = 1,
    classes: bool = True,
    rule: str = "codes",
) -> Agreement:
    """``rtl`` (N, K) integer codes against ``ref`` (N, K) codes (float allowed). ``step``:
    output codes one code of the last quantized tensor can move (1; for a layer's
    accumulator output, its largest weight), so the tolerance is ``TOLERANCE_CODES *
    step``."""
    rtl = np.asarray(rtl, dtype=np.float64).reshape(len(rtl), -1)
    ref = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    if rtl.shape != ref.shape:
        raise AgreementError(
            f"{framework} gives {ref.shape[1]} output values per vector; "
            f"the RTL gives {rtl.shape[1]}"
        )
    diff = np.abs(rtl - ref)
    equal = int((diff < 0.5).sum())
    off = int(((diff >= 0.5) & (diff < 1.5)).sum())
    worse = int(diff.size - equal - off)
    first = None
    outside = np.argwhere(diff > TOLERANCE_CODES * step + 1e-9)
    if len(outside):
        n, k = (int(v) for v in outside[0])
        first = (
            f"vector {n}, output '{output}'[{k}]: RTL {rtl[n, k]:g}, {framework} "
            f"{ref[n, k]:g} ({diff[n, k]:g} codes apart; tolerance "
            f"{TOLERANCE_CODES * step:g})"
        )
    argmax = None
    if classes and rtl.shape[1] > 1:
        argmax = float((rtl.argmax(axis=1) == ref.argmax(axis=1)).mean())
    return Agreement(
        framework=framework,
        vectors=len(rtl),
        elements=int(diff.size),
        equal=equal,
        off_by_one=off,
        worse=worse,
        max_diff=float(diff.max(initial=0)),
        argmax=argmax,
        first_outside=first,
        judged=judged,
        outside=len(outside),
        rule=rule,
    )


def _is_qonnx(model) -> bool:
    return any(
        n.domain.startswith("qonnx")
        or n.domain.startswith("finn")
        or n.op_type in ("Quant", "IntQuant", "BipolarQuant", "Trunc")
        for n in model.graph.node
    )


def _graph_io(model) -> tuple[str, tuple, str]:
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise AgreementError(
            f"it has {len(inputs)} inputs and {len(model.graph.output)} "
            f"outputs; the artefact has one of each"
        )
    dims = tuple(
        d.dim_value if d.dim_value > 0 else 1 for d in inputs[0].type.tensor_type.shape.dim
    )
    return inputs[0].name, dims, model.graph.output[0].name


def onnx_outputs(path: Path, x: np.ndarray, *, optimized: bool = True) -> tuple[np.ndarray, str]:
    """Run the ONNX file ``path`` on float inputs ``x`` (N, elements), one sample at a time;
    returns (N, outputs) and the framework's name. QONNX graphs run in qonnx's executor.
    ``optimized=False``: onnxruntime without graph optimizations (each op as the file states
    it, no fused kernels)."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise AgreementError(f"{path}: not an ONNX file onnx can read ({exc})") from None
    try:
        name, shape, out_name = _graph_io(model)
    except AgreementError as exc:
        raise AgreementError(f"{path}: {exc}") from None
    if int(np.prod(shape)) != x.shape[1]:
        raise AgreementError(
            f"{path}: input '{name}' takes {int(np.prod(shape))} values "
            f"{list(shape)} per sample; the artefact's input has "
            f"{x.shape[1]}"
        )
    feeds = x.astype(np.float32).reshape((len(x),) + shape[1:] if shape else (len(x),))
    if _is_qonnx(model):
        try:
            from qonnx.core.modelwrapper import ModelWrapper
            from qonnx.core.onnx_exec import execute_onnx
            from qonnx.transformation.infer_shapes import InferShapes
        except ImportError:
            raise AgreementError(
                f"{path} is a QONNX graph: its executor is qonnx's, "
                f"`pip install 'nnloom[brevitas]'`"
            ) from None
        wrapper = ModelWrapper(model).transform(InferShapes())
        outs = [
            execute_onnx(wrapper, {name: feeds[i : i + 1]})[out_name] for i in range(len(feeds))
        ]
        framework = f"qonnx ({path.name})"
    else:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if not optimized:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            session = ort.InferenceSession(
                model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise AgreementError(f"{path}: onnxruntime cannot load it ({exc})") from None
        outs = [session.run([out_name], {name: feeds[i : i + 1]})[0] for i in range(len(feeds))]
        plain = "" if optimized else " without graph optimizations"
        framework = f"onnxruntime{plain} ({path.name})"
    return np.concatenate([np.asarray(o).reshape(1, -1) for o in outs]), framework


def load_torch_factory(spec: str) -> torch.nn.Module:
    """``module.py:factory`` -> the ``torch.nn.Module`` that ``factory()`` returns."""
    file, sep, factory = spec.rpartition(":")
    if not sep or not file or not factory:
        raise AgreementError(f"--torch {spec}: expected FILE.py:FACTORY")
    path = Path(file)
    if not path.is_file():
        raise AgreementError(f"--torch {spec}: no such file {path}")
    name = "nnloom_torch_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    try:
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise AgreementError(
            f"--torch {spec}: {path} does not import ({type(exc).__name__}: {exc})"
        ) from None
    fn = getattr(module, factory, None)
    if not callable(fn):
        raise AgreementError(f"--torch {spec}: {path} has no callable '{factory}'")
    try:
        net = fn()
    except Exception as exc:
        raise AgreementError(
            f"--torch {spec}: {factory}() failed ({type(exc).__name__}: {exc})"
        ) from None
    import torch

    if not isinstance(net, torch.nn.Module):
        raise AgreementError(
            f"--torch {spec}: {factory}() returned a {type(net).__name__}, not a torch.nn.Module"
        )
    return net.eval()


def torch_outputs(net: torch.nn.Module, x: np.ndarray, shape: tuple) -> np.ndarray:
    """``net`` on float inputs ``x`` (N, elements) reshaped to ``(N, *shape)``."""
    import torch

    with torch.no_grad():
        try:
            y = net(torch.from_numpy(x.astype(np.float32).reshape((len(x),) + tuple(shape))))
        except Exception as exc:
            raise AgreementError(
                f"the PyTorch module does not take inputs of shape "
                f"{[len(x), *shape]} ({type(exc).__name__}: {exc})"
            ) from None
    return np.asarray(y.detach().numpy()).reshape(len(x), -1)


def framework_codes(manifest: dict, y: np.ndarray, *, exact: bool) -> np.ndarray:
    """Framework outputs in the RTL's output codes: integer outputs as they are; float ones
    divided by the manifest's output scale plus its zero point, rounded (half to even, as
    QuantizeLinear) for a quantized model whose last op dequantizes (``exact``), kept
    fractional for a float reference (differences then in codes)."""
    from frontends.host import output_codes

    if np.issubdtype(np.asarray(y).dtype, np.integer):
        return np.asarray(y, dtype=np.float64)
    return output_codes(manifest["quant"]["output"], np.asarray(y).reshape(len(y), -1), exact=exact)


def dequantize_inputs(manifest: dict, codes: np.ndarray) -> np.ndarray:
    """The golden input codes as the model's float inputs, in the model's own layout."""
    from frontends.host import model_inputs

    q = manifest["quant"]["input"]
    x = (np.asarray(codes, dtype=np.float64) - float(q["zero_point"])) * float(q["scale"])
    return model_inputs(manifest["quant"].get("host"), x, tuple(q.get("shape") or (x.shape[1],)))


def source_model(artefact: Artefact) -> Path | None:
    """The ONNX model the artefact was generated from (``source/*.onnx``) whose sha256 is
    the manifest's ``source.sha256`` (any, when the manifest names none)."""
    folder = artefact.path / SOURCE_DIR
    models = sorted(folder.glob("*.onnx")) if folder.is_dir() else []
    want = (artefact.manifest.get("source") or {}).get("sha256")
    for path in models:
        if want is None or hashlib.sha256(path.read_bytes()).hexdigest() == want:
            return path
    return None


@dataclass(frozen=True)
class FrameworkOutputs:
    framework: str
    codes: np.ndarray  # (N, K) in the RTL's output codes
    judged: bool  # the user's quantized model: within tolerance or the run fails
    step: float = 1  # output codes per code of the last quantized tensor (accumulators)
    classes: bool = True  # outputs are scores (argmax reported), not an image
    rule: str = "codes"  # "transformer": the argmax judged too (``sim.layer_agreement``)


def framework_outputs(
    artefact: Artefact, *, reference: Path | None = None, torch_spec: str | None = None
) -> tuple[list[FrameworkOutputs], str]:
    """Every framework's outputs for the artefact's golden inputs, in output codes: the
    source model (``source/``), ``reference`` (a float ONNX) and ``torch_spec``
    (``module.py:factory``). Returns them and a note when there is nothing to compare (an
    engine made from tables or an expression). Raises ``AgreementError`` for a reference
    whose inputs or outputs do not match the artefact, before anything is simulated."""
    manifest = artefact.manifest
    if "quant" not in manifest and "smurf" in manifest and reference is None and torch_spec is None:
        return expression_outputs(manifest, artefact.vectors()["inputs"])
    if manifest.get("variant") == "srlut" and reference is None and torch_spec is None:
        return _srlut_outputs(artefact)
    if "quant" not in manifest:
        if reference is not None or torch_spec is not None:
            raise AgreementError(
                f"{artefact.path}: the manifest has no input/output "
                f"quantization (a {manifest.get('engine')} engine made from "
                f"tables or an expression); --reference/--torch need one"
            )
        return [], (
            f"framework agreement: not applicable ({manifest.get('engine')} engine "
            f"made from tables or an expression, no ONNX model)"
        )
    vectors = artefact.vectors()
    x = dequantize_inputs(manifest, vectors["inputs"])
    want = np.asarray(vectors["outputs"]).reshape(len(x), -1).shape[1]
    found, note, shape = [], "", None
    source = source_model(artefact)
    if source is None:
        note = (
            f"framework agreement with the source model: not checked ({artefact.path}"
            f"/{SOURCE_DIR} holds no copy of it; regenerate with `nnloom generate`)"
        )
    else:
        y, name = onnx_outputs(source, x)
        step = float(manifest["quant"]["output"].get("code_step", 1))
        # SMURF units stand for the model's functions approximately: reported, not judged
        judged = manifest.get("nonlinear", "table") != "smurf"
        rule, layers = _layer_rule(source, x, vectors) if judged else ("codes", "")
        note = "\n".join(t for t in (note, layers) if t)
        codes = _sized(framework_codes(manifest, y, exact=True), want, name)
        if rule == "transformer":
            # judged against the file's own ops; onnxruntime's default graph fuses Softmax
            # into QLinearSoftmax, whose table rounds 6 % of the attention weights otherwise
            # (``sim.layer_agreement``): reported
            found.append(FrameworkOutputs(name, codes, False, step))
            y, name = onnx_outputs(source, x, optimized=False)
            codes = _sized(framework_codes(manifest, y, exact=True), want, name)
        found.append(FrameworkOutputs(name, codes, judged, step, rule=rule))
        import onnx

        shape = _graph_io(onnx.load(str(source)))[1][1:]
    if reference is not None:
        reference = Path(reference)
        if not reference.is_file():
            raise AgreementError(f"--reference {reference}: no such file")
        y, name = onnx_outputs(reference, x)
        found.append(
            FrameworkOutputs(
                f"float {name}",
                _sized(framework_codes(manifest, y, exact=False), want, f"--reference {reference}"),
                False,
            )
        )
    if torch_spec is not None:
        net = load_torch_factory(torch_spec)
        y = torch_outputs(net, x, shape or (x.shape[1],))
        found.append(
            FrameworkOutputs(
                f"PyTorch ({torch_spec})",
                _sized(framework_codes(manifest, y, exact=False), want, f"--torch {torch_spec}"),
                False,
            )
        )
    return found, note


def _srlut_outputs(artefact) -> tuple[list[FrameworkOutputs], str]:
    """An SR-LUT engine against the ONNX pattern net in ``source/`` (``sim.lut_agreement``)."""
    from frontends.lutnet.srlut import TableError

    from .lut_agreement import srlut_references

    folder = artefact.path / SOURCE_DIR
    nets = sorted(folder.glob("*.onnx")) if folder.is_dir() else []
    if not nets:
        return [], (
            "framework agreement: not applicable (an SR-LUT engine made from a table; "
            "generate it from the ONNX pattern net to compare the RTL with the net)"
        )
    try:
        found = srlut_references(artefact, nets[0])
    except TableError as exc:
        raise AgreementError(str(exc)) from None
    return [FrameworkOutputs(n, codes, judged, classes=False) for n, codes, judged in found], ""


def _sized(codes: np.ndarray, want: int, what: str) -> np.ndarray:
    if codes.shape[1] != want:
        raise AgreementError(
            f"{what}: gives {codes.shape[1]} output values per sample; "
            f"the artefact's output has {want}"
        )
    return codes


def agreements(rtl: np.ndarray, frameworks: list[FrameworkOutputs], output: str) -> list[Agreement]:
    """The RTL's (N, K) output codes against each framework's first N vectors."""
    rtl = np.asarray(rtl).reshape(len(rtl), -1)
    return [
        compare_codes(
            rtl,
            f.codes[: len(rtl)],
            framework=f.framework,
            output=output,
            judged=f.judged,
            step=f.step,
            classes=f.classes,
            rule=f.rule,
        )
        for f in frameworks
    ]


def _layer_rule(source: Path, x: np.ndarray, vectors) -> tuple[str, str]:
    """("transformer", the per-layer line) for a transformer graph whose golden agrees
    with onnxruntime layer by layer (``sim.layer_agreement``; AgreementError naming the
    layer if not): its output codes are judged against onnxruntime without graph
    optimizations, and its argmax too. ("codes", "") for any other graph, and for an
    artefact whose golden outputs are not the model's own integer golden (approximated
    weights: the per-layer check would not cover what the RTL computes)."""
    from frontends import reference
    from frontends.errors import NnloomError
    from frontends.onnx_import import import_onnx

    from .layer_agreement import check_layers, is_transformer

    try:
        graph = import_onnx(source)
    except NnloomError:
        return "codes", ""
    if not is_transformer(graph):
        return "codes", ""
    codes = np.asarray(vectors["inputs"]).reshape((-1,) + graph.tensor(graph.inputs[0]).shape)
    own = reference.run(graph, codes)[graph.outputs[0]].reshape(len(codes), -1)
    if not np.array_equal(own, np.asarray(vectors["outputs"]).reshape(len(codes), -1)):
        return "codes", (
            f"framework agreement judged on the output codes: the artefact's golden is not "
            f"{source.name}'s own integer golden (approximated weights)"
        )
    check = check_layers(graph, source, x)
    if check.failed:
        raise AgreementError(
            f"{source.name}: the golden model differs from onnxruntime in {check.failed}"
        )
    return "transformer", check.line(f"onnxruntime ({source.name})")


def check_reference(model: Path, reference: Path | None, torch_spec: str | None) -> None:
    """Before anything is generated: ``reference`` must take and give as many values per
    sample as ``model`` (an ONNX file), and ``torch_spec`` must import."""
    import onnx

    if reference is not None:
        reference = Path(reference)
        if not reference.is_file():
            raise AgreementError(f"--reference {reference}: no such file")
        sizes = []
        for path in (Path(model), reference):
            try:
                _name, shape, _out = _graph_io(onnx.load(str(path)))
                out = onnx.load(str(path)).graph.output[0].type.tensor_type.shape.dim
            except AgreementError as exc:
                raise AgreementError(f"{path}: {exc}") from None
            except Exception as exc:
                raise AgreementError(f"{path}: not an ONNX file onnx can read ({exc})") from None
            sizes.append(
                (int(np.prod(shape[1:])), int(np.prod([d.dim_value or 1 for d in out][1:])))
            )
        (mi, mo), (ri, ro) = sizes
        if (mi, mo) != (ri, ro):
            what = (
                f"takes {ri} input values per sample, the model {mi}"
                if mi != ri
                else f"gives {ro} output values per sample, the model {mo}"
            )
            raise AgreementError(
                f"--reference {reference} does not match {Path(model).name}: it {what}"
            )
    if torch_spec is not None:
        load_torch_factory(torch_spec)


def expression_outputs(manifest: dict, codes: np.ndarray) -> tuple[list[FrameworkOutputs], str]:
    """A SMURF unit's target functions in numpy (float64) at its input codes, in its output
    codes (``streams.output.decode`` inverted): reported, not judged, as the unit is a
    stochastic approximation (its fit error is in the manifest)."""
    from rtl_gen.smurf.expr import parse

    s_in, s_out = manifest["streams"]["input"], manifest["streams"]["output"]
    codes = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    bits = int(s_in.get("code_bits", s_in["dtype"]["width"]))
    xs = [lo + (hi - lo) * codes[:, m] / 2**bits for m, (lo, hi) in enumerate(s_in["ranges"])]
    out_bits = int(s_out["dtype"]["width"])
    columns = []
    try:
        for name, (lo, hi) in zip(s_out["names"], s_out["ranges"]):
            f = parse(name, tuple(s_in["names"]))
            columns.append((f(*xs) - lo) / (hi - lo) * 2**out_bits)
    except Exception:
        return [], (
            f"framework agreement: not applicable (the SMURF unit's function "
            f"{s_out['names']} is not a numpy expression)"
        )
    ref = np.clip(np.stack(columns, axis=1), 0, 2**out_bits - 1)
    return [FrameworkOutputs(f"numpy ({', '.join(s_out['names'])})", ref, False)], ""
