"""``ser-train``: train models on a corpus, check int8 against float, and report."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

import click

from edge.manifest import SPEECH_DETECTOR_LABELS
from edge.settings import SegmenterSettings
from trainer.corpus import SHIPPED_CORPORA
from trainer.gate import GateLimits
from trainer.recipe import ExperimentDefaults
from trainer.speech_detector import DetectorOptions

GATE = GateLimits()
EXPERIMENTS = ExperimentDefaults()


def _speakers(value: str) -> tuple[str, ...]:
    """Speaker ids separated by commas; numeric ranges like 17-20 expand to zero-padded ids
    (RAVDESS actors '17'..'20'), also after a corpus prefix (ravdess/17-20, for several corpora
    at once); anything else (ShEMO 'F03', emodb/03, CSV ids) is taken as written."""
    ids: list[str] = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        prefix, slash, name = part.rpartition("/")
        first, dash, last = name.partition("-")
        if first.isdigit() and (not dash or last.isdigit()):
            ids.extend(f"{prefix}{slash}{i:02d}" for i in range(int(first), int(last or first) + 1))
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


class CorpusList(click.ParamType):
    name = "corpora"

    def convert(self, value, param, ctx):
        from trainer.corpus import READERS

        if isinstance(value, tuple):
            return value
        kinds = tuple(k.strip() for k in value.split(",") if k.strip())
        unknown = [k for k in kinds if k not in READERS]
        if unknown or not kinds:
            self.fail(f"{value!r}: unknown corpus {', '.join(unknown) or '(none)'}; choose from {', '.join(READERS)}", param, ctx)
        return kinds


def corpus_options(command, of_bundle: bool = False):
    """--corpus and --corpus-path, shared by every subcommand that reads a corpus; ``of_bundle``:
    for commands that score a bundle, whose --corpus defaults to the corpora it was trained on."""
    command = click.option(
        "--corpus-path",
        type=click.Path(exists=True, path_type=Path),
        default=None,
        help="Folder of a single corpus (csv: the CSV file); default $SER_CORPUS_DIR/<corpus>, else ../shared/corpora/<corpus>.",
    )(command)
    return click.option(
        "--corpus",
        "corpus_kinds",
        type=CorpusList(),
        default=None if of_bundle else ",".join(SHIPPED_CORPORA),
        show_default=not of_bundle,
        help="Corpora to read, separated by commas"
        + (" (default: those the bundle was trained on)." if of_bundle else "; with several, speaker ids become corpus/speaker."),
    )(command)


def load_corpus(kinds: tuple[str, ...], path: Path | None):
    from trainer.corpus import read_corpora

    try:
        return read_corpora(list(kinds), path)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None


def split_options(command):
    """--train/--validation/--test-speakers, shared by the commands that split a corpus."""
    for option in reversed(
        [
            click.option("--train-speakers", type=SpeakerList(), default=None, help="Training speakers (default: all others)."),
            click.option(
                "--validation-speakers",
                type=SpeakerList(),
                default=None,
                help="Speakers whose clip-level UAR is recorded after every epoch (default: none; nothing is chosen by it).",
            ),
            click.option(
                "--test-speakers",
                type=SpeakerList(),
                default=None,
                help="Speakers held out for the reported metrics (default: RAVDESS actors 17-20 where RAVDESS is read; "
                "else a split balanced for emotion and gender is drawn).",
            ),
        ]
    ):
        command = option(command)
    return command


def split_of(corpus, speakers, seed: int):
    """``trainer.dataset.choose_split`` of the --train/--validation/--test-speakers given."""
    from trainer.dataset import choose_split

    try:
        return choose_split(corpus, *speakers, seed=seed)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


class NoiseFloor(click.ParamType):
    """A level in dBFS, or none."""

    name = "DBFS|none"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, float):
            return value
        if str(value).lower() == "none":
            return None
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a level in dBFS nor none", param, ctx)


def recipe_options(command):
    """The model, its training and its regularisers, gathered into one ``options`` argument (a
    TrainOptions without name, split and command); defaults are the shipped recipe's."""
    from functools import wraps

    from trainer.recipe import BALANCES, CELLS, DESIGNS, ModelConfig, Regularisation, TrainOptions

    model, reg, train = ModelConfig(), Regularisation(), TrainOptions(name="", split=None)
    options = [
        click.option("--architecture", type=click.Choice(CELLS), default=model.architecture, show_default=True),
        click.option("--design", type=click.Choice(DESIGNS), default=model.design, show_default=True),
        click.option("--units", default=model.units, show_default=True, help="Units of the (last) recurrent layer."),
        click.option("--layers", default=model.layers, show_default=True, help="plain design: stacked layers."),
        click.option(
            "--pooling",
            type=click.Choice(["mean", "last"]),
            default=model.pooling,
            show_default=True,
            help="plain design: how outputs over time become one vector.",
        ),
        click.option(
            "--time-pooling", default=model.time_pooling, show_default=True, help="Frames averaged before the recurrent layers."
        ),
        click.option(
            "--input-noise", default=model.input_noise, show_default=True, help="Gaussian noise on the features in training."
        ),
        click.option("--dropout", default=model.dropout, show_default=True),
        click.option("--learning-rate", default=model.learning_rate, show_default=True),
        click.option("--batch-size", default=model.batch_size, show_default=True),
        click.option("--epochs", default=train.epochs, show_default=True, help="Epochs (cosine learning-rate decay over them)."),
        click.option(
            "--augment-copies",
            default=train.augment.copies,
            show_default=True,
            help="Augmented copies per training clip (0: none).",
        ),
        click.option(
            "--copies-in-rooms/--white-noise",
            "room_copies",
            default=True,
            show_default=True,
            help="Copies in rooms (echo, noise, babble, level, colouring), or with white noise alone (the recipe before).",
        ),
        click.option(
            "--reverb-share",
            default=train.augment.room.reverb_share,
            show_default=True,
            help="Share of the copies spoken in a simulated room.",
        ),
        click.option(
            "--noise-share",
            default=train.augment.room.noise_share,
            show_default=True,
            help="Share of the copies with background noise or babble.",
        ),
        click.option(
            "--noise-floor",
            "noise_floor",
            type=NoiseFloor(),
            default="none" if train.frontend.noise_floor_dbfs is None else str(train.frontend.noise_floor_dbfs),
            show_default=True,
            help="dBFS of the white noise whose spectrum is the frontend's floor (none: only zeros raised, to epsilon).",
        ),
        click.option(
            "--pitch-decimation",
            default=train.frontend.pitch_decimation,
            show_default=True,
            help="Search the pitch at the sample rate divided by this (runs of samples summed): 2 halves its cost.",
        ),
        click.option(
            "--clip-std/--no-clip-std",
            "divide_clip_std",
            default=train.divide_clip_std,
            show_default=True,
            help="Divide each clip's features by their own std after removing their mean.",
        ),
        click.option(
            "--balance",
            type=click.Choice(BALANCES),
            default=train.balance,
            show_default=True,
            help="Training weights: every corpus's speakers (its women and men alike) and every class alike; "
            "every corpus's speakers and every class alike; classes only; or none.",
        ),
        click.option(
            "--time-masks", default=reg.time_masks, show_default=True, help="Masked spans of frames per training window."
        ),
        click.option(
            "--feature-masks", default=reg.feature_masks, show_default=True, help="Masked bands of features per training window."
        ),
        click.option("--mixup", default=reg.mixup, show_default=True, help="Mixup alpha (0: none)."),
        click.option(
            "--window-frames", default=train.windowing.window_frames, show_default=True, help="Model input length in frames."
        ),
        click.option("--seed", default=train.seed, show_default=True),
    ]
    model_fields = (
        "architecture",
        "design",
        "units",
        "layers",
        "pooling",
        "time_pooling",
        "input_noise",
        "dropout",
        "learning_rate",
        "batch_size",
    )

    @wraps(command)
    def gathered(**kwargs):
        try:
            model_config = ModelConfig(**{name: kwargs.pop(name) for name in model_fields})
            windowing = dataclasses.replace(
                train.windowing, window_frames=(frames := kwargs.pop("window_frames")), hop_frames=frames // 2
            )
            frontend = dataclasses.replace(
                train.frontend, noise_floor_dbfs=kwargs.pop("noise_floor"), pitch_decimation=kwargs.pop("pitch_decimation")
            )
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        regularisation = dataclasses.replace(
            reg, time_masks=kwargs.pop("time_masks"), feature_masks=kwargs.pop("feature_masks"), mixup=kwargs.pop("mixup")
        )
        recipe = dataclasses.replace(
            train,
            model=model_config,
            windowing=windowing,
            epochs=kwargs.pop("epochs"),
            seed=kwargs.pop("seed"),
            augment=dataclasses.replace(
                train.augment,
                copies=kwargs.pop("augment_copies"),
                room=room_config(kwargs.pop("room_copies"), kwargs.pop("reverb_share"), kwargs.pop("noise_share")),
            ),
            balance=kwargs.pop("balance"),
            frontend=frontend,
            divide_clip_std=kwargs.pop("divide_clip_std"),
            regularisation=regularisation,
            command=command_line(),
        )
        return command(recipe=recipe, **kwargs)

    for option in reversed(options):
        gathered = option(gathered)
    return gathered


