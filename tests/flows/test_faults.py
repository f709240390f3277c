"""``nnloom faults``: random campaigns, the targeted attack and the RTL on a flipped image,
each figure checked against the flipped-memory golden computed here independently."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows import faults as fl
from flows.cli import app
from rtl_gen.dense.plan import faulted_reference

runner = CliRunner()


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory, mlp_onnx):
    root = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (120, 16)).astype(np.float32)
    data = root / "data.npz"
    from models import ort_unfused

    np.savez(data, x=x, y=ort_unfused(mlp_onnx, x).argmax(axis=1))  # the model's own classes
    out = {}
    for engine, protect in (
        ("dense", "none"),
        ("dense", "secded"),
        ("gemm", "none"),
        ("gemm", "secded"),
    ):
        target = root / f"{engine}-{protect}"
        result = runner.invoke(
            app,
            [
                "generate",
                str(mlp_onnx),
                "--engine",
                engine,
                "--protect",
                protect,
                "-o",
                str(target),
                "--data",
                str(data),
            ],
        )
        assert result.exit_code == 0, result.output
        out[protect if engine == "dense" else f"gemm-{protect}"] = target
    return out


def test_random_campaign_secded_corrects_and_parity_detects(artefacts):
    result = runner.invoke(
        app, ["faults", str(artefacts["secded"]), "--flips", "1,8,40", "--trials", "4"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((artefacts["secded"] / "faults.json").read_text())["random"]
    rows = {(r["protect"], r["flips"]): r for r in report["rows"]}
    for n in (1, 8, 40):
        assert rows["secded", n]["trials_changed"] == 0  # one flip a word: corrected
        assert rows["secded", n]["corrected_mean"] == n
        assert rows["parity", n]["trials_detected"] == 4  # any single flip detected
        assert rows["none", n]["trials_detected"] == 0
    assert rows["none", 40]["trials_changed"] > 0


def test_gemm_random_campaign_secded_corrects_and_parity_detects(artefacts):
    result = runner.invoke(
        app, ["faults", str(artefacts["gemm-secded"]), "--flips", "1,30", "--trials", "3"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((artefacts["gemm-secded"] / "faults.json").read_text())["random"]
    assert report["protect"] == "secded"
    rows = {(r["protect"], r["flips"]): r for r in report["rows"]}
    for n in (1, 30):
        assert rows["secded", n]["trials_changed"] == 0
        # every weight and parameter word is read once an inference (a dense chain)
        assert rows["secded", n]["corrected_mean"] == n
        assert rows["parity", n]["trials_detected"] == 3
        assert rows["none", n]["trials_detected"] == 0
    assert rows["none", 30]["trials_changed"] > 0


def test_instruction_flips_are_corrected_detected_or_silent_unprotected(artefacts):
    """``--memory imem``: SECDED corrects every single flip, parity reports every one (its
    answer changed or not: never silently), the unprotected overlay answers wrongly or
    not at all."""
    target = artefacts["gemm-secded"]
    result = runner.invoke(
        app, ["faults", str(target), "--memory", "imem", "--flips", "1,6", "--trials", "4"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((target / "faults.json").read_text())["random"]
    rows = {(r["protect"], r["flips"]): r for r in report["rows"]}
    for n in (1, 6):
        assert rows["secded", n]["trials_changed"] == 0
        assert rows["secded", n]["corrected_mean"] == n  # every instruction runs once
        assert rows["parity", n]["trials_detected"] == 4
        assert rows["parity", n]["trials_silent"] == rows["secded", n]["trials_silent"] == 0
    none = rows["none", 6]
    assert none["trials_detected"] == 0 and none["trials_silent"] + none["trials_undefined"] > 0


def test_random_flips_any_bits_can_defeat_secded_but_are_detected(artefacts):
    design = fl.load_design(artefacts["secded"])
    rows = fl.campaign(design, [200], trials=3, spread="any", seed=1, protections=("secded",))
    assert rows[0].trials_detected == 3  # 200 bits in ~400 words: some word gets two


def test_targeted_attack_reaches_its_goal_and_protection_stops_it(artefacts):
    design = fl.load_design(artefacts["none"])
    res = fl.targeted_attack(design, source=0, target=3, max_flips=40, success=0.9)
    assert res.flips and res.flips_to(0.9) == len(res.flips)
    # replay the reported flips on the unprotected memories: the success is what it says
    w, p = design.images
    for _m, word, bit in res.flips:
        w[word] ^= 1 << bit
    outs, _ = faulted_reference(design.plan, design.inputs, w, p)
    hit = outs[-1][design.labels == 0].argmax(axis=1) == 3
    assert hit.mean() == pytest.approx(res.success[-1]) and hit.mean() >= 0.9
    assert res.protected["parity"]["first_detected_flip"] == 1
    # SECDED: corrected while every word holds one flip; detected once a word holds two
    words = [(m, word) for m, word, _ in res.flips]
    second = next((k + 1 for k in range(len(words)) if words[k] in words[:k]), None)
    assert res.protected["secded"]["first_detected_flip"] == second
    if second is None:
        base = (design.golden[design.labels == 0].argmax(axis=1) == 3).mean()
        assert res.protected["secded"]["success_after_all"] == pytest.approx(base)


def test_gemm_targeted_attack_is_judged_on_the_overlay(artefacts):
    from rtl_gen.gemm import model
    from rtl_gen.gemm.protect import faulted_program

    design = fl.load_design(artefacts["gemm-none"])
    res = fl.targeted_attack(design, source=0, target=3, max_flips=40, success=0.9, candidates=6)
    assert res.flips and res.flips_to(0.9) == len(res.flips)
    # replay the flips in the overlay's weight memory: the success is what it says
    words = dict(zip(design.memories, fl._flip(design.images, None, res.flips)))
    program = design.plan
    from rtl_gen.gemm.emit import stored_images

    faulted, _ = faulted_program(program, {**stored_images(program), **words})
    hit = model.run(faulted, design.inputs[design.labels == 0]).argmax(axis=1) == 3
    assert hit.mean() == pytest.approx(res.success[-1]) and hit.mean() >= 0.9
    assert all(design.memories[m] == "wd" for m, _, _ in res.flips)
    assert res.protected["parity"]["first_detected_flip"] == 1


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--flips", "100000"], "--flips 100000"),
        (["--mode", "smash"], "--mode smash"),
        (["--flips", "ten"], "--flips ten"),
        (["--memory", "imem"], "--memory imem"),  # a dense engine has no instructions
    ],
)
def test_bad_requests_are_one_line_and_write_nothing(artefacts, args, needle):
    target = artefacts["none"]
    (target / "faults.json").unlink(missing_ok=True)
    result = runner.invoke(app, ["faults", str(target), *args])
    assert result.exit_code == 1
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output
    assert not (target / "faults.json").exists()


def test_an_artefact_without_dense_memories_is_refused(tmp_path, artefacts):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(artefacts["none"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["engine"] = "smurf"
    (other / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["faults", str(other)])
    assert result.exit_code == 1 and "smurf artefact" in result.output


@pytest.mark.sim
def test_rtl_with_flipped_memories_equals_the_flipped_golden(artefacts):
    design = fl.load_design(artefacts["secded"])
    rng = np.random.default_rng(3)
    # two flips in one word (uncorrectable) and single flips elsewhere
    picks = [(0, 5, 1), (0, 5, 9)] + fl._random_picks(design, design.plan, 12, "word", rng)
    n, bad = fl.check_rtl(design, picks, vectors=24)
    assert (n, bad) == (24, 0)


@pytest.mark.sim
@pytest.mark.slow
def test_gemm_rtl_with_flipped_memories_equals_the_flipped_golden(artefacts):
    """(``tests/rtl_gen/gemm/test_protect.py`` runs a small overlay in the sim tier.)"""
    design = fl.load_design(artefacts["gemm-secded"])
    assert design.memories == ("imem", "wd", "params")
    rng = np.random.default_rng(4)
    # two flips in a used weight word (uncorrectable: the outputs change) and single ones
    picks = [(1, 2, 3), (1, 2, 40)] + fl._random_picks(design, design.plan, 10, "word", rng)
    out, counts = design.run(design.plan, fl._flip(design.images, None, picks), design.inputs)
    assert counts["errors"] >= 1 and (out != design.golden).any()
    n, bad = fl.check_rtl(design, picks, vectors=16)
    assert (n, bad) == (16, 0)


@pytest.mark.sim
@pytest.mark.slow
def test_board_status_counts_corrected_flips_through_the_uart(artefacts, tmp_path):
    """SECDED memories with one flip in each of 5 words: the outputs stay golden and STATUS,
    asked through the UART after the run, counts 5 corrected words per inference (the board
    bench runs 2 vectors plus one request with a corrupted CRC, which the engine also runs)."""
    import json
    import shutil

    from flows.board_sim import run_board_sim
    from rtl_gen.artefact import Artefact
    from rtl_gen.dense import DenseEngine
    from rtl_gen.emit import emit_verilog

    work = tmp_path / "flipped"
    shutil.copytree(artefacts["secded"], work)
    design = fl.load_design(work)
    picks = [(0, w, (3 * w) % design.plan.weight_code.word_bits) for w in (1, 9, 17, 30, 44)]
    top = design.artefact.manifest["top"]
    (work / "rtl" / f"{top}.v").write_text(
        emit_verilog(DenseEngine(design.plan, fl._flip(design.images, None, picks)), top)
    )
    result = run_board_sim(Artefact(work), "icebreaker", limit=2)
    assert result.passed
    summary = json.loads((Path(result.results_xml).parent / "summary.json").read_text())
    assert summary["memory"] == {"protected": True, "corrected": 5 * 3, "errors": 0}
