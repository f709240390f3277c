"""``HostLink``: the board's end of the framed host protocol (``boards.protocol``).

It sits between the UART's byte streams and an engine's element streams: it checks each
request's header, length and CRC, feeds an ``INFER`` payload to the engine as it arrives, and
answers every request with one reply frame (outputs and cycle counter, or the board's
identity, or an error status).
"""

from amaranth import Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .protocol import CRC, LOAD_WORDS, REQUEST_SYNC, RESPONSE_SYNC, Command, LoadSpec, Status

__all__ = ["HostLink"]


class HostLink(wiring.Component):
    """Request/reply framing between host bytes and an engine.

    Ports: ``rx``/``tx`` byte streams (host side); ``engine_i``/``engine_o`` element streams
    (``{data, last}``) and ``cycles`` (the engine's cycle counter, read after its last output)
    on the engine side; ``error`` is high after a request that was not answered ``OK``.
    ``ecc`` takes the engine's memory-error counters (corrected in bits 0-15, uncorrectable
    in 16-31; tied to zero for an unprotected engine) that ``STATUS`` reports, with
    ``protected`` in its flags byte.

    An ``INFER`` payload goes to the engine byte by byte while it arrives (``last`` on its
    final element), so the engine starts before the CRC has arrived; a bad CRC therefore
    cannot stop the inference, and its reply carries status ``BAD_CRC``. A request with a
    wrong length or command is dropped and answered with its status and no payload.

    With ``load`` (a ``LoadSpec``) the link also takes ``LOAD`` requests: their words wait in
    a ``LOAD_WORDS``-word buffer (one block RAM for 16-bit words) until the CRC, the length
    and the address range have been checked, and are then written through the ``load``
    stream (``{mem, addr, data}``, one word a cycle, only while ``engine_busy`` is low: never
    during an inference) before the reply, which carries the request's CRC. A refused
    ``LOAD`` writes nothing.

    Latency: the reply's sync byte is offered on ``tx`` two cycles after the request's last
    CRC byte has been checked (one in the send register, whose ``valid`` and ``payload``
    are flip-flops) and, for ``INFER``, once the engine's first output is valid; then a byte
    every other cycle at most, each as soon as ``tx`` has taken the one before. One request
    is handled at a time: ``rx`` waits (is not ready) while a reply is being sent.
    """

    def __init__(
        self,
        *,
        n_in: int,
        n_out: int,
        design_id: int,
        in_layout: data.StructLayout,
        out_layout: data.StructLayout,
        protected: bool = False,
        load: LoadSpec | None = None,
    ):
        for name, n in (("n_in", n_in), ("n_out", n_out)):
            if not 1 <= n <= 0xFFFF - 4:
                raise ValueError(f"HostLink {name} must be between 1 and {0xFFFF - 4}, not {n}")
        self.n_in, self.n_out, self.design_id = n_in, n_out, design_id
        self.protected, self.load_spec = protected, load
        out_width = Shape.cast(out_layout["data"].shape).width
        self.out_bytes = -(-out_width // 8)  # bytes per output element, little endian
        if not 1 <= n_out * self.out_bytes <= 0xFFFF - 4:
            raise ValueError(
                f"HostLink n_out of {n_out} elements of {self.out_bytes} bytes do not fit one reply"
            )
        ports = {
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "engine_i": Out(stream.Signature(in_layout)),
            "engine_o": In(stream.Signature(out_layout)),
            "cycles": In(32),
            "ecc": In(32),
            "error": Out(1),
        }
        if load is not None:
            fields = dict(load.fields)
            if set(fields) != {"mem", "addr", "data"} or fields["data"] < load.word_bits:
                raise ValueError(
                    f"Cannot load the engine's memories: its load port's fields {load.fields} "
                    f"are not mem, addr and data of at least {load.word_bits} bits"
                )
            ports["load"] = Out(stream.Signature(data.StructLayout(fields)))
            ports["engine_busy"] = In(1)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        n_in, n_out = self.n_in, self.n_out
        m.submodules.rx_crc = rx_crc = CRC.create()
        m.submodules.tx_crc = tx_crc = CRC.create()

        # the request's command as one flag each, decoded as it arrives: the 8-bit compares
        # in front of the LOAD datapath's enables were the UP5K board's critical path
        is_ = {c: Signal(name=f"is_{c.name.lower()}") for c in Command}
        length_lo = Signal(8)
        # the length's low byte compared as it arrives (against 0, 1 and n_in's): the
        # 16-bit compares on the FIFO's block-RAM output in front of the status registers
        # were the UP5K board's critical path
        lo_zero, lo_one, lo_n_in = Signal(), Signal(), Signal()
        # payload bytes after the current one, and whether it is the last, as registers: the
        # ``count == length - 1`` compare in front of the receive state was a long path
        left = Signal(16)
        last_byte = Signal()
        # in PAYLOAD with a LOAD's words arriving, as a register (the state's decode and the
        # command flag in front of the loader's enables were the UP5K board's critical path)
        load_payload = Signal()
        feed = Signal()  # this request's payload goes to the engine
        status = Signal(8)
        reply_len = Signal(16)
        request = Signal()  # RX -> TX: a checked request waits for its reply
        taken = Signal()  # TX -> RX: the reply is being sent
        crc_in = Signal(16)  # the request's CRC as received (what a LOAD reply acknowledges)
        load_ok = Signal()  # a checked LOAD is to be committed
        # CHECK's inputs as registers: the CRC's match (taken in CRC_DONE) and ``status ==
        # OK`` (status is last written in LENGTH_HI, two bytes before): these compares in
        # front of the LOAD verdict's enables were the UP5K board's critical path
        crc_match, status_ok = Signal(), Signal()
        m.d.sync += status_ok.eq(status == Status.OK)
        if self.load_spec:
            loader = _Loader(m, self.load_spec, self.load, self.engine_busy, self.rx.payload)

        rx = self.rx
        m.d.comb += [
            rx_crc.data.eq(rx.payload),
            self.engine_i.payload.data.eq(rx.payload),
            self.engine_i.payload.last.eq(last_byte),  # an INFER's payload is n_in long
        ]

        with m.FSM(name="rx_state"):
            with m.State("SYNC"):
                m.d.comb += [rx.ready.eq(1), rx_crc.start.eq(1)]
                with m.If(rx.valid & (rx.payload == REQUEST_SYNC)):
                    m.next = "COMMAND"
            with m.State("COMMAND"):
                m.d.comb += [rx.ready.eq(1), rx_crc.valid.eq(rx.valid)]
                with m.If(rx.valid):
                    m.d.sync += [flag.eq(rx.payload == c) for c, flag in is_.items()]
                    m.next = "LENGTH_LO"
            with m.State("LENGTH_LO"):
                m.d.comb += [rx.ready.eq(1), rx_crc.valid.eq(rx.valid)]
                with m.If(rx.valid):
                    m.d.sync += [
                        length_lo.eq(rx.payload),
                        lo_zero.eq(rx.payload == 0),
                        lo_one.eq(rx.payload == 1),
                        lo_n_in.eq(rx.payload == (n_in & 0xFF)),
                    ]
                    m.next = "LENGTH_HI"
            with m.State("LENGTH_HI"):
                m.d.comb += [rx.ready.eq(1), rx_crc.valid.eq(rx.valid)]
                with m.If(rx.valid):
                    full = Cat(length_lo, rx.payload)
                    hi_zero = rx.payload == 0
                    is_zero, is_n_in = lo_zero & hi_zero, lo_n_in & (rx.payload == n_in >> 8)
                    m.d.sync += [
                        left.eq(full - 1),
                        last_byte.eq(lo_one & hi_zero),
                    ]
                    if self.load_spec:
                        loader.start()
                    is_infer = is_[Command.INFER]
                    is_info = is_[Command.INFO]
                    is_status = is_[Command.STATUS]
                    is_load = is_[Command.LOAD] if self.load_spec else Const(0)
                    with m.If(is_infer & is_n_in):
                        m.d.sync += [
                            feed.eq(1),
                            status.eq(Status.OK),
                            reply_len.eq(n_out * self.out_bytes + 4),
                        ]
                    with m.Elif(is_info & is_zero):
                        m.d.sync += [feed.eq(0), status.eq(Status.OK), reply_len.eq(8)]
                    with m.Elif(is_status & is_zero):
                        m.d.sync += [feed.eq(0), status.eq(Status.OK), reply_len.eq(5)]
                    with m.Elif(is_load):  # its length is checked with its words
                        m.d.sync += [feed.eq(0), status.eq(Status.OK), reply_len.eq(2)]
                    with m.Else():
                        m.d.sync += [feed.eq(0), reply_len.eq(0), status.eq(Status.BAD_COMMAND)]
                        with m.If(is_infer | is_info | is_status):
                            m.d.sync += status.eq(Status.BAD_LENGTH)
                    with m.If(is_zero):
                        m.next = "CRC_HI"
                    with m.Else():
                        m.d.sync += load_payload.eq(is_load)
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                with m.If(feed):
                    m.d.comb += [self.engine_i.valid.eq(rx.valid), rx.ready.eq(self.engine_i.ready)]
                with m.Else():
                    m.d.comb += rx.ready.eq(1)
                m.d.comb += rx_crc.valid.eq(rx.valid & rx.ready)
                if self.load_spec:
                    loader.payload_byte(rx.valid & load_payload)  # (ready: not fed)
                with m.If(rx.valid & rx.ready):
                    m.d.sync += [left.eq(left - 1), last_byte.eq(left == 1)]
                    with m.If(last_byte):
                        m.d.sync += load_payload.eq(0)
                        m.next = "CRC_HI"
            with m.State("CRC_HI"):
                m.d.comb += [rx.ready.eq(1), rx_crc.valid.eq(rx.valid)]
                with m.If(rx.valid):
                    if self.load_spec:
                        m.d.sync += crc_in[8:].eq(rx.payload)
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [rx.ready.eq(1), rx_crc.valid.eq(rx.valid)]
                with m.If(rx.valid):
                    if self.load_spec:
                        m.d.sync += crc_in[:8].eq(rx.payload)
                    m.next = "CRC_DONE"
            with m.State("CRC_DONE"):  # the CRC register has taken the last byte
                m.d.sync += crc_match.eq(rx_crc.match_detected)
                m.next = "CHECK"
            with m.State("CHECK"):
                crc_bad = ~crc_match & status_ok
                with m.If(crc_bad):
                    m.d.sync += status.eq(Status.BAD_CRC)
                if self.load_spec:
                    with m.If(is_[Command.LOAD] & status_ok):
                        # the verdict is registered: its checks in front of the commit
                        # counters' enables were the UP5K board's critical path
                        m.d.sync += load_ok.eq(~loader.check(crc_bad, status, reply_len))
                        m.next = "VERDICT"
                    with m.Else():
                        m.d.sync += request.eq(1)
                        m.next = "WAIT"
                else:
                    m.d.sync += request.eq(1)
                    m.next = "WAIT"
            if self.load_spec:
                with m.State("VERDICT"):
                    with m.If(load_ok):
                        loader.begin_commit()
                        m.next = "COMMIT"
                    with m.Else():
                        m.d.sync += request.eq(1)
                        m.next = "WAIT"
                with m.State("COMMIT"):  # the checked words into the engine's memory
                    with m.If(loader.commit()):
                        m.d.sync += request.eq(1)
                        m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(taken):
                    m.d.sync += request.eq(0)
                    m.next = "SYNC"

        # TX: header, payload (engine outputs + cycles, or identity), CRC. The FSM hands
        # each byte to a one-byte register (``held``) whose ``tx`` handshake it sees only
        # through ``full``: the UART's ready and the CRC update hang on registers, not on the
        # byte multiplexer (that path, UART ready through the FSM into the link's counters,
        # and the engine's output element into the CRC, were the boards' critical paths).
        # The CRC takes each byte from ``held`` as it leaves, when ``counted``.
        tx = _Sender(m, self.tx)
        byte = Signal(8)
        index = Signal(16)
        part = Signal(range(max(self.out_bytes, 2)))  # byte of the output element
        info = Const(n_in | (n_out << 16) | (self.design_id << 32), 64)
        counters = Signal(40)  # STATUS: flags byte, then the counters latched at the request
        counted = Signal(init=1)  # the byte goes into the reply's CRC (not SYNC, not the CRC)
        m.d.comb += [
            tx.payload.eq(byte),
            tx.counted.eq(counted),
            tx_crc.data.eq(tx.held),
            tx_crc.valid.eq(tx.leaves & tx.held_counted),
        ]
        with m.FSM(name="tx_state"):
            with m.State("IDLE"):
                m.d.comb += tx_crc.start.eq(1)
                with m.If(request):
                    m.d.sync += [
                        self.error.eq(status != Status.OK),
                        index.eq(0),
                        counters.eq(Cat(Const(int(self.protected), 8), self.ecc)),
                    ]
                    m.d.comb += taken.eq(1)
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += [byte.eq(RESPONSE_SYNC), tx.valid.eq(1), counted.eq(0)]
                with m.If(tx.ready):
                    m.next = "STATUS"
            with m.State("STATUS"):
                m.d.comb += [byte.eq(status), tx.valid.eq(1)]
                with m.If(tx.ready):
                    m.next = "LENGTH_LO"
            with m.State("LENGTH_LO"):
                m.d.comb += [byte.eq(reply_len[:8]), tx.valid.eq(1)]
                with m.If(tx.ready):
                    m.next = "LENGTH_HI"
            with m.State("LENGTH_HI"):
                m.d.comb += [byte.eq(reply_len[8:]), tx.valid.eq(1)]
                with m.If(tx.ready):
                    with m.If(reply_len == 0):
                        m.next = "CRC_HI"
                    with m.Elif(is_[Command.INFO]):
                        m.next = "INFO"
                    with m.Elif(is_[Command.STATUS]):
                        m.next = "COUNTERS"
                    with m.Elif(is_[Command.LOAD]):
                        m.next = "ACK"
                    with m.Else():
                        m.next = "OUTPUTS"
            with m.State("OUTPUTS"):
                k = self.out_bytes
                if k == 1:
                    m.d.comb += [
                        byte.eq(self.engine_o.payload.data),
                        tx.valid.eq(self.engine_o.valid),
                        self.engine_o.ready.eq(tx.ready),
                    ]
                    done = self.engine_o.valid & tx.ready
                else:  # an element's bytes, least significant first; it is taken with the last
                    wide = Signal(8 * k)
                    m.d.comb += [
                        wide.eq(self.engine_o.payload.data),  # sign- or zero-extends
                        byte.eq(wide.word_select(part, 8)),
                        tx.valid.eq(self.engine_o.valid),
                        self.engine_o.ready.eq(tx.ready & (part == k - 1)),
                    ]
                    with m.If(self.engine_o.valid & tx.ready):
                        m.d.sync += part.eq(Mux(part == k - 1, 0, part + 1))
                    done = self.engine_o.valid & tx.ready & (part == k - 1)
                with m.If(done):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == n_out - 1):
                        m.d.sync += index.eq(0)
                        m.next = "LATCH"
            with m.State("LATCH"):  # the engine updates its counter with its last output
                m.next = "CYCLES"
            with m.State("CYCLES"):  # (it holds it until the next input, which waits for us)
                m.d.comb += [byte.eq(self.cycles.word_select(index[:2], 8)), tx.valid.eq(1)]
                with m.If(tx.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 3):
                        m.next = "CRC_HI"
            with m.State("INFO"):
                m.d.comb += [byte.eq(info.word_select(index[:3], 8)), tx.valid.eq(1)]
                with m.If(tx.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 7):
                        m.next = "CRC_HI"
            with m.State("COUNTERS"):
                m.d.comb += [byte.eq(counters.word_select(index[:3], 8)), tx.valid.eq(1)]
                with m.If(tx.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 4):
                        m.next = "CRC_HI"
            with m.State("ACK"):
                m.d.comb += [byte.eq(crc_in.word_select(~index[0], 8)), tx.valid.eq(1)]
                with m.If(tx.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 1):
                        m.next = "CRC_HI"
            with m.State("CRC_HI"):  # ready: the last payload byte has left, and counted
                m.d.comb += [byte.eq(tx_crc.crc[8:]), tx.valid.eq(1), counted.eq(0)]
                with m.If(tx.ready):
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [byte.eq(tx_crc.crc[:8]), tx.valid.eq(1), counted.eq(0)]
                with m.If(tx.ready):
                    m.next = "IDLE"
        return m


