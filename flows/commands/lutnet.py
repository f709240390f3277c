"""``nnloom lutnet ...`` and ``nnloom bench lutnet``: the LUT super-resolution engines."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import typer

if TYPE_CHECKING:
    from rich.console import Console

    from frontends.lutnet.hklut import HklutPlan
    from frontends.lutnet.icelut import IcelutPlan
    from frontends.lutnet.srlut import SrlutPlan
    from rtl_gen.lutnet import HklutEngine, IcelutEngine, SrlutEngine
    from sim.runner import SimResult

    LutPlan = SrlutPlan | HklutPlan | IcelutPlan

log = logging.getLogger(__name__)

# Golden frames of ``nnloom generate --engine lutnet`` without --data (ICELUT: RGB, at
# least the 32×32 thumbnail).
DEFAULT_FRAME = 16
ICELUT_FRAME = 32
# Largest table the RTL path of `lutnet sr` simulates (the ROM is Verilog initial data).
MAX_SIM_TABLE_BYTES = 128 * 1024


def _errors():
    """What the command bodies use: ``UserError`` (``frontends.errors.UsageError``),
    ``console`` and ``run_command`` (``flows.console``)."""
    from types import SimpleNamespace

    from flows.console import console, run_command
    from frontends.errors import UsageError

    return SimpleNamespace(UserError=UsageError, console=console, run_command=run_command)


def load_image(path: Path) -> np.ndarray:
    """An 8-bit grey (H×W) or RGB (H×W×3) image; other modes are converted to RGB."""
    from PIL import Image, UnidentifiedImageError

    cli = _errors()
    if not path.is_file():
        raise cli.UserError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im = im if im.mode in ("L", "RGB") else im.convert("RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise cli.UserError(f"{path}: not an image PIL can read ({exc})") from None


def save_image(path: Path, image: np.ndarray) -> None:
    import io

    from PIL import Image

    from rtl_gen.artefact import atomic_write

    buf = io.BytesIO()
    Image.fromarray(image).save(
        buf, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG")
    )
    atomic_write(path, buf.getvalue())


def load_tables(
    path: Path, *, pattern: Optional[str] = None, interval_bits: Optional[int] = None
) -> LutPlan:
    """An SR-LUT table (.npy), an HKLUT table folder, ICELUT tables (.npz), an ONNX pattern
    net to transfer, or an ICELUT net folder (backbone_msb.onnx, backbone_lsb.onnx,
    split_fc.onnx, bases.npy; ``frontends.lutnet.icetransfer``) to transfer."""
    from frontends.lutnet.hklut import load_hklut_dir
    from frontends.lutnet.icelut import load_icelut_npz
    from frontends.lutnet.icetransfer import is_icelut_net_dir, transfer_icelut_dir
    from frontends.lutnet.tables import load_srlut_table

    if path.is_dir():
        if is_icelut_net_dir(path):
            return transfer_icelut_dir(path)
        return load_hklut_dir(path)
    if path.suffix == ".npz":
        return load_icelut_npz(path)
    if path.suffix == ".onnx":
        from frontends.lutnet.transfer import transfer_onnx

        return transfer_onnx(path, interval_bits=interval_bits or 4)
    plan = load_srlut_table(path, pattern=pattern)
    if interval_bits is not None and interval_bits != plan.interval_bits:
        plan = plan.resampled(interval_bits)
    return plan


def rtl_upscale(
    plan: SrlutPlan | HklutPlan,
    image: np.ndarray,
    *,
    ports: int = 1,
    family: str = "ice40",
    workdir: Path | None = None,
) -> tuple[np.ndarray, SimResult]:
    """``image`` through the generated Verilog (Verilator), one frame per channel; HKLUT
    with its MSB tables as ``family`` holds them (UP5K: loaded into SPRAM first)."""
    from frontends.lutnet.hklut import HklutPlan
    from rtl_gen.lutnet.artefact import write_hklut_artefact, write_srlut_artefact
    from sim.runner import run_sim

    cli = _errors()
    hk = isinstance(plan, HklutPlan)
    if not hk and plan.table_bytes > MAX_SIM_TABLE_BYTES:
        raise cli.UserError(
            f"table '{plan.name}' has {plan.table_bytes} bytes; the RTL "
            f"simulation takes tables up to {MAX_SIM_TABLE_BYTES} bytes: "
            f"pass --interval-bits {plan.interval_bits + 1} to resample it"
        )
    chans = image[..., None] if image.ndim == 2 else image
    frames = np.ascontiguousarray(np.moveaxis(chans, -1, 0))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        size = {"width": image.shape[1], "height": image.shape[0], "frames": frames}
        art = (
            write_hklut_artefact(plan, Path(tmp) / "lutnet_sr", family=family, **size)
            if hk
            else write_srlut_artefact(plan, Path(tmp) / "lutnet_sr", ports=ports, **size)
        )
        result = run_sim(art, build_root=Path(tmp) / "build")
        if not result.passed:
            raise cli.UserError(
                "RTL simulation differs from the golden model:\n"
                + "\n".join(result.mismatches[:10])
            )
        with np.load(result.outputs, allow_pickle=False) as f:
            out = f["outputs"]
    out = np.moveaxis(out, 0, -1)
    return (out[..., 0] if image.ndim == 2 else out), result


def default_frames(size: int = DEFAULT_FRAME) -> np.ndarray:
    """Golden frames: crops of scikit-image's camera and astronaut, constant 0 and 255."""
    from skimage import data as skdata

    return np.stack(
        [
            skdata.camera()[180 : 180 + size, 240 : 240 + size],
            skdata.astronaut()[90 : 90 + size, 190 : 190 + size, 1],
            np.zeros((size, size), np.uint8),
            np.full((size, size), 255, np.uint8),
        ]
    )


