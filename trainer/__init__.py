"""Workstation side: read a corpus, train a Keras model on the edge frontend's features, export
full-int8 TFLite and write a model bundle the device verifies and runs.

tf-keras (Keras 2) is required: with Keras 3 an LSTM does not become the fused TFLite op and
full-int8 calibration of the resulting WHILE loop crashes, so the switch is set before any
TensorFlow import.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.util
import sys

# What the `train` extra installs, by import name, with the distribution that provides it.
TRAIN_EXTRA = {
    "tensorflow": "tensorflow",
    "tf_keras": "tf-keras",
    "sklearn": "scikit-learn",
    "python_stretch": "python-stretch",
    "matplotlib": "matplotlib",
}


def main() -> None:
    """The ``ser-train`` command; without the `train` extra, one line saying what to install."""
    missing = [distribution for module, distribution in TRAIN_EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        sys.exit(f"ser-train: the trainer needs the train extra ({', '.join(missing)} missing): pip install 'edge-ser[train]'")
    from trainer.cli import main as command

    command(prog_name="ser-train")
