"""The host link's framed protocol, shared by the gateware (``boards.link``), the host runtime
(``flows.host``) and the board-level test bench.

Every frame is ``sync, body, crc``: ``sync`` is one byte, ``body`` is
``command_or_status (1 byte), length (2 bytes, little endian), payload (length bytes)``, and
``crc`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, not reflected) of ``body``,
sent most significant byte first, so that the receiver's CRC register ends at the residue.

Host to board (sync ``0xA5``):
- ``INFER`` (1): payload = one input vector, one byte per element (``n_in`` bytes).
- ``INFO`` (2): no payload.
- ``STATUS`` (3): no payload.
- ``LOAD`` (4): payload = ``mem`` (1 byte: the engine's memory code), ``addr`` (2 bytes LE:
  the first word's address, a multiple of ``LOAD_WORDS``), then 1 to ``LOAD_WORDS`` words of
  ``LoadSpec.word_bytes`` bytes each, little endian: written into the engine's memory
  through its ``load`` port, between inferences (for an engine whose memories have no
  initial value, e.g. the iCE40 SPRAM).

Board to host (sync ``0x5A``), one reply per request, in order:
- to ``INFER``: status, payload = ``n_out`` output elements (one byte each, or, for wider
  outputs such as a layer's accumulator, ``ceil(width / 8)`` bytes each, little endian, two's
  complement), then the engine's cycle counter for
  this inference (4 bytes, little endian). With status ``BAD_CRC`` the input was corrupted on
  the way but the engine has run on it: the outputs are sent (and must be thrown away).
- to ``INFO``: payload = ``n_in`` (2 bytes LE), ``n_out`` (2 bytes LE), ``design_id`` (4 bytes
  LE: the first 32 bits of the SHA-256 of the engine's Verilog, so a host can tell whether
  the bitstream matches its artefact).
- to ``STATUS``: payload = ``flags`` (1 byte: bit 0 set when the engine's weight memories
  carry parity or SECDED check bits), then the engine's memory-error counters since reset,
  each 2 bytes LE, saturating: words read with a corrected flip, and words read with an
  error the code cannot correct (results computed after one are not to be trusted).
- to ``LOAD``: status ``OK`` and payload = the request's CRC (2 bytes, as it was sent) once
  every word is written; otherwise (checked in this order: ``BAD_CRC``, ``BAD_LENGTH``: no
  word, not whole words or more than ``LOAD_WORDS``, ``BAD_ADDRESS``: a memory the board
  does not load, an address not a multiple of ``LOAD_WORDS`` or words past its image) an
  empty payload, and nothing is written. A board without a loader answers
  ``BAD_COMMAND``.
- to a bad length or an unknown command: the status and an empty payload; the request's
  payload bytes (as many as its length field says) are read and dropped.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from amaranth.lib.crc import catalog

from frontends.errors import NnloomError

if TYPE_CHECKING:
    from rtl_gen.artefact import Artefact

__all__ = [
    "REQUEST_SYNC",
    "RESPONSE_SYNC",
    "Command",
    "Status",
    "CRC",
    "crc16",
    "encode_request",
    "encode_response",
    "ResponseParser",
    "Response",
    "ProtocolError",
    "design_id",
    "LinkModel",
    "MAX_LENGTH",
    "Client",
    "LinkError",
    "MemoryStatus",
    "LOAD_WORDS",
    "LoadSpec",
    "run_time_images",
]

REQUEST_SYNC = 0xA5
RESPONSE_SYNC = 0x5A
MAX_LENGTH = 0xFFFF
LOAD_WORDS = 256  # words per LOAD request: the board buffers them until the CRC is checked
CRC = catalog.CRC16_CCITT_FALSE(data_width=8)


class Command(enum.IntEnum):
    INFER = 1
    INFO = 2
    STATUS = 3
    LOAD = 4


class Status(enum.IntEnum):
    OK = 0
    BAD_CRC = 1
    BAD_LENGTH = 2
    BAD_COMMAND = 3
    BAD_ADDRESS = 4


class ProtocolError(NnloomError):
    """The bytes from the board are not a well-formed reply."""


def crc16(data: bytes) -> int:
    return CRC.compute(bytes(data))


def _frame(sync: int, code: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError(f"a frame carries at most {MAX_LENGTH} payload bytes, not {len(payload)}")
    body = bytes([code]) + len(payload).to_bytes(2, "little") + bytes(payload)
    return bytes([sync]) + body + crc16(body).to_bytes(2, "big")


def encode_request(command: int, payload: bytes = b"") -> bytes:
    return _frame(REQUEST_SYNC, int(command), payload)


def encode_response(status: int, payload: bytes = b"") -> bytes:
    return _frame(RESPONSE_SYNC, int(status), payload)


def design_id(verilog_sources: Iterable[bytes]) -> int:
    digest = hashlib.sha256()
    for text in verilog_sources:
        digest.update(text)
    return int.from_bytes(digest.digest()[:4], "little")


@dataclass(frozen=True)
class LoadSpec:
    """What an engine's memories written at run time look like on the link: ``fields``, the
    engine's ``load`` stream payload (``[(name, bits)]``: ``mem``, ``addr``, ``data``),
    ``word_bits`` the bits a ``LOAD`` word carries (zero-extended to ``data``), ``mems``
    ``{name: (code, words)}``: the memories the board loads and their image sizes; ``image``
    the artefact's file of the images (``{name: words}``). From the manifest's
    ``run_time_load`` (``from_manifest``)."""

    fields: tuple
    word_bits: int
    mems: dict
    image: str = "vectors/images.npz"

    @property
    def word_bytes(self) -> int:
        return -(-self.word_bits // 8)

    @classmethod
    def from_manifest(cls, manifest: dict) -> LoadSpec | None:
        entry = manifest.get("run_time_load")
        if not entry:
            return None
        return cls(
            fields=tuple((name, int(bits)) for name, bits in entry["fields"]),
            word_bits=int(entry["word_bits"]),
            mems={k: (int(v["code"]), int(v["words"])) for k, v in entry["mems"].items()},
            image=entry.get("image", cls.image),
        )

    def to_json(self) -> dict:
        return {
            "port": "load",
            "fields": [list(f) for f in self.fields],
            "word_bits": self.word_bits,
            "image": self.image,
            "mems": {k: {"code": c, "words": n} for k, (c, n) in self.mems.items()},
        }

    def requests(self, images: dict) -> list[tuple[str, bytes]]:
        """``LOAD`` requests writing ``images`` (``{name: words}``, every memory of
        ``mems``), ``LOAD_WORDS`` words each: ``[(what, request)]``, ``what`` naming the
        words (``wd[0:256]``)."""
        out = []
        for name, (code, _) in self.mems.items():
            words = [int(w) for w in images[name]]
            for a in range(0, len(words), LOAD_WORDS):
                chunk = words[a : a + LOAD_WORDS]
                payload = bytes([code]) + a.to_bytes(2, "little")
                payload += b"".join(w.to_bytes(self.word_bytes, "little") for w in chunk)
                out.append((f"{name}[{a}:{a + len(chunk)}]", encode_request(Command.LOAD, payload)))
        return out


def run_time_images(artefact: Artefact) -> dict:
    """``{name: [words]}``: the images an artefact's board writes through ``LOAD``."""
    import numpy as np

    spec = LoadSpec.from_manifest(artefact.manifest)
    with np.load(artefact.path / spec.image, allow_pickle=False) as f:
        return {name: [int(v) for v in f[name]] for name in spec.mems}


