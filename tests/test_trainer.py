"""The trainer path, exercised on every change: a smoke run on a few actors writes a bundle the
device verifies and runs; splits never share a speaker; the int8 gate fails loudly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.helpers import SMOKE_SPLIT, run_ser, run_train

from edge.config import DEFAULT_MODEL
from trainer.corpus import (
    CANONICAL_LABELS,
    combine,
    default_test_speakers,
    parse_ravdess_name,
    read_ased,
    read_ravdess,
)
from trainer.dataset import SpeakerSplit


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_smoke_training_prints_and_records_float_and_int8_test_metrics(smoke_run):
    out, result = smoke_run
    manifest = json.loads((out / "manifest.json").read_text())
    metrics = manifest["metrics"]
    line = next(line for line in result.stdout.splitlines() if "test speakers, 120 clips: accuracy float32" in line)
    assert f"{metrics['float32']['accuracy']:.2%}" in line and f"{metrics['int8']['accuracy']:.2%}" in line
    assert metrics["int8"]["clips"] == 120 and set(metrics["int8_gender"]["by_gender"]) == {"male", "female"}
    assert set(metrics["int8_gender"]["difference"]) == {"accuracy", "uar"}
    assert manifest["training"]["speakers"] == {"train": ["01", "02", "03"], "validation": ["04"], "test": ["05", "06"]}
    assert len(manifest["training"]["history"]["held_out_uar"]) == 2  # recorded for the validation speaker, chose nothing
    assert manifest["command"].startswith("ser-train train ") and "--epochs 2" in manifest["command"]
    assert manifest["training"]["settings"]["augmented_clips"] == 180  # one copy of each training clip
    assert (out / "MODEL_CARD.md").read_text().count(f"{100 * metrics['int8']['uar']:.1f}%") >= 1


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_exported_models_end_in_logits_and_the_device_applies_the_softmax(smoke_run):
    """TFLite's int8 softmax rounds differently on aarch64, so the models stop before it."""
    from ai_edge_litert.interpreter import Interpreter

    out, _ = smoke_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["output"]["activation"] == "softmax"
    for name in ("model.tflite", "model_float32.tflite"):
        interpreter = Interpreter(model_path=str(out / name))
        assert [op["op_name"] for op in interpreter._get_ops_details()][-1] == "FULLY_CONNECTED"


