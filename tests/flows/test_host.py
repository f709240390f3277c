"""`nnloom run` and `nnloom program` against a stand-in board on a pseudo-terminal."""

import os
import pty
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from boards.protocol import LinkModel, design_id
from flows.cli import app
from flows.host import HostError, program, run_on_board
from frontends.vectors import golden_vectors
from rtl_gen.artefact import Artefact
from rtl_gen.dense.artefact import write_dense_artefact


@pytest.fixture(scope="module")
def artefact(mlp_graph, tmp_path_factory):
    return Artefact(
        write_dense_artefact(
            mlp_graph,
            tmp_path_factory.mktemp("host") / "mlp",
            vectors=golden_vectors(mlp_graph, random=3),
            lanes=2,
        )
    )


class FakeBoard:
    """A board on a pty: answers with ``LinkModel`` and an engine that looks its outputs up in
    ``table`` (input bytes -> output codes); ``corrupt`` replies get one byte flipped,
    ``silent`` ones are never sent (a hung engine)."""

    def __init__(self, artefact, table, *, design=None, corrupt=(), silent=()):
        manifest = artefact.manifest["streams"]
        self.calls = 0
        self.corrupt, self.silent = set(corrupt), set(silent)

        def engine(inputs):
            return bytes(int(v) & 0xFF for v in table[bytes(inputs)]), 1234

        self.model = LinkModel(
            n_in=manifest["input"]["elements"],
            n_out=manifest["output"]["elements"],
            design=design
            if design is not None
            else design_id(p.read_bytes() for p in artefact.rtl_sources),
            engine=engine,
        )
        self.master, slave = pty.openpty()
        self.port = os.ttyname(slave)
        self._slave = slave
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            reply = bytearray(self.model.feed(data))
            if reply:
                if self.calls in self.corrupt:
                    reply[5] ^= 0xFF
                self.calls += 1
                if self.calls - 1 not in self.silent:
                    os.write(self.master, bytes(reply))

    def close(self):
        # The slave first: the serving thread's read then fails and it ends before the master
        # closes, so it never reads from a later test's pty that reuses the descriptor.
        os.close(self._slave)
        self._thread.join(timeout=5)
        os.close(self.master)


def golden_table(artefact, wrong=None):
    v = artefact.vectors()
    table = {bytes(int(c) & 0xFF for c in x): list(y) for x, y in zip(v["inputs"], v["outputs"])}
    if wrong is not None:
        key = bytes(int(c) & 0xFF for c in v["inputs"][wrong])
        table[key] = [table[key][0] + 1, *table[key][1:]]
    return table


def test_run_checks_every_vector_and_retries_corrupted_replies(artefact):
    board = FakeBoard(artefact, golden_table(artefact), corrupt={2})
    steps = []
    try:
        result = run_on_board(
            artefact, board.port, timeout=2, progress=lambda *step: steps.append(step)
        )
    finally:
        board.close()
    v = artefact.vectors()
    assert result.passed and result.vectors == len(v["inputs"])
    assert steps == [(n, len(v["inputs"])) for n in range(1, len(v["inputs"]) + 1)]
    assert result.retries == 1 and set(result.cycles) == {1234}
    assert np.array_equal(np.array(result.outputs), v["outputs"])


def test_run_reports_a_wrong_output(artefact):
    board = FakeBoard(artefact, golden_table(artefact, wrong=1))
    try:
        result = run_on_board(artefact, board.port, limit=3)
    finally:
        board.close()
    want = int(artefact.vectors()["outputs"][1][0])
    assert not result.passed
    assert result.mismatches == [f"vector 1: output 0: expected {want}, got {want + 1}"]


def test_a_board_that_stops_answering_is_called_a_hung_engine(artefact):
    # call 0 is INFO, call 2 the second vector: the link answered, the engine did not
    board = FakeBoard(artefact, golden_table(artefact), silent={2})
    try:
        with pytest.raises(HostError, match=r"^vector 1: no reply .* its engine hangs"):
            run_on_board(artefact, board.port, timeout=0.5, retries=0)
    finally:
        board.close()
    silent = FakeBoard(artefact, golden_table(artefact), silent={0})
    try:
        with pytest.raises(HostError, match=r"^no reply .* is the bitstream loaded"):
            run_on_board(artefact, silent.port, timeout=0.5)
    finally:
        silent.close()


def test_run_refuses_another_design(artefact):
    board = FakeBoard(artefact, golden_table(artefact), design=0x1234)
    try:
        with pytest.raises(
            HostError,
            match=r"the board runs another design: .*design id "
            r"00001234.*program the board",
        ):
            run_on_board(artefact, board.port)
    finally:
        board.close()


def test_cli_run_and_errors(artefact, tmp_path):
    board = FakeBoard(artefact, golden_table(artefact))
    try:
        result = CliRunner().invoke(
            app, ["run", str(artefact.path), "--port", board.port, "--limit", "2"]
        )
    finally:
        board.close()
    assert result.exit_code == 0, result.output
    assert "PASS 2 vectors on the board equal the golden" in result.output
    result = CliRunner().invoke(
        app, ["run", str(artefact.path), "--port", str(tmp_path / "ttyNONE")]
    )
    assert result.exit_code == 1
    assert "cannot open serial port" in result.output