def room_config(rooms: bool, reverb_share: float, noise_share: float):
    """The copies' room settings: the default rooms with the shares given, or white noise alone."""
    from trainer.rooms import WHITE_NOISE_ONLY, RoomConfig

    return dataclasses.replace(RoomConfig(), reverb_share=reverb_share, noise_share=noise_share) if rooms else WHITE_NOISE_ONLY


def gate_options(command):
    """--max-uar-drop and --max-accuracy-drop, gathered into one ``limits`` argument (GateLimits)."""
    from functools import wraps

    @wraps(command)
    def gathered(max_uar_drop, max_accuracy_drop, **kwargs):
        return command(limits=GateLimits(max_uar_drop, max_accuracy_drop), **kwargs)

    gathered = click.option(
        "--max-accuracy-drop",
        default=GATE.max_accuracy_drop,
        show_default=True,
        help="Fail if int8 accuracy is this many points below float32.",
    )(gathered)
    return click.option(
        "--max-uar-drop", default=GATE.max_uar_drop, show_default=True, help="Fail if int8 UAR is this many points below float32."
    )(gathered)


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
@recipe_options
@gate_options
def train(
    out_dir,
    corpus_kinds,
    corpus_path,
    train_speakers,
    validation_speakers,
    test_speakers,
    name,
    recipe,
    limits,
):
    """Train a model (by default on all six corpora, tested on RAVDESS actors 17-20 and six ASED speakers, 7 classes,
    split by speaker) and write a full-int8 bundle to OUT_DIR."""
    from trainer.train import QuantizationGateError, train_bundle

    corpus = load_corpus(corpus_kinds, corpus_path)
    split = split_of(corpus, (train_speakers, validation_speakers, test_speakers), recipe.seed)
    options = dataclasses.replace(recipe, name=name or out_dir.name, split=split, gate=limits)
    try:
        manifest = train_bundle(options, corpus, out_dir)
    except (QuantizationGateError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"wrote {out_dir} (int8 test accuracy {manifest['metrics']['int8']['accuracy']:.2%}, "
        f"UAR {manifest['metrics']['int8']['uar']:.2%})"
    )


