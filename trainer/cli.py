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


def split_options(command):
    """--train/--validation/--test-speakers, shared by the commands that split a corpus."""
    for option in reversed([
        click.option("--train-speakers", type=SpeakerList(), default=None, help="Training speakers (default: all others)."),
        click.option("--validation-speakers", type=SpeakerList(), default=None,
                     help="Speakers for checkpointing, early stopping and the learning-rate schedule (RAVDESS default: 13-16)."),
        click.option("--test-speakers", type=SpeakerList(), default=None,
                     help="Speakers held out for the reported metrics (RAVDESS default: 17-20). Without both, a "
                          "split balanced for emotion and gender is drawn."),
    ]):  # fmt: skip
        command = option(command)
    return command


def resolve_split(corpus_kind: str, corpus, train_speakers, validation_speakers, test_speakers, seed: int):
    """The speakers given, RAVDESS's fixed split (2 male and 2 female actors held out for each of
    validation and test), or a split balanced for emotion and gender."""
    from trainer.dataset import SpeakerSplit, balanced_split

    if corpus_kind == "ravdess":
        validation_speakers = validation_speakers or ("13", "14", "15", "16")
        test_speakers = test_speakers or ("17", "18", "19", "20")
    try:
        if validation_speakers and test_speakers:
            held_out = set(validation_speakers) | set(test_speakers)
            train_speakers = train_speakers or tuple(sorted({u.speaker for u in corpus.utterances} - held_out))
            return SpeakerSplit(train_speakers, validation_speakers, test_speakers)
        return balanced_split(corpus.utterances, seed=seed)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def model_options(command):
    """The model's architecture and optimiser settings, gathered into one ``model_config`` argument."""
    from functools import wraps

    options = [
        click.option("--architecture", type=click.Choice(["lstm", "gru"]), default="lstm", show_default=True),
        click.option("--units", default=64, show_default=True, help="Units per recurrent layer."),
        click.option("--layers", default=1, show_default=True, help="Stacked recurrent layers."),
        click.option("--pooling", type=click.Choice(["mean", "last"]), default="mean", show_default=True,
                     help="Average the recurrent outputs over time, or take the final state."),
        click.option("--input-noise", default=0.3, show_default=True, help="Gaussian noise on the features in training."),
        click.option("--dropout", default=0.5, show_default=True),
        click.option("--learning-rate", default=1e-3, show_default=True),
        click.option("--batch-size", default=32, show_default=True),
    ]  # fmt: skip
    names = ("architecture", "units", "layers", "pooling", "input_noise", "dropout", "learning_rate", "batch_size")

    @wraps(command)
    def gathered(**kwargs):
        from trainer.model import ModelConfig

        return command(model_config=ModelConfig(**{name: kwargs.pop(name) for name in names}), **kwargs)

    for option in reversed(options):
        gathered = option(gathered)
    return gathered


def command_line() -> str:
    return shlex.join(["ser-train", *sys.argv[1:]])