def test_program_needs_a_bitstream_and_a_programmer(artefact, tmp_path, monkeypatch):
    with pytest.raises(
        HostError,
        match=r"^no bitstream for icebreaker in .*: run `nnloom "
        r"build .* --board icebreaker` first$",
    ):
        program(artefact, "icebreaker")
    build = artefact.path / "build" / "icebreaker"
    build.mkdir(parents=True)
    (build / "top.bin").write_bytes(b"\0" * 16)
    monkeypatch.setenv("PATH", str(tmp_path))  # no programmer anywhere
    with pytest.raises(
        HostError,
        match=r"^no programmer for icebreaker is installed: nnloom "
        r"uses openFPGALoader \(apt-get install openfpgaloader\)"
        r" or iceprog \(apt-get install fpga-icestorm\)$",
    ):
        program(artefact, "icebreaker")
    fake = tmp_path / "iceprog"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert program(artefact, "icebreaker") == [str(fake), str(build / "top.bin")]


@pytest.mark.parametrize("errors", [0, 3])
def test_run_asks_status_and_refuses_results_after_an_uncorrectable_error(artefact, errors):
    from boards.protocol import MemoryStatus

    board = FakeBoard(artefact, golden_table(artefact))
    board.model.status = lambda: MemoryStatus(True, 7, errors)
    try:
        result = CliRunner().invoke(
            app,
            ["run", str(artefact.path), "--port", board.port, "--limit", "2", "--timeout", "10"],
        )
    finally:
        board.close()
    if errors:
        assert result.exit_code == 1
        assert "3 uncorrectable error(s) (7 corrected)" in result.output
        assert "PASS" not in result.output
    else:
        assert result.exit_code == 0, result.output
        assert "7 words read with a corrected flip, 0 with an uncorrectable error" in result.output


WEIGHTS = [(37 * i + 5) & 0xFFFF for i in range(300)]  # two LOAD requests: 256 + 44 words


@pytest.fixture
def loaded_artefact(artefact, tmp_path):
    """The artefact as one whose weights are written at run time: its manifest's
    ``run_time_load`` names a 300-word memory ``wd`` (code 2) and its image."""
    import json
    import shutil

    path = shutil.copytree(artefact.path, tmp_path / "mlp")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["run_time_load"] = {
        "port": "load",
        "fields": [["mem", 3], ["addr", 16], ["data", 20]],
        "word_bits": 16,
        "image": "vectors/images.npz",
        "mems": {"wd": {"code": 2, "words": len(WEIGHTS)}},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    np.savez(path / "vectors" / "images.npz", wd=np.array(WEIGHTS).astype(str))
    return Artefact(path)


class LoadedBoard(FakeBoard):
    """A ``FakeBoard`` with a loader: it answers with the golden only once every weight word
    it holds equals the image (else output 0 is off by one); its first ``refuse`` LOADs are
    answered ``BAD_CRC`` as if corrupted on the way (``refuse=-1``: every one)."""

    def __init__(self, artefact, table, *, refuse=0):
        from boards.protocol import LoadSpec

        super().__init__(artefact, table)
        self.model.load = LoadSpec.from_manifest(artefact.manifest)
        self.model.memory = {2: {}}
        engine, self.refuse = self.model.engine, refuse

        def checked(inputs):
            out, cycles = engine(inputs)
            if self.model.memory[2] != dict(enumerate(WEIGHTS)):
                out = bytes([(out[0] + 1) & 0xFF]) + out[1:]
            return out, cycles

        self.model.engine = checked
        load = self.model._load

        def refusing(payload, crc_ok):
            if self.refuse:
                self.refuse -= 1
                crc_ok = False
            return load(payload, crc_ok)

        self.model._load = refusing


def test_run_loads_the_weights_first(loaded_artefact):
    board = LoadedBoard(loaded_artefact, golden_table(loaded_artefact), refuse=1)
    try:
        result = run_on_board(loaded_artefact, board.port, timeout=2, limit=2)
    finally:
        board.close()
    assert result.passed and result.vectors == 2
    assert result.loaded_words == 300 and result.retries == 1
    assert board.model.memory[2] == dict(enumerate(WEIGHTS))


def test_run_without_loading_would_fail(artefact, loaded_artefact):
    """The same board, run as an artefact without ``run_time_load``: nothing is loaded and
    the outputs are wrong (so the test above checks the loading)."""
    board = LoadedBoard(loaded_artefact, golden_table(loaded_artefact))
    try:
        result = run_on_board(artefact, board.port, timeout=2, limit=2)
    finally:
        board.close()
    assert not result.passed


def test_a_load_refused_every_time_is_reported_by_name(loaded_artefact):
    board = LoadedBoard(loaded_artefact, golden_table(loaded_artefact), refuse=-1)
    try:
        result = CliRunner().invoke(
            app, ["run", str(loaded_artefact.path), "--port", board.port, "--timeout", "5"]
        )
    finally:
        board.close()
    assert result.exit_code == 1
    assert "the board refused LOAD wd[0:256] with status BAD_CRC" in result.output
    assert "Traceback" not in result.output
