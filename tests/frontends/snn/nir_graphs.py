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
        hidden = nir.IF(
            r=np.ones((3, 3, 3)), v_threshold=np.ones((3, 3, 3)), v_reset=np.zeros((3, 3, 3))
        )
    else:
        hidden = nir.CubaLIF(
            tau_syn=np.ones(27),
            tau_mem=np.ones(27),
            r=np.ones(27),
            v_leak=np.zeros(27),
            v_threshold=np.ones(27),
        )
    nodes = {
        "input": nir.Input(np.array([2, 6, 6])),
        "conv": nir.Conv2d(
            input_shape=(6, 6), weight=w0, stride=2, padding=1, dilation=1, groups=1, bias=b0
        ),
        "if1": hidden,
        "pool": nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0])
        ),
        "flat": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=w1, bias=np.zeros(4, np.float32)),
        "if2": nir.IF(r=np.ones(4), v_threshold=np.ones(4), v_reset=np.zeros(4)),
        "output": nir.Output(np.array([4])),
    }
    edges = [
        ("input", "conv"),
        ("conv", "if1"),
        ("if1", "pool"),
        ("pool", "flat"),
        ("flat", "fc"),
        ("fc", "if2"),
        ("if2", "output"),
    ]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=neuron == "IF")


def small_sinabs(seed=0, *, neuron="IF", side=12):
    """The sinabs N-MNIST CNN's shape at a small size: 2 x side x side -> Conv2d 4 5x5 s2 p1
    -> IF -> Conv2d 4 3x3 p1 -> IF -> SumPool2d 2 -> Conv2d 3 3x3 p1 -> IF -> SumPool2d 2 ->
    Flatten -> Affine -> IF -> Affine 4 -> IF (``neuron="LIF"``: LIF neurons, tau 4 dt;
    ``"CubaLIF"``: tau_syn 2 dt, tau_mem 4 dt, snnTorch's gains)."""
    import nir

    rng = np.random.default_rng(seed)
    s1 = (side + 2 - 5) // 2 + 1
    s2, s3 = s1 // 2, s1 // 4
    n_flat = 3 * s3 * s3

    def neurons(shape):
        ones, zeros = np.ones(shape), np.zeros(shape)
        if neuron == "IF":
            return nir.IF(r=ones, v_threshold=ones, v_reset=zeros)
        if neuron == "CubaLIF":
            return nir.CubaLIF(
                tau_syn=ones * 2e-4,
                tau_mem=ones * 4e-4,
                r=ones * 4,
                v_leak=zeros,
                v_threshold=ones,
                v_reset=zeros,
                w_in=ones * 2,
            )
        return nir.LIF(tau=ones * 4e-4, r=ones * 4, v_leak=zeros, v_threshold=ones, v_reset=zeros)

    def conv(cout, cin, k, stride, padding, size):
        return nir.Conv2d(
            input_shape=(size, size),
            weight=rng.normal(0.15, 0.5, (cout, cin, k, k)).astype(np.float32),
            stride=stride,
            padding=padding,
            dilation=1,
            groups=1,
            bias=np.zeros(cout, np.float32),
        )

    nodes = {
        "input": nir.Input(np.array([2, side, side])),
        "c0": conv(4, 2, 5, 2, 1, side),
        "n0": neurons((4, s1, s1)),
        "c1": conv(4, 4, 3, 1, 1, s1),
        "n1": neurons((4, s1, s1)),
        "p1": nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
        ),
        "c2": conv(3, 4, 3, 1, 1, s2),
        "n2": neurons((3, s2, s2)),
        "p2": nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
        ),
        "flat": nir.Flatten(input_type={"input": np.array([3, s3, s3])}, start_dim=0, end_dim=-1),
        "fc0": nir.Affine(
            weight=rng.normal(0.1, 0.5, (6, n_flat)).astype(np.float32),
            bias=np.zeros(6, np.float32),
        ),
        "n3": neurons((6,)),
        "fc1": nir.Affine(
            weight=rng.normal(0.1, 0.5, (4, 6)).astype(np.float32), bias=np.zeros(4, np.float32)
        ),
        "n4": neurons((4,)),
        "output": nir.Output(np.array([4])),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False)


