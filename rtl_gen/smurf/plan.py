"""``SmurfPlan``: the frozen parameters of one SMURF unit, its models and its hardware.

A unit evaluates ``K`` functions of the same ``M`` inputs (1..3). Per clock ``t`` of a run:

1. input ``m`` (a ``B``-bit code ``c_m``, probability ``p_m = c_m / 2^B``) makes
   ``basis_m.draws`` stream bits ``R < c_m``, each ``R`` a ``B``-bit slice of a leap-forward
   LFSR of that input (``draw_map``: an FSM draw has its own LFSR, Bernstein draws two to a
   16-bit LFSR);
2. each basis gives an index field (FSM: its counter *before* this clock's update; Bernstein:
   the popcount of this clock's bits); the fields concatenate into the ROM address
   ``a = s_0 | s_1 << b_0 | s_2 << (b_0 + b_1)``;
3. output ``k``'s sampling gate emits ``Y = R_g < W_k[a]`` (``W`` in ``0..2^Bw``, ``R_g`` a
   ``Bw``-bit value of one gate LFSR shared by all outputs);
4. clocks ``warmup .. warmup + L - 1`` count ``Y``; the result is the count, read as
   ``y = lo + (hi - lo) * count / L``.

Every run starts from the same state (counters at ``radix // 2``, LFSRs at their seeds), so a
result is a pure function of the input codes: ``reference(codes)`` is the bit-exact cycle
model, ``analytic(codes)`` the steady-state expectation; ``unit.SmurfUnit(plan)`` is its
hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .basis import Basis, basis_from_dict
from .lfsr import Lfsr, primitive_taps
from .solver import joint

__all__ = ["SmurfPlan", "SmurfOutput", "LFSR_WIDTH", "CODE_BITS"]

LFSR_WIDTH = 16
# Width of an output element of the engine (``SmurfEngine``): a count becomes the code
# ``q = min(round(count * 2^CODE_BITS / L), 2^CODE_BITS - 1)``, one byte on the host link.
CODE_BITS = 8
# Clocks after the warmup + L running clocks until ``o.valid``: the one that counts the last
# registered gate bit.
CONTROL_CYCLES = 1


def _mix(seed: int, i: int) -> int:
    """A non-zero 16-bit LFSR seed from the plan seed and the LFSR's number (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + (i + 1) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    z ^= z >> 31
    return (z & 0xFFFF) or 1


@dataclass(frozen=True)
class SmurfOutput:
    """One function of the unit: its name/expression, output range and gate thresholds.

    ``weights`` holds ``W[j]`` for the joint index ``j = s_0 + N_0 (s_1 + N_1 s_2)``.
    """

    name: str
    lo: float
    hi: float
    weights: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "lo": self.lo, "hi": self.hi, "weights": list(self.weights)}


