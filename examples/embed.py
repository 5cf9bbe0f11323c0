"""Using edge-ser from Python: classify files and arrays, and follow live audio in blocks.

    .venv/bin/python examples/embed.py            # the example clips beside this script
    .venv/bin/python examples/embed.py my.wav     # or your own files

The live part plays the clips one after another, with silence between them, into a stream at
48 kHz in 20 ms blocks, as a sound card callback would deliver them.
"""

import sys
from pathlib import Path

import numpy as np
import soundfile

from edge.api import EmotionModel
from edge.errors import SerError

HERE = Path(__file__).resolve().parent


def main(paths: list[Path]) -> None:
    model = EmotionModel.load()  # the shipped default model; EmotionModel.load("gru-multilingual") for another
    print("emotions:", ", ".join(model.labels))

    print("\nfiles:")
    for path in paths:
        try:
            prediction = model.classify_file(path)
        except SerError as error:  # unreadable, too short, no speech: one line, the others go on
            print(f"  {path.name}: {error}")
            continue
        print(f"  {path.name}: {prediction.emotion} ({prediction.confidence:.2f})")

    print("\nan array at 48 kHz:")
    samples, rate = soundfile.read(paths[0])
    at_48k = np.interp(np.arange(0, len(samples), rate / 48000), np.arange(len(samples)), samples)
    print(f"  {model.classify(at_48k, sample_rate=48000).emotion}")

    print("\nlive audio, 20 ms blocks at 48 kHz:")
    stream = model.stream(sample_rate=48000)
    silence = np.zeros(48000)
    for path in paths:
        samples, rate = soundfile.read(path)
        audio = np.concatenate([silence, np.interp(np.arange(0, len(samples), rate / 48000), np.arange(len(samples)), samples)])
        for start in range(0, len(audio), 960):
            for event in stream.push(audio[start : start + 960]):
                print(f"  {event.emotion} ({event.confidence:.2f}), {event.duration:.1f} s of audio")
    for event in stream.close():
        print(f"  {event.emotion} ({event.confidence:.2f}), {event.duration:.1f} s of audio")


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]] or sorted(HERE.glob("*.flac")))