class _Sender:
    """``HostLink``'s send register: the TX FSM offers ``payload`` with ``valid`` and sees
    ``ready`` (the register is empty); the byte then waits in ``held`` (``busy``) until the
    ``tx`` stream takes it (``leaves``), with ``held_counted`` (its ``counted`` flag). One
    cycle of latency; a byte every other cycle at most, far above a UART's rate."""

    def __init__(self, m, tx):
        self.payload, self.valid, self.counted = Signal(8), Signal(), Signal()
        self.held, self.held_counted, self.busy = Signal(8), Signal(), Signal()
        self.ready, self.leaves = Signal(), Signal()
        m.d.comb += [
            self.ready.eq(~self.busy),
            tx.valid.eq(self.busy),
            tx.payload.eq(self.held),
            self.leaves.eq(self.busy & tx.ready),
        ]
        with m.If(self.leaves):
            m.d.sync += self.busy.eq(0)
        with m.If(self.valid & self.ready):
            m.d.sync += [
                self.held.eq(self.payload),
                self.held_counted.eq(self.counted),
                self.busy.eq(1),
            ]


class _Loader:
    """``HostLink``'s ``LOAD`` datapath: the header bytes (``mem``, ``addr``), the words
    assembled little endian into the buffer, the checks, and the commit through ``load``.
    Requests start at multiples of ``LOAD_WORDS`` (``LoadSpec.requests``), so the committed
    word's address is ``addr``'s high bits and the buffer index, and the range check compares
    8-bit numbers: the loader costs little logic beside a full UP5K's engine."""

    def __init__(self, m, spec: LoadSpec, load, busy, byte):
        self.m, self.spec, self.load, self.busy, self.byte = m, spec, load, busy, byte
        k = spec.word_bytes
        self.hdr = Signal(2)  # header bytes taken: mem, addr low, addr high
        self.mem, self.addr = Signal(8), Signal(16)
        self.low = Signal(max(8 * (k - 1), 1))  # the bytes of the word before its last
        self.part = Signal(range(max(k, 2)))  # byte of the word being assembled
        self.n = Signal(range(LOAD_WORDS + 1))  # words in the buffer
        self.over = Signal()  # more words than the buffer holds
        self.ci = Signal(range(LOAD_WORDS))  # word being committed
        self.left = Signal(range(LOAD_WORDS))  # words after it
        m.submodules.load_buffer = buffer = Memory(
            shape=unsigned(8 * k), depth=LOAD_WORDS, init=[], attrs={"no_rw_check": 1}
        )
        self.wr, self.rd = buffer.write_port(), buffer.read_port(transparent_for=())
        self._verdicts()

    def start(self) -> None:
        """A request's header has arrived: nothing of a ``LOAD`` taken yet."""
        self.m.d.sync += [self.hdr.eq(0), self.part.eq(0), self.n.eq(0), self.over.eq(0)]

    def payload_byte(self, taken) -> None:
        """A ``LOAD`` payload byte ``byte`` taken."""
        m, byte, k = self.m, self.byte, self.spec.word_bytes
        with m.If(taken):
            with m.If(self.hdr != 3):
                m.d.sync += self.hdr.eq(self.hdr + 1)
                with m.Switch(self.hdr):
                    with m.Case(0):
                        m.d.sync += self.mem.eq(byte)
                    with m.Case(1):
                        m.d.sync += self.addr[:8].eq(byte)
                    with m.Case(2):
                        m.d.sync += self.addr[8:].eq(byte)
            with m.Elif(self.part == k - 1):
                full = self.n[-1]  # n == LOAD_WORDS
                m.d.comb += [
                    self.wr.en.eq(~full),
                    self.wr.addr.eq(self.n),
                    self.wr.data.eq(Cat(self.low[: 8 * (k - 1)], byte)),
                ]
                m.d.sync += self.part.eq(0)
                with m.If(full):
                    m.d.sync += self.over.eq(1)
                with m.Else():
                    m.d.sync += self.n.eq(self.n + 1)
            with m.Else():
                shifted = Cat(self.low[8:], byte) if k > 2 else byte
                m.d.sync += [self.low.eq(shifted), self.part.eq(self.part + 1)]

    def _verdicts(self) -> None:
        """``bad_length`` and ``outside`` as registers, updated every cycle (top level, not
        under the link's states): the words and the header stop changing two bytes (the
        CRC's) before the check, and these compares in front of the status registers'
        enables were the UP5K board's critical path."""
        m, n = self.m, self.n
        shift = (LOAD_WORDS - 1).bit_length()
        chunk = self.addr[shift:]
        aligned = self.addr[:shift] == 0
        inside = Const(0)
        for code, size in self.spec.mems.values():
            full_chunks, rest = divmod(size, LOAD_WORDS)
            fits = (chunk < full_chunks) | ((chunk == full_chunks) & (n <= rest))
            inside = inside | ((self.mem == code) & fits)
        self.bad_length, self.outside = Signal(), Signal()
        m.d.sync += [
            self.bad_length.eq((self.hdr != 3) | (self.part != 0) | (n == 0) | self.over),
            self.outside.eq(~aligned | ~inside),
        ]

    def check(self, crc_bad, status, reply_len):
        """Sets ``status`` (and an empty reply) when the checked ``LOAD`` is refused; returns
        that condition."""
        m, bad_length, outside = self.m, self.bad_length, self.outside
        with m.If(crc_bad):
            m.d.sync += reply_len.eq(0)
        with m.Elif(bad_length):
            m.d.sync += [status.eq(Status.BAD_LENGTH), reply_len.eq(0)]
        with m.Elif(outside):
            m.d.sync += [status.eq(Status.BAD_ADDRESS), reply_len.eq(0)]
        return crc_bad | bad_length | outside

    def begin_commit(self) -> None:
        """The checked request's words are about to be committed."""
        self.m.d.sync += [self.ci.eq(0), self.left.eq(self.n - 1)]

    def commit(self):
        """Drives ``load`` with the buffered words; true on the cycle the last is taken.
        ``left`` counts down to the last word, so the end is a compare on a register (the
        ``ci + 1 == n`` compare in front of the link's state was the UP5K board's critical
        path)."""
        m, load = self.m, self.load
        shift = (LOAD_WORDS - 1).bit_length()
        fire = load.valid & load.ready
        m.d.comb += [
            self.rd.addr.eq(Mux(fire, self.ci + 1, self.ci)),
            load.valid.eq(~self.busy),
            load.payload.mem.eq(self.mem),
            load.payload.addr.eq(Cat(self.ci, self.addr[shift:])),
            load.payload.data.eq(self.rd.data),
        ]
        with m.If(fire):
            m.d.sync += [self.ci.eq(self.ci + 1), self.left.eq(self.left - 1)]
        return fire & (self.left == 0)
