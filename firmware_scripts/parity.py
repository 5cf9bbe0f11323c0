"""What the device computes, saved on one machine and compared with another's (x86 vs arm64).

    python firmware_scripts/parity.py clips CORPUS_DIR N > clips.txt
    python firmware_scripts/parity.py stream CORPUS_DIR clips.txt NOISE_FILE stream.wav
    python firmware_scripts/parity.py save OUT.npz --root CORPUS_DIR --list clips.txt [--stream stream.wav]
        [--features-list wide.txt] [--noise NOISE_FILE ...]
    python firmware_scripts/parity.py compare REFERENCE.npz OTHER.npz [...more pairs]

``save`` runs only device code (``edge``, from whichever installation the Python running it has),
so it works in the device's virtualenv on any architecture. For every clip and a few generated
signals it stores a hash of the resampled audio, the float64 features, and for each bundle found
(``SER_MODELS_DIR``, else the checkout's models/) and each interpreter installed, the int8 model
input windows and the int8 model outputs (the speech detector is a bundle too: its outputs are
what the device computes, ``edge.int8_dense``); with a stream (built
here by ``stream``: clips over household noise, then the noise alone), what the daemon's segmenter
makes of it: the detector's probability for every block and the utterances' boundaries. The
frontend alone is checked on a wider set (``--features-list``, ``--noise``): the features of
every bundle's frontend, and how many frames took the reproducible path (``edge.certified``).
``compare`` prints the parity report and exits 1 if any feature array, int8 input tensor, model
output or stream result differs, except the known rounding of ``ROUNDING_RUNTIME``.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from pathlib import Path

import click
import numpy as np
import soundfile

from edge.audio import load_audio
from edge.bundle import load_bundle, models_dirs
from edge.errors import BundleError
from edge.fingerprint import reference_signal
from edge.frontend import ROUNDING, compute_features
from edge.int8_dense import Int8Dense
from edge.model_input import prepare
from edge.runtime import RUNTIMES, Runtime, find_runtime, run_windows
from edge.segmenter import Segmenter
from edge.settings import SegmenterSettings
from edge.speech_detector import speech_detector

# tflite-runtime 2.14 (the last release, 2023) rounds some int8 ADDs one step differently on aarch64:
# found by making every tensor of gru-multilingual a model output, its first difference is the ADD
# inside a GRU step (int8 scales 0.065 and 0.025 into 0.053; ai-edge-litert agrees on both
# machines). Its model outputs may therefore differ by rounding; they must still pick the same
# emotion in every window. Everything else, and every array of ai-edge-litert, must be identical.
ROUNDING_RUNTIME = "tflite-runtime 2.14"

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def generated_signals(rate: int = 16000) -> dict[str, np.ndarray]:
    """Signals built from integer arithmetic, the same bits on every machine before the frontend:
    the fingerprint's reference signal, digital silence, a clipped square wave and a sweep."""
    t = np.arange(3 * rate)
    sweep_phase = (t * t) % (2 * rate * rate) / (2 * rate * rate)  # exact in float64
    return {
        "generated:reference": reference_signal(rate),
        "generated:silence": np.zeros(2 * rate),
        "generated:square-150hz": np.where((t * 150 // rate) % 2 == 0, 0.5, -0.5),
        "generated:ramp-sweep": 2.0 * sweep_phase - 1.0,
    }


def installed_runtimes() -> list[Runtime]:
    """The light interpreters (ai-edge-litert, tflite-runtime) importable here."""
    found = []
    for _, name in RUNTIMES[:2]:
        try:
            found.append(find_runtime(name))
        except BundleError:
            continue
    return found


@click.group()
def main():
    """Save what the device computes, or compare two machines' saves."""


@main.command()
@click.argument("corpus", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("count", type=int)
def clips(corpus: Path, count: int):
    """Print COUNT audio files of CORPUS, spread evenly over its sorted list (paths relative to it)."""
    files = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if len(files) < count:
        raise click.ClickException(f"{corpus}: {len(files)} audio files, fewer than the {count} asked for")
    for i in range(count):
        click.echo(files[i * len(files) // count])


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder the listed clips are relative to.",
)
@click.option("--list", "clip_list", type=click.File(), required=True, help="File with one clip path per line.")
@click.option("--stream", "stream_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option(
    "--features-list", type=click.File(), default=None, help="More clips (under --root) whose features alone are saved."
)
@click.option(
    "--noise",
    "noise_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Recordings whose features alone are saved.",
)
def save(out: Path, root: Path, clip_list, stream_path: Path | None, features_list, noise_files: tuple[Path, ...]):
    """Compute and save features, int8 inputs and int8 outputs of the listed clips, what the
    segmenter makes of the stream, and the features alone of the wider set."""
    names = [line.strip() for line in clip_list if line.strip()]
    bundles = sorted({p.name for d in models_dirs() if d.is_dir() for p in d.iterdir() if (p / "manifest.json").is_file()})
    runtimes = installed_runtimes()
    arrays: dict[str, np.ndarray] = {}
    signals = {name: load_audio(root / name, 16000) for name in names} | generated_signals()
    for key, samples in signals.items():
        arrays[f"audio|{key}"] = np.array(hashlib.sha256(samples.tobytes()).hexdigest())
    for bundle_name in bundles:
        for runtime in runtimes:
            bundle = load_bundle(bundle_name, runtime=runtime.name, variant="int8")  # verifies the fingerprint
            manifest = bundle.manifest
            network = Int8Dense(bundle.interpreter) if manifest.is_speech_detector else None  # what the device runs
            for key, samples in signals.items():
                if f"input|{bundle_name}|{key}" not in arrays:
                    features = compute_features(samples, manifest.frontend)
                    arrays[f"features|{bundle_name}|{key}"] = features
                    windows = prepare(features, manifest.normalisation, manifest.windowing)
                    arrays[f"input|{bundle_name}|{key}"] = manifest.input_quantization.quantize(windows)
                inputs = arrays[f"input|{bundle_name}|{key}"]
                arrays[f"output|{bundle_name}|{runtime.name}|{key}"] = (
                    network(inputs) if network else run_windows(bundle.interpreter, inputs)
                )
    wide = [line.strip() for line in features_list if line.strip()] if features_list else []
    arrays |= frontend_only({name: root / name for name in wide} | {f"noise:{p.name}": p for p in noise_files}, bundles)
    if stream_path is not None:
        arrays |= replay_stream(stream_path)
    about = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "runtime": " / ".join(map(str, runtimes)) or "none",
        "bundles": ", ".join(bundles),
        "frames": ROUNDING.frames,
        "fallbacks": ROUNDING.fallbacks,
    }
    np.savez_compressed(out, **{f"about|{k}": np.array(v) for k, v in about.items()}, **arrays)
    click.echo(
        f"{out}: {len(names)} clips + {len(signals) - len(names)} generated signals, {len(bundles)} bundles, "
        f"{' / '.join(map(str, runtimes)) or 'no interpreter'} on {platform.machine()}",
        err=True,
    )


def frontend_only(files: dict[str, Path], bundles: list[str]) -> dict[str, np.ndarray]:
    """The features of every file under each distinct frontend of the bundles (the emotion models
    share one), keyed ``wide|<first bundle with that frontend>|<file>``."""
    configs = {}
    for name in bundles:
        configs.setdefault(load_bundle(name, variant="int8").manifest.frontend, name)
    arrays = {}
    for key, path in files.items():
        samples = load_audio(path, 16000)
        for config, name in configs.items():
            arrays[f"wide|{name}|{key}"] = compute_features(samples, config)
    return arrays


@main.command()
@click.argument("corpus", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("clip_list", type=click.File())
@click.argument("noise", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def stream(corpus: Path, clip_list, noise: Path, out: Path):
    """Write OUT (float WAV, 16 kHz): every tenth listed clip, 2 s apart, over the last 15 % of the
    NOISE recording at 10 dB below the speech, then 20 s of the noise alone."""
    rate, rng = 16000, np.random.default_rng(0)
    names = [line.strip() for line in clip_list if line.strip()][::10]
    gap = np.zeros(2 * rate)
    speech = np.concatenate(
        [part for name in names for part in (gap, load_audio(corpus / name, rate))] + [gap, np.zeros(20 * rate)]
    )
    recording = load_audio(noise, rate)
    background = np.resize(recording[int(0.85 * len(recording)) :], len(speech))
    background *= np.sqrt(np.mean(speech[speech != 0] ** 2) / np.mean(background**2) / 10)
    hiss = rng.standard_normal(len(speech)) * 10 ** (-70 / 20)
    soundfile.write(out, np.clip(speech + background + hiss, -1, 1).astype(np.float32), rate, subtype="FLOAT")
    click.echo(f"{out}: {len(names)} clips over {noise.name}, {len(speech) / rate:.0f} s", err=True)


def replay_stream(path: Path) -> dict[str, np.ndarray]:
    """The daemon's segmenter (default settings, the default model's frontend) on the stream in
    the microphone's 0.1 s reads: the speech detector's probability of every block, and each
    utterance's start, end, first and last speech (seconds)."""
    settings, frontend = SegmenterSettings(), load_bundle().manifest.frontend
    samples = load_audio(path, frontend.sample_rate)
    detector = speech_detector(settings.detector)
    blocks = samples[: len(samples) // detector.block * detector.block].reshape(-1, detector.block)
    probabilities = detector.push(blocks, np.ones(len(blocks), dtype=bool))
    segmenter, read, utterances = Segmenter(settings, frontend), frontend.sample_rate // 10, []
    for at in range(0, len(samples), read):
        utterances += segmenter.push(samples[at : at + read])
    utterances += segmenter.flush()
    bounds = np.array([(u.start, u.end, u.speech_start, u.speech_end) for u in utterances]).reshape(-1, 4)
    return {f"stream|probability|{path.name}": probabilities, f"stream|utterances|{path.name}": bounds}


def ulp_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in units in the last place between two float64 arrays of one shape."""
    if a.shape != b.shape:
        return sys.maxsize
    ordered = [np.where(x.view(np.int64) < 0, np.int64(-(2**63)) - x.view(np.int64), x.view(np.int64)) for x in (a, b)]
    return int(np.abs(ordered[0] - ordered[1]).max(initial=0))


def compare_pair(reference: Path, other: Path) -> tuple[list[str], int]:
    """Report lines for two saves, and the number of differing int8 tensors and outputs."""
    a, b = np.load(reference), np.load(other)

    def about(data, key: str) -> str:
        return str(data[f"about|{key}"])

    lines = [
        f"{about(a, 'machine')} vs {about(b, 'machine')}: {about(a, 'runtime')} vs {about(b, 'runtime')}; "
        f"Python {about(a, 'python')} vs {about(b, 'python')}; numpy {about(a, 'numpy')} vs {about(b, 'numpy')}"
    ]
    missing = sorted(set(a.files) ^ set(b.files))
    if missing:
        lines.append(f"  MISSING on one side: {len(missing)} arrays, e.g. {missing[0]}")
    keys = [k for k in a.files if k in b.files and not k.startswith("about|")]
    clips = {k.split("|")[-1] for k in keys if not k.startswith(("stream|", "wide|"))}
    real = [c for c in clips if not c.startswith("generated:")]
    lines.append(
        f"  files compared: {len(real)} real clips + {len(clips) - len(real)} generated signals, bundles {about(a, 'bundles')}"
    )
    wide = {k.split("|")[-1] for k in keys if k.startswith("wide|")}
    noise = [k for k in wide if k.startswith("noise:")]
    if wide:
        lines.append(f"  frontend alone: {len(wide) - len(noise)} more real clips + {len(noise)} noise recordings")
    for data in (a, b):
        frames, fallbacks = int(data["about|frames"]), int(data["about|fallbacks"])
        lines.append(
            f"  {about(data, 'machine')}: {fallbacks} of {frames} frames computed the reproducible way "
            f"({100 * fallbacks / max(frames, 1):.3f} %; the rest kept numpy's rounded values)"
        )
    differing = len(missing)
    for kind, title in (
        ("audio", "resampled audio identical"),
        ("features", "float feature arrays identical"),
        ("wide", "float feature arrays of the wider set identical"),
        ("input", "int8 input tensors identical"),
        ("output", "int8 model outputs identical"),
        ("stream", "replayed stream: speech probabilities and utterance boundaries identical"),
    ):
        group = [k for k in keys if k.startswith(kind + "|")]
        if kind == "wide" and not group:
            continue  # the frontend alone is saved beside one interpreter: it does not depend on it
        # A stream's blocks before its first whole window have no probability (NaN) on either side.
        same = [k for k in group if a[k].shape == b[k].shape and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f")]
        line = f"  {title}: {len(same)} / {len(group)}"
        if kind in ("features", "wide"):
            line += f" (largest difference {max((ulp_distance(a[k], b[k]) for k in group), default=0)} ulp)"
        rounded = []
        if kind == "output" and about(a, "runtime").startswith(ROUNDING_RUNTIME):
            rounded = [
                k
                for k in group
                if k not in same and a[k].shape == b[k].shape and np.array_equal(a[k].argmax(axis=-1), b[k].argmax(axis=-1))
            ]
            steps = max((int(np.abs(a[k].astype(int) - b[k].astype(int)).max()) for k in rounded), default=0)
            line += (
                f"; {len(rounded)} more differ by {ROUNDING_RUNTIME}'s rounding"
                f" (at most {steps} steps, same emotion in every window)"
            )
        if kind != "audio":
            differing += len(group) - len(same) - len(rounded)
        lines.append(line + "".join(f"\n    differs: {k}" for k in sorted(set(group) - set(same) - set(rounded))[:10]))
    return lines, differing


@main.command()
@click.argument("saves", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def compare(saves: tuple[Path, ...]):
    """Compare saves in pairs (REFERENCE OTHER ...): print the report, exit 1 on any difference."""
    if len(saves) % 2:
        raise click.UsageError("give the saves in pairs: REFERENCE OTHER [REFERENCE OTHER ...]")
    differing = 0
    for reference, other in zip(saves[0::2], saves[1::2]):
        lines, count = compare_pair(reference, other)
        click.echo("\n".join(lines))
        differing += count
    click.echo(f"feature arrays, int8 tensors and outputs differing: {differing}")
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
