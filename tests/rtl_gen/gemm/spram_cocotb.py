"""cocotb bench of ``tests/rtl_gen/gemm/test_spram.py``: random reads, writes and idle
cycles on SPRAM memories of 8, 16 and 32 bits, each built twice (``SB_SPRAM256KA`` under
Yosys' simulation model, and the behavioural ``Memory``), against a Python dictionary."""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

WIDTHS = {8: 65536, 16: 16384, 32: 16384}  # width: depth (the 8-bit one on two rows of blocks)


def _addresses(depth: int, rng: random.Random) -> list[int]:
    """A few addresses at both ends of each row, so that values are read back often."""
    half = depth // 2
    picks = [0, 1, 2, 3, half - 2, half - 1, half, half + 1, depth - 2, depth - 1]
    return picks + [rng.randrange(depth) for _ in range(6)]


@cocotb.test()
async def spram_matches_reference(dut):
    rng = random.Random(int(os.environ.get("SPRAM_SEED", "1")))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 0
    addrs = {w: _addresses(d, rng) for w, d in WIDTHS.items()}
    ref = {w: {} for w in WIDTHS}
    pending = None  # (width -> expected) of the read issued last cycle
    checked = 0
    await FallingEdge(dut.clk)
    for _ in range(int(os.environ.get("SPRAM_CYCLES", "3000"))):
        op = rng.choice(("r", "r", "w", "w", "idle"))
        issued = {}
        for w in WIDTHS:
            a = rng.choice(addrs[w])
            d = rng.getrandbits(w)
            getattr(dut, f"addr{w}").value = a
            getattr(dut, f"wdata{w}").value = d
            dut.we.value = op == "w"
            dut.re.value = op == "r"
            if op == "w":
                ref[w][a] = d
            elif op == "r":
                issued[w] = ref[w].get(a)
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        if op == "r":
            pending = issued
        if pending is not None and op != "w":
            # after a read, and on idle cycles that follow it, the data holds
            for w, expected in pending.items():
                if expected is None:
                    continue
                for kind in ("prim", "model"):
                    got = int(getattr(dut, f"rdata{w}_{kind}").value)
                    assert got == expected, (
                        f"{kind} {w}-bit SPRAM memory read {got:#x}, expected {expected:#x}"
                    )
                    checked += 1
        if op == "w":
            pending = None  # undefined after a write cycle
    assert checked > 1000, f"only {checked} reads were checked"
