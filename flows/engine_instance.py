"""An artefact's generated Verilog as an Amaranth component, for board-level designs.

The build reads only the artefact directory: ``EngineInstance`` has the engine's stream
signature (from ``manifest.json``) and elaborates to an ``Instance`` of the Verilog top, whose
file is added to the platform.
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module, ResetSignal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from boards.protocol import LoadSpec, design_id
from rtl_gen.artefact import Artefact, ArtefactError

__all__ = ["EngineInstance"]


# The engine contract a board top drives: element streams ``i``/``o``, ``cycles`` and ``busy``
# (and ``load`` when the manifest's ``run_time_load`` says its memories are written at run
# time, through the host link's ``LOAD``).
_LOAD_PORTS = {("load__payload", "in"), ("load__valid", "in"), ("load__ready", "out")}
_BOARD_PORTS = {
    ("clk", "in"),
    ("rst", "in"),
    ("i__payload", "in"),
    ("i__valid", "in"),
    ("i__ready", "out"),
    ("o__payload", "out"),
    ("o__valid", "out"),
    ("o__ready", "in"),
    ("cycles", "out"),
    ("busy", "out"),
}


def _check_board_contract(artefact: Artefact) -> None:
    """``ArtefactError`` naming the artefact and its engine when its top is not the element-
    stream engine a board top drives (e.g. an extra input port or no ``cycles`` counter)."""
    manifest = artefact.manifest
    streams = manifest.get("streams", {})
    ports = {(p["name"], p["dir"]) for p in manifest.get("ports", [])}
    contract = _BOARD_PORTS | (_LOAD_PORTS if manifest.get("run_time_load") else set())
    missing = sorted(name for name, _ in contract - ports)
    extra = sorted(name for name, d in ports - contract if d == "in")
    untyped = [k for k in ("input", "output") if "dtype" not in streams.get(k, {})]
    if missing or extra or untyped:
        why = "; ".join(
            filter(
                None,
                (
                    f"no port {', '.join(missing)}" if missing else "",
                    f"inputs a board top does not drive: {', '.join(extra)}" if extra else "",
                    f"no element type for its {' and '.join(untyped)} stream" if untyped else "",
                ),
            )
        )
        raise ArtefactError(
            f"{artefact.path}: the {manifest.get('engine', '?')} engine's artefact cannot go "
            f"on a board ({why}); a board top drives i/o element streams, cycles and busy"
        )


def _layout(dtype: dict) -> data.StructLayout:
    shape = signed(dtype["width"]) if dtype["signed"] else unsigned(dtype["width"])
    return data.StructLayout({"data": shape, "last": 1})


class EngineInstance(wiring.Component):
    """The generated engine of ``artefact``: ``i``/``o`` element streams, ``cycles``, ``busy``
    (and ``ecc_corrected``/``ecc_errors`` when its memories are protected, ``load`` and
    ``load_spec`` when they are written at run time); ``n_in``/``n_out`` elements per
    inference and ``design_id`` (see ``boards.protocol``)."""

    def __init__(self, artefact: Artefact):
        _check_board_contract(artefact)
        self.artefact = artefact
        streams = artefact.manifest["streams"]
        self.n_in = streams["input"]["elements"]
        self.n_out = streams["output"]["elements"]
        self.design_id = design_id(p.read_bytes() for p in artefact.rtl_sources)
        ports = {p["name"] for p in artefact.manifest.get("ports", [])}
        self._ecc = {"ecc_corrected", "ecc_errors"} <= ports
        self.load_spec = LoadSpec.from_manifest(artefact.manifest)
        load = (
            {"load": In(stream.Signature(data.StructLayout(dict(self.load_spec.fields))))}
            if self.load_spec
            else {}
        )
        super().__init__(
            {
                "i": In(stream.Signature(_layout(streams["input"]["dtype"]))),
                "o": Out(stream.Signature(_layout(streams["output"]["dtype"]))),
                "cycles": Out(32),
                "busy": Out(1),
                **({"ecc_corrected": Out(16), "ecc_errors": Out(16)} if self._ecc else {}),
                **load,
            }
        )

    def elaborate(self, platform):
        m = Module()
        if platform is not None:
            for source in self.artefact.rtl_sources:
                platform.add_file(source.name, source.read_text())
        m.submodules.engine = Instance(
            self.artefact.top,
            i_clk=ClockSignal(),
            i_rst=ResetSignal(allow_reset_less=True),
            i_i__payload=self.i.payload.as_value(),
            i_i__valid=self.i.valid,
            o_i__ready=self.i.ready,
            o_o__payload=self.o.payload.as_value(),
            o_o__valid=self.o.valid,
            i_o__ready=self.o.ready,
            o_cycles=self.cycles,
            o_busy=self.busy,
            **(
                {"o_ecc_corrected": self.ecc_corrected, "o_ecc_errors": self.ecc_errors}
                if self._ecc
                else {}
            ),
            **(
                {
                    "i_load__payload": self.load.payload.as_value(),
                    "i_load__valid": self.load.valid,
                    "o_load__ready": self.load.ready,
                }
                if self.load_spec
                else {}
            ),
        )
        return m