def tiny_mlp(seed=0, *, neuron="LIF", tau=4e-4, bias=True):
    """Input 6 -> Affine 5 -> IF/LIF -> Affine 3 -> IF/LIF -> Output (LIF: r = tau / dt, so
    the input gain is one; beta = 1 - dt / tau)."""
    import nir

    rng = np.random.default_rng(seed)

    def neurons(n):
        ones, zeros = np.ones(n), np.zeros(n)
        if neuron == "IF":
            return nir.IF(r=ones, v_threshold=ones, v_reset=zeros)
        return nir.LIF(
            tau=ones * tau, r=ones * tau / 1e-4, v_leak=zeros, v_threshold=ones, v_reset=zeros
        )

    nodes = {
        "input": nir.Input(np.array([6])),
        "fc0": nir.Affine(
            weight=rng.normal(0.2, 0.6, (5, 6)).astype(np.float32),
            bias=(rng.normal(0, 0.1, 5) * bias).astype(np.float32),
        ),
        "n0": neurons(5),
        "fc1": nir.Affine(
            weight=rng.normal(0.2, 0.6, (3, 5)).astype(np.float32),
            bias=(rng.normal(0, 0.1, 3) * bias).astype(np.float32),
        ),
        "n1": neurons(3),
        "output": nir.Output(np.array([3])),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False)


def tiny_cuba(
    seed=0,
    *,
    tau_syn=4e-4,
    tau_mem=8e-4,
    readout="CubaLIF",
    n_in=8,
    hidden=10,
    n_out=4,
    w_in=None,
    r=None,
    threshold=1.0,
):
    """Input n_in -> Affine hidden -> CubaLIF -> Affine n_out -> CubaLIF (or ``readout="LI"``,
    tau ``tau_mem``) -> Output. snnTorch's export: ``w_in = tau_syn / dt``, ``r = tau_mem /
    dt`` (both gains one); with the defaults alpha = 1 - 2**-2, beta = 1 - 2**-3 at dt 1e-4."""
    import nir

    rng = np.random.default_rng(seed)
    dt = 1e-4

    def cuba(n):
        ones, zeros = np.ones(n), np.zeros(n)
        return nir.CubaLIF(
            tau_syn=ones * tau_syn,
            tau_mem=ones * tau_mem,
            r=ones * (tau_mem / dt if r is None else r),
            v_leak=zeros,
            v_threshold=ones * threshold,
            v_reset=zeros,
            w_in=ones * (tau_syn / dt if w_in is None else w_in),
        )

    last = (
        cuba(n_out)
        if readout == "CubaLIF"
        else nir.LI(
            tau=np.ones(n_out) * tau_mem, r=np.ones(n_out) * tau_mem / dt, v_leak=np.zeros(n_out)
        )
    )
    nodes = {
        "input": nir.Input(np.array([n_in])),
        "fc0": nir.Affine(
            weight=rng.normal(0.1, 0.4, (hidden, n_in)).astype(np.float32),
            bias=rng.normal(0, 0.02, hidden).astype(np.float32),
        ),
        "n0": cuba(hidden),
        "fc1": nir.Affine(
            weight=rng.normal(0.05, 0.4, (n_out, hidden)).astype(np.float32),
            bias=np.zeros(n_out, np.float32),
        ),
        "n1": last,
        "output": nir.Output(np.array([n_out])),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False)


