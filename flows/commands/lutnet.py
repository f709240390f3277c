"""``nnloom lutnet ...`` and ``nnloom bench lutnet``: the LUT super-resolution engines."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

log = logging.getLogger(__name__)

# Golden frames of ``nnloom generate --engine lutnet`` without --data.
DEFAULT_FRAME = 16
# Largest table the RTL path of `lutnet sr` simulates (the ROM is Verilog initial data).
MAX_SIM_TABLE_BYTES = 128 * 1024


def _errors():
    from flows import cli
    return cli


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
    from PIL import Image
    from rtl_gen.artefact import atomic_write
    import io
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=(path.suffix.lstrip(".") or "png").upper()
                                .replace("JPG", "JPEG"))
    atomic_write(path, buf.getvalue())


def load_tables(path: Path, *, pattern: Optional[str] = None,
                interval_bits: Optional[int] = None):
    """An SR-LUT table (.npy), an HKLUT table folder, or an ONNX net to transfer."""
    from rtl_gen.lutnet.hklut import load_hklut_dir
    from rtl_gen.lutnet.tables import load_srlut_table
    if path.is_dir():
        return load_hklut_dir(path)
    if path.suffix == ".onnx":
        from rtl_gen.lutnet.transfer import transfer_onnx
        return transfer_onnx(path, interval_bits=interval_bits or 4)
    plan = load_srlut_table(path, pattern=pattern)
    if interval_bits is not None and interval_bits != plan.interval_bits:
        plan = plan.resampled(interval_bits)
    return plan


def rtl_upscale(plan, image: np.ndarray, *, ports: int = 1, workdir: Path | None = None):
    """``image`` through the generated Verilog (Verilator), one frame per channel."""
    from rtl_gen.lutnet.artefact import write_srlut_artefact
    from sim.bench.lutnet_run import run_lutnet_sim
    cli = _errors()
    if plan.table_bytes > MAX_SIM_TABLE_BYTES:
        raise cli.UserError(f"table '{plan.name}' has {plan.table_bytes} bytes; the RTL "
                            f"simulation takes tables up to {MAX_SIM_TABLE_BYTES} bytes: "
                            f"pass --interval-bits {plan.interval_bits + 1} to resample it")
    chans = image[..., None] if image.ndim == 2 else image
    frames = np.ascontiguousarray(np.moveaxis(chans, -1, 0))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        art = write_srlut_artefact(plan, Path(tmp) / "lutnet_sr", width=image.shape[1],
                                   height=image.shape[0], frames=frames, ports=ports)
        result = run_lutnet_sim(art, build_root=Path(tmp) / "build")
        if not result.passed:
            raise cli.UserError("RTL simulation differs from the golden model:\n"
                                + "\n".join(result.mismatches[:10]))
        with np.load(result.outputs, allow_pickle=False) as f:
            out = f["outputs"]
    out = np.moveaxis(out, 0, -1)
    return (out[..., 0] if image.ndim == 2 else out), result


def default_frames(size: int = DEFAULT_FRAME) -> np.ndarray:
    """Golden frames: crops of scikit-image's camera and astronaut, constant 0 and 255."""
    from skimage import data as skdata
    return np.stack([skdata.camera()[180:180 + size, 240:240 + size],
                     skdata.astronaut()[90:90 + size, 190:190 + size, 1],
                     np.zeros((size, size), np.uint8), np.full((size, size), 255, np.uint8)])


def generate_artefact(model: Path, out: Path, data: Optional[Path] = None, *,
                      ports: int = 1, interval_bits: Optional[int] = None,
                      pattern: Optional[str] = None, size: int = DEFAULT_FRAME):
    """``nnloom generate MODEL --engine lutnet``: MODEL is an SR-LUT table (.npy) or a
    pattern net (.onnx, transferred to a table); ``data`` an .npz whose ``x`` holds uint8
    frames (N, H, W) for the golden vectors (default: natural crops and constant frames)."""
    from rtl_gen.lutnet.artefact import write_srlut_artefact
    from rtl_gen.lutnet.srlut import SrlutPlan
    cli = _errors()
    plan = load_tables(model, pattern=pattern, interval_bits=interval_bits)
    if not isinstance(plan, SrlutPlan):
        raise cli.UserError(f"{model}: HKLUT tables run in the golden model only; the "
                            f"generator makes SR-LUT engines (pass a .npy table or .onnx net)")
    if data is None:
        frames = default_frames(size)
    else:
        try:
            with np.load(data, allow_pickle=False) as f:
                frames = f["x"]
        except Exception as exc:
            raise cli.UserError(f"{data}: expected an .npz with 'x', uint8 frames (N, H, W) "
                                f"({exc})") from None
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise cli.UserError(f"{data}: 'x' is {frames.dtype} {frames.shape}; the lutnet "
                            f"engine takes uint8 frames shaped (N, H, W)")
    return write_srlut_artefact(plan, out, width=frames.shape[2], height=frames.shape[1],
                                frames=frames, ports=ports)