@dataclass(frozen=True)
class MemoryStatus:
    """A ``STATUS`` reply: whether the memories are protected and the error counters."""

    protected: bool
    corrected: int
    errors: int

    def payload(self) -> bytes:
        return (
            bytes([int(self.protected)])
            + self.corrected.to_bytes(2, "little")
            + self.errors.to_bytes(2, "little")
        )


@dataclass(frozen=True)
class Response:
    status: Status
    payload: bytes
    crc_ok: bool

    def inference(self, n_out: int) -> tuple[bytes, int]:
        """``(outputs, cycles)`` of a reply to ``INFER``."""
        if len(self.payload) != n_out + 4:
            raise ProtocolError(
                f"a reply to INFER carries {n_out} output bytes and 4 cycle "
                f"bytes, but this one has {len(self.payload)} bytes"
            )
        return self.payload[:n_out], int.from_bytes(self.payload[n_out:], "little")

    def info(self) -> tuple[int, int, int]:
        """``(n_in, n_out, design_id)`` of a reply to ``INFO``."""
        if len(self.payload) != 8:
            raise ProtocolError(f"a reply to INFO carries 8 bytes, this one {len(self.payload)}")
        p = self.payload
        return (
            int.from_bytes(p[0:2], "little"),
            int.from_bytes(p[2:4], "little"),
            int.from_bytes(p[4:8], "little"),
        )

    def load_ack(self) -> int:
        """The request CRC a reply to ``LOAD`` acknowledges."""
        if len(self.payload) != 2:
            raise ProtocolError(f"a reply to LOAD carries 2 bytes, this one {len(self.payload)}")
        return int.from_bytes(self.payload, "big")

    def memory_status(self) -> MemoryStatus:
        """The reply to ``STATUS``."""
        if len(self.payload) != 5:
            raise ProtocolError(f"a reply to STATUS carries 5 bytes, this one {len(self.payload)}")
        p = self.payload
        return MemoryStatus(
            bool(p[0] & 1), int.from_bytes(p[1:3], "little"), int.from_bytes(p[3:5], "little")
        )