def bundle_corpora(bundle, kinds: tuple[str, ...] | None) -> tuple[str, ...]:
    """``kinds``, else the corpora the bundle was trained on, in the order it read them (which names
    the combined corpus, so that its test speakers are found)."""
    from trainer.corpus import READERS

    training = bundle.manifest.document["training"]
    in_order = tuple(training["corpus"].split("+"))
    return kinds or (in_order if set(in_order) <= set(READERS) else tuple(training["corpora"]))


def bundle_options(speakers_help: str):
    """--model, --corpus, --corpus-path and --speakers of a command that scores a bundle."""

    def decorate(command):
        command = click.option("--speakers", type=SpeakerList(), default=None, help=speakers_help)(command)
        command = corpus_options(command, of_bundle=True)
        return click.option(
            "--model", "-m", default=None, metavar="NAME|DIR", help="A shipped bundle's name or a bundle folder."
        )(command)

    return decorate


@main.command()
@bundle_options("Only these speakers (default: the bundle's test speakers if it was trained on these corpora, else all).")
@gate_options
@click.option("--json", "as_json", is_flag=True, help="Print the whole comparison as JSON.")
def gate(model, corpus_kinds, corpus_path, speakers, limits, as_json):
    """Compare a bundle's float32 and int8 models, both through the device's classifier, on
    labelled speech; exit 1 if int8 loses too much."""
    from edge.bundle import load_bundle
    from edge.errors import SerError
    from trainer.dataset import load_clips
    from trainer.gate import compare_float_int8, gate_failures, gate_utterances, summary_line

    try:
        bundle = load_bundle(model, variant="int8")  # the gate compares the int8 model with the float32 file
    except SerError as error:
        raise click.ClickException(str(error)) from None
    corpus = load_corpus(bundle_corpora(bundle, corpus_kinds), corpus_path)
    chosen, skipped = gate_utterances(bundle.manifest, corpus, speakers)
    if not chosen:
        raise click.ClickException("no utterances with the bundle's labels among the chosen speakers")
    if skipped:
        click.echo(f"skipping {skipped} clips whose labels the model does not have", err=True)
    clips = load_clips(chosen, bundle.manifest.frontend)
    try:
        comparison = compare_float_int8(bundle, clips.features, clips.targets(bundle.manifest.labels))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    failures = gate_failures(comparison, limits)
    if as_json:
        click.echo(json.dumps({**comparison, "failures": failures}, indent=2))
    click.echo(f"{bundle.manifest.name} on {corpus.name}, {summary_line(comparison)}", err=as_json)
    if failures:
        raise click.ClickException("; ".join(failures))
    click.echo("gate passed", err=as_json)


