"""Workstation side: read a corpus, train a Keras model on the edge frontend's features, export
full-int8 TFLite and write a model bundle the device verifies and runs.

tf-keras (Keras 2) is required: with Keras 3 an LSTM does not become the fused TFLite op and
full-int8 calibration of the resulting WHILE loop crashes, so the switch is set before any
TensorFlow import.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
