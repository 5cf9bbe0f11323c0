"""``ser classify``: the emotion of audio files and folders, one line (or JSON object) per file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from edge.cli.common import _load, expand_inputs, main, model_option, runtime_option, variant_option
from edge.errors import SerError

_worker_classifier = None  # in a `ser classify --jobs` worker process: its own loaded bundle


def _start_worker(bundle_path: str, runtime: str | None, variant: str) -> None:
    global _worker_classifier
    from edge.bundle import load_bundle
    from edge.classifier import Classifier

    _worker_classifier = Classifier(load_bundle(bundle_path, runtime=runtime, variant=variant))


def _classify_or_error(classifier, path: Path):
    """The file's Prediction, or the SerError saying why it cannot be classified."""
    try:
        return classifier.classify_file(path)
    except SerError as error:
        return error


def _classify_in_worker(path: Path):
    return _classify_or_error(_worker_classifier, path)


def _results(classifier, files: list[Path], jobs: int):
    """Each file's Prediction or SerError, in the files' order; with ``jobs`` > 1 computed by that
    many worker processes, each with the same bundle, runtime and variant as ``classifier``. If a
    worker dies (a crash in a decoder or interpreter), one line instead of a traceback; the files
    after the last one printed were not classified."""
    if jobs <= 1:
        yield from (_classify_or_error(classifier, path) for path in files)
        return
    import multiprocessing  # only here: the pool's modules cost a one-file start 15 ms
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    bundle = classifier.bundle
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    try:
        with ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_start_worker, initargs=(str(bundle.path), bundle.runtime.name, bundle.variant)
        ) as pool:
            yield from pool.map(_classify_in_worker, files)
    except BrokenProcessPool:
        raise click.ClickException("a worker process died; run again with --jobs 1 to find the file that kills it") from None


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@runtime_option
@variant_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for programs.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Files classified at once, each in its own process (default: the number of cores).",
)
def classify(paths, model, runtime, variant, as_json, jobs):
    """Classify audio FILES and FOLDERS: emotion, confidence and per-class scores per file.

    A file that cannot be classified is reported on one line and the others still run; the exit
    status is 1 if any file failed. Output comes in the order of the files, however many jobs.
    """
    from edge.classifier import Classifier

    bundle = _load(model, runtime, variant)
    classifier = Classifier(bundle)
    click.echo(f"model {bundle.manifest.name} ({bundle.variant}, {bundle.path}) on {bundle.runtime}", err=True)
    labels = bundle.manifest.labels
    files = expand_inputs(paths)
    if not files:
        raise click.ClickException("no audio files found in " + ", ".join(map(str, paths)))
    if not as_json:
        click.echo(f"{'file':40} {'emotion':10} {'conf':>5}  " + " ".join(f"{label[:5]:>5}" for label in labels))
    failures = 0
    results = _results(classifier, files, min(jobs or os.cpu_count() or 1, len(files)))
    for path, result in zip(files, results):
        if isinstance(result, SerError):
            failures += 1
            if as_json:
                click.echo(json.dumps({"file": str(path), "error": str(result)}))
            click.echo(f"error: {result}", err=True)
        elif as_json:
            record = {
                "file": str(path),
                "emotion": result.emotion,
                "confidence": round(result.confidence, 4),
                "scores": {k: round(v, 4) for k, v in result.scores.items()},
                "duration": round(result.duration, 3),
                "windows": result.windows,
            }
            click.echo(json.dumps(record))
        else:
            scores = " ".join(f"{result.scores[label]:5.2f}" for label in labels)
            click.echo(f"{str(path)[-40:]:40} {result.emotion:10} {result.confidence:5.2f}  {scores}")
    if failures:
        click.echo(f"{failures} of {len(files)} file(s) could not be classified", err=True)
        sys.exit(1)