@main.command()
@click.argument("bundles", nargs=-1, required=True, metavar="NAME|DIR...")
def fingerprint(bundles):
    """Write into each bundle's manifest the fingerprint this machine's frontend gives it, after the
    frontend's version changed (edge.frontend.FRONTEND_VERSION) and nothing else did. Then run
    `ser-train gate` on each: it shows whether the models still classify as before."""
    from edge.bundle import read_manifest, resolve_bundle_path
    from edge.errors import SerError

    for name in bundles:
        try:
            path = resolve_bundle_path(name)
            manifest = read_manifest(path)
        except (SerError, ValueError) as error:
            raise click.ClickException(str(error)) from None
        new = manifest.expected_fingerprint()
        section = {**manifest.document["fingerprint"], "sha256": new}
        manifest.with_sections(fingerprint=section).write(path)
        change = "unchanged" if new == manifest.fingerprint else f"{manifest.fingerprint[:12]}... -> {new[:12]}..."
        click.echo(f"{path}: fingerprint {change}")


jobs_option = click.option(
    "--jobs", default=1, show_default=True, help="Models trained at once, each in its own process (about a core each)."
)
folds_option = click.option(
    "--folds", default=EXPERIMENTS.folds, show_default=True, help="Speaker-grouped folds over the development speakers."
)


def experiment(corpus, speakers, recipe, with_test: bool = False):
    """``trainer.experiments.prepare_experiment``, its split's problems as one line."""
    from trainer.experiments import prepare_experiment

    try:
        return prepare_experiment(corpus, recipe, speakers, with_test)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def with_babble_folds(recipe, folds: int):
    """The recipe with its copies' babble made within the folds of this cross-validation, so that no
    fold trains on a held-out speaker's voice."""
    return dataclasses.replace(recipe, augment=dataclasses.replace(recipe.augment, babble_folds=folds))


