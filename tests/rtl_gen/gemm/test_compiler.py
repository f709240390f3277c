"""The compiler and the overlay model: the model running the compiled program equals the IR
golden of the transformed graph bit for bit, for every split; the split chooser minimises
the modelled latency; errors name the node."""

import numpy as np
import pytest

from frontends import reference
from frontends.errors import ModelError
from frontends.ir import Graph, Node
from frontends.vectors import golden_vectors
from rtl_gen.gemm import GemmConfig, compile_graph, model, timing
from rtl_gen.gemm.layers import LOWERINGS
from rtl_gen.gemm.split import layer_cycles

from .nets import dense_chain, qdq_cnn, saturating_chain

CFG = GemmConfig(dsp_lanes=4, lut_lanes=8)


def _check(graph, config, split):
    program = compile_graph(graph, config, split=split)
    vectors = golden_vectors(program.graph, random=8, seed=1)
    assert np.array_equal(model.run(program, vectors["inputs"]), vectors["outputs"])
    return program


@pytest.mark.parametrize("split", [0.0, 1.0, 0.5, "auto"])
def test_model_equals_golden_on_a_qdq_mlp(mlp_graph, split):
    program = _check(mlp_graph, CFG, split)
    for layer in program.layers:
        assert layer.n_dsp + layer.n_lut == layer.n
        if split == 0.0:
            assert layer.n_lut == 0
        if split == 1.0:
            assert layer.n_dsp == 0


def test_odd_shapes_and_saturation():
    # K = 13, 7 (not multiples of anything), LUT channels 11 (not a multiple of 8 lanes)
    program = _check(dense_chain((13, 19, 7, 11)), CFG, 0.6)
    assert [l.n_lut for l in program.layers] == [11, 4, 7]
    program = _check(saturating_chain(), CFG, 0.0)
    codes = np.array([[255] * 37, [0] * 37])
    env = reference.run(program.graph, codes)
    assert {255, 0} <= set(env["y0"].reshape(-1).tolist())  # both clamps reached
    assert program.needs["acc_bits"] == 22  # 37 * 255 * 128 < 2**21


def test_lut_channels_are_the_easiest_and_contiguous():
    graph = dense_chain((16, 12, 4), weight_max=7, seed=3)  # fits 4 bits: error 0
    w = dict(graph.nodes[0].weights)
    w["weight"] = w["weight"].copy()
    w["weight"][5] = w["weight"][5] * 18 + 1  # channel 5: int8 weights
    nodes = (Node("fc0", "dense", ("x",), ("y0",), graph.nodes[0].attrs, w, "Gemm"), graph.nodes[1])
    graph = Graph("g", graph.tensors, nodes, graph.inputs, graph.outputs)
    program = compile_graph(graph, CFG, split={"fc0": 11 / 12})
    assert program.layers[0].n_lut == 11 and program.layers[0].lut_error == 0.0
    # the only channel the DSP core keeps is the int8 one, at physical position 0
    assert program.layout["y0"][5] == 0
    assert program.graph.nodes[0] is graph.nodes[0]  # nothing requantized


def test_split_chooser_minimises_modelled_cycles():
    graph = dense_chain((40, 30, 9))
    program = compile_graph(graph, CFG, split="auto", tau=1.0)
    for node, info in zip(graph.nodes, program.layers):
        layer = LOWERINGS["dense"](node, graph)
        costs = [layer_cycles(layer, CFG, s) for s in range(layer.items + 1)]
        assert layer_cycles(layer, CFG, info.n_lut) == min(costs)
        assert 0 < info.n_lut < info.n  # both cores work
    # tau = 0: only channels that fit the LUT precision exactly may move
    assert all(l.n_lut == 0 for l in compile_graph(graph, CFG, tau=0.0).layers)


def test_model_cycles_add_up():
    program = compile_graph(dense_chain((13, 19, 7, 11)), CFG, split=0.5, stream=False)
    sched = model.schedule(program)
    n_layers = sum(l.model_cycles for l in program.layers)
    assert sched.fetch[program.layers[0].first] == 2 + 13  # LOAD: fetch, exec, 13 inputs
    assert sched.fetch[program.layers[-1].last] == 15 + n_layers
    # STORE: EXEC once the last POST's pipeline is empty (the RTL sees that a cycle late),
    # a two-cycle read pipeline, one element a cycle; cycles count both ends
    last_post = max(i for i, ins in enumerate(program.instrs) if ins.op == "POST")
    post_exec = sched.fetch[last_post] + 1
    idle = post_exec + timing.post_cycles(program.instrs[last_post]["n"], 1) - 1
    wait = max(0, idle + 1 - (sched.fetch[program.layers[-1].last] + 1))
    assert sched.cycles == 13 + n_layers + wait + 1 + 2 + 11 + 1


