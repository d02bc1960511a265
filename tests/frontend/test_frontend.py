"""The ONNX front end in numpy: the shipped digits CNN and freshly generated random models
(both of onnxruntime's formats, per-tensor and per-channel weights, int8 and uint8
activations) give onnxruntime's exact outputs, tensor by tensor; bad models are one-line
errors naming the node."""

import logging

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.apps.cnn import digits_images, model_path
from systolix.apps.mlp import load_digits_split
from systolix.apps.onnx_infer import (ModelGemm, _explain, float32_message, onnx_engine,
                                      run_onnx, saturation_mask)
from systolix.errors import SystolixError
from systolix.frontend.lower import load_model, load_plan, lower
from systolix.frontend.ort import float_nodes, run_onnxruntime
from systolix.frontend.plan import execute
from systolix.frontend.random_model import (calibration_input, grouped_conv_model,
                                            quantized_model, random_spec, shape_ops_model)

pytestmark = pytest.mark.model

logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice


@pytest.fixture(scope="module")
def digits():
    split = load_digits_split(0)
    return digits_images(split.x_test), split.y_test


def _every_tensor_equal(path, x):
    """onnxruntime runs the model fully quantized (no node left in float32), and the model's
    outputs equal onnxruntime's session of the model as it is; in a QOperator model every
    intermediate tensor too. (Exposing a QDQ model's intermediate tensors as graph outputs
    stops onnxruntime fusing its layers into quantized kernels: they would be compared with a
    float32 computation.)"""
    assert float_nodes(path) == {}
    plan = load_plan(path)
    outs, env = execute(plan, x, keep=True)
    plain = run_onnxruntime(path, x)
    for name, mine in zip(plan.outputs, outs):
        theirs = plain[name]
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape, name
        assert np.array_equal(mine, theirs), \
            f"{name}: {int(np.sum(mine != theirs))} values differ from onnxruntime"
    qoperator = all(layer.op.startswith("Q") for layer in plan.layers)
    names = [s.y for s in plan.steps] if qoperator else []
    ort = run_onnxruntime(path, x, names)
    for name in names:
        assert env[name].dtype == ort[name].dtype and env[name].shape == ort[name].shape, name
        bad = np.argwhere(env[name] != ort[name])
        assert bad.size == 0, f"{name}: {len(bad)} values differ from onnxruntime"
    return plan, outs


@pytest.mark.parametrize("fmt", ["qop", "qdq"])
def test_shipped_cnn_equals_onnxruntime_on_every_held_out_image(digits, fmt):
    x, y = digits
    assert float_nodes(model_path(fmt)) == {}  # onnxruntime runs every layer quantized
    plan, outs = _every_tensor_equal(model_path(fmt), x)
    assert [l.op for l in plan.layers] == (["QLinearConv", "QLinearConv", "QGemm"]
                                           if fmt == "qop" else ["Conv", "Conv", "Gemm"])
    assert outs[0].dtype == np.float32 and outs[0].shape == (360, 10)
    assert np.mean(outs[0].argmax(axis=1) == y) > 0.93


@pytest.mark.parametrize("fmt,act,per_channel", [("qop", "uint8", False),
                                                 ("qdq", "int8", True),
                                                 ("qop", "int8", True),
                                                 ("qdq", "uint8", False)])
def test_random_models_equal_onnxruntime(tmp_path, seed, fmt, act, per_channel):
    """Models onnxruntime runs fully quantized: its output is exactly the quantized
    arithmetic."""
    spec = random_spec(seed, fmt, act, per_channel, fully_quantized=True)
    print(spec)
    assert not spec.onnxruntime_float32
    path = quantized_model(spec, tmp_path / "m.onnx")
    plan, _ = _every_tensor_equal(path, calibration_input(spec, 6, seed=seed + 7))
    assert plan.layers


