"""Makes the ONNX models the model server's graph tests serve, and what
onnxruntime answers for them.

    python make_test_models.py OUT_DIR

Writes into OUT_DIR (small files, fixed seeds, built with onnx.helper):
  cnn.onnx       an image classifier: image float32 [N, 3, 16, 16],
                 Conv/Relu/MaxPool twice, Flatten, Gemm, Softmax ->
                 probabilities [N, 5]
  text.onnx      a text classifier with two int64 inputs, input_ids and
                 attention_mask [batch, sequence]: an embedding (Gather),
                 a masked mean, Gemm -> two outputs, logits and
                 probabilities [batch, 3]
  float64.onnx   a linear model in float64: x float64 [N, 4] -> y [N, 2]
  matmul.onnx    a product of two inputs that share a dimension:
                 a float32 [N, K] by b [K, M] -> c [N, M]
  half.onnx      float16 only: x float16 [N, 2] -> y = 2x float16 [N, 2]
  outer.onnx     the sum of an input's outer product with itself: x [N] ->
                 y [] (an [N, N] tensor on the way)
  mlp.onnx       the benchmark's MLP: input float32 [N, 256], Gemm/Relu
                 256-1024-1024, Gemm 10, Softmax -> probabilities [N, 10]
  cnn64.onnx     the benchmark's CNN: image float32 [N, 3, 64, 64], three
                 Conv 3x3/Relu/MaxPool 2 blocks (16, 32, 64 channels),
                 Flatten, Gemm 10, Softmax -> probabilities [N, 10]
  trees.onnx     the benchmark's gradient-boosted trees, as skl2onnx writes
                 a binary GradientBoostingClassifier (zipmap=False): 300
                 trees of depth 3 on input float32 [N, 40], one
                 ai.onnx.ml TreeEnsembleClassifier -> label int64 [N],
                 probabilities float32 [N, 2]
  prior.onnx     a binary tree ensemble as skl2onnx and onnxmltools write
                 one with a prior (GradientBoostingClassifier,
                 HistGradientBoosting, XGBoost): one base value, 50 stumps
                 with leaf weights >= 0 on input float32 [N, 8], LOGISTIC.
                 ONNX Runtime labels a row by its raw score above 0.5 here
                 (every weight >= 0), not by its larger probability; the
                 rows' scores lie on both sides of 0.5, all above 0
  cgather.onnx   not servable: a Gather of constant index 20 from a
                 10-row constant table (no answers: onnxruntime refuses it)
  cases.json     for each model: its file, the inputs (name, datatype,
                 shape, flat data) and onnxruntime's outputs for them
                 (name, shape, flat data); and `onnxruntime_library`, the
                 path of the shared library of the onnxruntime that made
                 them (what the server's RUNTIME=onnxruntime loads)

The tests compare every answer of the server with onnxruntime's to 1e-5.
The .onnx files are also committed in services/model-server/tests/graphs/
(the README's examples serve them); a test checks that this script still
writes them byte for byte.
"""

import glob
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]
# Tree ensembles: the ai.onnx.ml domain too, as skl2onnx declares it.
ML_OPSET = OPSET + [helper.make_opsetid("ai.onnx.ml", 3)]


def weights(rng, name, shape, dtype=np.float32, scale=0.5):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(dtype), name)


def cnn(rng):
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    init = [
        # Small weights keep the softmax away from 0 and 1, where every
        # answer would agree whatever the arithmetic.
        weights(rng, "w1", [8, 3, 3, 3], scale=0.2),
        weights(rng, "b1", [8], scale=0.1),
        weights(rng, "w2", [8, 8, 3, 3], scale=0.1),
        weights(rng, "b2", [8], scale=0.1),
        weights(rng, "w3", [5, 8 * 4 * 4], scale=0.1),
        weights(rng, "b3", [5], scale=0.1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 5])],
        init,
    )
    inputs = {"image": rng.standard_normal((2, 3, 16, 16)).astype(np.float32)}
    return graph, inputs


