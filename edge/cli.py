"""``ser``: classify audio files on the device and inspect model bundles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge.errors import SerError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64"}


def expand_inputs(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given, and the audio files (by suffix) inside folders, recursively and sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES))
        else:
            files.append(path)
    return files


def _load(model: str | None, runtime: str | None):
    from edge.bundle import load_bundle

    try:
        return load_bundle(model, runtime=runtime)
    except SerError as error:
        raise click.ClickException(str(error)) from None


model_option = click.option("--model", "-m", default=None, metavar="NAME|DIR",
                            help="A shipped bundle's name or a bundle folder (default: lstm-ravdess).")  # fmt: skip
runtime_option = click.option("--runtime", type=click.Choice(["ai-edge-litert", "tflite-runtime", "tensorflow"]),
                              default=None, help="TFLite interpreter (default: the first installed, in that order).")  # fmt: skip


@click.group()
@click.version_option(package_name="edge-ser")
def main():
    """Speech emotion recognition on the device."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@runtime_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for programs.")
def classify(paths, model, runtime, as_json):
    """Classify audio FILES and FOLDERS: emotion, confidence and per-class scores per file.

    A file that cannot be classified is reported on one line and the others still run; the exit
    status is 1 if any file failed.
    """
    from edge.classifier import Classifier

    bundle = _load(model, runtime)
    classifier = Classifier(bundle)
    click.echo(f"model {bundle.manifest.name} ({bundle.path}) on {bundle.runtime}", err=True)
    labels = bundle.manifest.labels
    files = expand_inputs(paths)
    if not files:
        raise click.ClickException("no audio files found in " + ", ".join(map(str, paths)))
    if not as_json:
        click.echo(f"{'file':40} {'emotion':10} {'conf':>5}  " + " ".join(f"{label[:5]:>5}" for label in labels))
    failures = 0
    for path in files:
        try:
            prediction = classifier.classify_file(path)
        except SerError as error:
            failures += 1
            if as_json:
                click.echo(json.dumps({"file": str(path), "error": str(error)}))
            click.echo(f"error: {error}", err=True)
            continue
        if as_json:
            record = {"file": str(path), "emotion": prediction.label, "confidence": round(prediction.confidence, 4),
                      "scores": {k: round(v, 4) for k, v in prediction.scores.items()},
                      "duration": round(prediction.duration, 3), "windows": prediction.windows}  # fmt: skip
            click.echo(json.dumps(record))
        else:
            scores = " ".join(f"{prediction.scores[label]:5.2f}" for label in labels)
            click.echo(f"{str(path)[-40:]:40} {prediction.label:10} {prediction.confidence:5.2f}  {scores}")
    if failures:
        click.echo(f"{failures} of {len(files)} file(s) could not be classified", err=True)
        sys.exit(1)


@main.command()
@model_option
@runtime_option
def info(model, runtime):
    """Print a bundle's manifest and verify its model hash and frontend fingerprint."""
    bundle = _load(model, runtime)
    manifest = bundle.manifest
    click.echo(json.dumps(manifest.document, indent=2))
    click.echo(f"bundle: {bundle.path}", err=True)
    click.echo(f"runtime: {bundle.runtime}", err=True)
    click.echo(f"fingerprint: {manifest.fingerprint} verified (this frontend reproduces it)", err=True)


if __name__ == "__main__":
    main(prog_name="ser")
