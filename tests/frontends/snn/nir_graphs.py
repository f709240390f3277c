"""Small NIR graphs for the spiking engine's tests."""

import numpy as np


def tiny_cnn(seed=0, *, bias=False, neuron="IF"):
    """Input 2x6x6 -> Conv2d 3x3x3 s2 p1 -> IF -> SumPool2d 2 s1 -> Flatten -> Affine 12->4
    -> IF -> Output."""
    import nir

    rng = np.random.default_rng(seed)
    w0 = rng.normal(0, 0.5, (3, 2, 3, 3)).astype(np.float32)
    w1 = rng.normal(0, 0.5, (4, 12)).astype(np.float32)
    b0 = rng.normal(0, 0.05, 3).astype(np.float32) if bias else np.zeros(3, np.float32)
    if neuron == "IF":
        hidden = nir.IF(r=np.ones((3, 3, 3)), v_threshold=np.ones((3, 3, 3)),
                        v_reset=np.zeros((3, 3, 3)))
    else:
        hidden = nir.CubaLIF(tau_syn=np.ones(27), tau_mem=np.ones(27), r=np.ones(27),
                             v_leak=np.zeros(27), v_threshold=np.ones(27))
    nodes = {"input": nir.Input(np.array([2, 6, 6])),
             "conv": nir.Conv2d(input_shape=(6, 6), weight=w0, stride=2, padding=1, dilation=1,
                                groups=1, bias=b0),
             "if1": hidden,
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]),
                                   padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0,
                                 end_dim=-1),
             "fc": nir.Affine(weight=w1, bias=np.zeros(4, np.float32)),
             "if2": nir.IF(r=np.ones(4), v_threshold=np.ones(4), v_reset=np.zeros(4)),
             "output": nir.Output(np.array([4]))}
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"),
             ("flat", "fc"), ("fc", "if2"), ("if2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=neuron == "IF")
