"""The host runtime: runs an artefact's golden inputs on a programmed board over a serial port.

``run_on_board(artefact, port)`` opens the port (pyserial), checks with ``INFO`` that the board
runs this artefact's engine, writes the memories its manifest says are loaded at run time
(``run_time_load``: the iCE40 SPRAM weights, which a bitstream cannot initialise) with
``LOAD`` requests, sends every input vector as an ``INFER`` request and compares each reply
with the golden output. A request corrupted on the way (``BAD_CRC``) is retried.
``program(artefact, board)`` hands the bitstream to the board's programmer (openFPGALoader,
iceprog or dfu-util) when one is installed.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from boards.protocol import Client, LinkError, ResponseParser, Status, run_time_images
from frontends.errors import NnloomError
from rtl_gen.artefact import Artefact

__all__ = ["run_on_board", "BoardRun", "HostError", "program", "PROGRAMMERS"]

log = logging.getLogger(__name__)


class HostError(NnloomError):
    """The board cannot be reached or does not answer as the protocol says."""


@dataclass
class BoardRun:
    vectors: int = 0
    mismatches: list[str] = field(default_factory=list)
    mismatching_elements: int = 0
    cycles: list[int] = field(default_factory=list)
    retries: int = 0
    seconds: float = 0.0
    outputs: list[list[int]] = field(default_factory=list)
    memory: object = None  # boards.protocol.MemoryStatus, asked after the last vector
    loaded_words: int = 0  # words written through LOAD before the first vector
    load_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.vectors > 0 and self.mismatching_elements == 0


def _exchange(port, parser: ResponseParser, request: bytes, timeout: float, what: str = ""):
    """Send ``request`` and return the first reply; ``HostError`` after ``timeout`` s. With
    ``what`` (the request after INFO: the board's link has answered before) the silence is
    the engine's, not the link's, and the error says so."""
    port.write(request)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = port.read(port.in_waiting or 1)
        if chunk:
            replies = parser.feed(chunk)
            if replies:
                return replies[0]
    if what:
        raise HostError(
            f"{what}: no reply from the board on {port.port} within {timeout:g} s, though "
            f"it answered before: its engine hangs (a corrupted instruction or parameter "
            f"memory, or a bitstream from another build); reprogram the board"
        )
    raise HostError(
        f"no reply from the board on {port.port} within {timeout:g} s: is the "
        f"bitstream loaded, and is the baud rate {port.baudrate}?"
    )


def run_on_board(
    artefact: Artefact | str | Path,
    port: str,
    *,
    baud: int = 115200,
    limit: int = 0,
    timeout: float = 2.0,
    retries: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> BoardRun:
    import serial  # pyserial

    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    client = Client.for_artefact(artefact)
    vectors = artefact.vectors()
    inputs, golden = vectors["inputs"], vectors["outputs"]
    if limit:
        inputs, golden = inputs[:limit], golden[:limit]
    try:
        link = serial.serial_for_url(port, baudrate=baud, timeout=0.05)
    except (serial.SerialException, ValueError) as exc:
        raise HostError(f"cannot open serial port {port}: {exc}") from None
    result, parser = BoardRun(), ResponseParser()
    start = time.monotonic()
    with link:
        link.reset_input_buffer()
        try:
            client.check_info(_exchange(link, parser, client.info_request(), timeout))
        except LinkError as exc:
            raise HostError(f"{port}: {exc}") from None
        if client.load is not None:
            _load(link, parser, client, artefact, result, timeout, retries)
        for n, (x, want) in enumerate(zip(inputs, golden)):
            for _attempt in range(retries + 1):
                reply = _exchange(link, parser, client.infer_request(x), timeout, f"vector {n}")
                if reply.crc_ok and reply.status == Status.OK:
                    break
                result.retries += 1
                log.info(
                    "vector %d: reply %s (crc %s), retrying",
                    n,
                    reply.status.name,
                    "ok" if reply.crc_ok else "bad",
                )
            try:
                got, cycles = client.decode_inference(reply)
            except LinkError as exc:
                raise HostError(f"vector {n}: {exc} after {retries} retries") from None
            result.outputs.append(got)
            result.cycles.append(cycles)
            result.vectors += 1
            if progress is not None:
                progress(result.vectors, len(inputs))
            for i, (g, w) in enumerate(zip(got, want)):
                if g != int(w):
                    result.mismatching_elements += 1
                    if len(result.mismatches) < 20:
                        result.mismatches.append(
                            f"vector {n}: output {i}: expected {int(w)}, got {g}"
                        )
        status = client.decode_status(
            _exchange(link, parser, client.status_request(), timeout, "STATUS")
        )
        result.memory = status
        if status.errors:
            raise HostError(
                f"{port}: the board's weight memories reported {status.errors} "
                f"uncorrectable error(s) ({status.corrected} corrected); its "
                f"results are not to be trusted: reprogram the board"
            )
    result.seconds = time.monotonic() - start
    return result


def _load(link, parser, client: Client, artefact: Artefact, result: BoardRun, timeout, retries):
    """Writes the artefact's run-time images through ``LOAD`` requests; a request the board
    refuses with ``BAD_CRC`` (corrupted on the way: nothing was written) is sent again."""
    start = time.monotonic()
    try:
        images = run_time_images(artefact)
    except (OSError, KeyError, ValueError) as exc:
        raise HostError(f"{artefact.path}: cannot read the run-time memory images: {exc}") from None
    for what, request in client.load.requests(images):
        for attempt in range(retries + 1):
            reply = _exchange(link, parser, request, timeout, f"LOAD {what}")
            if reply.crc_ok and reply.status == Status.OK or attempt == retries:
                break
            if reply.crc_ok and reply.status != Status.BAD_CRC:
                break  # refused for what it says, not for the way: sending it again won't help
            result.retries += 1
            log.info("LOAD %s: reply %s, retrying", what, reply.status.name)
        try:
            client.check_load(reply, request, what)
        except LinkError as exc:
            raise HostError(f"{link.port}: {exc}") from None
    result.loaded_words = sum(n for _, n in client.load.mems.values())
    result.load_seconds = time.monotonic() - start


# board -> [(programmer, command template)]; {bitstream} is replaced by the file.
PROGRAMMERS = {
    "icebreaker": [
        ("openFPGALoader", ["openFPGALoader", "-b", "ice40_generic", "{bitstream}"]),
        ("iceprog", ["iceprog", "{bitstream}"]),
    ],
    "ulx3s-85f": [("openFPGALoader", ["openFPGALoader", "-b", "ulx3s", "{bitstream}"])],
    "orangecrab-25f": [("dfu-util", ["dfu-util", "-a", "0", "-D", "{bitstream}"])],
}
_INSTALL = {
    "openFPGALoader": "apt-get install openfpgaloader",
    "iceprog": "apt-get install fpga-icestorm",
    "dfu-util": "apt-get install dfu-util",
}


def program(artefact: Artefact | str | Path, board: str, *, dry_run: bool = False) -> list[str]:
    """Program ``board`` with the artefact's bitstream; returns the command (run unless
    ``dry_run``). Raises ``HostError`` when there is no bitstream or no programmer."""
    from boards import get_board

    artefact = artefact if isinstance(artefact, Artefact) else Artefact(artefact)
    spec = get_board(board)
    build_dir = artefact.path / "build" / spec.name
    bitstream = build_dir / ("top.bin" if spec.family == "ice40" else "top.bit")
    if not bitstream.is_file():
        raise HostError(
            f"no bitstream for {spec.name} in {build_dir}: run "
            f"`nnloom build {artefact.path} --board {spec.name}` first"
        )
    for name, template in PROGRAMMERS[spec.name]:
        exe = shutil.which(name)
        if exe is None:
            continue
        if name == "dfu-util":
            suffix = shutil.which("dfu-suffix")
            if suffix is None:
                raise HostError(
                    f"dfu-util is installed but dfu-suffix is not: {_INSTALL['dfu-util']}"
                )
            dfu = build_dir / "top.dfu"
            shutil.copyfile(bitstream, dfu)
            if not dry_run:
                subprocess.run(
                    [suffix, "-v", "1209", "-p", "5af0", "-a", str(dfu)],
                    check=True,
                    capture_output=True,
                )
            bitstream = dfu
        command = [exe, *template[1:]]
        command = [str(bitstream) if part == "{bitstream}" else part for part in command]
        if not dry_run:
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
                raise HostError(
                    f"{name} failed (exit {proc.returncode})\ncommand: "
                    f"{shlex.join(command)}\n{tail}"
                )
        return command
    names = [name for name, _ in PROGRAMMERS[spec.name]]
    raise HostError(
        f"no programmer for {spec.name} is installed: nnloom uses "
        + " or ".join(f"{n} ({_INSTALL[n]})" for n in names)
    )