def test_first_layer_streams_its_input():
    graph = dense_chain((13, 19, 7, 11))
    plain = compile_graph(graph, CFG, split=0.5, stream=False)
    streamed = compile_graph(graph, CFG, split=0.5)
    ops = [(i.op, i.fields.get("stream", 0)) for i in streamed.instrs[:6]]
    assert ops == [("CFG", 0), ("GEMM", 1), ("CFG", 0), ("GEMM", 1), ("LOAD", 0), ("PCFG", 0)]
    assert streamed.layers[0].first == 5  # its cycles count from the LOAD's end
    s, p = model.schedule(streamed), model.schedule(plain)
    assert s.fetch[streamed.layers[-1].last] == s.fetch[5] + sum(
        l.model_cycles for l in streamed.layers
    )
    # the first layer's 19 channels take 2 tiles (split 0.5 of CFG's lanes): its K = 13
    # steps of the first tile run behind the 13 input writes instead of after them
    assert p.cycles - s.cycles >= 13 - 2
    x = golden_vectors(graph, random=4, seed=1)["inputs"]
    assert np.array_equal(model.run(streamed, x), model.run(plain, x))


def test_posts_run_early_only_before_safe_instructions():
    # a POST may let the next instructions start while its pipeline drains only when up to
    # the next POST or streamed STORE nothing touches the post unit or reads unguarded
    program = compile_graph(dense_chain((13, 19, 7, 11)), CFG, split=0.5)
    instrs = program.instrs
    for i, ins in enumerate(instrs):
        if ins.op != "POST":
            continue
        following = [n.op for n in instrs[i + 1 :]]
        stop = next(j for j, op in enumerate(following) if op in ("POST", "STORE", "PCFG"))
        safe = following[stop] == "POST" or (
            following[stop] == "STORE" and instrs[i + 1 + stop]["stream"]
        )
        assert ins["early"] == int(safe), (i, following[: stop + 1])
    assert any(i["early"] for i in instrs if i.op == "POST")
    assert not all(i["early"] for i in instrs if i.op == "POST")


def test_errors_name_the_node():
    graph = dense_chain((8, 4), weights=[np.full((4, 8), 300)])
    with pytest.raises(
        ModelError,
        match=r"^node 'fc0' \(Gemm\): weight values of output "
        r"channel 0 span \[300, 300\]; the DSP core "
        r"multiplies 8-bit signed weights$",
    ):
        compile_graph(graph, CFG, split=0.0)
    with pytest.raises(
        ModelError,
        match=r"^model 'chain' needs act memory depth 12; the "
        r"overlay has 8$",
    ):
        compile_graph(graph, GemmConfig(act_depth=8), split=1.0, fit=False)


def test_lut_only_and_dsp_only_configs_take_everything():
    graph = dense_chain((10, 6, 3))
    assert all(l.n_lut == l.n for l in _check(graph, GemmConfig(dsp_lanes=0), "auto").layers)
    assert all(l.n_dsp == l.n for l in _check(graph, GemmConfig(lut_lanes=0), "auto").layers)


def test_ternary_lut_core():
    program = _check(
        dense_chain((20, 9, 5)), GemmConfig(dsp_lanes=2, lut_lanes=4, lut_mode="ternary"), 1.0
    )
    for node in program.graph.nodes:
        assert set(np.unique(node.weights["weight"])) <= {-1, 0, 1}


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    from frontends.onnx_import import import_onnx

    return import_onnx(qdq_cnn(tmp_path_factory.mktemp("cnn") / "cnn.onnx"))


@pytest.mark.parametrize("split", [0.0, 1.0, 0.5, "auto"])
def test_model_equals_golden_on_a_cnn(cnn, split):
    """conv (pad 1, stride 2), depthwise, pointwise, residual add, global average pool."""
    program = _check(cnn, CFG, split)
    ops = [l.op for l in program.layers]
    assert ops == ["conv", "conv", "conv", "add", "conv", "avgpool", "dense"]
    if split == 0.5:
        assert [l.n_lut for l in program.layers] == [4, 4, 4, 0, 6, 6, 5]


