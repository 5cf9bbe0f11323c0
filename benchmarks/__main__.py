"""`python -m benchmarks`: every figure of docs/benchmarks.md, as tables and as JSON.

One thread everywhere (set before numpy loads), medians over repeats, ratios measured side by side.
"""

from __future__ import annotations

import os

from edge import process

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
process.tune()  # the device's commands run with these malloc settings: so do their benchmarks

import json
import platform
import sys
from pathlib import Path

import click

from benchmarks.timing import speech, speech_clips
from trainer.corpus import corpus_root

SECTIONS = ("profile", "frontend", "rounding", "inference", "classify", "memory", "cold-start", "daemon", "streams")


def print_table(title: str, rows: list[dict]) -> None:
    click.echo(f"\n## {title}\n")
    if not rows:
        click.echo("(nothing measured)")
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    widths = {c: max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns}
    click.echo(" | ".join(c.ljust(widths[c]) for c in columns))
    click.echo("-|-".join("-" * widths[c] for c in columns))
    for row in rows:
        click.echo(" | ".join(cell(row.get(c, "")).ljust(widths[c]) for c in columns))


@click.command()
@click.option("--only", "sections", multiple=True, type=click.Choice(SECTIONS), help="Run only these sections.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write every figure here.")
@click.option("--quick", is_flag=True, help="Fewer repeats, 1 and 10 s of audio, 20 s of daemon listening (a smoke run).")
@click.option("--daemon-seconds", default=60.0, show_default=True, help="Continuous speech played to the daemon.")
def main(sections, json_path, quick, daemon_seconds):
    """Measure the frontend, inference, `ser classify`, cold start and the daemon on this machine."""
    from edge.bundle import MODELS_DIR, load_bundle, shipped_emotion_models

    sections = sections or SECTIONS
    corpus = corpus_root()
    clips = speech_clips(corpus, 100)
    bundles = [MODELS_DIR / name for name in shipped_emotion_models()]
    results = {
        "machine": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "clips": f"{len(clips)} real clips ({clips[0].parent.parent.name})",
    }
    click.echo(f"# edge-ser benchmarks on {platform.machine()}, Python {platform.python_version()}, one thread")
    repeats = 3 if quick else 7

    if "profile" in sections:
        from benchmarks import profile

        shipped = load_bundle().manifest.frontend
        results["profile"] = profile.run(speech(10, clips), shipped, 3 if quick else 7)
        print_table(
            "Frontend profile: milliseconds per second of audio, by step (shipped configuration, 10 s of speech)",
            results["profile"],
        )
    if "frontend" in sections:
        from benchmarks import frontend

        shipped = load_bundle().manifest.frontend
        results["frontend"] = frontend.run(
            lambda seconds: speech(seconds, clips), shipped, (1, 3, 10) if quick else (1, 3, 10, 60), repeats
        )
        print_table("Frontend: milliseconds per second of audio (times_ours: how many times ours it takes)", results["frontend"])
    if "rounding" in sections:
        from benchmarks import frontend

        results["rounding"] = frontend.fallback_rate(corpus, 100 if quick else 1000)
        print_table("Certified rounding: frames computed the reproducible way, on every corpus", results["rounding"])
    if "inference" in sections:
        from benchmarks import inference

        results["inference"] = inference.run(bundles, repeats=10 if quick else 50)
        print_table("Inference: milliseconds per model window", results["inference"])
    if "classify" in sections:
        from benchmarks import end_to_end

        folder = speech_clips(corpus, 20 if quick else 240)  # 240: as many as the outside measurement's
        results["classify"] = [
            end_to_end.classify_throughput(folder, b.name, variant) for b in bundles for variant in (None, "int8", "float32")
        ]
        print_table("`ser classify` end to end: seconds of audio per CPU second", results["classify"])
        results["against_inference"] = [end_to_end.against_inference(folder, b.name) for b in bundles]
        print_table("`ser classify` against its model's inference alone, on the same windows", results["against_inference"])
    if "memory" in sections:
        import tempfile

        from benchmarks import end_to_end

        with tempfile.TemporaryDirectory() as folder:
            long_seconds = 600.0 if quick else 7200.0
            results["memory"] = [end_to_end.memory_by_length(clips, long_seconds, Path(folder))]
        print_table("`ser classify` peak memory: a short clip against a long file", results["memory"])
    if "cold-start" in sections:
        from benchmarks import end_to_end

        results["cold_start"] = [end_to_end.cold_start(clips[0], 3 if quick else 7)]
        print_table("Cold start: wall seconds of a fresh process", results["cold_start"])
    if "daemon" in sections:
        from benchmarks import daemon

        results["daemon"] = [daemon.run(clips, 20.0 if quick else daemon_seconds)]
        print_table("Daemon listening to continuous speech (virtual microphone)", results["daemon"])

    if "streams" in sections:
        from edge.settings import SegmenterSettings
        from trainer.corpus import SHIPPED_CORPORA, read_corpora
        from trainer.streams import evaluate_streams

        corpora = read_corpora(list(SHIPPED_CORPORA), None)
        results["streams"] = [
            {"stream": name, "segmenter": segmenter, **figures}
            for segmenter, settings in (
                ("level alone", SegmenterSettings(detector="none")),
                ("speech detector", SegmenterSettings()),
            )
            for name, figures in evaluate_streams(corpora, settings)["conditions"].items()
        ]
        print_table(
            "Streams replayed to the segmenter: 240 utterances of 12 validation speakers, 2 s apart; 2 min of noise alone",
            results["streams"],
        )

    if json_path:
        json_path.write_text(json.dumps(results, indent=1) + "\n")
        click.echo(f"\nfigures written to {json_path}", err=True)


if __name__ == "__main__":
    sys.exit(main())
