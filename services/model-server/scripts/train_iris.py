#!/usr/bin/env python3
"""Train the iris classifier and export it to models/iris.onnx.

A StandardScaler + multinomial LogisticRegression, trained on the Iris data
set that scikit-learn ships (nothing is downloaded). The graph uses only
standard ONNX operators (Sub, Div, Gemm, Softmax), so any ONNX runtime,
including tract in pure Rust, executes it without the ai.onnx.ml domain.

    pip install scikit-learn onnx
    python3 services/model-server/scripts/train_iris.py

Input "input": float32 [N, 4] (sepal length, sepal width, petal length,
petal width, in cm). Output "probabilities": float32 [N, 3] for setosa,
versicolor, virginica.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

OUT = Path(__file__).resolve().parent.parent / "models" / "iris.onnx"


def main() -> None:
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.3, random_state=42, stratify=iris.target
    )
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=10.0))
    pipe.fit(x_train, y_train)
    accuracy = pipe.score(x_test, y_test)
    scaler, clf = pipe.named_steps["standardscaler"], pipe.named_steps["logisticregression"]

    def const(name, array):
        return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)

    graph = helper.make_graph(
        nodes=[
            helper.make_node("Sub", ["input", "mean"], ["centered"]),
            helper.make_node("Div", ["centered", "scale"], ["scaled"]),
            helper.make_node("Gemm", ["scaled", "coef", "intercept"], ["logits"], transB=1),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        name="iris_logistic_regression",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        outputs=[helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        initializer=[
            const("mean", scaler.mean_),
            const("scale", scaler.scale_),
            const("coef", clf.coef_),
            const("intercept", clf.intercept_),
        ],
    )
    model = helper.make_model(
        graph,
        producer_name="kube-mlops train_iris.py",
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 8
    helper.set_model_props(
        model,
        {
            "class_names": ",".join(iris.target_names),
            "feature_names": ",".join(iris.feature_names),
            "test_accuracy": f"{accuracy:.4f}",
        },
    )
    onnx.checker.check_model(model)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, OUT)

    # The same numbers the Rust tests assert: one known flower per species.
    probe = np.array([[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.3, 3.3, 6.0, 2.5]])
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes), test accuracy {accuracy:.3f}")
    print("probabilities for setosa/versicolor/virginica samples:")
    print(np.round(pipe.predict_proba(probe), 4))


if __name__ == "__main__":
    main()