def test_sweep_marks_a_pareto_set():
    from rtl_gen.gemm.cost import estimate, sweep

    graph = dense_chain((24, 16, 5))
    points = sweep(graph, family="ice40", dsp_options=(0, 2, 4), lut_options=(0, 4, 8))
    assert len(points) == 8 and any(p.pareto for p in points)
    fastest = min(points, key=lambda p: (p.cycles, p.lut4))
    smallest = min(points, key=lambda p: (p.lut4, p.cycles))
    assert fastest.pareto and smallest.pareto
    assert estimate(GemmConfig(dsp_lanes=4, lut_lanes=8), "ice40")["dsp"] == 6


def test_same_graph_same_program_and_verilog():
    from rtl_gen.emit import emit_verilog
    from rtl_gen.gemm.emit import TOP, create_engine

    graph = dense_chain((9, 7, 3))
    a, b = (compile_graph(graph, CFG, split="auto") for _ in range(2))
    assert a.words == b.words and a.wd == b.wd and a.wl == b.wl
    assert emit_verilog(create_engine(a), TOP) == emit_verilog(create_engine(b), TOP)


BITSERIAL = GemmConfig(dsp_lanes=4, lut_lanes=8, lut_mode="bitserial")


@pytest.mark.parametrize("split", [0.0, 0.6, 1.0, "auto"])
def test_bitserial_core_runs_each_layer_at_its_precision(split):
    program = _check(dense_chain((13, 19, 7, 11), seed=5), BITSERIAL, split)
    cfgs = [i for i in program.instrs if i.op == "CFG" and i.core == "lut"]
    assert [c["wbits"] for c in cfgs] == [l.lut_wbits for l in program.layers if l.n_lut]
    for layer, node in zip(program.layers, program.graph.nodes):
        if layer.n_lut:
            lut_rows = node.weights["weight"][
                np.argsort(program.layout[node.outputs[0]])[layer.n_dsp :]
            ]
            assert 2 <= layer.lut_wbits <= 8
            assert np.abs(lut_rows).max() <= 1 << (layer.lut_wbits - 1)


def test_bitserial_split_chooser_searches_precision_and_count():
    graph = dense_chain((40, 30, 9), weight_max=7)  # exact at 4 bits and above
    program = compile_graph(graph, BITSERIAL, split="auto", tau=0.0)
    for node, info in zip(graph.nodes, program.layers):
        layer = LOWERINGS["dense"](node, graph)
        costs = {
            (s, b): layer_cycles(layer, BITSERIAL, s, b)
            for b in range(4, 9)
            for s in range(layer.items + 1)
        }
        assert layer_cycles(layer, BITSERIAL, info.n_lut, info.lut_wbits or 8) == min(
            costs.values()
        )
        assert info.n_lut == 0 or info.lut_wbits == 4  # exact either way: fewest planes


def test_packed_dsp_lanes_offset_unsigned_activations():
    graph = dense_chain((13, 19, 7, 11))
    plain = compile_graph(graph, CFG, split=0.5)
    packed = _check(graph, GemmConfig(dsp_lanes=4, lut_lanes=8, dsp_pack=True), 0.5)
    w = [n.weights["weight"] for n in plain.graph.nodes]
    # uint8 inputs: the DSP channels' bias carries 128 * sum(w); the LUT channels' does not
    layer = packed.layers[0]
    dsp_rows = w[0][np.argsort(packed.layout["y0"])[: layer.n_dsp]]
    delta = packed.params[: layer.n, 0] - plain.params[: layer.n, 0]
    assert np.array_equal(delta[: layer.n_dsp], 128 * dsp_rows.sum(axis=1))
    assert not delta[layer.n_dsp :].any()


@pytest.mark.parametrize("split", [0.0, 1.0, "auto"])
def test_max_pool_and_concat_run_on_the_post_unit(pool_cat, split):
    program = _check(pool_cat, CFG, split)
    assert [l.op for l in program.layers] == [
        "conv",
        "maxpool",
        "conv",
        "concat",
        "maxpool",
        "avgpool",
        "dense",
    ]
    maxes = [i for i in program.instrs if i.op == "MAX"]
    assert [i["k"] for i in maxes] == [4, 1, 1, 9]  # 2x2 pool, two concat inputs, 3x3
    assert (program.idx == -1).any()  # the padded pool's border windows


def test_activation_regions_are_reused_after_their_last_reader():
    # x (40) and y0 (30) are live together; y1 goes where x was, y2 beside it: the buffer
    # holds two consecutive tensors, not all four
    program = _check(dense_chain((40, 30, 20, 10)), CFG, 0.5)
    assert program.needs["act_depth"] == 40 + 30
    assert program.act_base["y1"] == 0


