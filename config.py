"""Typed configuration: one dataclass per concern and named presets.

    from config import get_config
    cfg = get_config("demo", train={"epochs": 3})

`paper` is the network and schedule of Iizuka et al. 2016; `demo` shrinks the
width and the schedule so the whole pipeline trains on a 2-core CPU in minutes.
`zhang` is Zhang et al. 2016 (Colorful Image Colorization: their dilated VGG-style
network predicting a distribution over the quantized ab bins, Adam with their
settings) and `zhang-demo` its 1/8-width, CPU-sized version. `model.head =
"classification"` gives the Iizuka network Zhang's output and loss instead of
the regression (model_train.py --head classification).
The resolved config is saved as JSON in every run directory (`to_dict`), and
`from_dict` restores it, so a run can be understood and resumed from its folder.
"""

import dataclasses
from dataclasses import dataclass, field


@dataclass
class DataConfig:
    stored_size: int = 256  # images are stored at stored_size x stored_size
    crop_size: int = 224  # training crops; the global network always sees 224
    val_fraction: float = 0.02
    min_side: int = 64  # sources with a shorter short side are skipped
    min_chroma: float = 3.0  # mean ab chroma below this is "near gray" (0 keeps all)
    shuffle_buffer: int = 2048


@dataclass
class ModelConfig:
    width: float = 1.0  # multiplies every layer's channel count
    num_classes: int = 205  # 0 leaves the classification head out
    global_size: int = 224  # the global network's fixed input size (7x7 before FC)
    arch: str = "iizuka"  # iizuka (Iizuka et al. 2016) | zhang (Zhang et al. 2016)
    # regression: ab by MSE (Iizuka); classification: logits over the quantized ab
    # bins, rebalanced soft cross-entropy, annealed-mean decoding (Zhang).
    head: str = "regression"


@dataclass
class TrainConfig:
    batch_size: int = 128
    epochs: int = 11
    steps_per_epoch: int = 0  # 0: one pass over the training split
    optimizer: str = "adadelta"  # the paper's; "adam" is the alternative
    learning_rate: float = 1.0
    beta_2: float = 0.999  # Adam only
    # Adam only; Keras applies it decoupled from the gradient (AdamW-style), where
    # Caffe, Zhang et al.'s framework, adds it to the gradient as an L2 term.
    weight_decay: float = 0.0
    class_loss_weight: float = 1.0 / 300.0  # alpha; 0 when the data has no labels
    precision: str = "auto"  # auto | float32 | mixed_float16 | mixed_bfloat16
    seed: int = 0


@dataclass
class InferenceConfig:
    max_side: int = 512  # the network sees the long side capped to this (0: full size)
    # Refuse larger images (decompression bombs); 20000 x 20000 still passes.
    max_pixels: int = 500_000_000
    temperature: float = 0.38  # annealed-mean decoding of a classification head


@dataclass
class Config:
    preset: str = "paper"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)


PRESETS = {
    "paper": {},
    "demo": {
        "model": {"width": 0.125, "num_classes": 4},
        "train": {"batch_size": 32, "epochs": 8, "optimizer": "adam",
                  "learning_rate": 2e-3, "class_loss_weight": 1.0 / 300.0},
        "data": {"shuffle_buffer": 512},
    },
    # Zhang et al.: batch 40, Adam beta (0.9, 0.99), weight decay 1e-3, lr 3e-5
    # (they dropped it to 1e-5 and 3e-6 by hand when the loss plateaued); 450k
    # iterations of batch 40 on ImageNet's 1.3M images is about 14 epochs.
    "zhang": {
        "model": {"arch": "zhang", "head": "classification", "num_classes": 0},
        "train": {"batch_size": 40, "epochs": 14, "optimizer": "adam",
                  "learning_rate": 3e-5, "beta_2": 0.99, "weight_decay": 1e-3,
                  "class_loss_weight": 0.0},
    },
    "zhang-demo": {
        "model": {"arch": "zhang", "head": "classification", "num_classes": 0,
                  "width": 0.125},
        "train": {"batch_size": 32, "epochs": 8, "optimizer": "adam",
                  "learning_rate": 2e-3, "beta_2": 0.99, "weight_decay": 1e-3,
                  "class_loss_weight": 0.0},
        "data": {"shuffle_buffer": 512},
    },
}


def _merge(obj, overrides, path):
    for key, value in overrides.items():
        if not hasattr(obj, key):
            raise KeyError(f"unknown config field {path}{key}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{path}{key}.")
        else:
            setattr(obj, key, type(current)(value) if current is not None else value)
    return obj


def get_config(preset="paper", **overrides):
    """The named preset with `overrides` ({"train": {"epochs": 2}, ...}) applied."""
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    cfg = _merge(Config(preset=preset), PRESETS[preset], "")
    return _merge(cfg, overrides, "")


def to_dict(cfg):
    return dataclasses.asdict(cfg)


def from_dict(d):
    d = dict(d)
    preset = d.pop("preset", "paper")
    return _merge(Config(preset=preset), d, "")
