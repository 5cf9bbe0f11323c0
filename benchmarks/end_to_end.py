"""`ser classify` end to end (decode, resample, features, inference) and cold start."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile

from benchmarks.timing import REPO, interleaved_medians


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def classify_throughput(clips: list[Path], model: str | None = None, variant: str | None = None) -> dict:
    """Real-time factor of in-process classification (CPU seconds of this process), of the
    `ser classify --jobs 1` command on the same folder (CPU of the child and wall time, start-up
    included) and of `ser classify --jobs 2` (wall time: two processes on two cores); medians of 3."""
    from edge.bundle import load_bundle
    from edge.classifier import Classifier

    audio_seconds = sum(soundfile.info(clip).duration for clip in clips)
    classifier = Classifier(load_bundle(model, variant=variant))
    classifier.classify_file(clips[0])  # warm-up
    options = [*(["--model", model] if model else []), *(["--variant", variant] if variant else [])]
    in_process, command, command_wall, two_jobs = [], [], [], []
    for _ in range(3):  # medians of three passes over the folder
        started = time.process_time()
        for clip in clips:
            classifier.classify_file(clip)
        in_process.append(time.process_time() - started)
        before, started = _children_cpu(), time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "edge.cli", "classify", "--jobs", "1", *options, *map(str, clips)],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        command.append(_children_cpu() - before)
        command_wall.append(time.perf_counter() - started)
        started = time.perf_counter()  # two worker processes: wall time is what they save
        subprocess.run(
            [sys.executable, "-m", "edge.cli", "classify", "--jobs", "2", *options, *map(str, clips)],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        two_jobs.append(time.perf_counter() - started)
    in_process, command, command_wall, two_jobs = map(statistics.median, (in_process, command, command_wall, two_jobs))
    return {
        "model": classifier.manifest.name,
        "variant": f"{classifier.bundle.variant}{'' if variant else ' (auto)'}",
        "clips": len(clips),
        "audio_seconds": round(audio_seconds, 1),
        "realtime_factor_in_process": audio_seconds / in_process,
        "realtime_factor_command": audio_seconds / command,
        "realtime_factor_command_wall": audio_seconds / command_wall,
        "realtime_factor_command_jobs_2_wall": audio_seconds / two_jobs,
    }


def against_inference(clips: list[Path], model: str | None = None, repeats: int = 3) -> dict:
    """`ser classify --jobs 1` (wall time of the command, start-up included) against the floor:
    its model's inference alone on the very windows it runs (one interpreter call per clip, one
    thread), and `--jobs 2` against `--jobs 1`; timed in turns, medians of ``repeats``."""
    from edge.audio import load_audio
    from edge.bundle import load_bundle
    from edge.classifier import Classifier
    from edge.frontend import compute_features
    from edge.model_input import prepare

    classifier = Classifier(load_bundle(model))
    manifest = classifier.manifest
    windows = [
        prepare(
            compute_features(load_audio(clip, manifest.frontend.sample_rate), manifest.frontend),
            manifest.normalisation,
            manifest.windowing,
        )
        for clip in clips
    ]

    def inference() -> None:
        for clip_windows in windows:
            classifier.bundle.probabilities(clip_windows)

    def command(jobs: int):
        options = ["--model", model] if model else []
        return lambda: subprocess.run(
            [sys.executable, "-m", "edge.cli", "classify", "--jobs", str(jobs), *options, *map(str, clips)],
            cwd=REPO,
            capture_output=True,
            check=True,
        )

    timed = interleaved_medians({"inference": inference, "jobs 1": command(1), "jobs 2": command(2)}, repeats)
    return {
        "model": f"{manifest.name} {classifier.bundle.variant} (auto)",
        "clips": len(clips),
        "windows": sum(len(w) for w in windows),
        "inference_alone_s": timed["inference"],
        "ser_classify_jobs_1_s": timed["jobs 1"],
        "times_inference": timed["jobs 1"] / timed["inference"],
        "ser_classify_jobs_2_s": timed["jobs 2"],
        "jobs_2_speed_up": timed["jobs 1"] / timed["jobs 2"],
    }


def cold_start(clip: Path, repeats: int = 5) -> dict:
    """Median wall seconds of a fresh process: `ser classify` on one file, and `import edge`."""

    def wall(*args) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    return {
        "ser_classify_one_file_seconds": wall("-m", "edge.cli", "classify", str(clip)),
        "import_edge_seconds": wall("-c", "import edge"),
        "python_alone_seconds": wall("-c", "pass"),
    }


# Run a module as `python -m` does, and at exit write the process's own peak RSS (VmHWM, in kB) to
# the file named by the first argument. Not the parent's rusage: a child forked from a large
# benchmark process (TensorFlow loaded for the Keras row) inherits its high-water mark.
_REPORTING_PEAK = """import atexit, runpy, sys
report = sys.argv.pop(1)
def write_peak():
    status = open("/proc/self/status").read()
    open(report, "w").write(status.split("VmHWM:")[1].split()[0])
atexit.register(write_peak)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _peak_rss_mb(module: str, *args: str) -> float:
    """Peak resident memory in MB of a fresh process running ``python -m module args``."""
    with tempfile.NamedTemporaryFile() as report:
        subprocess.run(
            [sys.executable, "-c", _REPORTING_PEAK, report.name, module, *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        return int(Path(report.name).read_text()) / 1024


def memory_by_length(clips: list[Path], long_seconds: float, folder: Path) -> dict:
    """Peak RSS of `ser classify` on one clip and on a generated long FLAC of the clips one after
    another (written a clip at a time, so the benchmark itself stays small)."""
    long_file = folder / "long.flac"
    written = 0
    with soundfile.SoundFile(long_file, "w", 16000, 1, subtype="PCM_16") as sink:
        while written < long_seconds * 16000:
            for clip in clips:
                samples, _ = soundfile.read(clip, dtype="float64")
                sink.write(samples[: round(long_seconds * 16000) - written])
                written += len(samples)
    started = time.perf_counter()
    long_rss = _peak_rss_mb("edge.cli", "classify", str(long_file))
    long_wall = time.perf_counter() - started
    short_rss = _peak_rss_mb("edge.cli", "classify", str(clips[0]))
    return {
        "short_clip_seconds": round(soundfile.info(clips[0]).duration, 1),
        "short_peak_rss_mb": short_rss,
        "long_file_seconds": long_seconds,
        "long_peak_rss_mb": long_rss,
        "difference_mb": long_rss - short_rss,
        "long_file_wall_seconds": long_wall,
    }