def cuba_edges(*, theta=5.0, hidden=False):
    """One CubaLIF layer (tau_syn 4 dt, tau_mem 8 dt, snnTorch gains: the integer weights
    and threshold are the float ones) behind integer weights that reach its edges: neuron 0
    has every weight +127 and neuron 1 every weight -127 (all inputs spiking drive the current
    to +-4 * 762 and neuron 1's membrane to about -8 * 3048), neurons 2..5 small weights in
    [-3, 3] whose membranes land on the threshold ``theta``. ``hidden``: a second CubaLIF
    layer (Affine 6 -> 3 with a bias) after it."""
    import nir

    dt = 1e-4
    rng = np.random.default_rng(11)
    w = np.zeros((6, 6), np.float32)
    w[0], w[1] = 127, -127
    w[2:] = rng.integers(-3, 4, (4, 6))

    def cuba(n, thr):
        ones, zeros = np.ones(n), np.zeros(n)
        return nir.CubaLIF(
            tau_syn=ones * 4 * dt,
            tau_mem=ones * 8 * dt,
            r=ones * 8,
            v_leak=zeros,
            v_threshold=ones * thr,
            v_reset=zeros,
            w_in=ones * 4,
        )

    nodes = {"input": nir.Input(np.array([6])), "fc0": nir.Linear(weight=w), "n0": cuba(6, theta)}
    if hidden:
        nodes["fc1"] = nir.Affine(
            weight=rng.normal(0, 0.5, (3, 6)).astype(np.float32),
            bias=rng.normal(0, 0.05, 3).astype(np.float32),
        )
        nodes["n1"] = cuba(3, 1.0)
    nodes["output"] = nir.Output(np.array([3 if hidden else 6]))
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False)


def edge_spikes(steps=40, samples=4, seed=0):
    """(samples, steps, 6) spikes for ``cuba_edges``: sample 0 every input spiking every
    step (the current and membrane extremes), sample 1 every input for 24 steps then none, the
    rest random at rates 0.5 and 0.2."""
    rng = np.random.default_rng(seed)
    x = np.zeros((samples, steps, 6), np.int64)
    x[0] = 1
    x[1, :24] = 1
    for s in range(2, samples):
        x[s] = rng.random((steps, 6)) < (0.5 if s % 2 == 0 else 0.2)
    return x


def sinabs_cnn(seed=0):
    """The NIR paper's sinabs N-MNIST CNN (nodes named as in its released ``cnn_sinabs.nir``)
    with seeded weights of the trained ones' spread: 2x34x34 -> Conv2d 16 5x5 s2 p1 -> IF ->
    Conv2d 16 3x3 p1 -> IF -> SumPool2d 2 -> Conv2d 8 3x3 p1 -> IF -> SumPool2d 2 -> Flatten
    -> Affine 128->256 -> IF -> Affine 256->10 -> IF; thresholds 1, no biases."""
    import nir

    rng = np.random.default_rng(seed)

    def if_(*shape):
        return nir.IF(r=np.ones(shape), v_threshold=np.ones(shape), v_reset=np.zeros(shape))

    def conv(cout, cin, k, stride, size, std):
        return nir.Conv2d(
            input_shape=(size, size),
            weight=rng.normal(0.0, std, (cout, cin, k, k)).astype(np.float32),
            stride=stride,
            padding=1,
            dilation=1,
            groups=1,
            bias=np.zeros(cout, np.float32),
        )

    def pool():
        return nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
        )

    nodes = {
        "input": nir.Input(np.array([2, 34, 34])),
        "0": conv(16, 2, 5, 2, 34, 0.24),
        "1": if_(16, 16, 16),
        "2": conv(16, 16, 3, 1, 16, 0.21),
        "3": if_(16, 16, 16),
        "4": pool(),
        "5": conv(8, 16, 3, 1, 8, 0.18),
        "6": if_(8, 8, 8),
        "7": pool(),
        "8": nir.Flatten(input_type={"input": np.array([8, 4, 4])}, start_dim=0, end_dim=-1),
        "9": nir.Affine(
            weight=rng.normal(0.0, 0.17, (256, 128)).astype(np.float32),
            bias=np.zeros(256, np.float32),
        ),
        "10": if_(256),
        "11": nir.Affine(
            weight=rng.normal(0.0, 0.15, (10, 256)).astype(np.float32),
            bias=np.zeros(10, np.float32),
        ),
        "12": if_(10),
        "output": nir.Output(np.array([10])),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False)
