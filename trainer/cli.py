"""``ser-train``: train models on a corpus, check int8 against float, and report."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click


def _speakers(value: str) -> tuple[str, ...]:
    """Speaker ids separated by commas; numeric ranges like 17-20 expand to zero-padded ids
    (RAVDESS actors '17'..'20'); anything else (ShEMO 'F03', CSV ids) is taken as written."""
    ids: list[str] = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        first, dash, last = part.partition("-")
        if first.isdigit() and (not dash or last.isdigit()):
            ids.extend(f"{i:02d}" for i in range(int(first), int(last or first) + 1))
        else:
            ids.append(part)
    return tuple(ids)


class SpeakerList(click.ParamType):
    name = "speakers"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return _speakers(value)
        except ValueError:
            self.fail(f"{value!r} is not a list of speakers like 1-12, 13,15 or F03,M07", param, ctx)


def corpus_options(command):
    """--corpus and --corpus-path, shared by every subcommand that reads a corpus."""
    command = click.option("--corpus-path", type=click.Path(exists=True, path_type=Path), default=None,
                           help="Corpus folder (csv: the CSV file); default $SER_CORPUS_DIR/<corpus>, "
                                "else ../shared/corpora/<corpus>.")(command)  # fmt: skip
    return click.option("--corpus", "corpus_kind", type=click.Choice(["ravdess", "shemo", "csv"]), default="ravdess",
                        show_default=True, help="How labels, speakers and genders are read.")(command)  # fmt: skip


def load_corpus(kind: str, path: Path | None):
    from trainer.corpus import corpus_root, read_corpus

    try:
        return read_corpus(kind, path or corpus_root() / kind)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None


def command_line() -> str:
    return shlex.join(["ser-train", *sys.argv[1:]])


@click.group()
def main():
    """Train speech emotion models on the edge frontend and check them."""


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@corpus_options
@click.option("--train-speakers", type=SpeakerList(), default=None, help="Training speakers (default: all others).")
@click.option("--validation-speakers", type=SpeakerList(), default=None,
              help="Speakers for checkpointing, early stopping and the learning-rate schedule (RAVDESS default: 13-16).")
@click.option("--test-speakers", type=SpeakerList(), default=None,
              help="Speakers held out for the reported metrics (RAVDESS default: 17-20). Without both, a "
                   "split balanced for emotion and gender is drawn.")  # fmt: skip
@click.option("--name", default=None, help="Bundle name (default: the output folder's name).")
@click.option("--architecture", type=click.Choice(["lstm", "gru"]), default="lstm", show_default=True)
@click.option("--units", default=64, show_default=True, help="Units per recurrent layer.")
@click.option("--layers", default=1, show_default=True, help="Stacked recurrent layers.")
@click.option("--pooling", type=click.Choice(["mean", "last"]), default="mean", show_default=True,
              help="Average the recurrent outputs over time, or take the final state.")
@click.option("--input-noise", default=0.3, show_default=True, help="Gaussian noise on the features in training.")
@click.option("--dropout", default=0.5, show_default=True)
@click.option("--learning-rate", default=1e-3, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--window-frames", default=192, show_default=True, help="Model input length in frames (16 ms each).")
@click.option("--trim-db", default=0.0, show_default=True, help="Trim leading/trailing frames this far below the peak.")
@click.option("--augment-copies", default=2, show_default=True, help="Augmented copies per training clip (0: none).")
@click.option("--epochs", default=80, show_default=True, help="Most epochs (early stopping on validation).")
@click.option("--patience", default=12, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--max-uar-drop", default=2.0, show_default=True, help="Fail if int8 test UAR is this many points below float32.")
@click.option("--max-accuracy-drop", default=3.0, show_default=True, help="Fail if int8 test accuracy is this many points below float32.")
def train(out_dir, corpus_kind, corpus_path, train_speakers, validation_speakers, test_speakers, name, architecture,
          units, layers, pooling, input_noise, dropout, learning_rate, batch_size, window_frames, trim_db,
          augment_copies, epochs, patience, seed, max_uar_drop, max_accuracy_drop):  # fmt: skip
    """Train a model (RAVDESS by default: 7 classes, split by actor) and write a full-int8 bundle to OUT_DIR."""
    import dataclasses

    from trainer.augment import AugmentConfig
    from trainer.dataset import SpeakerSplit, balanced_split
    from trainer.gate import GateLimits
    from trainer.model import ModelConfig
    from trainer.train import DEFAULT_WINDOWING, QuantizationGateError, TrainOptions, train_bundle

    corpus = load_corpus(corpus_kind, corpus_path)
    if corpus_kind == "ravdess":  # the shipped models' fixed split: 2 male and 2 female actors each
        validation_speakers = validation_speakers or ("13", "14", "15", "16")
        test_speakers = test_speakers or ("17", "18", "19", "20")
    try:
        if validation_speakers and test_speakers:
            held_out = set(validation_speakers) | set(test_speakers)
            train_speakers = train_speakers or tuple(sorted({u.speaker for u in corpus.utterances} - held_out))
            split = SpeakerSplit(train_speakers, validation_speakers, test_speakers)
        else:
            split = balanced_split(corpus.utterances, seed=seed)
        windowing = dataclasses.replace(DEFAULT_WINDOWING, window_frames=window_frames,
                                        hop_frames=window_frames // 2, trim_db=trim_db)  # fmt: skip
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    options = TrainOptions(
        name=name or out_dir.name,
        split=split,
        model=ModelConfig(architecture, units, layers, pooling, input_noise, dropout, learning_rate, batch_size),
        windowing=windowing,
        epochs=epochs,
        patience=patience,
        seed=seed,
        gate=GateLimits(max_uar_drop, max_accuracy_drop),
        augment=AugmentConfig(copies=augment_copies),
        command=command_line(),
    )
    try:
        manifest = train_bundle(options, corpus, out_dir)
    except (QuantizationGateError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {out_dir} (int8 test accuracy {manifest['metrics']['int8']['accuracy']:.2%}, "
               f"UAR {manifest['metrics']['int8']['uar']:.2%})")  # fmt: skip


@main.command()
@click.option("--model", "-m", default=None, metavar="NAME|DIR", help="A shipped bundle's name or a bundle folder.")
@corpus_options
@click.option("--speakers", type=SpeakerList(), default=None,
              help="Only these speakers (default: the bundle's test speakers if it was trained on this corpus, else all).")
@click.option("--max-uar-drop", default=2.0, show_default=True)
@click.option("--max-accuracy-drop", default=3.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole comparison as JSON.")
def gate(model, corpus_kind, corpus_path, speakers, max_uar_drop, max_accuracy_drop, as_json):
    """Compare a bundle's float32 and int8 models on labelled speech; exit 1 if int8 loses too much."""
    from edge.bundle import load_bundle
    from edge.errors import SerError
    from trainer.dataset import load_clips
    from trainer.gate import GateLimits, compare_float_int8, gate_failures, summary_line

    try:
        bundle = load_bundle(model)
    except SerError as error:
        raise click.ClickException(str(error)) from None
    corpus = load_corpus(corpus_kind, corpus_path)
    training = bundle.manifest.document["training"]
    if speakers is None and training.get("corpus") == corpus.name:
        speakers = tuple(training["speakers"]["test"])
    labels = bundle.manifest.labels
    chosen = [u for u in corpus.utterances if (speakers is None or u.speaker in speakers) and u.label in labels]
    if not chosen:
        raise click.ClickException("no utterances with the bundle's labels among the chosen speakers")
    skipped = sum(1 for u in corpus.utterances if u.label not in labels)
    if skipped:
        click.echo(f"skipping {skipped} clips whose labels the model does not have", err=True)
    clips = load_clips(chosen, bundle.manifest.frontend)
    try:
        comparison = compare_float_int8(bundle, clips.features, clips.targets(labels))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    failures = gate_failures(comparison, GateLimits(max_uar_drop, max_accuracy_drop))
    if as_json:
        click.echo(json.dumps({**comparison, "failures": failures}, indent=2))
    click.echo(f"{bundle.manifest.name} on {corpus.name}, {summary_line(comparison)}", err=as_json)
    if failures:
        raise click.ClickException("; ".join(failures))
    click.echo("gate passed", err=as_json)


if __name__ == "__main__":
    main()