class ResponseParser:
    """Turns bytes from the board into ``Response``s; bytes before a sync byte are skipped
    (and counted in ``skipped``)."""

    def __init__(self):
        self._buffer = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> list[Response]:
        self._buffer += data
        out = []
        while True:
            start = self._buffer.find(RESPONSE_SYNC)
            if start < 0:
                self.skipped += len(self._buffer)
                self._buffer.clear()
                return out
            self.skipped += start
            del self._buffer[:start]
            if len(self._buffer) < 4:
                return out
            length = int.from_bytes(self._buffer[2:4], "little")
            end = 1 + 3 + length + 2
            if len(self._buffer) < end:
                return out
            body = bytes(self._buffer[1 : 4 + length])
            crc = int.from_bytes(self._buffer[4 + length : end], "big")
            code = self._buffer[1]
            try:
                status = Status(code)
            except ValueError:
                raise ProtocolError(f"the board replied with unknown status {code}") from None
            out.append(Response(status, body[3:], crc == crc16(body)))
            del self._buffer[:end]


class LinkModel:
    """The board's side of the protocol in Python: the reference for ``boards.link.HostLink``
    (and a stand-in board for host tests). ``engine(inputs: bytes) -> (outputs, cycles)``;
    ``status()`` gives the ``MemoryStatus`` a ``STATUS`` request reports (default: an
    unprotected engine). With ``load`` (a ``LoadSpec``) it answers ``LOAD`` and keeps the
    written words in ``memory`` (``{code: {addr: word}}``), which ``engine`` may read."""

    def __init__(
        self,
        *,
        n_in: int,
        n_out: int,
        design: int,
        engine: Callable[[bytes], tuple[list[int], int]],
        status: Callable[[], MemoryStatus] | None = None,
        load: LoadSpec | None = None,
    ):
        self.n_in, self.n_out, self.design, self.engine = n_in, n_out, design, engine
        self.status = status or (lambda: MemoryStatus(False, 0, 0))
        self.load = load
        self.memory = {code: {} for code, _ in load.mems.values()} if load else {}
        self._buffer = bytearray()

    def feed(self, data: bytes) -> bytes:
        """Bytes from the host in, reply bytes out."""
        self._buffer += data
        replies = b""
        while True:
            start = self._buffer.find(REQUEST_SYNC)
            if start < 0:
                self._buffer.clear()
                return replies
            del self._buffer[:start]
            if len(self._buffer) < 4:
                return replies
            length = int.from_bytes(self._buffer[2:4], "little")
            end = 4 + length + 2
            if len(self._buffer) < end:
                return replies
            body = bytes(self._buffer[1 : 4 + length])
            crc_ok = int.from_bytes(self._buffer[4 + length : end], "big") == crc16(body)
            del self._buffer[:end]
            replies += self._reply(body[0], body[3:], crc_ok)

    def _reply(self, command: int, payload: bytes, crc_ok: bool) -> bytes:
        status = Status.OK if crc_ok else Status.BAD_CRC
        if command == Command.INFER:
            if len(payload) != self.n_in:
                return encode_response(Status.BAD_LENGTH)
            outputs, cycles = self.engine(payload)
            return encode_response(status, bytes(outputs) + int(cycles).to_bytes(4, "little"))
        if command == Command.INFO:
            if payload:
                return encode_response(Status.BAD_LENGTH)
            return encode_response(
                status,
                self.n_in.to_bytes(2, "little")
                + self.n_out.to_bytes(2, "little")
                + self.design.to_bytes(4, "little"),
            )
        if command == Command.STATUS:
            if payload:
                return encode_response(Status.BAD_LENGTH)
            return encode_response(status, self.status().payload())
        if command == Command.LOAD and self.load is not None:
            return self._load(payload, crc_ok)
        return encode_response(Status.BAD_COMMAND)

    def _load(self, payload: bytes, crc_ok: bool) -> bytes:
        k = self.load.word_bytes
        if not crc_ok:
            return encode_response(Status.BAD_CRC)
        n, part = divmod(len(payload) - 3, k)
        if len(payload) < 3 or part or not 1 <= n <= LOAD_WORDS:
            return encode_response(Status.BAD_LENGTH)
        code, addr = payload[0], int.from_bytes(payload[1:3], "little")
        sizes = dict(self.load.mems.values())
        if code not in sizes or addr % LOAD_WORDS or addr + n > sizes[code]:
            return encode_response(Status.BAD_ADDRESS)
        mask = (1 << self.load.word_bits) - 1
        for i in range(n):
            word = int.from_bytes(payload[3 + i * k : 3 + (i + 1) * k], "little")
            self.memory[code][addr + i] = word & mask
        body = bytes([Command.LOAD]) + len(payload).to_bytes(2, "little") + payload
        return encode_response(Status.OK, crc16(body).to_bytes(2, "big"))


