"""What a colorization system provides: an output space and a network.

A system is a network paired with an output space. Each system's module defines
its classes (iizuka.py, zhang.py, hypercolumn.py, with the output spaces of
ab_bins.py and histograms.py) and systems.py lists them; the stage scripts ask
systems.py, never a system's name.
"""

import numpy as np


class OutputSpace:
    """How colour is predicted: the model's colour output `name`, its channels, its
    training target, loss and decoding to ab01 ((ab + 128) / 255)."""

    name = ""  # the model's colour output, and the config's model.output
    title = ""  # a few words for --summary and messages
    target = "ab"  # what read_input builds from the stored Lab: "ab" (ab01) or "uv"
    activation = None  # of the network's last layer: "sigmoid" or None (logits)

    def channels(self):
        raise NotImplementedError

    def loss(self, summary=None):
        """The Keras loss; summary: the training set's dataset.json (colour prior)."""
        raise NotImplementedError

    def decode(self, value, temperature=None, gray=None):
        """The output (n, h, w, channels) -> NumPy ab01 (n, h, w, 2).

        temperature: annealed mean's T where the space has one (None: its default);
        gray: the network's input L / 100 (n, H, W, 1), for spaces that need L."""
        raise NotImplementedError

    def decode_graph(self, value, temperature=None, gray=None):
        """decode as graph operations (keras.ops): the decoding an exported model
        runs (export_model.py); tests/test_export.py holds it to decode."""
        raise NotImplementedError

    def target_ab01(self, target, gray):
        """read_input's target -> ab01 (the truth of a training sample picture)."""
        del gray  # only spaces whose target is not ab need it
        return np.asarray(target, np.float32)

    def check(self, model):
        """A one-line reason (str) why a loaded model's output cannot be decoded, or None."""
        del model

    def bound(self, model):
        """This space as `model` uses it (a model may carry its own constants, such
        as a converted model's ab bins); the space itself where it carries none."""
        del model
        return self

    def describe(self, model):  # noqa: ARG002 (a space may read the model's size)
        return self.title


class Network:
    """A network: builder, output stride, accepted output spaces, global features,
    scene head and initialization. `model_names` are the names its saved models
    carry (a training model and its any-size wiring), by which a loaded model is
    recognised."""

    name = ""  # the config's model.network
    title = ""  # the paper
    model_names = ()
    outputs = ()  # accepted output space names; the first is the default
    output_stride = 1  # input size / colour output size
    has_global_features = False
    has_scene_head = False

    @property
    def default_output(self):
        return self.outputs[0]

    def build(self, cfg, output, input_size=224):
        """The training model for cfg (fresh layers)."""
        raise NotImplementedError

    def any_size(self, model, output, global_size=224, with_global_input=False):
        """The same layers and weights wired for inputs of any size."""
        raise NotImplementedError

    def check(self, cfg):
        """Raises ValueError for a config this network cannot be built or initialised from."""

    def initialize(self, model, cfg):
        """Initialises a fresh model before training (pretrained weights); returns a
        line saying what it did, or None."""
        del model, cfg

    def summary_lines(self, cfg, model, output, rows):
        """The closing lines of build_model.py --summary; rows from build_model.layer_table."""
        total = sum(r[2] for r in rows)
        gflops = sum(r[3] for r in rows) / 1e9
        return [(f"preset {cfg.preset} ({self.title}), width {cfg.model.width:g}, "
                 f"{output.describe(model)}"),
                f"weights and biases: {total:,} ({total / 1e6:.2f}M)",
                f"forward pass: {gflops:.2f} GFLOP per 224x224 image"]