def write_json(path: Path, corpus, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"corpus": corpus.name, "command": command_line(), **document}, indent=2) + "\n")


@main.command()
@click.argument("out_json", type=click.Path(dir_okay=False, path_type=Path))
@corpus_options
@split_options
@folds_option
@jobs_option
@click.option(
    "--rooms/--no-rooms",
    default=True,
    show_default=True,
    help="Also score each fold's held-out speakers in rooms (level, echo, noise, babble; about 5 min a fold).",
)
@recipe_options
def cv(out_json, corpus_kinds, corpus_path, train_speakers, validation_speakers, test_speakers, folds, jobs, rooms, recipe):
    """Cross-validate the recipe by speaker-grouped folds over every speaker but the test speakers:
    int8 UAR per corpus and gender (mean and spread over folds), in rooms, and after each epoch."""
    from trainer.experiments import cross_validate
    from trainer.room_evaluation import cross_validation_conditions

    corpus = load_corpus(corpus_kinds, corpus_path)
    recipe = with_babble_folds(recipe, folds)
    chosen = experiment(corpus, (train_speakers, validation_speakers, test_speakers), recipe)
    conditions = cross_validation_conditions() if rooms else ()
    result = cross_validate(chosen.recipe, chosen.clips, corpus.labels, folds, jobs, conditions)
    write_json(out_json, corpus, result)
    click.echo(
        f"{folds}-fold CV UAR {result['uar']['mean']:.2%} ± {result['uar']['std']:.2%}; "
        + ", ".join(f"{c} {r['uar']['mean']:.2%}" for c, r in result["per_corpus"].items())
        + "".join(f"; {name} {r['uar']['mean']:.2%}" for name, r in result["rooms"].items())
        + f"; best mean UAR after {result['best_epochs']} epochs; wrote {out_json}"
    )


@main.command()
@click.argument("out_json", type=click.Path(dir_okay=False, path_type=Path))
@corpus_options
@split_options
@jobs_option
@recipe_options
def loco(out_json, corpus_kinds, corpus_path, train_speakers, validation_speakers, test_speakers, jobs, recipe):
    """Leave one corpus out: for every corpus, train on the development speakers of all the others
    and test on its own (int8, the device's classifier)."""
    from trainer.experiments import leave_one_corpus_out

    corpus = load_corpus(corpus_kinds, corpus_path)
    chosen = experiment(corpus, (train_speakers, validation_speakers, test_speakers), recipe)
    table = leave_one_corpus_out(chosen.recipe, chosen.clips, corpus.labels, jobs)
    write_json(out_json, corpus, {"corpora": table})
    for name, row in table.items():
        click.echo(f"without {name:10} tested on it: UAR {row['uar']:.2%} (chance {row['chance_uar']:.0%}), {row['clips']} clips")
    click.echo(f"wrote {out_json}")


@main.command()
@click.argument("out_json", type=click.Path(dir_okay=False, path_type=Path))
@corpus_options
@split_options
@folds_option
@click.option(
    "--budget-minutes", default=EXPERIMENTS.search_minutes, show_default=True, help="Stop starting new configurations after this."
)
@click.option("--max-configs", default=None, type=int, help="Try at most this many configurations.")
@recipe_options
def tune(
    out_json,
    corpus_kinds,
    corpus_path,
    train_speakers,
    validation_speakers,
    test_speakers,
    folds,
    budget_minutes,
    max_configs,
    recipe,
):
    """Search units, learning rate and dropout by speaker-grouped cross-validation on the
    development speakers (never the test speakers); write every result to OUT_JSON."""
    from trainer.experiments import tune as search

    corpus = load_corpus(corpus_kinds, corpus_path)
    recipe = with_babble_folds(recipe, folds)
    chosen = experiment(corpus, (train_speakers, validation_speakers, test_speakers), recipe)
    result = search(chosen.recipe, chosen.clips, corpus.labels, folds, 60 * budget_minutes, max_configs)
    write_json(out_json, corpus, result)
    for row in result["tried"]:
        c = row["config"]
        click.echo(
            f"{c['architecture']} {c['design']} units {c['units']:<3} lr {c['learning_rate']:<7g} dropout {c['dropout']:<4} "
            f"CV UAR {row['uar']:.2%}  accuracy {row['accuracy']:.2%}  {row['seconds']:.0f} s"
        )
    click.echo(
        f"{len(result['tried'])} configurations in {result['seconds']:.0f} s ({result['untried']} not tried); wrote {out_json}"
    )