@click.group()
def main():
    """Train speech emotion models on the edge frontend and check them."""


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@corpus_options
@split_options
@click.option("--name", default=None, help="Bundle name (default: the output folder's name).")
@model_options
@click.option("--window-frames", default=192, show_default=True, help="Model input length in frames (16 ms each).")
@click.option("--trim-db", default=0.0, show_default=True, help="Trim leading/trailing frames this far below the peak.")
@click.option("--augment-copies", default=2, show_default=True, help="Augmented copies per training clip (0: none).")
@click.option("--epochs", default=80, show_default=True, help="Most epochs (early stopping on validation).")
@click.option("--patience", default=12, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--max-uar-drop", default=2.0, show_default=True, help="Fail if int8 test UAR is this many points below float32.")
@click.option("--max-accuracy-drop", default=3.0, show_default=True, help="Fail if int8 test accuracy is this many points below float32.")
def train(out_dir, corpus_kind, corpus_path, train_speakers, validation_speakers, test_speakers, name, model_config,
          window_frames, trim_db, augment_copies, epochs, patience, seed, max_uar_drop, max_accuracy_drop):  # fmt: skip
    """Train a model (RAVDESS by default: 7 classes, split by actor) and write a full-int8 bundle to OUT_DIR."""
    import dataclasses

    from trainer.augment import AugmentConfig
    from trainer.gate import GateLimits
    from trainer.train import DEFAULT_WINDOWING, QuantizationGateError, TrainOptions, train_bundle

    corpus = load_corpus(corpus_kind, corpus_path)
    split = resolve_split(corpus_kind, corpus, train_speakers, validation_speakers, test_speakers, seed)
    try:
        windowing = dataclasses.replace(DEFAULT_WINDOWING, window_frames=window_frames,
                                        hop_frames=window_frames // 2, trim_db=trim_db)  # fmt: skip
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    options = TrainOptions(
        name=name or out_dir.name,
        split=split,
        model=model_config,
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
        bundle = load_bundle(model, variant="int8")  # the gate compares the int8 model with the float32 file
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


def _experiment_setup(corpus_kind, corpus_path, speakers, seed, augment_copies, epochs, parts_needed):
    from trainer.augment import AugmentConfig
    from trainer.dataset import load_clips
    from trainer.train import TrainOptions, _progress

    corpus = load_corpus(corpus_kind, corpus_path)
    split = resolve_split(corpus_kind, corpus, *speakers, seed)
    options = TrainOptions(name="experiment", split=split, seed=seed, epochs=epochs,
                           augment=AugmentConfig(copies=augment_copies), command=command_line())  # fmt: skip
    wanted = {s for part in parts_needed for s in getattr(split, part)}
    what = f"features (with {augment_copies} augmented copies)" if augment_copies else "features"
    clips = load_clips([u for u in corpus.utterances if u.speaker in wanted], options.frontend, options.augment, seed,
                       _progress(what))  # fmt: skip
    parts = {part: clips.subset(lambda u, s=set(getattr(split, part)): u.speaker in s) for part in parts_needed}
    return corpus, options, parts


experiment_options = [
    click.option("--augment-copies", default=2, show_default=True, help="Augmented copies per training clip."),
    click.option("--epochs", default=80, show_default=True, help="Most epochs per model (early stopping)."),
    click.option("--seed", default=7, show_default=True),
]


def with_experiment_options(command):
    for option in reversed(experiment_options):
        command = option(command)
    return command


@main.command()
@click.argument("out_json", type=click.Path(dir_okay=False, path_type=Path))
@corpus_options
@split_options
@click.option("--folds", default=4, show_default=True, help="Speaker-grouped folds over training + validation speakers.")
@click.option("--budget-minutes", default=30.0, show_default=True, help="Stop starting new configurations after this.")
@click.option("--max-configs", default=None, type=int, help="Try at most this many configurations.")
@with_experiment_options
def tune(out_json, corpus_kind, corpus_path, train_speakers, validation_speakers, test_speakers, folds, budget_minutes,
         max_configs, augment_copies, epochs, seed):  # fmt: skip
    """Search layers, units, learning rate and batch size by speaker-grouped cross-validation on
    the training and validation speakers (never the test speakers); write every result to OUT_JSON."""
    from trainer.experiments import tune as search

    speakers = (train_speakers, validation_speakers, test_speakers)
    corpus, options, parts = _experiment_setup(corpus_kind, corpus_path, speakers, seed, augment_copies, epochs,
                                               ("train", "validation"))  # fmt: skip
    development = parts["train"].join(parts["validation"])
    result = search(options, development, corpus.labels, folds, 60 * budget_minutes, max_configs)
    out_json.write_text(json.dumps({"corpus": corpus.name, "command": command_line(), **result}, indent=2) + "\n")
    for row in result["tried"]:
        c = row["config"]
        click.echo(f"{c['architecture']} {c['layers']}x{c['units']:<4} lr {c['learning_rate']:<7g} batch {c['batch_size']:<3} "
                   f"CV UAR {row['uar']:.2%}  accuracy {row['accuracy']:.2%}  {row['seconds']:.0f} s")  # fmt: skip
    click.echo(f"{len(result['tried'])} configurations in {result['seconds']:.0f} s ({result['untried']} not tried); wrote {out_json}")


@main.command()
@click.argument("out_json", type=click.Path(dir_okay=False, path_type=Path))
@corpus_options
@split_options
@model_options
@with_experiment_options
def gender(out_json, corpus_kind, corpus_path, train_speakers, validation_speakers, test_speakers, model_config,
           augment_copies, epochs, seed):  # fmt: skip
    """The gender-dependent experiment: train on female speakers only, male only and both; test
    each on female, male and all test speakers; write the table to OUT_JSON."""
    import dataclasses

    from trainer.experiments import gender_experiment

    speakers = (train_speakers, validation_speakers, test_speakers)
    corpus, options, parts = _experiment_setup(corpus_kind, corpus_path, speakers, seed, augment_copies, epochs,
                                               ("train", "validation", "test"))  # fmt: skip
    options = dataclasses.replace(options, model=model_config)
    rows = gender_experiment(options, parts["train"], parts["validation"], parts["test"], corpus.labels)
    out_json.write_text(json.dumps({"corpus": corpus.name, "command": command_line(), "rows": rows}, indent=2) + "\n")
    click.echo(f"{'trained on':10} {'tested on':9} {'clips':>5} {'accuracy':>8} {'UAR':>7}")
    for r in rows:
        click.echo(f"{r['trained_on']:10} {r['tested_on']:9} {r['clips']:5d} {r['accuracy']:8.2%} {r['uar']:7.2%}")
    click.echo(f"wrote {out_json}")


@main.command()
@click.argument("bundle_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@corpus_options
def report(bundle_dir, corpus_kind, corpus_path):
    """Write BUNDLE_DIR/report.html (self-contained) and MODEL_CARD.md from the bundle's manifest,
    its corpus, and tuning.json / gender_experiment.json in the folder where present."""
    from trainer.model_card import read_experiments, write_model_card
    from trainer.report import write_report

    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    corpus = load_corpus(corpus_kind, corpus_path)
    tuning, experiment = read_experiments(bundle_dir)
    path = write_report(manifest, corpus, bundle_dir, tuning, experiment)
    card = write_model_card(manifest, bundle_dir)
    click.echo(f"wrote {path} and {card}")


@main.command("move-softmax")
@click.argument("bundle_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@corpus_options
def move_softmax(bundle_dir, corpus_kind, corpus_path):
    """Make a bundle trained before the device applied the softmax itself run the same on every
    CPU: strip the softmax from its models and evaluate it again on its test speakers (the corpus
    it was trained on). Then run `ser-train report` for its report."""
    from trainer.train import move_softmax_to_device

    document = move_softmax_to_device(bundle_dir, load_corpus(corpus_kind, corpus_path))
    click.echo(f"{bundle_dir}: the device applies the softmax; int8 test UAR {document['metrics']['int8']['uar']:.2%}")


if __name__ == "__main__":
    main()
