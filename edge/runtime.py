"""Which TFLite interpreter runs the model: ai-edge-litert, else tflite-runtime, else tf.lite."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import numpy as np

from edge.errors import BundleError

# (module holding Interpreter, distribution that provides it), in order of preference. TensorFlow
# is a last resort for workstations without a light runtime; it is only imported if the others are
# missing, so the device never pays for it.
RUNTIMES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite.python.interpreter", "tensorflow"),  # tf.lite.Interpreter
)
RUNTIME_NAMES = tuple(name for _, name in RUNTIMES)
"""What ``--runtime`` and the ``runtime`` setting may name."""


@dataclass(frozen=True)
class Runtime:
    """A TFLite interpreter implementation found on this machine."""

    name: str
    """Distribution name, e.g. ai-edge-litert."""
    version: str
    """Its installed version."""
    interpreter_class: type
    """Its Interpreter class."""

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


def find_runtime(preferred: str | None = None) -> Runtime:
    """The first available runtime in order of preference, or exactly ``preferred`` if given."""
    candidates = [r for r in RUNTIMES if preferred in (None, r[1])]
    if not candidates:
        raise BundleError(f"unknown TFLite runtime {preferred!r}; choose from {', '.join(r[1] for r in RUNTIMES)}")
    for module_name, distribution in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        package = sys.modules[module_name.partition(".")[0]]  # its __version__: importlib.metadata costs 20 ms
        return Runtime(distribution, package.__version__, module.Interpreter)
    raise BundleError("no TFLite runtime is installed: pip install ai-edge-litert (or tflite-runtime with numpy<2)")


def load_interpreter(runtime: Runtime, model_path, num_threads: int = 1):
    """An interpreter for the .tflite file at ``model_path`` with its tensors allocated.

    Builtin kernels only, without the default XNNPACK delegate: its int8 kernels round
    differently (an unrolled GRU's outputs moved by two quantization steps), so only the builtin
    kernels give the same int8 outputs on every runtime and in the trainer's evaluation.
    """
    resolver = sys.modules[runtime.interpreter_class.__module__].OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = runtime.interpreter_class(
            model_path=str(model_path), num_threads=num_threads, experimental_op_resolver_type=resolver
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise BundleError(f"{model_path}: {runtime} cannot load this model ({error})") from None
    return interpreter


def run_windows(interpreter, windows: np.ndarray) -> np.ndarray:
    """Raw model outputs for each input window, (windows, outputs), one invocation per window.

    A fused LSTM keeps its state between invocations, so every window starts from reset state:
    otherwise a result would depend on the clip classified before it.
    """
    (input_detail,), (output_detail,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for window in windows:
        interpreter.reset_all_variables()
        interpreter.set_tensor(input_detail["index"], window[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_detail["index"])[0])
    return np.stack(outputs)