@dataclass(frozen=True)
class SmurfPlan:
    inputs: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    bases: tuple[Basis, ...]
    outputs: tuple[SmurfOutput, ...]
    input_bits: int = 8
    coef_bits: int = 8
    length: int = 1024
    warmup: int = 0
    seed: int = 1
    encoding: str = "bipolar"
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        m = len(self.inputs)
        if not 1 <= m <= 3:
            raise ValueError(f"a SMURF unit takes 1 to 3 inputs, got {m}")
        if len(self.ranges) != m or len(self.bases) != m:
            raise ValueError("inputs, ranges and bases must have one entry per input")
        for name, (a, b) in zip(self.inputs, self.ranges):
            if not b > a:
                raise ValueError(f"input '{name}': range [{a}, {b}] is empty; give lo < hi")
        if not 1 <= self.input_bits <= LFSR_WIDTH:
            raise ValueError(
                f"input width {self.input_bits} bits is out of range; choose 1..{LFSR_WIDTH}"
            )
        if not 1 <= self.coef_bits <= LFSR_WIDTH:
            raise ValueError(
                f"coefficient width {self.coef_bits} bits is out of range; choose 1..{LFSR_WIDTH}"
            )
        if not 1 <= self.length <= 1 << 20:
            raise ValueError(f"stream length {self.length} is out of range; choose 1..2^20")
        if self.warmup < 0:
            raise ValueError(f"warmup {self.warmup} must not be negative")
        if not self.outputs:
            raise ValueError("a SMURF unit needs at least one output")
        for out in self.outputs:
            if len(out.weights) != self.states:
                raise ValueError(
                    f"output '{out.name}' has {len(out.weights)} weights; the "
                    f"bases have {self.states} joint states"
                )
            if min(out.weights) < 0 or max(out.weights) > 1 << self.coef_bits:
                raise ValueError(
                    f"output '{out.name}': weights must lie in 0..{1 << self.coef_bits}"
                )

    # --- sizes -----------------------------------------------------------------------------

    @property
    def m(self) -> int:
        return len(self.inputs)

    @property
    def states(self) -> int:
        return int(np.prod([b.size for b in self.bases]))

    @property
    def address_bits(self) -> int:
        return sum(b.index_bits for b in self.bases)

    @property
    def count_bits(self) -> int:
        return self.length.bit_length()

    @property
    def cycles(self) -> int:
        """Clocks the unit runs per evaluation: warmup plus stream length."""
        return self.warmup + self.length

    @property
    def latency_cycles(self) -> int:
        """Rising edges after the input transfer up to the one after which ``o.valid`` is high."""
        return self.cycles + CONTROL_CYCLES

    @property
    def deterministic_gate(self) -> bool:
        """All thresholds are 0 or 2^Bw: the gate needs no random source (e.g. Stanh)."""
        full = 1 << self.coef_bits
        return all(w in (0, full) for out in self.outputs for w in out.weights)

    def addresses(self) -> np.ndarray:
        """ROM address of each joint index (index fields concatenated, input 0 lowest)."""
        addr = np.zeros(1, dtype=np.int64)
        shift = 0
        for b in self.bases:
            addr = (addr[None, :] + (np.arange(b.size, dtype=np.int64)[:, None] << shift)).ravel()
            shift += b.index_bits
        return addr

    def rom(self, k: int) -> list[int]:
        """Output ``k``'s ROM image over all ``2^address_bits`` addresses (unused: 0)."""
        image = np.zeros(1 << self.address_bits, dtype=np.int64)
        image[self.addresses()] = self.outputs[k].weights
        return image.tolist()

    @cached_property
    def code_scale(self) -> tuple[int, int]:
        """``(C, S)`` with ``((count << CODE_BITS) + L // 2) * C >> S == round-half-up of
        count * 2^CODE_BITS / L`` for every count in ``0..L`` (a shift when L is a power of
        two; otherwise the smallest exact reciprocal, checked here over all counts)."""
        n = self.length
        if n & (n - 1) == 0:
            return 1, n.bit_length() - 1
        num = (np.arange(n + 1, dtype=np.int64) << CODE_BITS) + n // 2
        want = num // n
        # Exact once 2^S >= num_max * n (Granlund-Montgomery); num * C stays below 2^63.
        for shift in range(n.bit_length(), 2 * n.bit_length() + CODE_BITS + 2):
            c = -(-(1 << shift) // n)
            if ((num * c) >> shift == want).all():
                return c, shift
        raise AssertionError(f"no exact reciprocal of {n}")

    def output_codes(self, counts: np.ndarray) -> np.ndarray:
        """Counts to the engine's ``CODE_BITS``-bit output elements: ``min(round(count *
        2^CODE_BITS / L), 2^CODE_BITS - 1)``, halves rounded up (see ``code_scale``)."""
        counts = np.asarray(counts, dtype=np.int64)
        q = ((counts << CODE_BITS) + self.length // 2) // self.length
        return np.minimum(q, (1 << CODE_BITS) - 1)

    def decode_codes(self, q: np.ndarray) -> np.ndarray:
        """Output elements ``(..., K)`` to real outputs ``lo + (hi - lo) * q / 2^CODE_BITS``."""
        lo = np.array([o.lo for o in self.outputs])
        hi = np.array([o.hi for o in self.outputs])
        return lo + (hi - lo) * np.asarray(q) / (1 << CODE_BITS)

    # --- random sources --------------------------------------------------------------------

    @property
    def draws_per_lfsr(self) -> int:
        """Input draws one LFSR serves: ``LFSR_WIDTH // input_bits`` (2 for 8-bit codes), only
        for a Bernstein basis (a popcount needs its draws independent within a clock, and the
        fresh bytes of one leap-forward step are); an FSM's one draw keeps its own LFSR (the
        measured Monte-Carlo RMSE of FSM units grew 5-19% when sharing one with the gate)."""
        return max(1, LFSR_WIDTH // self.input_bits)

    @cached_property
    def draw_map(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Per input, per draw: ``(LFSR index within the input, bit offset)``; the draw's
        value is ``(state >> offset) & (2^B - 1)``."""
        out = []
        for b in self.bases:
            per = self.draws_per_lfsr if b.kind == "bernstein" else 1
            out.append(tuple((d // per, (d % per) * self.input_bits) for d in range(b.draws)))
        return tuple(out)

    @cached_property
    def lfsrs(self) -> tuple[tuple[Lfsr, ...], ...]:
        """Per input, its LFSRs (``draw_map``; each leaps the bits its draws take); then
        ``(gate,)``. Distinct taps and seeds for all; each the unused taps whose leap map
        needs the fewest LUT4s (``primitive_taps``)."""
        leaps = []
        for draws in self.draw_map:
            for j in range(max(src for src, _ in draws) + 1):
                leaps.append(self.input_bits * sum(1 for src, _ in draws if src == j))
        leaps.append(self.coef_bits)
        used, taps = set(), []
        for leap in leaps:
            pick = next(
                t for t in primitive_taps(LFSR_WIDTH, 2 * len(leaps), leap=leap) if t not in used
            )
            used.add(pick)
            taps.append(pick)
        out, i = [], 0
        for draws in self.draw_map:
            n = max(src for src, _ in draws) + 1
            out.append(
                tuple(
                    Lfsr(LFSR_WIDTH, taps[i + j], _mix(self.seed, i + j), leaps[i + j])
                    for j in range(n)
                )
            )
            i += n
        out.append((Lfsr(LFSR_WIDTH, taps[i], _mix(self.seed, i), self.coef_bits),))
        return tuple(out)

    @property
    def n_lfsrs(self) -> int:
        return sum(len(g) for g in self.lfsrs)

    # --- encodings -------------------------------------------------------------------------

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Real inputs ``(n, M)`` to codes: ``round((x - a) / (b - a) * 2^B)``, saturated."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        lo = np.array([r[0] for r in self.ranges])
        hi = np.array([r[1] for r in self.ranges])
        full = 1 << self.input_bits
        return np.clip(np.rint((x - lo) / (hi - lo) * full), 0, full - 1).astype(np.int64)

    def decode_inputs(self, codes: np.ndarray) -> np.ndarray:
        """The real value each code stands for: ``a + (b - a) * c / 2^B``."""
        codes = np.atleast_2d(codes)
        lo = np.array([r[0] for r in self.ranges])
        hi = np.array([r[1] for r in self.ranges])
        return lo + (hi - lo) * codes / (1 << self.input_bits)

    def decode_outputs(self, counts: np.ndarray) -> np.ndarray:
        """Counts ``(..., K)`` to real outputs ``lo + (hi - lo) * count / L``."""
        lo = np.array([o.lo for o in self.outputs])
        hi = np.array([o.hi for o in self.outputs])
        return lo + (hi - lo) * np.asarray(counts) / self.length

    # --- models ----------------------------------------------------------------------------

    def analytic(self, codes: np.ndarray) -> np.ndarray:
        """Steady-state output probability ``(n, K)`` with the quantised thresholds."""
        codes = np.atleast_2d(codes)
        ps = [codes[:, m] / (1 << self.input_bits) for m in range(self.m)]
        pi = joint(self.bases, ps)
        w = np.array([o.weights for o in self.outputs], dtype=float) / (1 << self.coef_bits)
        return pi @ w.T

    def reference(self, codes: np.ndarray) -> np.ndarray:
        """The cycle-accurate, bit-exact count of ones ``(n, K)`` the RTL produces."""
        return self.simulate(codes)[0]

    def simulate(self, codes: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
        """Counts ``(S, n, K)``; ``seeds`` (``(S, n_lfsrs)``, non-zero) replaces the LFSR seeds.

        Without ``seeds``, ``S = 1`` and the plan's seeds are used (the RTL's sequences).
        """
        codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
        n, t_total = len(codes), self.cycles
        flat = [l for group in self.lfsrs for l in group]
        if seeds is None:
            seeds = np.array([[l.seed for l in flat]])
        seeds = np.asarray(seeds, dtype=np.int64)
        s_count = len(seeds)
        states_ = [l.states(t_total, seeds[:, i]) for i, l in enumerate(flat)]
        gate = states_[-1] & ((1 << self.coef_bits) - 1)  # (T, S)
        mask = (1 << self.input_bits) - 1
        values, first = [], 0  # per draw, (T, S)
        for group, draws in zip(self.lfsrs, self.draw_map):
            values += [(states_[first + src] >> off) & mask for src, off in draws]
            first += len(group)
        tables = np.array([self.rom(k) for k in range(len(self.outputs))])  # (K, 2^A)
        states = [b.reset(s_count * n).reshape(s_count, n) for b in self.bases]
        counts = np.zeros((s_count, n, len(self.outputs)), dtype=np.int64)
        for t in range(t_total):
            addr = np.zeros((s_count, n), dtype=np.int64)
            shift, i = 0, 0
            bits_per_input = []
            for m, b in enumerate(self.bases):
                bits = np.stack(
                    [values[i + d][t][:, None] < codes[None, :, m] for d in range(b.draws)]
                )  # (draws, S, n)
                i += b.draws
                bits_per_input.append(bits)
                addr |= b.index(states[m], bits) << shift
                shift += b.index_bits
            if t >= self.warmup:
                thresholds = tables[:, addr]  # (K, S, n)
                counts += (gate[t][None, :, None] < thresholds).transpose(1, 2, 0)
            states = [b.step(s, bits) for b, s, bits in zip(self.bases, states, bits_per_input)]
        return counts

    @property
    def engine_latency_cycles(self) -> int:
        """``SmurfEngine`` cycles from the first input transfer to the last output transfer,
        inclusive, with the input always valid and the output always ready."""
        return self.m + self.latency_cycles + len(self.outputs)

    # --- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "inputs": list(self.inputs),
            "ranges": [list(r) for r in self.ranges],
            "bases": [b.to_dict() for b in self.bases],
            "outputs": [o.to_dict() for o in self.outputs],
            "input_bits": self.input_bits,
            "coef_bits": self.coef_bits,
            "length": self.length,
            "warmup": self.warmup,
            "seed": self.seed,
            "encoding": self.encoding,
            "lfsrs": [
                [{"taps": list(l.taps), "seed": l.seed, "leap": l.leap} for l in g]
                for g in self.lfsrs
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> SmurfPlan:
        return cls(
            inputs=tuple(d["inputs"]),
            ranges=tuple(tuple(r) for r in d["ranges"]),
            bases=tuple(basis_from_dict(b) for b in d["bases"]),
            outputs=tuple(
                SmurfOutput(o["name"], o["lo"], o["hi"], tuple(o["weights"])) for o in d["outputs"]
            ),
            input_bits=d["input_bits"],
            coef_bits=d["coef_bits"],
            length=d["length"],
            warmup=d["warmup"],
            seed=d["seed"],
            encoding=d["encoding"],
        )