@pytest.mark.parametrize("per_channel", [False, True])
def test_random_model_with_float32_layers_names_them(tmp_path, seed, per_channel):
    """A QDQ model with int8 activations and a residual block: onnxruntime fuses the node units
    around the tensor two nodes consume into no quantized kernel. The detector names exactly
    those; the other layers are quantized; a difference from onnxruntime is reported, never
    hidden, and explained by those layers alone."""
    spec = random_spec(seed, "qdq", "int8", per_channel, residual=True)
    print(spec)
    path = quantized_model(spec, tmp_path / "m.onnx")
    floats = float_nodes(path)
    assert set(floats) == spec.onnxruntime_float32, floats
    plan = load_plan(path)
    assert {s.node for s in plan.steps} >= set(floats)
    x = calibration_input(spec, 6, seed=seed + 7)
    out, summary = run_onnx(path, x, onnx_engine(max_k=4096), simulator=None, progress=None)
    assert summary["matches_reference"]
    assert {r["node"]: r["onnxruntime_kernel"] for r in summary["layers"]} == {
        l.node: "float32" if l.node in floats else "quantized" for l in plan.layers}
    assert summary["onnxruntime_float32"] == [{"node": s.node, "op": floats[s.node]}
                                              for s in plan.steps if s.node in floats]
    want = run_onnxruntime(path, x)[plan.outputs[0]]
    assert summary["matches_onnxruntime"] == np.array_equal(out, want)
    causes = [float32_message(s.node, floats[s.node]) for s in plan.steps if s.node in floats]
    assert len(causes) == 3
    if not summary["matches_onnxruntime"]:
        assert summary["problems"] == [f"{int(np.sum(out != want))} values of "
                                       f"'{plan.outputs[0]}' differ from onnxruntime"] + causes
    # any difference is put down to those steps
    _, env = execute(plan, x, keep=True)
    spoiled = {plan.outputs[0]: np.where(out == out.flat[0], out + 1, out).astype(out.dtype)}
    wrong = int(np.sum(spoiled[plan.outputs[0]] != out))
    assert _explain(plan, env, spoiled, floats) == [
        f"{wrong} values of '{plan.outputs[0]}' differ from onnxruntime"] + causes


def test_a_difference_from_a_float32_layer_names_it(tmp_path, monkeypatch):
    """A model (QDQ, int8 activations, a residual block) with steps onnxruntime runs in float32:
    they are named, and a difference is reported with them as its cause. Whether the float32
    convolutions change an output depends on the CPU's kernels (on one x86 machine here, 1
    value of 102), so the difference is also planted, the way onnxruntime would return it."""
    import systolix.apps.onnx_infer as onnx_infer
    spec = random_spec(1014, "qdq", "int8", False, residual=True)
    path = quantized_model(spec, tmp_path / "m.onnx")
    x = calibration_input(spec, 6, seed=spec.seed + 7)
    steps = (("conv0", "Conv"), ("conv_res", "Conv"), ("add", "Add"))
    causes = [float32_message(node, op) for node, op in steps]
    _, summary = run_onnx(path, x, onnx_engine(max_k=4096), simulator=None, progress=None)
    assert summary["matches_reference"]
    assert summary["onnxruntime_float32"] == [{"node": n, "op": op} for n, op in steps]
    if not summary["matches_onnxruntime"]:  # this CPU's float32 rounding changed an output
        assert summary["problems"][1:] == causes, summary["problems"]
    real = onnx_infer.run_onnxruntime

    def planted(model, x, extra_outputs=()):
        out = real(model, x, extra_outputs)
        y = out["out"] = out["out"].copy()
        y.flat[0] = np.nextafter(y.flat[0], np.float32(np.inf))
        return out
    monkeypatch.setattr(onnx_infer, "run_onnxruntime", planted)
    _, summary = run_onnx(path, x, onnx_engine(max_k=4096), simulator=None, progress=None)
    assert summary["matches_reference"] and not summary["matches_onnxruntime"]
    assert summary["problems"][0].endswith("values of 'out' differ from onnxruntime")
    assert summary["problems"][1:] == causes


def test_layers_beyond_the_buffers_are_tiled(digits):
    """M (and N) beyond the engine's buffers: more jobs, same results."""
    x = digits[0][:5]
    plan = load_plan(model_path("qop"))
    small = ModelGemm(onnx_engine(rows=4, cols=4, max_m=7, max_k=72, max_n=3))
    got, _ = execute(plan, x, gemm=small)
    want, _ = execute(plan, x)
    assert np.array_equal(got[0], want[0])
    # conv1: M = 5*64 = 320 rows in jobs of 7, N = 8 in jobs of 3
    assert small.layers[0]["jobs"] == 46 * 3
    small_k = ModelGemm(onnx_engine(max_k=64))
    with pytest.raises(SystolixError, match=r"layer 'conv2_quant': K = 72 exceeds the "
                                            r"engine's buffers \(max K = 64\)"):
        execute(plan, x, gemm=small_k)