class LinkError(NnloomError):
    """The board answered, but not with a usable result (a status other than OK, a reply
    whose CRC fails, or a board whose engine is not the host's artefact)."""


class Client:
    """The host's side of the protocol without I/O: builds requests and decodes replies for
    an engine with ``n_in`` input elements of one byte and ``n_out`` output elements of
    ``out_bytes`` bytes each. Both the serial runtime (``flows.host``) and the board-level
    test bench drive it."""

    def __init__(
        self,
        *,
        n_in: int,
        n_out: int,
        in_signed: bool,
        out_signed: bool,
        design: int,
        out_bytes: int = 1,
    ):
        self.n_in, self.n_out, self.out_bytes = n_in, n_out, out_bytes
        self.in_signed, self.out_signed, self.design = in_signed, out_signed, design
        self.load: LoadSpec | None = None  # memories the host writes before inferring

    @classmethod
    def for_artefact(cls, artefact: Artefact) -> Client:
        streams = artefact.manifest["streams"]
        client = cls(
            n_in=streams["input"]["elements"],
            n_out=streams["output"]["elements"],
            in_signed=streams["input"]["dtype"]["signed"],
            out_signed=streams["output"]["dtype"]["signed"],
            design=design_id(p.read_bytes() for p in artefact.rtl_sources),
            out_bytes=-(-streams["output"]["dtype"]["width"] // 8),
        )
        client.load = LoadSpec.from_manifest(artefact.manifest)
        return client

    def check_load(self, response: Response, request: bytes, what: str) -> None:
        """``LinkError`` unless ``response`` acknowledges the ``LOAD`` ``request`` of the
        words ``what``: status OK and the request's CRC."""
        if not response.crc_ok:
            raise LinkError(f"the reply to LOAD {what} was corrupted on the way (CRC mismatch)")
        if response.status != Status.OK:
            raise LinkError(f"the board refused LOAD {what} with status {response.status.name}")
        sent = int.from_bytes(request[-2:], "big")
        if response.load_ack() != sent:
            raise LinkError(
                f"the board acknowledged LOAD {what} with CRC {response.load_ack():04x}, "
                f"not the request's {sent:04x}"
            )

    def info_request(self) -> bytes:
        return encode_request(Command.INFO)

    def check_info(self, response: Response) -> None:
        self._check(response, "INFO")
        n_in, n_out, design = response.info()
        if (n_in, n_out) != (self.n_in, self.n_out) or design != self.design:
            raise LinkError(
                f"the board runs another design: it takes {n_in} inputs and "
                f"gives {n_out} outputs (design id {design:08x}); this artefact "
                f"takes {self.n_in} and gives {self.n_out} (design id "
                f"{self.design:08x}); program the board with this artefact's "
                f"bitstream"
            )

    def status_request(self) -> bytes:
        return encode_request(Command.STATUS)

    def decode_status(self, response: Response) -> MemoryStatus:
        self._check(response, "STATUS")
        return response.memory_status()

    def infer_request(self, codes: Iterable[int]) -> bytes:
        codes = [int(c) for c in codes]
        if len(codes) != self.n_in:
            raise ValueError(f"an input vector has {self.n_in} elements, not {len(codes)}")
        return encode_request(Command.INFER, bytes(c & 0xFF for c in codes))

    def decode_inference(self, response: Response) -> tuple[list[int], int]:
        """The output codes and the engine's cycle counter of an ``INFER`` reply."""
        self._check(response, "INFER")
        raw, cycles = response.inference(self.n_out * self.out_bytes)
        k = self.out_bytes
        values = [
            int.from_bytes(raw[i : i + k], "little", signed=self.out_signed)
            for i in range(0, len(raw), k)
        ]
        return values, cycles

    @staticmethod
    def _check(response: Response, what: str) -> None:
        if not response.crc_ok:
            raise LinkError(f"the reply to {what} was corrupted on the way (CRC mismatch)")
        if response.status != Status.OK:
            raise LinkError(f"the board answered {what} with status {response.status.name}")
