"""Inference per model window: full-int8 and float32 TFLite on each interpreter, 1 and 2
threads, builtin kernels and the XNNPACK delegate; and Keras predict where TensorFlow is installed.

The tflite-runtime figures come from a worker process in a venv with numpy<2 (tflite-runtime
2.14 needs it), run on the same checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.timing import REPO, median_seconds

TFLITE_RUNTIME_PYTHON = REPO / ".cache" / "venv-tflite-runtime" / "bin" / "python"


def time_tflite(module_name: str, model_path: str, threads: int, xnnpack: bool, repeats: int) -> float:
    """Median seconds of reset + set input + invoke for one window of random input."""
    module = __import__(module_name, fromlist=["Interpreter"])
    resolver = module.OpResolverType.AUTO if xnnpack else module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = module.Interpreter(model_path=model_path, num_threads=threads, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    rng = np.random.default_rng(0)
    if detail["dtype"] == np.int8:
        window = rng.integers(-128, 128, detail["shape"], dtype=np.int8)
    else:
        window = rng.standard_normal(detail["shape"]).astype(np.float32)

    def invoke():
        interpreter.reset_all_variables()
        interpreter.set_tensor(detail["index"], window)
        interpreter.invoke()

    return median_seconds(invoke, repeats, warmup=3)


def worker(jobs_json: str) -> None:
    """Entry point of the worker process: jobs in, milliseconds out, as JSON on stdout."""
    jobs = json.loads(jobs_json)
    print(json.dumps([1000 * time_tflite(*job) for job in jobs]))


def model_files(bundle_dir: Path) -> dict:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    return {"int8": str(bundle_dir / manifest["model"]["file"]), "float32": str(bundle_dir / manifest["model"]["float32_file"])}


def run(bundle_dirs: list[Path], repeats: int = 50) -> list[dict]:
    runtimes = [("ai-edge-litert", "ai_edge_litert.interpreter", sys.executable)]
    if TFLITE_RUNTIME_PYTHON.exists():
        runtimes.append(("tflite-runtime", "tflite_runtime.interpreter", str(TFLITE_RUNTIME_PYTHON)))
    rows = []
    for bundle_dir in bundle_dirs:
        for runtime, module, python in runtimes:
            jobs, labels = [], []
            for variant, path in model_files(bundle_dir).items():
                for threads in (1, 2):
                    for xnnpack in (False, True):
                        jobs.append((module, path, threads, xnnpack, repeats))
                        labels.append((variant, threads, xnnpack))
            result = subprocess.run(
                [python, "-c", "import sys; from benchmarks.inference import worker; worker(sys.argv[1])", json.dumps(jobs)],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                rows.append({"model": bundle_dir.name, "runtime": runtime, "error": result.stderr.strip().splitlines()[-1]})
                continue
            for (variant, threads, xnnpack), ms in zip(labels, json.loads(result.stdout)):
                rows.append(
                    {
                        "model": bundle_dir.name,
                        "runtime": runtime,
                        "variant": variant,
                        "threads": threads,
                        "kernels": "XNNPACK delegate" if xnnpack else "builtin",
                        "ms_per_window": ms,
                    }
                )
        rows.extend(keras_rows(bundle_dir, repeats))
    return rows


def keras_rows(bundle_dir: Path, repeats: int) -> list[dict]:
    """Keras predict() on one window, for the same architecture (bundles ship no Keras weights;
    speed does not depend on the weights' values)."""
    try:
        from trainer.model import ModelConfig, build_model
    except ImportError:
        return []
    import tensorflow as tf

    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    _, frames, features = manifest["input"]["shape"]
    try:  # one thread, like the interpreters' first column; only possible before TensorFlow starts
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    model = build_model(ModelConfig(**manifest["model"]["architecture"]), frames, features, len(manifest["labels"]))
    window = np.random.default_rng(0).standard_normal((1, frames, features)).astype(np.float32)
    ms = 1000 * median_seconds(lambda: model.predict(window, verbose=0), max(5, repeats // 5), warmup=2)
    return [
        {
            "model": bundle_dir.name,
            "runtime": f"tensorflow {tf.__version__}",
            "variant": "Keras predict",
            "threads": 1,
            "kernels": "TensorFlow",
            "ms_per_window": ms,
        }
    ]