def text(rng):
    vocab, dim = 50, 8
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["emb"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one"], ["safe"]),
        helper.make_node("Div", ["summed", "safe"], ["mean"]),
        helper.make_node("Gemm", ["mean", "w", "b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    init = [
        weights(rng, "embedding", [vocab, dim]),
        weights(rng, "w", [3, dim]),
        weights(rng, "b", [3]),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
    ]
    graph = helper.make_graph(
        nodes,
        "text",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
        ],
        init,
    )
    ids = rng.integers(0, vocab, size=(3, 7)).astype(np.int64)
    mask = np.ones((3, 7), dtype=np.int64)
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    return graph, inputs


def float64(rng):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
    ]
    init = [weights(rng, "w", [4, 2], np.float64), weights(rng, "b", [2], np.float64)]
    graph = helper.make_graph(
        nodes,
        "float64",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 2])],
        init,
    )
    inputs = {"x": rng.standard_normal((3, 4))}
    return graph, inputs


def matmul(rng):
    nodes = [helper.make_node("MatMul", ["a", "b"], ["c"])]
    graph = helper.make_graph(
        nodes,
        "matmul",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", "K"]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["K", "M"]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", "M"])],
    )
    inputs = {
        "a": rng.standard_normal((2, 3)).astype(np.float32),
        "b": rng.standard_normal((3, 2)).astype(np.float32),
    }
    return graph, inputs


def half(rng):
    nodes = [helper.make_node("Mul", ["x", "two"], ["y"])]
    init = [numpy_helper.from_array(np.array([2.0], dtype=np.float16), "two")]
    graph = helper.make_graph(
        nodes,
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 2])],
        init,
    )
    inputs = {"x": rng.standard_normal((3, 2)).astype(np.float16)}
    return graph, inputs


def outer(rng):
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axis1"], ["col"]),
        helper.make_node("Unsqueeze", ["x", "axis0"], ["row"]),
        helper.make_node("Mul", ["col", "row"], ["square"]),
        helper.make_node("ReduceSum", ["square"], ["y"], keepdims=0),
    ]
    init = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
    ]
    graph = helper.make_graph(
        nodes,
        "outer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        init,
    )
    inputs = {"x": rng.standard_normal((4,)).astype(np.float32)}
    return graph, inputs


def mlp(rng):
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h1"], transB=1),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], transB=1),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("Gemm", ["r2", "w3", "b3"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    init = [
        weights(rng, "w1", [1024, 256], scale=0.06),
        weights(rng, "b1", [1024], scale=0.1),
        weights(rng, "w2", [1024, 1024], scale=0.03),
        weights(rng, "b2", [1024], scale=0.1),
        weights(rng, "w3", [10, 1024], scale=0.03),
        weights(rng, "b3", [10], scale=0.1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 256])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    inputs = {"input": rng.standard_normal((2, 256)).astype(np.float32)}
    return graph, inputs


def cnn64(rng):
    nodes = []
    init = []
    prev, channels = "image", 3
    for i, out in enumerate((16, 32, 64), start=1):
        nodes += [
            helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
            helper.make_node("MaxPool", [f"r{i}"], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]),
        ]
        init += [
            weights(rng, f"w{i}", [out, channels, 3, 3], scale=0.15),
            weights(rng, f"b{i}", [out], scale=0.05),
        ]
        prev, channels = f"p{i}", out
    nodes += [
        helper.make_node("Flatten", [prev], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w4", "b4"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    init += [weights(rng, "w4", [10, 64 * 8 * 8], scale=0.02), weights(rng, "b4", [10], scale=0.05)]
    graph = helper.make_graph(
        nodes,
        "cnn64",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    inputs = {"image": rng.standard_normal((2, 3, 64, 64)).astype(np.float32)}
    return graph, inputs


def trees(rng, n_trees=300, depth=3, features=40):
    """Full trees of `depth` (7 splits, 8 leaves at depth 3), as
    GradientBoostingClassifier grows them, in skl2onnx's encoding of a
    binary classifier: every leaf weighs class 0, a LOGISTIC transform."""
    splits = 2**depth - 1
    leaves = 2**depth
    a = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_hitrates",
        "nodes_missing_value_tracks_true", "class_treeids", "class_nodeids", "class_ids",
        "class_weights",
    )}
    for t in range(n_trees):
        for n in range(splits + leaves):
            a["nodes_treeids"].append(t)
            a["nodes_nodeids"].append(n)
            a["nodes_hitrates"].append(1.0)
            a["nodes_missing_value_tracks_true"].append(0)
            if n < splits:
                a["nodes_featureids"].append(int(rng.integers(0, features)))
                a["nodes_values"].append(float(np.float32(rng.standard_normal() * 0.7)))
                a["nodes_modes"].append("BRANCH_LEQ")
                a["nodes_truenodeids"].append(2 * n + 1)
                a["nodes_falsenodeids"].append(2 * n + 2)
            else:
                a["nodes_featureids"].append(0)
                a["nodes_values"].append(0.0)
                a["nodes_modes"].append("LEAF")
                a["nodes_truenodeids"].append(0)
                a["nodes_falsenodeids"].append(0)
                a["class_treeids"].append(t)
                a["class_nodeids"].append(n)
                a["class_ids"].append(0)
                a["class_weights"].append(float(np.float32(rng.standard_normal() * 0.1)))
    graph = binary_classifier("trees", features, classlabels_int64s=[0, 1], **a)
    # Rows of both classes, so that a label the other way round shows.
    inputs = {"input": rng.standard_normal((16, features)).astype(np.float32)}
    return graph, inputs


def binary_classifier(name, features, **attributes):
    """A graph of one TreeEnsembleClassifier with a LOGISTIC transform:
    input float32 [N, features] -> label int64 [N], probabilities [N, 2]."""
    node = helper.make_node(
        "TreeEnsembleClassifier",
        ["input"],
        ["label", "probabilities"],
        domain="ai.onnx.ml",
        post_transform="LOGISTIC",
        **attributes,
    )
    return helper.make_graph(
        [node],
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", features])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
        ],
    )


