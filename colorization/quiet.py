"""TensorFlow's start-up lines kept off a user's terminal; `--verbose` brings them back.

`install()` (each entry script calls it before anything imports TensorFlow)
arranges that the first `import tensorflow` of the process runs with file
descriptor 2 pointed at /dev/null, and finds the devices (CUDA's `cuInit`) while
it still is. That is where TensorFlow 2.16+ prints its start-up lines: absl's
"All log messages before absl::InitializeLog() ...", oneDNN's, cudart's "Could not
find cuda drivers" and cuInit's error on a machine with no GPU. They come from C++
before TensorFlow reads TF_CPP_MIN_LOG_LEVEL, so the variable alone does not
silence them (measured with TensorFlow 2.21). Python's own messages and the
project's go on to stderr as before; an import that fails prints its error once
stderr is back.

Keras's "Your input ran out of data" warning, which a finite evaluation split
repeats on every call, is silenced the same way. `--verbose` on any script's
command line (or COLORIZATION_VERBOSE=1) leaves all of it alone.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import warnings

VERBOSE_ENV = "COLORIZATION_VERBOSE"


def verbose_requested(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    return "--verbose" in argv or os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def add_verbose_flag(parser):
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up and log lines")


@contextlib.contextmanager
def stderr_silenced():
    """File descriptor 2 on /dev/null (C++ writes there directly), restored after."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to hide
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, through the other finders, and runs its module code
    (and the device discovery) with stderr silenced."""

    def find_spec(self, name, path=None, target=None):  # noqa: ARG002 (the finder API)
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders do the rest
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def quiet_exec(module):
            with stderr_silenced():
                exec_module(module)
                with contextlib.suppress(Exception):  # devices are found again later
                    module.config.list_physical_devices()

        spec.loader.exec_module = quiet_exec
        return spec


def install(argv=None):
    """Silences TensorFlow's start-up unless --verbose; a no-op once TensorFlow is in."""
    if verbose_requested(argv) or "tensorflow" in sys.modules:
        return False
    if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the lines logged after start-up
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    return True

