"""The speed floor of `cargo xtask bench runtimes`: ONNX Runtime in this
process, one thread, no server, on the same inputs the server is sent.

    python bench_floor.py CASES_JSON

CASES_JSON lists the cases: [{"label", "model" (a path), "input" (its
name), "shape" ([rows, ...]), "seconds" (how long to run it)}, ...].
Each case's inputs are float32 standard normal values from seed 22, in
C order: what the xtask sends (it writes them to "<label>.bin" beside
CASES_JSON, little-endian float32, and this script reads them back so
that both run on the same numbers).

Prints one JSON object: {"library": the path of the libonnxruntime.so
this onnxruntime loads (the server loads the same one), "version",
"cases": {label: {"median_ms", "runs"}}}.
"""

import glob
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime


def main():
    spec_path = sys.argv[1]
    cases = json.load(open(spec_path))
    out = {}
    for case in cases:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = onnxruntime.InferenceSession(
            case["model"], options, providers=["CPUExecutionProvider"]
        )
        raw = os.path.join(os.path.dirname(spec_path), case["label"] + ".bin")
        x = np.fromfile(raw, dtype="<f4").reshape(case["shape"])
        feed = {case["input"]: x}
        for _ in range(3):
            session.run(None, feed)
        times = []
        deadline = time.perf_counter() + case["seconds"]
        while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 20000):
            start = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - start) * 1000.0)
        out[case["label"]] = {"median_ms": statistics.median(times), "runs": len(times)}
    capi = os.path.join(os.path.dirname(onnxruntime.__file__), "capi")
    library = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so*")))
    print(
        json.dumps(
            {
                "library": library[0] if library else None,
                "version": onnxruntime.__version__,
                "cases": out,
            }
        )
    )


if __name__ == "__main__":
    main()
