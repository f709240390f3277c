"""cocotb bench for a board top: a host on the UART pins speaking ``boards.protocol``.

The clock runs at the board's frequency (``NNLOOM_CLK_HZ``) and the host's bits last exactly
``1 / NNLOOM_BAUD`` seconds, so the board's integer baud divider meets a real host's timing
error. The host asks ``INFO`` (the board must run this artefact); for an artefact whose
memories are written at run time (the manifest's ``run_time_load``: SPRAM weights) it sends
their images as ``LOAD`` requests, each acknowledged with its CRC, the bytes ``nnloom run``
sends, then the first of them again with one word changed and the CRC left as it was (the
board must refuse it, ``BAD_CRC``: the inferences below then show it wrote nothing). It
sends a request with a
corrupted byte (the board must answer ``BAD_CRC``), then the first ``NNLOOM_SIM_LIMIT`` golden
input vectors, compares every output code with the golden, and last asks ``STATUS`` (the
engine's memory-error counters, in ``summary.json``'s ``memory``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.triggers import FallingEdge, Timer, with_timeout

from boards.protocol import Client, Response, ResponseParser, Status, run_time_images
from rtl_gen.artefact import Artefact, atomic_write
from sim.bench.common import report_progress

MAX_REPORTED = 20


class UartHost:
    """Bytes to the board's ``rx`` pin and from its ``tx`` pin, 8N1 at ``bit_ps``."""

    def __init__(self, dut: HierarchyObject, bit_ps: int):
        self.dut, self.bit_ps = dut, bit_ps
        self.parser = ResponseParser()
        self.replies = []
        dut.rx.value = 1
        cocotb.start_soon(self._listen())

    async def send(self, data: bytes) -> None:
        for byte in data:
            for bit in [0, *((byte >> n) & 1 for n in range(8)), 1]:
                self.dut.rx.value = bit
                await Timer(self.bit_ps, unit="ps")

    async def _listen(self) -> None:
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(self.bit_ps // 2, unit="ps")
            if self.dut.tx.value:  # a glitch, not a start bit
                continue
            byte = 0
            for n in range(8):
                await Timer(self.bit_ps, unit="ps")
                byte |= int(self.dut.tx.value) << n
            await Timer(self.bit_ps, unit="ps")  # the middle of the stop bit
            self.replies += self.parser.feed(bytes([byte]))

    async def request(self, data: bytes, timeout_ms: float) -> Response:
        expected = len(self.replies) + 1
        await self.send(data)

        async def wait():
            while len(self.replies) < expected:
                await Timer(self.bit_ps, unit="ps")

        await with_timeout(wait(), round(timeout_ms * 1e9), "ps")
        return self.replies[expected - 1]


async def _load(host: UartHost, client: Client, art: Artefact, timeout_ms: float, baud: int):
    """The artefact's run-time images through ``LOAD``; then a corrupted copy of the first
    request, which the board must refuse. Returns what ``summary.json`` records."""
    requests = client.load.requests(run_time_images(art))
    load_ms = (len(requests[0][1]) + 10) * 10 * 1e3 / baud + timeout_ms
    for what, request in requests:
        client.check_load(await host.request(request, load_ms), request, what)
    what, request = requests[0]
    corrupted = bytearray(request)
    corrupted[7] ^= 0x80  # a bit of the first word; the CRC is the original's
    reply = await host.request(bytes(corrupted), load_ms)
    assert reply.status == Status.BAD_CRC, (
        f"a corrupted LOAD {what} was answered {reply.status.name}"
    )
    return {
        "requests": len(requests),
        "words": sum(n for _, n in client.load.mems.values()),
        "bytes": sum(len(r) for _, r in requests),
    }


@cocotb.test()
async def board_link(dut: HierarchyObject) -> None:
    art = Artefact(os.environ["NNLOOM_ARTEFACT"])
    out_dir = Path(os.environ["NNLOOM_SIM_OUT"])
    clk_hz, baud = float(os.environ["NNLOOM_CLK_HZ"]), int(os.environ["NNLOOM_BAUD"])
    limit = int(os.environ.get("NNLOOM_SIM_LIMIT", "0")) or 4
    vectors = art.vectors()
    inputs, golden = vectors["inputs"][:limit], vectors["outputs"][:limit]
    client = Client.for_artefact(art)

    period_ps = 2 * round(1e12 / clk_hz / 2)  # cocotb wants an even period
    cocotb.start_soon(Clock(dut.clk, period_ps, unit="ps").start())
    dut.rst.value = 1
    host = UartHost(dut, round(1e12 / baud))
    await Timer(20 * period_ps, unit="ps")
    dut.rst.value = 0
    await Timer(20 * period_ps, unit="ps")

    frame_ms = (client.n_in + client.n_out + 20) * 10 * 1e3 / baud
    timeout_ms = 4 * frame_ms + 1e3 * art.manifest.get("latency_cycles", 0) * 4 / clk_hz + 1

    client.check_info(await host.request(client.info_request(), timeout_ms))
    loaded = await _load(host, client, art, timeout_ms, baud) if client.load else None

    corrupted = bytearray(client.infer_request(inputs[0]))
    corrupted[4] ^= 0x01
    reply = await host.request(bytes(corrupted), timeout_ms)
    assert reply.status == Status.BAD_CRC, f"a corrupted request was answered {reply.status.name}"

    outputs, cycles, mismatches, bad = [], [], [], 0
    for n, (x, want) in enumerate(zip(inputs, golden)):
        got, count = client.decode_inference(
            await host.request(client.infer_request(x), timeout_ms)
        )
        outputs.append(got)
        cycles.append(count)
        report_progress(out_dir, n + 1, len(inputs))
        for i, (g, w) in enumerate(zip(got, want)):
            if g != int(w):
                bad += 1
                if len(mismatches) < MAX_REPORTED:
                    mismatches.append(f"vector {n}: output {i}: expected {int(w)}, got {g}")
    status = client.decode_status(await host.request(client.status_request(), timeout_ms))
    summary = {
        "vectors": len(outputs),
        "mismatching_elements": bad,
        "mismatches": mismatches,
        "memory": {
            "protected": status.protected,
            "corrected": status.corrected,
            "errors": status.errors,
        },
        "cycles": {"max": max(cycles), "min": min(cycles)},
        "board": os.environ.get("NNLOOM_BOARD"),
        "baud": baud,
        "clk_hz": clk_hz,
        "link_bytes_skipped": host.parser.skipped,
        "load": loaded,
    }
    atomic_write(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    import io

    buf = io.BytesIO()
    np.savez(buf, outputs=np.array(outputs, dtype=np.int32), cycles=np.array(cycles))
    atomic_write(out_dir / "outputs.npz", buf.getvalue())
    assert bad == 0, f"{bad} output codes differ from the golden: {'; '.join(mismatches[:5])}"
