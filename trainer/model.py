"""The Keras models and their TFLite export."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.recipe import ModelConfig


def _recurrent(config: ModelConfig, units: int, sequences: bool, name: str):
    if config.architecture == "lstm":
        return keras.layers.LSTM(units, return_sequences=sequences, name=name)
    return keras.layers.GRU(units, return_sequences=sequences, unroll=True, name=name)


def attention_pooling(sequence, name: str = "attention"):
    """Soft attention over time: a learnt score per frame, softmax over the frames, and the
    frames' weighted sum. (batch, frames, width) → (batch, width)."""
    frames = sequence.shape[1]
    scores = keras.layers.Dense(1, name=f"{name}_score")(sequence)  # (batch, frames, 1)
    # TFLite's softmax works on the last axis: flatten the scores to (batch, frames) for it.
    weights = keras.layers.Softmax(name=f"{name}_weights")(keras.layers.Reshape((frames,))(scores))
    weighted = keras.layers.Multiply()([sequence, keras.layers.Reshape((frames, 1))(weights)])
    return keras.layers.Lambda(lambda x: tf.reduce_sum(x, axis=1), name=f"{name}_sum")(weighted)


def build_model(config: ModelConfig, frames: int, features: int, classes: int, batch_size: int | None = None):
    """A recurrent classifier over (frames, features) inputs with a softmax over ``classes``
    (``export_tflite`` leaves the softmax to the device).

    The export copy is built with ``batch_size=1``: a fixed shape is what lets the converter
    emit builtin int8 ops only.
    """
    inputs = keras.Input(shape=(frames, features), batch_size=batch_size, name="features")
    x = keras.layers.GaussianNoise(config.input_noise, name="training_noise")(inputs) if config.input_noise else inputs
    if config.time_pooling > 1:
        x = keras.layers.AveragePooling1D(config.time_pooling, name="time_pooling")(x)
    if config.design == "residual-attention":
        # The first layer is as wide as the input so that its output can be added to it. The skip
        # path is a linear projection, not the identity: with an identity skip the int8 converter
        # gave the first LSTM's output the input's quantization scale (0.12 for outputs in -1..1),
        # and int8 agreed with float32 on 10 % of windows instead of 87 %.
        skip = keras.layers.Dense(features, name="residual_projection")(x)
        x = keras.layers.Add(name="residual")([skip, _recurrent(config, features, True, f"{config.architecture}_0")(x)])
        x = keras.layers.BatchNormalization(name="residual_norm")(x)
        x = _recurrent(config, config.units, True, f"{config.architecture}_1")(x)
        x = keras.layers.BatchNormalization(name="pooled_norm")(attention_pooling(x))
    else:
        for layer in range(config.layers):
            sequences = layer < config.layers - 1 or config.pooling == "mean"
            x = _recurrent(config, config.units, sequences, f"{config.architecture}_{layer}")(x)
        if config.pooling == "mean":
            # Averaging over time weighs every part of the utterance, not just its end.
            x = keras.layers.GlobalAveragePooling1D(name="mean_over_time")(x)
    x = keras.layers.Dropout(config.dropout)(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name=f"{config.architecture}-{config.design}")


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