@main.command()
@click.argument("out_json", type=click.Path(dir_okay=False, path_type=Path))
@corpus_options
@split_options
@jobs_option
@click.option(
    "--both",
    "both_model",
    default=None,
    metavar="NAME|DIR",
    help="A bundle trained with this recipe on all the development speakers, used as the 'both' model "
    "instead of training it again.",
)
@recipe_options
def gender(out_json, corpus_kinds, corpus_path, train_speakers, validation_speakers, test_speakers, jobs, both_model, recipe):
    """The gender-dependent experiment: train on female development speakers only, male only and
    both; test each int8 model on the female, male and all test speakers; write the table."""
    from edge.bundle import load_bundle
    from edge.errors import SerError
    from trainer.experiments import gender_experiment

    try:
        both = load_bundle(both_model, variant="int8") if both_model else None
    except SerError as error:
        raise click.ClickException(str(error)) from None
    corpus = load_corpus(corpus_kinds, corpus_path)
    chosen = experiment(corpus, (train_speakers, validation_speakers, test_speakers), recipe, with_test=True)
    rows = gender_experiment(chosen.recipe, chosen.clips, chosen.test, corpus.labels, jobs, both)
    write_json(out_json, corpus, {"rows": rows})
    click.echo(f"{'trained on':10} {'tested on':9} {'clips':>5} {'accuracy':>8} {'UAR':>7}")
    for r in rows:
        click.echo(f"{r['trained_on']:10} {r['tested_on']:9} {r['clips']:5d} {r['accuracy']:8.2%} {r['uar']:7.2%}")
    click.echo(f"wrote {out_json}")


@main.command()
@bundle_options("Speakers to score (default: the bundle's test speakers); validation speakers while choosing a recipe.")
@click.option(
    "--out", "out_json", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: BUNDLE/rooms.json."
)
@click.option("--jobs", default=1, show_default=True, help="Rooms rendered at once, each in its own process.")
def rooms(model, corpus_kinds, corpus_path, speakers, out_json, jobs):
    """Score a bundle (int8 and float32, the device's classifier) on held-out speakers in rooms:
    studio, room level, reverberant, household noise at 20/10/5 dB, babble at 10/5 dB, reverberant
    with noise or babble, from rooms, noise segments and talkers that training never used."""
    from edge.bundle import load_bundle
    from edge.errors import SerError
    from trainer.room_evaluation import evaluate_in_rooms

    try:
        bundle = load_bundle(model, variant="int8")
    except SerError as error:
        raise click.ClickException(str(error)) from None
    corpus = load_corpus(bundle_corpora(bundle, corpus_kinds), corpus_path)
    chosen = set(speakers or bundle.manifest.document["training"]["speakers"]["test"])
    utterances = [u for u in corpus.utterances if u.speaker in chosen]
    if not utterances:
        raise click.ClickException(f"no clips of speakers {', '.join(sorted(chosen))} in {corpus.name}")

    def progress(name, row):
        click.echo(f"{name:32} int8 UAR {row['int8']['uar']:.2%}  float32 {row['float32']['uar']:.2%}", err=True)

    try:
        result = evaluate_in_rooms(bundle, utterances, jobs, progress)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    out_json = out_json or bundle.path / "rooms.json"
    write_json(out_json, corpus, result)
    click.echo(f"wrote {out_json}")


