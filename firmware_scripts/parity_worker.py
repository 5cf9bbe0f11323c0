"""What the device computes, saved for comparison between machines (issue 6, work in progress).

    python firmware_scripts/parity_worker.py OUT.npz CLIP...

For every clip and a few generated signals: the float64 features, then for each shipped bundle and
each interpreter installed here, the int8 model input windows and the int8 model outputs. Only
device code runs (edge), so this works in the device's virtualenv on any architecture; comparing
two such files shows whether x86 and arm64 compute the same bits.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.audio import load_audio  # noqa: E402
from edge.bundle import MODELS_DIR, load_bundle  # noqa: E402
from edge.frontend import compute_features  # noqa: E402
from edge.model_input import prepare, reference_signal  # noqa: E402
from edge.runtime import RUNTIMES, run_windows  # noqa: E402


def generated_signals(rate: int = 16000) -> dict[str, np.ndarray]:
    """Signals built from integer arithmetic, identical on every machine before the frontend."""
    t = np.arange(3 * rate)
    sweep_phase = (t * t) % (2 * rate * rate) / (2 * rate * rate)  # exact in float64
    return {
        "reference": reference_signal(rate),
        "silence": np.zeros(2 * rate),
        "square-150hz": np.where((t * 150 // rate) % 2 == 0, 0.5, -0.5),
        "ramp-sweep": 2.0 * sweep_phase - 1.0,
    }


def main(out: Path, clips: list[Path]) -> None:
    signals = {str(clip): load_audio(clip, 16000) for clip in clips} | generated_signals()
    arrays: dict[str, np.ndarray] = {}
    bundles = sorted(p.name for p in MODELS_DIR.iterdir() if (p / "manifest.json").is_file())
    for name in bundles:
        for _, runtime in RUNTIMES[:2]:  # ai-edge-litert, tflite-runtime: whichever is installed
            try:
                bundle = load_bundle(name, runtime=runtime, variant="int8")
            except Exception:  # noqa: BLE001 - not installed here
                continue
            manifest = bundle.manifest
            for key, samples in signals.items():
                features = compute_features(samples, manifest.frontend)
                arrays[f"features|{name}|{key}"] = features
                if len(features) < manifest.windowing.min_frames:
                    continue
                inputs = manifest.input_quantization.quantize(prepare(features, manifest.normalisation, manifest.windowing))
                arrays[f"input|{name}|{key}"] = inputs
                arrays[f"output|{name}|{runtime}|{key}"] = run_windows(bundle.interpreter, inputs)
    np.savez_compressed(out, machine=np.array(platform.machine()), **arrays)
    print(f"{out}: {len(signals)} signals, {len(arrays)} arrays on {platform.machine()}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
