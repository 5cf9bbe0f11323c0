"""``ser-train``: train a model on a corpus and write a bundle the device can run."""

from __future__ import annotations

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


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--corpus", "corpus_kind", type=click.Choice(["ravdess", "shemo", "csv"]), default="ravdess",
              show_default=True, help="How to read labels, speakers and genders.")
@click.option("--corpus-path", type=click.Path(exists=True, path_type=Path), default=None,
              help="Corpus folder (csv: the CSV file); default $SER_CORPUS_DIR/<corpus>, else ../shared/corpora/<corpus>.")
@click.option("--train-speakers", type=SpeakerList(), default=None, help="Training actors (default: all others).")
@click.option("--validation-speakers", type=SpeakerList(), default=None,
              help="Speakers for early stopping and the learning-rate schedule (RAVDESS default: 13-16).")
@click.option("--test-speakers", type=SpeakerList(), default=None,
              help="Speakers held out for the reported metrics (RAVDESS default: 17-20).")
@click.option("--name", default=None, help="Bundle name (default: the output folder's name).")
@click.option("--units", default=64, show_default=True, help="Units per LSTM layer.")
@click.option("--layers", default=1, show_default=True, help="Stacked LSTM layers.")
@click.option("--pooling", type=click.Choice(["mean", "last"]), default="mean", show_default=True,
              help="Average the LSTM outputs over time, or take the final state.")
@click.option("--input-noise", default=0.3, show_default=True, help="Gaussian noise on the features in training.")
@click.option("--dropout", default=0.5, show_default=True)
@click.option("--learning-rate", default=1e-3, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--epochs", default=80, show_default=True, help="Most epochs (early stopping on validation).")
@click.option("--patience", default=12, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--max-int8-drop", default=3.0, show_default=True,
              help="Fail if int8 test accuracy is more than this many points below float32.")
def main(out_dir, corpus_kind, corpus_path, train_speakers, validation_speakers, test_speakers, name, units, layers, pooling, input_noise, dropout,
         learning_rate, batch_size, epochs, patience, seed, max_int8_drop):  # fmt: skip
    """Train an LSTM on a corpus (RAVDESS by default: 7 classes, split by actor) and write a
    full-int8 bundle to OUT_DIR."""
    from trainer.corpus import corpus_root, read_corpus
    from trainer.dataset import SpeakerSplit, balanced_split
    from trainer.model import ModelConfig
    from trainer.train import QuantizationGateError, TrainOptions, train_bundle

    try:
        corpus = read_corpus(corpus_kind, corpus_path or corpus_root() / corpus_kind)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
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
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    options = TrainOptions(
        name=name or out_dir.name,
        split=split,
        model=ModelConfig("lstm", units, layers, pooling, input_noise, dropout, learning_rate, batch_size),
        epochs=epochs,
        patience=patience,
        seed=seed,
        max_int8_drop=max_int8_drop,
        command=shlex.join(["ser-train", *sys.argv[1:]]),
    )
    try:
        manifest = train_bundle(options, corpus, out_dir)
    except (QuantizationGateError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {out_dir} (int8 test accuracy {manifest['metrics']['int8']['accuracy']:.2%}, "
               f"UAR {manifest['metrics']['int8']['uar']:.2%})")  # fmt: skip


if __name__ == "__main__":
    main()
