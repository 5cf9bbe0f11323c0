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


def frame_wise(layer, sequence, name: str):
    """``layer`` (a Dense) applied to every frame of ``sequence``, (batch, frames, width).

    For export (batch 1) one fully connected op per frame, sharing the weights: TFLite's int8
    fully connected kernel over many rows at once (ruy's matrix product) rounds some outputs one
    step differently on aarch64 than on x86-64, while over one row it agrees bit for bit (checked op
    by op under qemu). Training keeps the faster whole-sequence form;
    both compute the same function with the same weights.
    """
    if sequence.shape[0] != 1:
        return layer(sequence)
    frames = keras.layers.Lambda(lambda s: tf.unstack(s, axis=1), name=f"{name}_frames")(sequence)
    return keras.layers.Lambda(lambda f: tf.stack(f, axis=1), name=f"{name}_stacked")([layer(f) for f in frames])


class FrameScore(keras.layers.Layer):
    """A learnt score per frame, w·h + b: (batch, frames, width) → (batch, frames).

    The same function as Dense(1), written as a product and a sum over the width so that TFLite
    runs it as int8 MUL and SUM, which agree bit for bit on aarch64 and x86-64 (a fully connected
    op over all frames does not; see ``frame_wise``), without one op per frame.
    """

    def build(self, input_shape):
        self.weight = self.add_weight(name="weight", shape=(input_shape[-1],), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(), initializer="zeros")

    def call(self, sequence):
        return tf.reduce_sum(sequence * self.weight, axis=-1) + self.bias


def attention_pooling(sequence, name: str = "attention"):
    """Attention over time: a learnt score per frame, made a weight in 0..1 by the logistic
    function, and the mean of the weighted frames. (batch, frames, width) → (batch, width).

    ResLSTM-SA turns the scores into weights with a softmax over time. TFLite's int8 softmax
    rounds about 1 % of outputs one step differently on aarch64 (measured under qemu), and int8
    TFLite has no division to normalise logistic weights by their sum, so the weights here are not
    normalised; the batch normalisation after the pooling rescales.
    """
    frames = sequence.shape[1]
    weights = keras.layers.Activation("sigmoid", name=f"{name}_weights")(FrameScore(name=f"{name}_score")(sequence))
    weighted = keras.layers.Multiply(name=f"{name}_weighted")([sequence, keras.layers.Reshape((frames, 1))(weights)])
    return keras.layers.GlobalAveragePooling1D(name=f"{name}_mean")(weighted)


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
        skip = frame_wise(keras.layers.Dense(features, name="residual_projection"), x, "residual_projection")
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
    return compact(converter.convert())


def compact(tflite: bytes) -> bytes:
    """The converter's output as shipped, parsed and written once: without its final softmax,
    tensors named by layer, identical constants shared (the three functions below)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    _strip_final_softmax(model)
    _name_tensors_by_layer(model)
    _share_constants(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name_tensors_by_layer(model) -> None:
    """Name each tensor by its Keras layer only (``residual_norm``, not
    ``lstm-residual-attention/residual_norm/batchnorm/mul_1;...``); inputs and outputs keep theirs.

    The converter names a tensor after every Keras op fused into it, joined by ';'. With one
    fully connected op per frame (``frame_wise``) those names were 90 % of the file (213 of
    241 KB for a 96-frame projection), and would take the LSTM over its size budget; so the
    per-frame copies are unnamed too: a name stays only on the first tensor that has it.
    """
    for subgraph in model.subgraphs:
        kept = {int(t) for t in subgraph.inputs} | {int(t) for t in subgraph.outputs}
        named = set()
        for index, tensor in enumerate(subgraph.tensors):
            if index not in kept:
                path = tensor.name.decode().split(";")[0].split("/")
                name = (path[1] if len(path) > 1 else path[0]).encode()
                tensor.name = b"" if name in named else name
                named.add(name)


def _share_constants(model) -> None:
    """Merge identical constant tensors into one and drop unused tensors.

    With one fully connected op per frame (``frame_wise``) the converter gives every op its own
    copy of the bias tensor, each carrying its per-channel quantization (46 scales and zero points):
    58 KB of the LSTM's 213 KB. The ops compute the same with one shared tensor.
    """
    for subgraph in model.subgraphs:
        first_of = {}  # a constant's content → the first tensor holding it
        same = {}  # tensor → the tensor that replaces it
        for index, tensor in enumerate(subgraph.tensors):
            data = model.buffers[tensor.buffer].data
            if data is None or len(data) == 0:
                continue
            q = tensor.quantization
            key = (
                bytes(data),
                tuple(tensor.shape),
                tensor.type,
                None if q is None or q.scale is None else (tuple(q.scale), tuple(q.zeroPoint), q.quantizedDimension),
            )
            same[index] = first_of.setdefault(key, index)
        operators = subgraph.operators
        for op in operators:
            op.inputs = [same.get(int(i), int(i)) if i >= 0 else int(i) for i in op.inputs]
        used = sorted(
            {
                int(i)
                for op in operators
                for part in (op.inputs, op.outputs, op.intermediates if op.intermediates is not None else [])
                for i in part
                if i >= 0
            }
            | {int(i) for i in subgraph.inputs}
            | {int(i) for i in subgraph.outputs}
        )
        new_index = {old: new for new, old in enumerate(used)}
        kept_buffers = {subgraph.tensors[old].buffer for old in used}
        for index, tensor in enumerate(subgraph.tensors):
            if index not in new_index and tensor.buffer not in kept_buffers:
                model.buffers[tensor.buffer].data = None  # an unused copy's bytes
        subgraph.tensors = [subgraph.tensors[old] for old in used]
        for op in operators:
            op.inputs = [new_index[int(i)] if i >= 0 else int(i) for i in op.inputs]
            op.outputs = [new_index[int(i)] for i in op.outputs]
            if op.intermediates is not None:
                op.intermediates = [new_index[int(i)] for i in op.intermediates]
        subgraph.inputs = [new_index[int(i)] for i in subgraph.inputs]
        subgraph.outputs = [new_index[int(i)] for i in subgraph.outputs]
        for signature in model.signatureDefs or []:
            for entry in list(signature.inputs or []) + list(signature.outputs or []):
                entry.tensorIndex = new_index[int(entry.tensorIndex)]


def _strip_final_softmax(model) -> bool:
    """Remove the model's final SOFTMAX op, if it has one; whether it had.

    TFLite's int8 softmax kernel is not the same everywhere (aarch64 builds use a lookup table and
    round some outputs one step differently from x86); the device applies the softmax itself, in
    reproducible arithmetic.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    (subgraph,) = model.subgraphs
    last = subgraph.operators[-1]
    if model.operatorCodes[last.opcodeIndex].builtinCode != schema.BuiltinOperator.SOFTMAX:
        return False
    logits, probabilities = int(last.inputs[0]), int(last.outputs[0])
    subgraph.operators = subgraph.operators[:-1]
    subgraph.outputs = [logits if t == probabilities else t for t in subgraph.outputs]
    for signature in model.signatureDefs or []:
        for output in signature.outputs:
            output.tensorIndex = logits if output.tensorIndex == probabilities else output.tensorIndex
    return True
