#!/usr/bin/env python3
"""Train one small model per exporter family and export each the way its
exporter does by default, for the model server's compatibility tests.

Nothing is hand-built here (unlike train_iris.py): the ONNX files are what
skl2onnx writes with its defaults, so they carry what users' files carry —
a dynamic batch dimension, ai.onnx.ml operators (Scaler, LinearClassifier,
TreeEnsembleClassifier, LinearRegressor), a `label` output before the
probabilities, and a ZipMap turning the probabilities into a list of maps.

    python3 -m venv .venv && .venv/bin/pip install scikit-learn skl2onnx
    .venv/bin/python services/model-server/scripts/train_exporters.py

Writes into services/model-server/tests/exporters/:
  wine-pipeline.onnx  StandardScaler + LogisticRegression, 13 features, 3 classes
  wine-forest.onnx    RandomForestClassifier (10 trees, depth 4), 13 features, 3 classes
  diabetes-linear.onnx  LinearRegression, 10 features, 1 output
  svr.onnx            SVR (an SVMRegressor, which tract lacks): refused by name
  int-input.onnx      a graph whose input is int64: refused, with the fix
  expected.json       for each model: the test rows (float32) and what
                      scikit-learn itself answers for them (predict_proba
                      for classifiers, predict for the regressor)
"""

import json
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

OUT = Path(__file__).resolve().parent.parent / "tests" / "exporters"
ROWS = 8


def split(data):
    x_train, x_test, y_train, _ = train_test_split(
        data.data, data.target, test_size=0.3, random_state=0
    )
    # The model server computes in float32: compare on float32 inputs.
    return x_train.astype(np.float32), y_train, x_test[:ROWS].astype(np.float32)


def export(name, model, x_train, x_test, answer):
    onx = to_onnx(model, x_train[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    (OUT / f"{name}.onnx").write_bytes(onx.SerializeToString())
    return {
        "file": f"{name}.onnx",
        "input": x_test.tolist(),
        "expected": np.asarray(answer(x_test), dtype=np.float64).reshape(len(x_test), -1).tolist(),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}

    x_train, y_train, x_test = split(load_wine())
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    pipe.fit(x_train, y_train)
    expected["wine-pipeline"] = export("wine-pipeline", pipe, x_train, x_test, pipe.predict_proba)

    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)
    forest.fit(x_train, y_train)
    expected["wine-forest"] = export("wine-forest", forest, x_train, x_test, forest.predict_proba)

    x_train, y_train, x_test = split(load_diabetes())
    linear = LinearRegression().fit(x_train, y_train)
    expected["diabetes-linear"] = export("diabetes-linear", linear, x_train, x_test, linear.predict)

    svr = SVR().fit(x_train[:40], y_train[:40])
    (OUT / "svr.onnx").write_bytes(
        to_onnx(svr, x_train[:1], target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString()
    )
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["out"], to=TensorProto.FLOAT)],
        "int_input",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (OUT / "int-input.onnx").write_bytes(model.SerializeToString())

    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    for name, e in expected.items():
        print(f"{name}: {len(e['input'])} rows of {len(e['input'][0])} features")


if __name__ == "__main__":
    main()