def default_rgb_frames(size: int = ICELUT_FRAME) -> np.ndarray:
    """ICELUT golden frames: crops of scikit-image's astronaut, chelsea and coffee, constant
    0 and 255 (RGB; at least 32×32 for the thumbnail)."""
    from skimage import data as skdata

    size = max(size, ICELUT_FRAME)
    return np.stack(
        [
            skdata.astronaut()[100 : 100 + size, 200 : 200 + size],
            skdata.chelsea()[150 : 150 + size, 220 : 220 + size],
            skdata.coffee()[200 : 200 + size, 300 : 300 + size],
            np.zeros((size, size, 3), np.uint8),
            np.full((size, size, 3), 255, np.uint8),
        ]
    )


def generate_artefact(
    model: Path,
    out: Path,
    data: Optional[Path] = None,
    *,
    ports: int = 1,
    interval_bits: Optional[int] = None,
    pattern: Optional[str] = None,
    size: int = DEFAULT_FRAME,
    family: str = "ecp5",
) -> Path:
    """``nnloom generate MODEL --engine lutnet``: MODEL is an SR-LUT table (.npy), a
    pattern net (.onnx, transferred to a table), an HKLUT table folder (its MSB tables in
    SPRAM for ``family`` "ice40", block RAM for "ecp5") or ICELUT tables (.npz, or a net
    folder transferred to them: the per-pixel apply engine, each frame's LUT made by the
    golden's statistics path); ``data``
    an .npz whose ``x`` holds uint8 frames (N, H, W), or (N, H, W, 3) for ICELUT, for the
    golden vectors (default: natural crops and constant frames)."""
    from frontends.lutnet.hklut import HklutPlan
    from frontends.lutnet.icelut import IcelutPlan
    from rtl_gen.lutnet.artefact import (
        write_hklut_artefact,
        write_icelut_artefact,
        write_srlut_artefact,
    )

    cli = _errors()
    plan = load_tables(model, pattern=pattern, interval_bits=interval_bits)
    ice = isinstance(plan, IcelutPlan)
    if data is None:
        frames = default_rgb_frames(size) if ice else default_frames(size)
    else:
        try:
            with np.load(data, allow_pickle=False) as f:
                frames = f["x"]
        except Exception as exc:
            raise cli.UserError(
                f"{data}: expected an .npz with 'x', uint8 frames (N, H, W) ({exc})"
            ) from None
    frames = np.asarray(frames)
    if ice:
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise cli.UserError(
                f"{data}: 'x' is {frames.dtype} {frames.shape}; the ICELUT "
                f"engine takes uint8 RGB frames shaped (N, H, W, 3)"
            )
        return write_icelut_artefact(plan, out, frames=frames, family=family)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise cli.UserError(
            f"{data}: 'x' is {frames.dtype} {frames.shape}; the lutnet "
            f"engine takes uint8 frames shaped (N, H, W)"
        )
    size = {"width": frames.shape[2], "height": frames.shape[1], "frames": frames}
    if isinstance(plan, HklutPlan):
        return write_hklut_artefact(plan, out, family=family, **size)
    return write_srlut_artefact(plan, out, ports=ports, **size)


