"""The spiking engine: ST-BIF neuron arrays behind accumulate-only synapses, layer-sequential,
stopping on network-wide silence (issue #7); IF, LIF and CubaLIF arrays (and an LI readout) in
a fixed-step mode for NIR graphs, with convolutions as shared kernels (``ConvTaps``).

Notes against ``specs/snn.md`` (evidence from this implementation):

- The conversion is exact against the IR golden, not approximate: the spec's
  ``theta = round(2**k * s_out / (s_in * s_w))`` would differ from the IR's fixed-point
  requantizer; folding the multiplier into the synapse weights and taking
  ``theta = 2**(shift - e)`` (``frontends.snn.convert``) gives zero mismatches, ties included.
- At 8-bit activations (onnxruntime QDQ) the settle time is set by the levels: the digits MLP
  takes 163 steps on average, 256 at most (proven bound 511), not the ~10 steps the spec
  expects for L = 16.
- The NIR N-MNIST CNN's first conv has padding 1 (16x16 maps, 8970 neurons). Expanded into
  dense synapse matrices its convolutions are 28.5 M words; kept as shared kernels behind
  ``ConvTaps`` (a per-source tap table, one tap a cycle, no multiplier) the synapses are
  39,584 words (the pooled Affine 128->256 too, as a kernel the size of its 8x4x4 map).
- One adder per layer walks the taps serially: on synthetic spikes (rate 0.1, 8 steps) the
  N-MNIST CNN takes about 108 k cycles per time step, almost all of it scattering spikes
  through the kernels (86 to 256 taps per spike), far from the spec's 1 ms for 300 bins.
- CubaLIF costs one more memory word per neuron (the current, 13 bits for a 6-input layer at
  alpha = 3/4) and a second shift-subtract; both leaks are shifts (or shifted adds for a
  fixed-point factor), so the array still needs no multiplier. A CubaLIF layer is swept every
  step even without input spikes: its current keeps charging the membrane.
- A silent step ends the run even at ``t = 0``: in the layer-sequential schedule nothing can
  change after a step without spikes.
"""

from .conv_taps import ConvTaps
from .engine import SnnEngine
from .if_plan import IfPlan
from .layer import StbifArray
from .plan import SnnPlan

__all__ = ["SnnPlan", "IfPlan", "SnnEngine", "StbifArray", "ConvTaps"]
