"""`ser classify` and `ser info`, run as a user runs them: in a fresh process."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile
from support.helpers import REPO, run_ser

LABELS = {"neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"}


@pytest.mark.corpus
def test_classify_a_folder_prints_one_result_per_file(ravdess_dir):
    folder = ravdess_dir / "Actor_19"
    result = run_ser("classify", str(folder))
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()
    assert rows[0].split()[:3] == ["file", "emotion", "conf"]
    assert len(rows) == 1 + len(list(folder.glob("*.flac"))) == 61
    assert all(row.split()[1] in LABELS for row in rows[1:])
    assert "ai-edge-litert" in result.stderr


def test_json_lines_carry_emotion_confidence_and_all_scores(speech_files):
    result = run_ser("classify", "--json", *map(str, speech_files[:3]))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == list(map(str, speech_files[:3]))
    for record in records:
        assert set(record["scores"]) == LABELS and record["emotion"] in LABELS
        assert record["confidence"] == max(record["scores"].values())
        assert abs(sum(record["scores"].values()) - 1) < 0.01


def test_bad_files_get_one_line_each_and_the_rest_still_run(tmp_path, speech_files):
    good = speech_files[0]
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not audio at all\n")
    (tmp_path / "corrupt.flac").write_bytes(good.read_bytes()[:4000])
    soundfile.write(tmp_path / "blip.wav", np.zeros(800), 16000)
    soundfile.write(tmp_path / "silence.wav", np.zeros(3 * 16000), 16000)
    soundfile.write(tmp_path / "dc.wav", np.full(3 * 16000, 0.25), 16000)
    soundfile.write(tmp_path / "tiny.wav", np.full(10, 0.25), 1)
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    reasons = {
        "empty.wav": "empty file",
        "notes.txt": "not a readable audio file",
        "corrupt.flac": "not a readable audio file",
        "blip.wav": "too short",
        "silence.wav": "no speech found",
        "dc.wav": "no speech found",
        "tiny.wav": "sample rate 1 Hz is outside",
        "pipe.wav": "a FIFO, not a regular file",
        "loop.wav": "cannot be read (Too many levels of symbolic links)",
    }
    bad = [tmp_path / name for name in reasons]
    result = run_ser("classify", str(bad[0]), str(good), *map(str, bad[1:]))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(bad)
    for path, line, reason in zip(bad, errors, reasons.values()):
        assert line.startswith(f"error: {path}: ") and reason in line
    assert len(result.stdout.strip().splitlines()) == 2  # header and the good file
    assert f"{len(bad)} of {len(bad) + 1} file(s) could not be classified" in result.stderr


def test_json_output_reports_failures_in_line(tmp_path, speech_files):
    (tmp_path / "notes.txt").write_text("not audio\n")
    result = run_ser("classify", "--json", str(speech_files[0]), str(tmp_path / "notes.txt"))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1 and "emotion" in records[0] and "not a readable audio file" in records[1]["error"]


def test_info_prints_the_manifest_and_verifies_the_fingerprint():
    result = run_ser("info")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["fingerprint"]["sha256"] in result.stderr and "verified" in result.stderr
    assert "runtime: ai-edge-litert" in result.stderr


def test_a_tampered_bundle_is_refused_in_one_line(bundle_copy, speech_files):
    path = bundle_copy / "manifest.json"
    document = json.loads(path.read_text())
    document["normalisation"]["std"][3] *= 2
    path.write_text(json.dumps(document))
    for command in (["classify", "--model", str(bundle_copy), str(speech_files[0])], ["info", "--model", str(bundle_copy)]):
        result = run_ser(*command)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert "fingerprint mismatch" in line and document["fingerprint"]["sha256"] in line


def test_unknown_model_and_empty_folder_are_clear_errors(tmp_path):
    result = run_ser("classify", "--model", "no-such-model", str(REPO / "examples"))
    assert result.returncode == 1 and "no-such-model: no such model bundle" in result.stderr
    result = run_ser("classify", str(tmp_path))
    assert result.returncode == 1 and "no audio files found" in result.stderr


def test_jobs_classify_in_parallel_with_the_same_output_order_and_exit_status(tmp_path, speech_files):
    (tmp_path / "notes.txt").write_text("not audio\n")
    soundfile.write(tmp_path / "silence.wav", np.zeros(3 * 16000), 16000)
    files = [*map(str, speech_files[:6]), str(tmp_path / "notes.txt"), *map(str, speech_files[6:]), str(tmp_path / "silence.wav")]
    for output in ([], ["--json"]):
        serial = run_ser("classify", "--jobs", "1", *output, *files)
        parallel = run_ser("classify", "--jobs", "2", *output, *files)
        assert serial.returncode == parallel.returncode == 1
        assert parallel.stdout == serial.stdout and parallel.stderr == serial.stderr
        assert len(serial.stdout.splitlines()) == (len(files) if output else 1 + len(files) - 2)  # JSON: errors in line