def _model(nodes, inits, inputs=None, outputs=None, opset=13):
    graph = helper.make_graph(
        nodes, "g", inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


def _matmul_model(w, x_zp=0, tail=None):
    inits = {"xs": np.float32(0.02), "xz": np.uint8(x_zp), "w": w, "ws": np.float32(0.01),
             "wz": np.int8(0), "ys": np.float32(0.5), "yz": np.uint8(128)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             helper.make_node("QLinearMatMul", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                              ["yq"], name="mm"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"],
                              ["y" if tail is None else "d"], name="dq")]
    if tail:
        nodes.append(helper.make_node(tail, ["d"], ["y"], name="last"))
    return _model(nodes, inits, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                               ["N", w.shape[0]])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", w.shape[1]])])


def test_bad_models_are_one_line_errors(tmp_path):
    with pytest.raises(SystolixError, match=r"nope.onnx: no such model file$"):
        load_model(tmp_path / "nope.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(SystolixError, match=r"bad.onnx: not a valid ONNX model \(") as e:
        load_model(tmp_path / "bad.onnx")
    assert "\n" not in str(e.value)
    with pytest.raises(SystolixError, match=r"node 'conv1' \(Conv\): input 'input' is a float "
                                            r"tensor: the model is not quantized"):
        load_plan(model_path("float"))
    w = np.ones((4, 3), np.int8)
    with pytest.raises(SystolixError, match=r"node 'last' \(Softmax\): unsupported op$"):
        lower(_matmul_model(w, tail="Softmax"))
    wide = _matmul_model(np.full((4, 3), 100, np.int8))
    wz = next(i for i in wide.graph.initializer if i.name == "wz")
    wz.CopyFrom(numpy_helper.from_array(np.int8(-100), "wz"))
    with pytest.raises(SystolixError, match=r"node 'mm' \(QLinearMatMul\): weights minus their "
                                            r"zero point leave the int8 range"):
        lower(wide)


def test_bad_inputs_are_refused():
    plan = load_plan(model_path("qop"))
    for x, msg in ((np.zeros((2, 1, 8, 8)), "the input must be float32, not float64"),
                   (np.zeros((2, 64), np.float32), "the input must have shape Nx1x8x8, not 2x64"),
                   (np.zeros((2, 1, 8, 7), np.float32), "shape Nx1x8x8, not 2x1x8x7"),
                   (np.zeros((0, 1, 8, 8), np.float32), "the input is empty")):
        with pytest.raises(ValueError, match=msg):
            execute(plan, x)


def test_onnxruntime_int16_saturation_is_named():
    """onnxruntime's u8s8 kernels without VNNI saturate pairs of products in int16; a
    difference there is reported as onnxruntime's, and only there."""
    w = np.full((6, 3), 127, np.int8)
    w[:, 1] = 30                      # 2 * 255 * 30 fits int16: never saturates
    plan = lower(_matmul_model(w))
    layer = plan.layers[0]
    x = np.full((2, 6), 5.0, np.float32)        # quantized to 250
    outs, env = execute(plan, x, keep=True)
    mask = saturation_mask(layer, env[layer.x])
    assert mask[:, 0].all() and not mask[:, 1].any()
    # what an AVX2 onnxruntime gives: the saturated sums in column 0
    ort = dict(env)
    ort[layer.y] = env[layer.y].copy()
    ort[layer.y][:, 0] -= 1
    assert "onnxruntime's own int16 saturation" in _explain(plan, env, ort)[0]
    ort[layer.y][:, 1] -= 1           # a difference where nothing saturates: not excused
    assert "saturation" not in _explain(plan, env, ort)[0]
    # 7-bit weights (reduce_range) never saturate
    assert not saturation_mask(lower(_matmul_model(w // 2)).layers[0], env[layer.x]).any()


@pytest.mark.parametrize("fmt", ["qop", "qdq"])
def test_grouped_dilated_asymmetric_conv_equals_onnxruntime(tmp_path, seed, fmt):
    """A grouped (2 groups), dilated, strided convolution with asymmetric padding."""
    path, data = grouped_conv_model(seed, fmt, tmp_path / "q.onnx")
    plan, outs = _every_tensor_equal(path, data)
    assert plan.layers[0].conv.group == 2 and len(plan.layers[0].weights) == 2
    assert outs[0].shape == (3, 6, 5, 6)  # H: (9 + 3 - 3) // 2 + 1, W: 9 + 1 - 4


def test_int8_qdq_models_run_in_uint8_where_the_host_ops_say_so(tmp_path, seed):
    """onnxruntime on x86 rewrites a QDQ model's int8 activations as uint8 before fusing;
    ``ops.QDQ_INT8_AS_UINT8`` (which the host Add and AveragePool follow) says whether it does
    here: the fused QLinearConv's zero points are uint8 exactly then."""
    import onnx
    import onnxruntime as ort
    from systolix.frontend import ops
    path, _ = grouped_conv_model(seed, "qdq", tmp_path / "g.onnx")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    model = onnx.load(str(tmp_path / "opt.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    (conv,) = [n for n in model.graph.node if n.op_type == "QLinearConv"]
    assert inits[conv.input[2]].dtype == (np.uint8 if ops.QDQ_INT8_AS_UINT8 else np.int8)
    assert inits[conv.input[7]].dtype == inits[conv.input[2]].dtype


@pytest.mark.parametrize("fmt,act", [("qop", "int8"), ("qdq", "uint8")])
def test_concat_reshape_transpose_add_equal_onnxruntime(tmp_path, seed, fmt, act):
    path, x = shape_ops_model(seed, fmt, act, tmp_path / "s.onnx")
    plan, _ = _every_tensor_equal(path, x)
    ops = [s.op for s in plan.steps]
    assert {"Concat", "Reshape", "Transpose", "Flatten", "Add"} <= set(ops), ops
    assert len(plan.layers) == 4


@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_qdq_relu_that_is_not_redundant_between_two_quantizations(tmp_path, seed, act):
    """Conv -> Q -> DQ -> Relu -> Q with other parameters, the Relu's output zero point above
    the type's minimum: the host Relu clamps at the input's zero point, then requantizes;
    every tensor equals onnxruntime's."""
    from systolix.frontend.random_model import relu_model
    path, x = relu_model(seed, act, "requantized", tmp_path / "m.onnx")
    plan, _ = _every_tensor_equal(path, x)
    conv, relu = plan.steps[1], plan.steps[2]
    assert (conv.op, relu.op, conv.relu) == ("Conv", "Relu", False)
    _, env = execute(plan, x, keep=True)
    before, after = env[relu.inputs[0]], env[relu.y]
    assert (before < _zero_point(path, "c_zp")).mean() > 0.2  # values the Relu clamps...
    assert after.min() == _zero_point(path, "y_zp") > np.iinfo(act).min  # ...not the type


@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_qdq_relu_that_is_not_redundant_folds_into_the_clamp(tmp_path, seed, act):
    """Conv -> Relu -> Q whose zero point is above the type's minimum: the Relu is folded into
    the layer's clamp, whose low end becomes the zero point. onnxruntime runs such a layer in
    float32 (a FusedConv: no quantized kernel takes it): its outputs equal the quantized
    arithmetic except, rarely, by one step, and a difference names that layer."""
    from systolix.apps.onnx_infer import run_onnx
    from systolix.frontend.random_model import relu_model
    path, x = relu_model(seed, act, "fused", tmp_path / "m.onnx")
    plan = load_plan(path)
    layer = plan.layers[0]
    y_zp, qmin = _zero_point(path, "y_zp"), np.iinfo(act).min
    assert layer.relu and layer.clamp[0] == y_zp > qmin
    assert float_nodes(path) == {layer.node: "FusedConv"}
    out, env = execute(plan, x, keep=True)
    y = env[layer.y]
    assert (y == y_zp).mean() > 0.2 and y.min() == y_zp  # the clamp is at work
    ort = run_onnxruntime(path, x, [s.y for s in plan.steps])
    steps = np.abs(y.astype(int) - ort[layer.y].astype(int))
    assert steps.max() <= 1 and steps.mean() < 1e-3, f"seed {seed}"
    _, summary = run_onnx(path, x, simulator=None, progress=None)
    assert summary["matches_reference"]
    assert summary["layers"][0]["onnxruntime_kernel"] == "float32"
    if not summary["matches_onnxruntime"]:
        assert summary["problems"][1:] == [float32_message("conv", "FusedConv")]
    # a difference of one step is explained as that float32 layer's
    spoiled = {plan.outputs[0]: out[0].copy()}
    spoiled[plan.outputs[0]].flat[0] += 1
    assert _explain(plan, env, spoiled, {"conv": "FusedConv"}) == [
        f"1 values of '{plan.outputs[0]}' differ from onnxruntime",
        "onnxruntime runs 'conv' (FusedConv) in float32: it did not fuse this QDQ node unit "
        "into a quantized kernel; systolix computes the quantized arithmetic"]


def _zero_point(path, name):
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    (init,) = [i for i in model.graph.initializer if i.name == name]
    return int(numpy_helper.to_array(init))


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("op", ["AveragePool", "GlobalAveragePool"])
def test_average_pool_over_the_whole_image_rounds_as_onnxruntime(tmp_path, seed, act, op):
    """onnxruntime runs an average pool whose window is the whole image (and a global one)
    in integers: the zero point is added after rounding, so ties (averages ending in .5 with
    equal scales) round otherwise than a windowed pool's. Every output equals onnxruntime's."""
    import onnx
    rng = np.random.default_rng(seed)
    dtype = np.dtype(act)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    # a power-of-two scale keeps the float arithmetic exact: the ties are exact, and an odd
    # output zero point makes the two roundings differ on every one
    init = [numpy_helper.from_array(np.float32(1 / 16), "s"),
            numpy_helper.from_array(np.array(rng.integers(lo + 60, hi - 60), dtype), "zx"),
            numpy_helper.from_array(np.array(rng.integers(lo + 30, hi - 30) | 1, dtype), "zy")]
    attrs = {"kernel_shape": [2, 2]} if op == "AveragePool" else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "zx"], ["xd"]),
             helper.make_node(op, ["xd"], ["p"], name="pool", **attrs),
             helper.make_node("QuantizeLinear", ["p", "s", "zy"], ["pq"]),
             helper.make_node("DequantizeLinear", ["pq", "s", "zy"], ["pd"]),
             # a 1x1 identity convolution: a quantized model has a GEMM layer
             helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"]),
             helper.make_node("Conv", ["pd", "wd"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("QuantizeLinear", ["c", "s", "zy"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "s", "zy"], ["y"])]
    init += [numpy_helper.from_array(np.eye(6, dtype=np.int8).reshape(6, 6, 1, 1), "w"),
             numpy_helper.from_array(np.float32(1), "ws")]
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, 1, 1])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "pool.onnx"
    onnx.save(model, str(path))
    x = (rng.integers(-40, 41, (8, 6, 2, 2)) / 16).astype(np.float32)
    plan, _ = _every_tensor_equal(path, x)
    _, env = execute(plan, x, keep=True)
    xq = env[plan.steps[1].inputs[0]].astype(np.int64)
    ties = (xq.reshape(8, 6, 4).sum(axis=2) % 4 == 2).sum()
    assert ties > 0  # averages ending in .5: where the two roundings differ


def _qlinear_add_session(dtype, sa, za, sb, zb, sc, zc, n):
    import onnxruntime as ort
    t = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    inits = [numpy_helper.from_array(np.float32(v), name)
             for v, name in ((sa, "sa"), (sb, "sb"), (sc, "sc"))]
    inits += [numpy_helper.from_array(np.array(v, dtype), name)
              for v, name in ((za, "za"), (zb, "zb"), (zc, "zc"))]
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["c"],
                            domain="com.microsoft")
    graph = helper.make_graph([node], "add", [helper.make_tensor_value_info("a", t, [n]),
                                              helper.make_tensor_value_info("b", t, [n])],
                              [helper.make_tensor_value_info("c", t, [n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_add_equals_onnxruntime_on_every_pair_of_inputs(seed, act):
    """ops.add against onnxruntime's QLinearAdd on all 65,536 input pairs: for random
    parameters, and for ones (from a random model) where a sum lands within float32 rounding
    of a tie, so the kernel's order of operations decides."""
    from systolix.frontend import ops
    dtype = np.dtype(act)
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    cases = [(*rng.uniform(0.005, 0.08, 3).astype(np.float32),
              *(int(v) for v in rng.integers(info.min, info.max + 1, 3)))]
    if act == "uint8":
        cases.append((0.031048068776726723, 0.03013898804783821, 0.04276805743575096,
                      131, 119, 129))
    a, b = (g.ravel().astype(dtype) for g in np.meshgrid(np.arange(info.min, info.max + 1),
                                                         np.arange(info.min, info.max + 1)))
    for sa, sb, sc, za, zb, zc in cases:
        session = _qlinear_add_session(dtype, sa, za, sb, zb, sc, zc, a.size)
        want = session.run(None, {"a": a, "b": b})[0]
        got = ops.add(a, sa, za, b, sb, zb, sc, zc, act)
        assert np.array_equal(got, want), (sa, sb, sc, za, zb, zc, int((got != want).sum()))