@main.command("speech-detector")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@corpus_options
@click.option("--epochs", default=DetectorOptions.epochs, show_default=True)
@click.option("--hidden", default=DetectorOptions.hidden, show_default=True, help="Units of each hidden layer.")
@click.option("--window-frames", default=DetectorOptions.window_frames, show_default=True, help="Frames a decision looks at.")
@click.option("--alone-share", default=DetectorOptions.alone_share, show_default=True, help="Backgrounds alone per clip.")
@click.option("--jobs", default=2, show_default=True, help="Processes rendering the training clips in rooms.")
def speech_detector(out_dir, corpus_kinds, corpus_path, epochs, hidden, window_frames, alone_share, jobs):
    """Train the speech detector on the development speakers' clips in rooms and their backgrounds
    alone, choose its epoch on the validation speakers, and write its int8 bundle to OUT_DIR; then
    replay the validation speakers' streams to the segmenter with it (OUT_DIR/streams.json)."""
    from trainer.speech_detector import model_card, train_detector
    from trainer.streams import evaluate_streams

    corpus = load_corpus(corpus_kinds, corpus_path)
    options = DetectorOptions(epochs=epochs, hidden=hidden, window_frames=window_frames, alone_share=alone_share)
    manifest = train_detector(corpus, out_dir, options, command_line(), jobs, log=lambda line: click.echo(line, err=True))
    result = evaluate_streams(corpus, SegmenterSettings(detector=str(out_dir)), progress=_stream_progress)
    write_json(out_dir / "streams.json", corpus, result)
    (out_dir / "MODEL_CARD.md").write_text(model_card(manifest.document, result))
    click.echo(f"wrote {out_dir} ({manifest.model_file}: {manifest.document['model']['size_bytes']} bytes)")


@main.command()
@corpus_options
@click.option("--detector", default=SegmenterSettings.detector, show_default=True, help='Speech detector bundle, or "none".')
@click.option("--threshold", default=SegmenterSettings.speech_threshold, show_default=True, help="Its speech threshold.")
@click.option(
    "--out", "out_json", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the figures here."
)
def streams(corpus_kinds, corpus_path, detector, threshold, out_json):
    """Replay the validation speakers' streams (quiet room, household noise at 20/10/5 dB, echo with
    noise, babble, noise alone) to the daemon's segmenter and count its events against the truth."""
    from trainer.streams import evaluate_streams

    corpus = load_corpus(corpus_kinds, corpus_path)
    settings = SegmenterSettings(detector=detector, speech_threshold=threshold)
    result = evaluate_streams(corpus, settings, progress=_stream_progress)
    if out_json:
        write_json(out_json, corpus, result)


def _stream_progress(name: str, row: dict) -> None:
    click.echo(
        f"{name:28} one event {row['one_event']:3}/{row['utterances']:<3} missed {row['missed']:3} split {row['split']:3} "
        f"merged {row['merged']:3} over no utterance {row['events_over_no_utterance']:3}",
        err=True,
    )


@main.command()
@click.argument("bundle_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@corpus_options
def report(bundle_dir, corpus_kinds, corpus_path):
    """Write BUNDLE_DIR/report.html (self-contained) and MODEL_CARD.md from the bundle's manifest,
    its corpora, and the experiments found beside it (cv.json, loco.json, gender_experiment.json,
    tuning.json)."""
    from trainer.model_card import read_experiments, write_model_card
    from trainer.report import write_report

    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    if manifest["labels"] == list(SPEECH_DETECTOR_LABELS):  # its card shows its streams
        from trainer.speech_detector import model_card

        card = bundle_dir / "MODEL_CARD.md"
        card.write_text(model_card(manifest, json.loads((bundle_dir / "streams.json").read_text())))
        click.echo(f"wrote {card}")
        return
    corpus = load_corpus(corpus_kinds, corpus_path)
    experiments = read_experiments(bundle_dir)
    path = write_report(manifest, corpus, bundle_dir, experiments)
    card = write_model_card(manifest, bundle_dir, experiments)
    click.echo(f"wrote {path} and {card}")


if __name__ == "__main__":
    main()