def test_a_program_too_large_for_the_board_names_the_memory_and_bytes():
    from rtl_gen.gemm import BOARDS

    graph = dense_chain((512, 512, 10))  # 512 x 512 int8 weights and more
    # not in block RAM, nor in the SPRAM (its last fallback, weights read directly, named)
    with pytest.raises(
        ModelError,
        match=r"needs [\d,]+ bytes of SPRAM .*wd 270,336 bytes.* the "
        r"iCE40UP5K-SG48 on icebreaker has 131,072 bytes",
    ):
        compile_graph(graph, BOARDS["icebreaker"]["dsp"])
    compile_graph(graph, BOARDS["ulx3s-85f"]["dsp"])  # 208 DP16KD hold it


def test_a_field_overflow_is_a_model_error_naming_the_layer():
    # a 2000-wide plane does not fit WIN's 10-bit w
    from frontends.im2col import Window, conv_im2col
    from frontends.ir import IntType, QuantParams, Tensor

    win = Window((1, 2000), (1, 1))
    q = QuantParams(np.float32(0.1), np.int64(0))
    graph = Graph(
        "long",
        {
            "x": Tensor("x", (1, 2000), IntType(8, False), q),
            "y": Tensor("y", (1, 2000), IntType(8, False), q),
        },
        (
            Node(
                "wide",
                "conv",
                ("x",),
                ("y",),
                attrs={
                    "input_zero_point": 0,
                    "output_zero_point": 0,
                    "shift": 8,
                    "lo": 0,
                    "hi": 255,
                    "input_shape": (1, 2000),
                    "kernel_shape": (1,),
                    "group": 1,
                },
                weights={
                    "weight": np.ones((1, 1, 1), np.int64),
                    "bias": np.zeros(1, np.int64),
                    "multiplier": np.ones(1, np.int64),
                    "im2col": conv_im2col(win, 1, 1),
                },
                source_op="Conv",
            ),
        ),
        ("x",),
        ("y",),
    )
    with pytest.raises(
        ModelError,
        match=r"layer 'wide' \(Conv\): WIN field w=2000 does not "
        r"fit in 10 bits",
    ):
        compile_graph(graph, CFG)


@pytest.mark.parametrize(
    "config,split",
    [
        (CFG, 0.0),
        (CFG, 1.0),
        (CFG, "auto"),
        (CFG, 0.5),
        (GemmConfig(dsp_lanes=3, lut_lanes=5, lut_mode="bitserial", dsp_pack=True), "auto"),
    ],
)
def test_windows_stride_padding_dilation_groups_residual(config, split):
    from .nets import window_cases

    program = _check(window_cases(), config, split)
    wins = [i for i in program.instrs if i.op == "WIN"]
    assert {(w["sy"], w["sx"]) for w in wins} >= {(2, 2), (2, 1), (1, 1)}
    assert {i["dy"] for i in program.instrs if i.op == "WSTEP"} >= {1, 2}
    # one core, channels in order: no gather table grows with the image (ADD reads its
    # operands in order); a split that scatters the grouped conv's groups is reordered
    if split in (0.0, 1.0):
        assert len(program.idx) <= program.n_out
    reorders = [i for i in program.instrs if i.op == "PCFG" and "reordered" in i.comment]
    assert len(reorders) <= 1


def test_no_dense_layer_streams_behind_a_layer_run_in_lane_tiles():
    # a depthwise layer of 20 channels on 4 lanes runs in 5 tiles, one SYNC each: the dense
    # head after it must not start before the first tiles' POSTs (the model refuses that)
    from dataclasses import replace

    from frontends.vectors import golden_vectors
    from rtl_gen.gemm import BOARDS, model

    from .nets import conv_net

    graph = conv_net(
        (20, 3, 3), [dict(cout=20, kernel=(3, 3), group=20)], head=6, seed=2, name="dwhead"
    )
    config = replace(BOARDS["ulx3s-85f"]["dsp"], dsp_lanes=4, board="")
    program = compile_graph(graph, config)
    assert sum(i.op == "SYNC" for i in program.instrs) > 2
    assert model.schedule(program).cycles > 0
    vectors = golden_vectors(program.graph, random=2, seed=1)
    assert np.array_equal(model.run(program, vectors["inputs"]), vectors["outputs"])
