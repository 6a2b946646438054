#!/usr/bin/env python3
"""Train one small model per exporter family and export each the way its
exporter does by default, for the model server's compatibility tests.

Nothing is hand-built here (unlike train_iris.py): the ONNX files are what
skl2onnx writes with its defaults, so they carry what users' files carry —
a dynamic batch dimension, ai.onnx.ml operators (Scaler, LinearClassifier,
TreeEnsembleClassifier, LinearRegressor), a `label` output before the
probabilities, and a ZipMap turning the probabilities into a list of maps.

    python3 -m venv .venv
    .venv/bin/pip install scikit-learn skl2onnx onnxmltools xgboost-cpu lightgbm onnxruntime
    .venv/bin/python services/model-server/scripts/train_exporters.py

Writes into services/model-server/tests/exporters/:
  wine-pipeline.onnx  StandardScaler + LogisticRegression, 13 features, 3 classes
  wine-forest.onnx    RandomForestClassifier (10 trees, depth 4), 13 features, 3 classes
  diabetes-linear.onnx  LinearRegression, 10 features, 1 output
  wine-xgboost.onnx   XGBClassifier (onnxmltools.convert_xgboost), 13 features, 3 classes
  wine-lightgbm.onnx  LGBMClassifier (onnxmltools.convert_lightgbm), 13 features, 3 classes
  svr.onnx            SVR (an SVMRegressor, which tract lacks): refused by name
  int-input.onnx      a graph whose input is int64: refused, with the fix
  expected.json       for each model: the test rows (float32) and what
                      the library itself answers for them (predict_proba
                      for classifiers, predict for the regressor)

The test rows are the first 8 of the held-out split on which the exported
graph, run by onnxruntime, agrees with the library to 1e-6 (relative above
1): an exporter
writes split thresholds as float32, so a row whose feature lies between a
float64 threshold and its float32 rounding takes the other branch in every
ONNX runtime (LightGBM's row 6 of the wine split does, by 3e-4). Such rows
test the exporter, not the server; the number skipped is printed.
"""

import json
from pathlib import Path

import lightgbm
import numpy as np
import onnxmltools
import onnxruntime
import xgboost
from onnx import TensorProto, helper
from onnxmltools.convert.common.data_types import FloatTensorType
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
    return x_train.astype(np.float32), y_train, x_test.astype(np.float32)


def onnx_answers(onx, x):
    """What onnxruntime answers with the graph's probabilities (or its only
    output), as an array of rows."""
    session = onnxruntime.InferenceSession(onx.SerializeToString())
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    out = outputs[-1]
    if isinstance(out, list):  # a ZipMap: one dict per row
        out = [[row[k] for k in sorted(row)] for row in out]
    return np.asarray(out, dtype=np.float64).reshape(len(x), -1)


def export(name, model, x_train, x_test, answer):
    onx = to_onnx(model, x_train[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    return export_with(name, onx, x_test, answer)


def export_with(name, onx, x_test, answer):
    (OUT / f"{name}.onnx").write_bytes(onx.SerializeToString())
    library = np.asarray(answer(x_test), dtype=np.float64).reshape(len(x_test), -1)
    # Relative above 1: float32 holds about 7 significant digits.
    gap = np.abs(onnx_answers(onx, x_test) - library) / np.maximum(1.0, np.abs(library))
    agree = gap.max(axis=1) <= 1e-6
    rows = np.flatnonzero(agree)[:ROWS]
    skipped = int((~agree[: rows[-1] + 1]).sum())
    if skipped:
        print(f"{name}: {skipped} row(s) skipped where the exported graph differs (float32 thresholds)")
    return {
        "file": f"{name}.onnx",
        "input": x_test[rows].tolist(),
        "expected": library[rows].tolist(),
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

    # onnxmltools for the gradient-boosting libraries, with their defaults.
    booster = xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0)
    booster.fit(x_train, y_train)
    expected["wine-xgboost"] = export_with(
        "wine-xgboost",
        onnxmltools.convert_xgboost(
            booster, initial_types=[("input", FloatTensorType([None, x_train.shape[1]]))]
        ),
        x_test,
        booster.predict_proba,
    )
    gbm = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=7, random_state=0, verbose=-1)
    gbm.fit(x_train, y_train)
    expected["wine-lightgbm"] = export_with(
        "wine-lightgbm",
        onnxmltools.convert_lightgbm(
            gbm, initial_types=[("input", FloatTensorType([None, x_train.shape[1]]))]
        ),
        x_test,
        gbm.predict_proba,
    )

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