def prior(rng, n_trees=50, features=8):
    """Stumps whose leaves weigh class 0 by 0 or a positive weight, and one
    base value, as GradientBoostingClassifier, HistGradientBoosting and
    XGBoost binary classifiers are exported (a prior in base_values)."""
    a = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "class_treeids", "class_nodeids",
        "class_ids", "class_weights",
    )}
    for t in range(n_trees):
        for n, mode in enumerate(["BRANCH_LEQ", "LEAF", "LEAF"]):
            a["nodes_treeids"].append(t)
            a["nodes_nodeids"].append(n)
            a["nodes_modes"].append(mode)
            if n == 0:
                a["nodes_featureids"].append(int(rng.integers(0, features)))
                a["nodes_values"].append(0.0)
                a["nodes_truenodeids"].append(1)
                a["nodes_falsenodeids"].append(2)
            else:
                a["nodes_featureids"].append(0)
                a["nodes_values"].append(0.0)
                a["nodes_truenodeids"].append(0)
                a["nodes_falsenodeids"].append(0)
                a["class_treeids"].append(t)
                a["class_nodeids"].append(n)
                a["class_ids"].append(0)
                weight = 0.0 if n == 1 else float(np.float32(rng.uniform(0.0, 0.04)))
                a["class_weights"].append(weight)
    graph = binary_classifier("prior", features, classlabels_int64s=[3, 7], base_values=[0.05], **a)
    inputs = {"input": rng.standard_normal((16, features)).astype(np.float32)}
    return graph, inputs


def cgather():
    table = numpy_helper.from_array(np.zeros((10, 2), dtype=np.float32), "table")
    index = numpy_helper.from_array(np.array([20], dtype=np.int64), "index")
    nodes = [
        helper.make_node("Gather", ["table", "index"], ["row"]),
        helper.make_node("Add", ["x", "row"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "cgather",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [table, index],
    )
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    return model


DATATYPES = {
    np.dtype(np.float16): "FP16",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int64): "INT64",
}


def tensor(name, a):
    return {
        "name": name,
        "datatype": DATATYPES[a.dtype],
        "shape": list(a.shape),
        "data": a.astype(np.float64).flatten().tolist() if a.dtype == np.float16 else a.flatten().tolist(),
    }


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(21)
    cases = {}
    for make in (cnn, text, float64, matmul, half, outer, mlp, cnn64, trees, prior):
        graph, inputs = make(rng)
        model = helper.make_model(graph, opset_imports=ML_OPSET if make in (trees, prior) else OPSET)
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        path = out / f"{make.__name__}.onnx"
        path.write_bytes(model.SerializeToString())
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        answers = session.run(names, inputs)
        cases[make.__name__] = {
            "file": path.name,
            "inputs": [tensor(n, a) for n, a in inputs.items()],
            "outputs": [tensor(n, a) for n, a in zip(names, answers)],
        }
    (out / "cgather.onnx").write_bytes(cgather().SerializeToString())
    capi = os.path.join(os.path.dirname(onnxruntime.__file__), "capi")
    library = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so*")))
    (out / "cases.json").write_text(
        json.dumps({"onnxruntime_library": library[0] if library else None, "models": cases}, indent=1)
        + "\n"
    )


if __name__ == "__main__":
    main()