def register(app, bench_app):
    from flows import cli
    from rtl_gen.lutnet.srlut import SrlutPlan, TableError

    lut_app = typer.Typer(no_args_is_help=True,
                          help="LUT super-resolution engines (SR-LUT, HKLUT): upscale, "
                               "generate, train.")
    app.add_typer(lut_app, name="lutnet")
    if TableError not in cli.USER_ERRORS:
        cli.USER_ERRORS.append(TableError)
    cli.GENERATORS["lutnet"] = lambda model, out, data=None: generate_artefact(model, out,
                                                                               data)

    @lut_app.command("sr")
    def sr(tables: Path = typer.Option(..., help="SR-LUT table (.npy), HKLUT table folder, "
                                                 "or pattern net (.onnx)."),
           image: Path = typer.Option(..., help="Low-resolution image (grey or RGB)."),
           out: Path = typer.Option(..., "--out", "-o", help="Upscaled image to write."),
           rtl: bool = typer.Option(False, help="Run the generated Verilog (Verilator) "
                                                "instead of the golden model."),
           pattern: Optional[str] = typer.Option(None, help="SR-LUT pattern (S, F, V); "
                                                 "default from the table size."),
           interval_bits: Optional[int] = typer.Option(None, help="Resample the table to a "
                                                       "coarser grid (e.g. 5 or 6 bits)."),
           reference: Optional[Path] = typer.Option(None, help="High-resolution image: "
                                                    "print PSNR-Y (4-pixel shave)."),
           ports: int = typer.Option(1, help="Table read ports of the RTL (1 or 2).")):
        """Upscale IMAGE with a LUT engine, through the golden model or the RTL."""
        def body():
            from rtl_gen.lutnet.metrics import bicubic_upscale, psnr_y
            plan = load_tables(tables, pattern=pattern, interval_bits=interval_bits)
            img = load_image(image)
            t0 = time.monotonic()
            if rtl:
                if not isinstance(plan, SrlutPlan):
                    raise cli.UserError("--rtl runs SR-LUT tables; HKLUT runs in the golden "
                                        "model only")
                with cli.console.status("generating and simulating the engine…"):
                    hr, result = rtl_upscale(plan, img, ports=ports)
                golden = plan.reference(img)
                if not np.array_equal(hr, golden):
                    raise cli.UserError("RTL output differs from the golden model")
                how = f"RTL (Verilator, bit-exact with the golden; {result.cycles} cycles " \
                      f"per frame)"
            else:
                hr = plan.reference(img)
                how = "golden model"
            save_image(out, hr)
            cli.console.print(f"wrote {out}: {img.shape[1]}×{img.shape[0]} → "
                              f"{hr.shape[1]}×{hr.shape[0]} via {how} in "
                              f"{time.monotonic() - t0:.1f} s")
            if reference is not None:
                ref = load_image(reference)
                if ref.shape != hr.shape:
                    raise cli.UserError(f"{reference}: {ref.shape} differs from the output's "
                                        f"{hr.shape}")
                cli.console.print(f"PSNR-Y {psnr_y(ref, hr):.2f} dB "
                                  f"(bicubic {psnr_y(ref, bicubic_upscale(img, plan.scale)):.2f})")
        cli.run_command(body)

    @lut_app.command("generate")
    def generate(tables: Path = typer.Argument(..., help="SR-LUT table (.npy) or pattern "
                                                         "net (.onnx)."),
                 out: Path = typer.Option(..., "--out", "-o", help="Artefact folder."),
                 data: Optional[Path] = typer.Option(None, help=".npz with 'x': uint8 frames "
                                                     "(N, H, W) for the golden vectors."),
                 size: int = typer.Option(DEFAULT_FRAME, help="Frame side without --data."),
                 ports: int = typer.Option(1, help="Table read ports (2: dual-port RAM)."),
                 interval_bits: Optional[int] = typer.Option(None, help="Resample the table."),
                 pattern: Optional[str] = typer.Option(None, help="SR-LUT pattern.")):
        """Generate the streaming SR-LUT engine (Verilog, manifest, golden frames)."""
        def body():
            art = generate_artefact(tables, out, data, ports=ports, size=size,
                                    interval_bits=interval_bits, pattern=pattern)
            m = json.loads((art / "manifest.json").read_text())
            cli.console.print(f"wrote {art}: pattern {m['parameters']['pattern']}, "
                              f"{m['memories']['table_bytes']} table bytes, "
                              f"{m['throughput']['hr_pixels_per_cycle']:.2f} HR px/cycle")
        cli.run_command(body)

    @lut_app.command("train")
    def train(out: Path = typer.Option(..., "--out", "-o", help="Folder for net.onnx, "
                                                                "table .npy, report."),
              iterations: int = typer.Option(2000, help="Training iterations."),
              interval_bits: int = typer.Option(5, help="Table sampling interval bits."),
              seed: int = typer.Option(0)):
        """Train an SR-LUT-S net on scikit-image's bundled images, export ONNX and its table."""
        def body():
            from rtl_gen.lutnet.train import train_srlut
            with cli.console.status("training…"):
                res = train_srlut(out, iterations=iterations, interval_bits=interval_bits,
                                  seed=seed)
            cli.console.print(json.dumps(res, indent=2))
        cli.run_command(body)

    @bench_app.command("lutnet")
    def bench(out: Path = typer.Option(Path("out/bench_lutnet"), "--out", "-o"),
              width: int = typer.Option(256, help="LR frame width (256 → 1024)."),
              height: int = typer.Option(256, help="LR frame height."),
              synth: bool = typer.Option(True, help="Run Yosys/nextpnr for resources.")):
        """Per engine and board: table bytes, RAM, LUT4, Fmax, HR px/cycle, fps; Set5 PSNR."""
        def body():
            run_bench(out, width=width, height=height, synth=synth, console=cli.console)
        cli.run_command(body)