def test_export_ends_at_the_logits_of_a_converted_softmax_model():
    """The device applies the softmax (TFLite's int8 softmax rounds differently on aarch64), so the
    export's final step (``compact``) removes it; a model already without one is left as it is."""
    import tensorflow as tf
    import tf_keras as keras

    from trainer.model import compact

    inputs = keras.Input(shape=(4,), batch_size=1)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    logits_model = compact(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    def run(tflite: bytes, x: np.ndarray) -> np.ndarray:
        interpreter = tf.lite.Interpreter(model_content=tflite)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    x = np.array([[0.5, -1.0, 2.0, 0.1]], dtype=np.float32)
    weights, bias = model.layers[-1].get_weights()
    np.testing.assert_allclose(run(logits_model, x), x @ weights + bias, rtol=1e-5)
    np.testing.assert_array_equal(run(compact(logits_model), x), run(logits_model, x))  # nothing more to strip


def fully_connected_rows(interpreter) -> list[int]:
    """How many rows each FULLY_CONNECTED op of a TFLite model multiplies at once."""
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    return [
        int(np.prod(shapes[op["inputs"][0]][:-1])) for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"
    ]


def test_export_computes_the_trained_function_with_one_row_per_fully_connected_op():
    """int8 fully connected ops over several rows at once round differently on aarch64, so the
    export applies per-frame layers one frame at a time; it is still the trained function."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from trainer.model import build_model, export_tflite
    from trainer.recipe import ModelConfig

    config = ModelConfig(units=8)
    model = build_model(config, frames=12, features=5, classes=3)
    x = np.random.default_rng(0).normal(size=(20, 12, 5)).astype(np.float32)
    float_model = Interpreter(model_content=export_tflite(model, config, None))
    float_model.allocate_tensors()
    float_model.set_tensor(float_model.get_input_details()[0]["index"], x[:1])
    float_model.invoke()
    logits = float_model.get_tensor(float_model.get_output_details()[0]["index"])
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), model.predict(x[:1], verbose=0), atol=1e-5)
    int8_model = Interpreter(model_content=export_tflite(model, config, x))
    assert set(fully_connected_rows(int8_model)) == {1} and len(fully_connected_rows(int8_model)) == 6 + 1  # 6 frames, classifier
    per_frame = [op["inputs"][1:] for op in int8_model._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"][:-1]
    assert len({tuple(weights_and_bias) for weights_and_bias in per_frame}) == 1  # one copy of the weights, not 6


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_smoke_bundle_runs_on_the_device_path(smoke_run, speech_files):
    out, _ = smoke_run
    result = run_ser("classify", "--json", "--model", str(out), *map(str, speech_files[:2]))
    assert result.returncode == 0, result.stderr
    assert all(json.loads(line)["emotion"] in CANONICAL_LABELS for line in result.stdout.splitlines())
    assert run_ser("info", "--model", str(out)).returncode == 0


def device_accuracy(bundle: Path | None, folders: list[Path], variant: str = "int8") -> tuple[int, float]:
    """Clips classified and accuracy of `ser classify --json` against the RAVDESS file-name labels."""
    model = ["--model", str(bundle)] if bundle else []
    result = run_ser("classify", "--json", "--variant", variant, *model, *map(str, folders))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    correct = [r["emotion"] == parse_ravdess_name(Path(r["file"])).label for r in records]
    return len(records), round(float(np.mean(correct)), 4)


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_recorded_int8_metrics_are_what_the_device_computes(smoke_run, ravdess_dir):
    """Re-classify the test actors through `ser classify`: the manifest's int8 accuracy is reproduced."""
    out, _ = smoke_run
    manifest = json.loads((out / "manifest.json").read_text())
    clips, accuracy = device_accuracy(out, [ravdess_dir / "Actor_05", ravdess_dir / "Actor_06"])
    assert (clips, accuracy) == (120, manifest["metrics"]["int8"]["accuracy"])


@pytest.mark.integration  # trains or evaluates models in subprocesses
@pytest.mark.parametrize("variant", ["int8", "float32"])
def test_shipped_model_figures_are_what_the_device_computes(shipped_bundle, corpus_dir, variant):
    """Every test clip (RAVDESS actors 17-20, ASED's six) through `ser classify`: the manifest's
    accuracy is reproduced clip for clip."""
    document = shipped_bundle.manifest.document
    test_speakers = document["training"]["speakers"]["test"]
    corpus = combine([read_ravdess(corpus_dir("ravdess")), read_ased(corpus_dir("ased"))])
    assert test_speakers == list(default_test_speakers(corpus)) and len(test_speakers) == 10
    clips = [u for u in corpus.utterances if u.speaker in test_speakers]
    result = run_ser("classify", "--json", "--variant", variant, *(str(u.path) for u in clips))
    emotions = {record["file"]: record["emotion"] for record in map(json.loads, result.stdout.splitlines())}
    accuracy = round(float(np.mean([emotions[str(u.path)] == u.label for u in clips])), 4)
    assert (len(emotions), accuracy) == (document["metrics"][variant]["clips"], document["metrics"][variant]["accuracy"])


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_the_int8_gate_fails_loudly_and_writes_no_bundle(ravdess_dir, tmp_path):
    out = tmp_path / "gated"
    # A negative allowance means "int8 must beat float by 101 points", which no model can.
    result = run_train("train", str(out), *SMOKE_SPLIT, "--epochs", "1", "--augment-copies", "0", "--max-uar-drop", "-101")
    assert result.returncode == 1
    assert "points below float32 (allowed: -101.0); no bundle written" in result.stderr
    assert not (out / "manifest.json").exists() and not (out / "model.tflite").exists()


@pytest.mark.corpus
def test_ravdess_reader_labels_speakers_and_genders(ravdess_dir):
    corpus = read_ravdess(ravdess_dir)
    utterances = corpus.utterances
    assert corpus.labels == CANONICAL_LABELS and len(utterances) == 1200 and len({u.speaker for u in utterances}) == 20
    assert {u.label for u in utterances} == set(CANONICAL_LABELS)
    calm = parse_ravdess_name(Path("Actor_07/03-01-02-02-01-01-07.flac"))
    assert (calm.label, calm.speaker, calm.gender) == ("neutral", "07", "male")
    assert parse_ravdess_name(Path("03-01-08-01-01-01-12.flac")).gender == "female"
    with pytest.raises(ValueError, match="not a RAVDESS file name"):
        parse_ravdess_name(Path("F03S02.wav"))


@pytest.mark.corpus
def test_no_speaker_is_in_two_splits(ravdess_dir):
    utterances = read_ravdess(ravdess_dir).utterances
    split = SpeakerSplit(("01", "02", "03"), ("04",), ("05", "06"))
    parts = {part: {u.speaker for u in split.of(utterances, part)} for part in ("train", "validation", "test")}
    assert parts == {"train": {"01", "02", "03"}, "validation": {"04"}, "test": {"05", "06"}}
    with pytest.raises(ValueError, match="more than one split"):
        SpeakerSplit(("01", "02"), ("02",), ("03",))


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_gate_compares_the_shipped_bundle_on_its_test_speakers(ravdess_dir):
    result = run_train("gate", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["int8"]["clips"] == 552 and report["failures"] == []  # RAVDESS 17-20's 240, ASED's six speakers' 312
    assert 0 <= report["max_probability_difference"] < 1 and 0.9 <= report["argmax_agreement"] <= 1
    corpora = "ravdess+emodb+savee+casia+emotiontts+ased"
    assert f"{DEFAULT_MODEL} on {corpora}, 552 clips" in result.stderr and "gate passed" in result.stderr


@pytest.mark.integration  # trains or evaluates models in subprocesses
def test_gate_exits_nonzero_when_int8_loses_more_than_allowed(ravdess_dir):
    result = run_train("gate", "--corpus", "ravdess", "--speakers", "19", "--max-uar-drop", "-101")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "60 clips" in result.stdout and "int8 uar is" in result.stderr and "(allowed: -101.0)" in result.stderr


SIZE_BUDGETS = {"lstm-multilingual": 150_000, "gru-multilingual": 3_000_000}  # bytes of the int8 file


@pytest.mark.parametrize("name", sorted(SIZE_BUDGETS))
def test_shipped_models_are_residual_attention_networks_of_builtin_int8_ops_within_budget(name):
    """ResLSTM-SA's shape (a residual recurrent layer, attention over time) in full int8,
    builtin kernels only, so that ai-edge-litert and tflite-runtime both run it, with no fully
    connected op over several rows (those round differently on aarch64)."""
    from ai_edge_litert.interpreter import Interpreter

    from edge.bundle import MODELS_DIR

    bundle = MODELS_DIR / name
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"]["architecture"]["design"] == "residual-attention"
    assert (bundle / "model.tflite").stat().st_size < SIZE_BUDGETS[name]
    interpreter = Interpreter(model_path=str(bundle / "model.tflite"))
    operators = {op["op_name"] for op in interpreter._get_ops_details()}
    assert {"ADD", "LOGISTIC", "SUM", "MEAN", "FULLY_CONNECTED"} <= operators
    assert not any("FLEX" in op or "CUSTOM" in op for op in operators)
    assert "SOFTMAX" not in operators  # TFLite's int8 softmax rounds differently on aarch64
    assert set(fully_connected_rows(interpreter)) == {1}  # the same rounding on aarch64 and x86-64
    if name.startswith("lstm"):
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in operators
    tensors = interpreter.get_input_details() + interpreter.get_output_details()
    assert all(t["dtype"] == np.int8 for t in tensors)
    assert set(manifest["training"]["corpora"]) == {"ravdess", "emodb", "savee", "casia", "emotiontts", "ased"}