def can_run_lutnet(path: Path) -> tuple[bool, str]:
    """Whether ``path`` is LUT tables the lutnet engine takes (by its kind; the tables
    themselves are checked when read), and why."""
    path = Path(path)
    if path.is_dir():
        return True, "a folder: HKLUT tables or an ICELUT net"
    if path.suffix.lower() == ".npy":
        return True, "an .npy: an SR-LUT table"
    if path.suffix.lower() == ".npz":
        return True, "an .npz: ICELUT tables"
    return False, (
        "not LUT tables (.npy, .npz or a folder); an .onnx SR-LUT pattern net is "
        "taken with --engine lutnet only"
    )


def generate(
    model: Path, out: Path, *, board: str, data: Optional[Path] = None, options: dict
) -> Path:
    """The engine protocol's ``generate`` (``flows.engines``): the tables' engine for
    ``board``'s family (HKLUT MSB tables in SPRAM on iCE40, block RAM on ECP5)."""
    from boards import get_board

    return Path(generate_artefact(model, out, data, family=get_board(board).family))


def bench_rows(out_dir: Path, *, full: bool = False) -> list[dict]:
    """``nnloom bench`` (all engines): the lutnet benchmark as flat rows. By default only the
    issue's two targets (HKLUT-S on the UP5K, SR-LUT-S 5-bit on ECP5) and the ICELUT apply
    engine on ECP5 are placed and routed and no table is trained, so ``nnloom bench`` stays
    within 30 minutes; ``full`` runs every configuration and the training (``nnloom bench
    lutnet`` does too)."""
    import io

    from rich.console import Console

    report = run_bench(
        out_dir,
        width=256,
        height=256,
        synth=True,
        console=Console(file=io.StringIO()),
        train=full,
        configs=BENCH_CONFIGS if full else DEFAULT_CONFIGS,
    )
    rows = []
    for row in report["engines"]:
        rows.append(
            {
                "engine": "lutnet",
                "config": row["engine"],
                "family": row["board"],
                "lut4": row.get("lut4"),
                "ff": row.get("ff"),
                "ram": ", ".join(f"{k} {v}" for k, v in row.get("ram", {}).items()),
                "fmax_mhz": row.get("fmax_mhz"),
                "table_bytes": row.get("table_bytes"),
                "hr_px_per_cycle": row.get("hr_px_per_cycle"),
                "fps": row.get("fps"),
                "psnr_set5_x4": row.get("psnr_set5"),
                "tables": row.get("tables"),
                "error": row.get("error"),
            }
        )
    return rows


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    cli = _errors()

    lut_app = typer.Typer(
        no_args_is_help=True,
        help="LUT super-resolution and enhancement engines (SR-LUT, "
        "HKLUT, ICELUT): upscale, enhance, generate, train.",
    )
    app.add_typer(lut_app, name="lutnet")

    @lut_app.command("sr")
    def sr(
        tables: Path = typer.Option(
            ..., help="SR-LUT table (.npy), HKLUT table folder, or pattern net (.onnx)."
        ),
        image: Path = typer.Option(..., help="Low-resolution image (grey or RGB)."),
        out: Path = typer.Option(..., "--out", "-o", help="Upscaled image to write."),
        rtl: bool = typer.Option(
            False, help="Run the generated Verilog (Verilator) instead of the golden model."
        ),
        pattern: Optional[str] = typer.Option(
            None, help="SR-LUT pattern (S, F, V); default from the table size."
        ),
        interval_bits: Optional[int] = typer.Option(
            None, help="Resample the table to a coarser grid (e.g. 5 or 6 bits)."
        ),
        reference: Optional[Path] = typer.Option(
            None, help="High-resolution image: print PSNR-Y (4-pixel shave)."
        ),
        ports: int = typer.Option(1, help="Table read ports of the RTL (1 or 2)."),
        family: str = typer.Option(
            "ice40", help="HKLUT RTL: MSB tables in SPRAM (ice40) or block RAM (ecp5)."
        ),
    ):
        """Upscale IMAGE with a LUT engine, through the golden model or the RTL."""

        def body():
            from frontends.lutnet.metrics import bicubic_upscale, psnr_y

            plan = load_tables(tables, pattern=pattern, interval_bits=interval_bits)
            img = load_image(image)
            t0 = time.monotonic()
            if rtl:
                with cli.console.status("generating and simulating the engine…"):
                    hr, result = rtl_upscale(plan, img, ports=ports, family=family)
                golden = plan.reference(img)
                if not np.array_equal(hr, golden):
                    raise cli.UserError("RTL output differs from the golden model")
                how = (
                    f"RTL (Verilator, bit-exact with the golden; {result.cycles} cycles per frame)"
                )
            else:
                hr = plan.reference(img)
                how = "golden model"
            save_image(out, hr)
            cli.console.print(
                f"wrote {out}: {img.shape[1]}×{img.shape[0]} → "
                f"{hr.shape[1]}×{hr.shape[0]} via {how} in "
                f"{time.monotonic() - t0:.1f} s"
            )
            if reference is not None:
                ref = load_image(reference)
                if ref.shape != hr.shape:
                    raise cli.UserError(
                        f"{reference}: {ref.shape} differs from the output's {hr.shape}"
                    )
                cli.console.print(
                    f"PSNR-Y {psnr_y(ref, hr):.2f} dB "
                    f"(bicubic {psnr_y(ref, bicubic_upscale(img, plan.scale)):.2f})"
                )

        cli.run_command(body)

    @lut_app.command("enhance")
    def enhance(
        tables: Path = typer.Option(
            ...,
            help="ICELUT tables (.npz: fm, fl, split, "
            "bases) or an ICELUT net folder "
            "(backbone_msb.onnx, backbone_lsb.onnx, "
            "split_fc.onnx, bases.npy).",
        ),
        image: Path = typer.Option(..., help="RGB image, at least 32×32."),
        out: Path = typer.Option(..., "--out", "-o", help="Enhanced image to write."),
        rtl: bool = typer.Option(
            False,
            help="Run the per-pixel engine's Verilog "
            "(Verilator) instead of the golden; the "
            "LUT still comes from the golden's "
            "statistics path.",
        ),
        family: str = typer.Option(
            "ecp5", help="RTL: the LUT in EBR banks (ecp5) or SPRAM (ice40)."
        ),
    ):
        """Enhance IMAGE with an ICELUT-style engine, through the golden model or the RTL."""

        def body():
            from frontends.lutnet.icelut import IcelutPlan

            plan = load_tables(tables)
            if not isinstance(plan, IcelutPlan):
                raise cli.UserError(
                    f"{tables}: not ICELUT tables (an .npz with fm, fl, "
                    f"split, bases, or a folder with backbone_msb.onnx, "
                    f"backbone_lsb.onnx, split_fc.onnx, bases.npy)"
                )
            img = load_image(image)
            if img.ndim != 3:
                img = np.repeat(img[..., None], 3, axis=2)
            t0 = time.monotonic()
            golden = plan.reference(img)
            if rtl:
                from rtl_gen.lutnet.artefact import write_icelut_artefact
                from sim.runner import run_sim

                with (
                    cli.console.status("generating and simulating the engine…"),
                    tempfile.TemporaryDirectory() as tmp,
                ):
                    art = write_icelut_artefact(
                        plan, Path(tmp) / "lutnet_icelut", frames=img[None], family=family
                    )
                    result = run_sim(art, build_root=Path(tmp) / "build")
                    if not result.passed:
                        raise cli.UserError(
                            "RTL simulation differs from the golden model:\n"
                            + "\n".join(result.mismatches[:10])
                        )
                    with np.load(result.outputs, allow_pickle=False) as f:
                        enhanced = f["outputs"][0]
                how = (
                    f"RTL (Verilator, bit-exact with the golden; {result.cycles} cycles "
                    f"with the LUT load)"
                )
            else:
                enhanced, how = golden, "golden model"
            save_image(out, enhanced)
            cli.console.print(
                f"wrote {out}: {img.shape[1]}×{img.shape[0]} via {how} in "
                f"{time.monotonic() - t0:.1f} s"
            )

        cli.run_command(body)

    @lut_app.command("icelut-tables")
    def icelut_tables(
        out: Path = typer.Option(..., "--out", "-o", help=".npz to write."),
        seed: int = typer.Option(0),
        interpolation: str = typer.Option("tetrahedral", help="tetrahedral or trilinear."),
    ):
        """Write seeded random (untrained) ICELUT tables, for trying the engine and the flow;
        they do not enhance images."""

        def body():
            from frontends.lutnet.icelut import icelut_npz_bytes, random_plan
            from rtl_gen.artefact import atomic_write

            plan = random_plan(seed, interpolation=interpolation)
            atomic_write(out, icelut_npz_bytes(plan))
            cli.console.print(
                f"wrote {out}: untrained ICELUT tables (seed {seed}, "
                f"{plan.table_bytes} bytes, {interpolation})"
            )

        cli.run_command(body)

    @lut_app.command("generate")
    def generate(
        tables: Path = typer.Argument(
            ...,
            help="SR-LUT table (.npy), pattern net "
            "(.onnx), HKLUT folder, ICELUT "
            "tables (.npz) or ICELUT net folder.",
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Artefact folder."),
        data: Optional[Path] = typer.Option(
            None, help=".npz with 'x': uint8 frames (N, H, W) for the golden vectors."
        ),
        size: int = typer.Option(DEFAULT_FRAME, help="Frame side without --data."),
        ports: int = typer.Option(1, help="Table read ports (2: dual-port RAM)."),
        interval_bits: Optional[int] = typer.Option(None, help="Resample the table."),
        pattern: Optional[str] = typer.Option(None, help="SR-LUT pattern."),
        family: str = typer.Option(
            "ecp5", help="HKLUT MSB tables / ICELUT LUT in SPRAM (ice40) or block RAM (ecp5)."
        ),
    ):
        """Generate a streaming LUT engine (Verilog, manifest, golden frames)."""

        def body():
            art = generate_artefact(
                tables,
                out,
                data,
                ports=ports,
                size=size,
                interval_bits=interval_bits,
                pattern=pattern,
                family=family,
            )
            from sim.bench_files import finish_artefact

            finish_artefact(art, tables)  # the net or table, kept in source/
            m = json.loads((art / "manifest.json").read_text())
            if m["variant"] == "icelut":
                mem = m["memories"]
                cli.console.print(
                    f"wrote {art}: ICELUT {m['parameters']['interpolation']} "
                    f"apply engine, R3 in {mem['r3']['kind']}; "
                    f"{m['throughput']['pixels_per_cycle']:.0f} px/cycle after "
                    f"each frame's {mem['r3']['load_words']}-word LUT load; "
                    f"statistics path on the host"
                )
                return
            what = (
                f"pattern {m['parameters']['pattern']}"
                if m["variant"] == "srlut"
                else f"HKLUT, MSB tables in {m['memories']['msb_tables']['kind']}"
            )
            cli.console.print(
                f"wrote {art}: {what}, "
                f"{m['memories']['table_bytes']} table bytes, "
                f"{m['throughput']['hr_pixels_per_cycle']:.2f} HR px/cycle"
            )

        cli.run_command(body)

    @lut_app.command("train")
    def train(
        out: Path = typer.Option(
            ..., "--out", "-o", help="Folder for net.onnx, table .npy, report."
        ),
        iterations: int = typer.Option(2000, help="Net training iterations (--net)."),
        samples: int = typer.Option(300_000, help="LR pixels the table is fitted on."),
        net: bool = typer.Option(False, help="Train the PyTorch net instead."),
        interval_bits: int = typer.Option(5, help="Table sampling interval bits."),
        seed: int = typer.Option(0),
    ):
        """Train an SR-LUT-S table on scikit-image's bundled images: by default a least-squares
        fit of the table itself (seeded, minutes); --net trains the PyTorch net, exports ONNX
        and transfers it (slow on a CPU)."""

        def body():
            from frontends.lutnet.train import fit_srlut_table, train_srlut
            from rtl_gen.artefact import atomic_write

            if net:
                with cli.console.status("training the net…"):
                    res = train_srlut(
                        out, iterations=iterations, interval_bits=interval_bits, seed=seed
                    )
            else:
                import io

                with cli.console.status("fitting the table…"):
                    plan, res = fit_srlut_table(
                        interval_bits=interval_bits, seed=seed, samples=samples
                    )
                buf = io.BytesIO()
                np.save(buf, plan.table)
                res["table"] = str(out / f"table_{interval_bits}bit.npy")
                atomic_write(Path(res["table"]), buf.getvalue())
                atomic_write(out / "train.json", json.dumps(res, indent=2) + "\n")
            cli.console.print(json.dumps(res, indent=2))

        cli.run_command(body)

    @bench_app.command("lutnet")
    def bench(
        out: Path = typer.Option(Path("out/bench_lutnet"), "--out", "-o"),
        width: int = typer.Option(256, help="LR frame width (256 → 1024)."),
        height: int = typer.Option(256, help="LR frame height."),
        synth: bool = typer.Option(True, help="Run Yosys/nextpnr for resources."),
        train: bool = typer.Option(
            True, help="Train an SR-LUT table on scikit-image's images (seeded, a few minutes)."
        ),
    ):
        """Per engine and board: table bytes, RAM, LUT4, Fmax, HR px/cycle, fps; Set5 PSNR."""

        def body():
            run_bench(
                out, width=width, height=height, synth=synth, console=cli.console, train=train
            )

        cli.run_command(body)


# --- nnloom bench lutnet -------------------------------------------------------------------

# (engine, family, table read ports); ECP5 block RAM is dual-port. HKLUT has one MSB and one
# LSB read per cycle per stage; its MSB tables go to SPRAM on the UP5K, EBR on ECP5. ICELUT
# (the per-pixel apply engine; its LUT in 8 EBR parity banks on ECP5, two SPRAM copies on the
# UP5K) enhances the 4W×4H output-size frame.
BENCH_CONFIGS = (
    ("srlut-S-6bit", "ice40", 1),
    ("srlut-S-6bit", "ecp5", 2),
    ("srlut-S-5bit", "ecp5", 2),
    ("srlut-F-4bit", "ecp5", 2),
    ("hklut-S", "ice40", 1),
    ("hklut-S", "ecp5", 1),
    ("icelut-tetrahedral", "ecp5", 1),
    ("icelut-tetrahedral", "ice40", 1),
)
# The throughput targets: HKLUT x4 on the UP5K, SR-LUT 5-bit at 1 HR px/cycle on ECP5.
TARGET_CONFIGS = (("srlut-S-5bit", "ecp5", 2), ("hklut-S", "ice40", 1))
# ``nnloom bench``'s default rows: the targets and ICELUT on ECP5 (synthesis, place and route
# measured at 55 s on an idle machine; the UP5K row took 3 minutes and is under --full).
DEFAULT_CONFIGS = TARGET_CONFIGS + (("icelut-tetrahedral", "ecp5", 1),)
# Tables trained here (``fit_srlut_table``): seeded, a few minutes on one core.
TRAINED = {"pattern": "S", "interval_bits": 5, "samples": 300_000, "iterations": 300, "seed": 0}


def frame_cycles(
    plan: LutPlan, *, width: int, height: int, ports: int, family: str = "ecp5"
) -> int:
    """Steady frame period of the engine (cycles), the bound checked in the Verilator tests.

    SR-LUT: one LR pixel per max(steps, r²) cycles plus refilling p+1 rows between frames.
    HKLUT: 48 cycles per LR pixel (stage 1's 12 per intermediate pixel) plus refilling three
    LR rows through stage 0 (12 cycles a pixel) and the reorder buffer's last rows.
    ICELUT (``width``×``height`` the enhanced frame): loading the frame's 4913-word LUT, then
    one pixel a cycle on ECP5, one per 2 cycles (+2) on the UP5K's SPRAM (tetrahedral; the
    periods measured exactly in the Verilator tests)."""
    from frontends.lutnet.hklut import HklutPlan
    from frontends.lutnet.icelut import IcelutPlan

    if isinstance(plan, IcelutPlan):
        from rtl_gen.lutnet.icelut.engine import LOAD_WORDS, MEMORY_BY_FAMILY, pixel_steps

        steps = pixel_steps(interpolation=plan.interpolation, memory=MEMORY_BY_FAMILY[family])
        return steps * width * height + LOAD_WORDS + (2 if steps > 1 else 0)
    if isinstance(plan, HklutPlan):
        return 48 * width * height + 36 * (width + 4) + 8 * width + 40
    steps = 4 * -(-(plan.n + 1) // ports)
    return width * height * max(steps, plan.scale**2) + (plan.radius + 1) * (width + 2)


def create_engine(
    plan: LutPlan, *, width: int, height: int, family: str, ports: int
) -> SrlutEngine | HklutEngine | IcelutEngine:
    """The engine component as ``nnloom bench`` builds it for ``family``."""
    from frontends.lutnet.hklut import HklutPlan
    from frontends.lutnet.icelut import IcelutPlan
    from rtl_gen.lutnet import HklutEngine, IcelutEngine, SrlutEngine
    from rtl_gen.lutnet.artefact import MSB_MEMORY_BY_FAMILY

    if isinstance(plan, IcelutPlan):
        from rtl_gen.lutnet.icelut.engine import MEMORY_BY_FAMILY

        return IcelutEngine(interpolation=plan.interpolation, memory=MEMORY_BY_FAMILY[family])
    if isinstance(plan, HklutPlan):
        return HklutEngine(
            plan, width=width, height=height, msb_memory=MSB_MEMORY_BY_FAMILY[family]
        )
    return SrlutEngine(plan, width=width, height=height, ports=ports)


def bench_tables(
    console: Console,
) -> tuple[dict[str, SrlutPlan], HklutPlan, list[tuple[np.ndarray, np.ndarray]] | None, str]:
    """The tables ``nnloom bench lutnet`` measures: the authors' released SR-LUT and HKLUT
    tables and Set5 (``frontends.data``) when they can be had, else the project's own seeded
    tables (untrained; the RTL's size and speed do not depend on the entries) and no Set5.
    Returns (plans, hklut, set5 pairs or None, what the tables are)."""
    from frontends.data import DataUnavailable, hklut_dir, set5, srlut_table
    from frontends.lutnet import hklut, srlut
    from frontends.lutnet.tables import load_srlut_table

    try:
        pairs = set5(4)
        plans = {
            "srlut-S-4bit": load_srlut_table(srlut_table("Model_S_x4_4bit")),
            "srlut-F-4bit": load_srlut_table(srlut_table("Model_F_x4_4bit")),
        }
        return plans, hklut.load_hklut_dir(hklut_dir()), pairs, "released"
    except DataUnavailable as exc:
        console.print(
            f"[yellow]the authors' released tables and Set5 are not here ({exc}): "
            f"benching the project's own seeded tables, without Set5 PSNR[/]"
        )
    plans = {"srlut-S-4bit": srlut.random_plan("S", 4), "srlut-F-4bit": srlut.random_plan("F", 4)}
    return plans, hklut.random_plan(0), None, "seeded"


def _show_image():
    """(LR, HR) for the side-by-side picture without Set5: a crop of scikit-image's
    motorcycle (not one of the training images), MATLAB-bicubic ×4 down."""
    from skimage import data as skdata

    from frontends.lutnet.resize import imresize_down

    hr = np.ascontiguousarray(skdata.stereo_motorcycle()[0][100:356, 200:456])
    return np.stack([imresize_down(hr[..., c], 4) for c in range(3)], axis=-1), hr


def run_bench(
    out: Path,
    *,
    width: int,
    height: int,
    synth: bool,
    console: Console,
    train: bool = True,
    configs: Sequence[tuple[str, str, int]] = BENCH_CONFIGS,
) -> dict:
    import io

    from rich.table import Table

    from boards.families import Resources
    from frontends.lutnet.icelut import IcelutPlan, random_plan
    from frontends.lutnet.metrics import bicubic_upscale, psnr_y
    from rtl_gen.artefact import atomic_write
    from rtl_gen.emit import emit_verilog
    from rtl_gen.lutnet.artefact import TOP, emit_hklut_verilog, icelut_memory_plan
    from rtl_gen.lutnet.icelut.engine import MEMORY_BY_FAMILY, emit_icelut_verilog
    from rtl_gen.lutnet.images import side_by_side

    plans, hklut, set5, tables = bench_tables(console)
    plans["srlut-S-5bit"] = plans["srlut-S-4bit"].resampled(5)
    plans["srlut-S-6bit"] = plans["srlut-S-4bit"].resampled(6)
    quality = (
        {}
        if set5 is None
        else {"bicubic": float(np.mean([psnr_y(h, bicubic_upscale(l, 4)) for l, h in set5]))}
    )
    trained_info = None
    if train:
        from frontends.lutnet.train import fit_srlut_table

        with console.status("training an SR-LUT-S 5-bit table on scikit-image's images…"):
            trained, trained_info = fit_srlut_table(**TRAINED)
        buf = io.BytesIO()
        np.save(buf, trained.table)
        atomic_write(out / "trained_S_5bit.npy", buf.getvalue())
        plans["trained-S-5bit"] = trained
    for name, plan in {**plans, "hklut-S": hklut}.items():
        if set5 is not None:
            quality[name] = float(np.mean([psnr_y(h, plan.reference(l)) for l, h in set5]))

    lr, hr = _show_image() if set5 is None else set5[2]
    shown = {"bicubic": bicubic_upscale(lr, 4)}
    if tables == "released":
        shown.update(
            {
                "nnloom SR-LUT-S 5-bit": plans["srlut-S-5bit"].reference(lr),
                "nnloom HKLUT-S": hklut.reference(lr),
            }
        )
    if "trained-S-5bit" in plans:
        shown["nnloom S 5-bit, trained here"] = plans["trained-S-5bit"].reference(lr)
    side_by_side(
        lr,
        {**{f"{k} {psnr_y(hr, v):.2f} dB": v for k, v in shown.items()}, "high resolution": hr},
        out / "side_by_side.png",
    )

    rows = []
    # ICELUT's RTL does not depend on the tables (each frame's LUT is loaded): seeded ones.
    engines = {**plans, "hklut-S": hklut, "icelut-tetrahedral": random_plan(0)}
    for engine, family, ports in configs:
        plan = engines[engine]
        row = {
            "engine": engine,
            "board": {"ice40": "iCEBreaker (UP5K)", "ecp5": "ECP5-85F"}[family],
            "family": family,
            "ports": ports,
            "psnr_set5": quality.get(engine),
            "tables": "trained here"
            if engine.startswith("trained")
            else "seeded"
            if engine.startswith("icelut")
            else tables,
        }
        if isinstance(plan, IcelutPlan):
            cycles = frame_cycles(
                plan, width=4 * width, height=4 * height, ports=ports, family=family
            )
            memory = MEMORY_BY_FAMILY[family]
            row.update(
                table_bytes=icelut_memory_plan(plan.interpolation, memory)["r3"]["bits"] // 8,
                note=f"enhances {4 * width}×{4 * height} frames; table bytes: the "
                f"loaded R3 ({memory})",
            )
        else:
            cycles = frame_cycles(plan, width=width, height=height, ports=ports)
            row.update(table_bytes=plan.table_bytes)
        # ×4 SR: HR pixels; ICELUT: the enhanced 4W×4H frame's pixels.
        row.update(hr_px_per_cycle=16 * width * height / cycles, frame_cycles=cycles)
        if synth:
            from flows.synth import synthesize

            folder = out / f"{engine}-{family}-p{ports}"
            folder.mkdir(parents=True, exist_ok=True)
            src = folder / f"{TOP}.v"
            engine_rtl = create_engine(plan, width=width, height=height, family=family, ports=ports)
            if engine == "hklut-S":
                text = emit_hklut_verilog(engine_rtl)
            elif isinstance(plan, IcelutPlan):
                text = emit_icelut_verilog(engine_rtl, TOP)
            else:
                text = emit_verilog(engine_rtl, TOP)
            atomic_write(src, text)
            with console.status(f"synthesizing {engine} for {family}…"):
                try:
                    rep = synthesize([src], TOP, family=family, out_dir=folder / "pnr")
                except Exception as exc:  # reported per row; the others still run
                    row["error"] = str(exc).splitlines()[0]
                else:
                    row.update(
                        lut4=rep.lut4,
                        ff=rep.ff,
                        fmax_mhz=rep.fmax_mhz,
                        ram=Resources.from_utilisation(rep.utilisation).ram_by_name,
                        fps=rep.fmax_mhz * 1e6 / cycles,
                    )
        rows.append(row)
    report = {
        "frame": [width, height],
        "scale": 4,
        "tables": tables,
        "quality_set5_x4_psnr_y": quality,
        "engines": rows,
        "trained": trained_info,
    }
    atomic_write(out / "bench.json", json.dumps(report, indent=2) + "\n")

    t = Table(title=f"nnloom bench lutnet: {width}×{height} → {4 * width}×{4 * height}")
    for col in (
        "engine",
        "board",
        "table B",
        "RAM",
        "LUT4",
        "Fmax MHz",
        "HR px/cyc",
        "fps",
        "Set5 dB",
    ):
        t.add_column(col)
    for row in rows:
        ram = ", ".join(f"{k} {v}" for k, v in row.get("ram", {}).items()) or "—"
        t.add_row(
            row["engine"],
            row["board"],
            str(row["table_bytes"]),
            ram if "error" not in row else "failed: " + row["error"][:40],
            str(row.get("lut4", "—")),
            f"{row['fmax_mhz']:.1f}" if "fmax_mhz" in row else "—",
            f"{row['hr_px_per_cycle']:.2f}",
            f"{row['fps']:.1f}" if "fps" in row else "—",
            f"{row['psnr_set5']:.2f}" if row["psnr_set5"] is not None else "—",
        )
    from flows.console import print_wide

    print_wide(t)
    if quality:
        console.print("Set5 ×4 PSNR-Y: " + ", ".join(f"{k} {v:.2f}" for k, v in quality.items()))
    else:
        console.print(
            "tables: the project's own, seeded (untrained): resources and speed "
            "only; no Set5 PSNR without the authors' data"
        )
    if trained_info and quality:
        console.print(
            f"trained-S-5bit: {trained_info['table_bytes']} table bytes, fitted in "
            f"{trained_info['seconds']} s on {trained_info['samples']} LR pixels of "
            f"scikit-image's images (seed {trained_info['seed']}); "
            f"{quality['trained-S-5bit'] - quality['bicubic']:+.2f} dB over bicubic"
        )
    console.print(f"side by side: {out / 'side_by_side.png'}; figures: {out / 'bench.json'}")
    return report
