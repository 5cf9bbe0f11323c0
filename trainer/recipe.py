"""The training recipe as typed settings: the frontend and windowing the shipped models use, the
model, the regularisers and the training options. Plain dataclasses that import no TensorFlow,
so the command line can offer their defaults without loading it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edge.config import FrontendConfig, WindowingConfig
from trainer.augment import AugmentConfig
from trainer.dataset import SpeakerSplit
from trainer.gate import GateLimits

# The shipped models' frontend: 32 ms frames every 16 ms, 40 mel filters, 20 cepstra with log
# energy, pitch, zero-crossing rate and RMS, plus deltas, over a floor of white noise at -80 dBFS
# (the quietest hiss of the training copies); 192-frame (3.1 s) windows.
DEFAULT_FRONTEND = FrontendConfig(
    frame_length=512,
    frame_step=256,
    n_fft=512,
    n_filters=40,
    n_cepstra=20,
    extras=("rms", "zcr", "pitch"),
    delta_order=1,
    noise_floor_dbfs=-80.0,
)
DEFAULT_WINDOWING = WindowingConfig(window_frames=192, hop_frames=96, min_frames=32)


@dataclass(frozen=True)
class ExperimentDefaults:
    """How the experiments (``trainer.experiments``) measure, unless told otherwise."""

    folds: int = 4
    """Speaker-grouped folds over the development speakers, for cross-validation and the search."""
    search_minutes: float = 30.0
    """After this the search over model settings starts no new configuration."""


DESIGNS = ("residual-attention", "plain")
BALANCES = ("corpus-gender-class", "corpus-class", "class", "none")  # trainer.fitting.balanced_clip_weights
CELLS = ("lstm", "gru")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and optimisation settings of a recurrent classifier."""

    architecture: str = "lstm"
    """Recurrent cell: lstm (becomes one fused TFLite op per layer) or gru (unrolled over the fixed
    input length, the only way it converts to builtin int8 ops)."""
    design: str = "residual-attention"
    """residual-attention (after ResLSTM-SA, Krasnoproshin & Vashkevich 2026): a first recurrent
    layer as wide as the input whose output is added to its input (through a linear projection, which
    int8 conversion needs), batch normalisation, a second
    layer of ``units``, attention pooling over time (logistic weights, see
    ``trainer.model.attention_pooling``), batch normalisation, dropout, dense.
    plain: ``layers`` stacked layers of ``units`` and ``pooling`` (the models shipped before)."""
    units: int = 128
    """Units of the last recurrent layer (plain: of every layer)."""
    layers: int = 1
    """plain design only: number of stacked recurrent layers."""
    pooling: str = "mean"
    """plain design only: mean (average of the outputs over time) or last (final state)."""
    time_pooling: int = 2
    """Average this many consecutive frames before the recurrent layers (2 halves the steps: a
    faster model, and a GRU small enough to unroll twice)."""
    input_noise: float = 0.0
    """Std of Gaussian noise added to the normalised features while training (none at inference)."""
    dropout: float = 0.3
    """Dropout rate before the output layer."""
    learning_rate: float = 1e-3
    """Initial Adam learning rate (cosine decay to zero over the epochs)."""
    batch_size: int = 64
    """Training batch size (export always uses batch 1)."""

    def __post_init__(self) -> None:
        if self.architecture not in CELLS or self.design not in DESIGNS or self.pooling not in ("mean", "last"):
            raise ValueError(f"unknown architecture {self.architecture!r}, design {self.design!r} or pooling {self.pooling!r}")
        if self.units < 1 or self.layers < 1 or self.time_pooling < 1:
            raise ValueError("units, layers and time_pooling must be at least 1")


@dataclass(frozen=True)
class Regularisation:
    """What is done to training windows on the fly, each epoch anew."""

    time_masks: int = 2
    """Spans of frames set to the training mean (0 after normalisation) per window."""
    max_time_mask: int = 24
    """Longest such span, in frames."""
    feature_masks: int = 2
    """Bands of consecutive features set to 0 per window."""
    max_feature_mask: int = 6
    """Widest such band, in features."""
    mixup: float = 0.2
    """Alpha of the Beta distribution that mixes pairs of windows and their labels; 0 disables."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainOptions:
    """Everything one training run depends on."""

    name: str
    """Bundle name, e.g. lstm-multilingual."""
    split: SpeakerSplit
    """Speakers for train, validation and test."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture and optimiser settings."""
    frontend: FrontendConfig = DEFAULT_FRONTEND
    """Feature extraction, shared with the device."""
    windowing: WindowingConfig = DEFAULT_WINDOWING
    """Model input length and pooling, shared with the device."""
    subtract_clip_mean: bool = True
    """Remove each clip's mean feature vector before normalising (helps with unseen speakers)."""
    divide_clip_std: bool = True
    """Then divide each clip's features by their own std (the clip's level, channel and range of
    pitch and loudness taken out)."""
    epochs: int = 20
    """Epochs of training (chosen by speaker-grouped cross-validation, not by early stopping)."""
    seed: int = 7
    """Seed for weights, shuffling and calibration sampling."""
    calibration_windows: int = 2000
    """Training windows used to calibrate int8 quantization (a seeded sample; 400 before the
    multilingual models, about 2 % of their windows, left the int8 LSTM 2.2 UAR points below float32)."""
    gate: GateLimits = field(default_factory=GateLimits)
    """How much int8 may lose against float32 on the test speakers before training fails."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Altered copies of the training clips (training speakers only, after the split)."""
    balance: str = "corpus-class"
    """Training weights (one of BALANCES): corpus-class (each speaker counts alike, each class alike),
    corpus-gender-class (and a corpus's women and men alike), class, none."""
    regularisation: Regularisation = field(default_factory=Regularisation)
    """Masking and mixup of the training windows."""
    command: str = ""
    """The command line that ran this training, recorded for reproduction."""
