"""The Keras models and their TFLite export."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and optimisation settings of a recurrent classifier."""

    architecture: str = "lstm"
    """Recurrent cell: lstm (becomes one fused TFLite op) or gru (unrolled over the fixed input
    length, the only way it converts to builtin int8 ops)."""
    units: int = 64
    """Units per recurrent layer."""
    layers: int = 1
    """Number of stacked recurrent layers."""
    pooling: str = "mean"
    """How the last layer's outputs become one vector: mean (average over time) or last (final state)."""
    input_noise: float = 0.3
    """Std of Gaussian noise added to the normalised features while training (none at inference)."""
    dropout: float = 0.5
    """Dropout rate before the output layer."""
    learning_rate: float = 1e-3
    """Initial Adam learning rate."""
    batch_size: int = 32
    """Training batch size (export always uses batch 1)."""


def build_model(config: ModelConfig, frames: int, features: int, classes: int, batch_size: int | None = None):
    """A recurrent classifier over (frames, features) inputs with a softmax over ``classes``
    (``export_tflite`` leaves the softmax to the device).

    The export copy is built with ``batch_size=1``: a fixed shape is what lets the converter
    emit builtin int8 ops only.
    """
    if config.architecture not in ("lstm", "gru") or config.pooling not in ("mean", "last"):
        raise ValueError(f"unknown architecture {config.architecture!r} or pooling {config.pooling!r}")
    inputs = keras.Input(shape=(frames, features), batch_size=batch_size, name="features")
    x = keras.layers.GaussianNoise(config.input_noise, name="training_noise")(inputs) if config.input_noise else inputs
    for layer in range(config.layers):
        sequences = layer < config.layers - 1 or config.pooling == "mean"
        if config.architecture == "lstm":
            x = keras.layers.LSTM(config.units, return_sequences=sequences, name=f"lstm_{layer}")(x)
        else:
            x = keras.layers.GRU(config.units, return_sequences=sequences, unroll=True, name=f"gru_{layer}")(x)
    if config.pooling == "mean":
        # Averaging over time weighs every part of the utterance, not just its end.
        x = keras.layers.GlobalAveragePooling1D(name="mean_over_time")(x)
    x = keras.layers.Dropout(config.dropout)(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name=config.architecture)


def export_tflite(model, config: ModelConfig, calibration: np.ndarray | None) -> bytes:
    """The trained model as TFLite with batch 1: float32, or full int8 (int8 input and output,
    builtin int8 ops only) when ``calibration`` windows are given."""
    _, frames, features = model.input_shape
    fixed = build_model(config, frames, features, model.output_shape[-1], batch_size=1)
    fixed.set_weights(model.get_weights())
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([window[None].astype(np.float32)] for window in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return without_softmax(converter.convert())


def without_softmax(tflite: bytes) -> bytes:
    """The TFLite model with its final SOFTMAX removed, so that it outputs logits.

    TFLite's int8 softmax kernel is not the same everywhere (aarch64 builds use a lookup table and
    round some outputs one step differently from x86); the device applies the softmax itself, in
    reproducible arithmetic. A model without a final softmax is returned unchanged.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    (subgraph,) = model.subgraphs
    last = subgraph.operators[-1]
    if model.operatorCodes[last.opcodeIndex].builtinCode != schema.BuiltinOperator.SOFTMAX:
        return tflite
    logits, probabilities = int(last.inputs[0]), int(last.outputs[0])
    subgraph.operators = subgraph.operators[:-1]
    subgraph.outputs = [logits if t == probabilities else t for t in subgraph.outputs]
    for signature in model.signatureDefs or []:
        for output in signature.outputs:
            output.tensorIndex = logits if output.tensorIndex == probabilities else output.tensorIndex
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
