"""convert_model.py on Zhang et al.'s PyTorch release layout, checked against what
real PyTorch computed: tests/fixtures/zhang_pytorch/ holds a state_dict written by
torch.save and the module's own outputs on a real photo (make.py there says how;
torch is not needed to run these tests)."""

import os
import zipfile

import cv2
import numpy as np
from conftest import ROOT, assert_refused, run_main

import convert_model
import model_transform
from colorization import systems
from colorization.inference import load_model

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "zhang_pytorch")
CHECKPOINT = os.path.join(FIXTURES, "eccv16-w0125.pth")
PAYLOAD_MARK = "/tmp/colorization-payload-ran"


def convert(*args):
    return run_main(convert_model.main, [str(a) for a in args])


LEGACY = os.path.join(FIXTURES, "eccv16-w0125-legacy.pth")


def test_the_legacy_format_converts_to_the_same_model(tmp_path):
    """torch.save before PyTorch 1.6 (a sequence of pickles, then the storages)."""
    out = tmp_path / "legacy.keras"
    done = convert(LEGACY, "--out", out)
    assert done.returncode == 0 and "PyTorch release" in done.stdout, done.stderr
    ref = np.load(os.path.join(FIXTURES, "reference.npz"))
    logits = np.asarray(load_model(str(out))(ref["lightness"][None, ..., None] / 100.0)[
        "ab_bins"])[0]
    want = ref["logits"].transpose(1, 2, 0)
    assert np.max(np.abs(logits - want)) <= 1e-4 * np.max(np.abs(want))
    with open(LEGACY, "rb") as f:
        data = f.read()
    for name, cut in (("half.pth", len(data) // 2), ("no_bytes.pth", len(data) - 1000)):
        (tmp_path / name).write_bytes(data[:cut])
        assert_refused(convert(tmp_path / name, "--out", tmp_path / "x.keras"),
                       "convert_model.py", "truncated", tmp_path / "x.keras", tmp_path, name)


def test_converted_release_equals_pytorchs_own_output(tmp_path):
    out = tmp_path / "zhang-pytorch.keras"
    done = convert(CHECKPOINT, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "PyTorch release" in done.stdout and "width 0.125" in done.stdout
    ref = np.load(os.path.join(FIXTURES, "reference.npz"))
    model = load_model(str(out))  # safe mode
    logits = np.asarray(model(ref["lightness"][None, ..., None] / 100.0)["ab_bins"])[0]
    want = ref["logits"].transpose(1, 2, 0)
    # Measured: 5.1e-7 of the largest logit (22.6); 1.7e-4 ab units after decoding.
    assert np.max(np.abs(logits - want)) <= 1e-4 * np.max(np.abs(want))
    _, space = systems.of_model(model)
    ab = systems.decoded_ab01({"ab_bins": logits[None]}, output=space)[0] * 255.0 - 128.0
    assert np.max(np.abs(ab - ref["ab"].transpose(1, 2, 0))) <= 0.05
    assert np.std(want) > 1.0 and np.std(ref["ab"]) > 5.0  # the reference is not flat

    photo = tmp_path / "wide.jpg"
    cv2.imwrite(str(photo), cv2.resize(cv2.imread(os.path.join(
        ROOT, "resources", "photos", "astronaut.jpg")), (301, 173)))
    colorized = run_main(model_transform.main, [str(photo), "--model", str(out)])
    assert colorized.returncode == 0, colorized.stderr
    assert cv2.imread(str(tmp_path / "wide_color.jpg")).shape == (173, 301, 3)


def test_a_pickle_that_would_run_code_is_refused_and_never_run(tmp_path):
    if os.path.exists(PAYLOAD_MARK):
        os.remove(PAYLOAD_MARK)
    out = tmp_path / "m.keras"
    done = convert(os.path.join(FIXTURES, "payload.pth"), "--out", out)
    assert done.returncode == 2 and "system" in done.stderr and "refused" in done.stderr
    assert not os.path.exists(PAYLOAD_MARK)  # torch.load(weights_only=False) creates it
    assert not out.exists()


def test_bad_pytorch_files_give_one_line_and_write_nothing(tmp_path):
    with open(CHECKPOINT, "rb") as f:
        data = f.read()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with zipfile.ZipFile(CHECKPOINT) as src:
        items = [(i, src.read(i.filename)) for i in src.infolist()]

    def rewrite(name, change):
        with zipfile.ZipFile(tmp_path / name, "w") as dst:
            for item, payload in items:
                payload = change(item.filename, payload)
                if payload is not None:
                    dst.writestr(item, payload)

    rewrite("short_storage.pth", lambda n, d: d[:10] if n.endswith("/data/0") else d)
    rewrite("no_pickle.pth", lambda n, d: None if n.endswith("data.pkl") else d)
    import colorization.pytorch_format as pf

    state = pf.read_state_dict(CHECKPOINT)
    assert "model1.4.running_var" in state
    out = tmp_path / "m.keras"
    cases = {"truncated.pth": "PyTorch", "short_storage.pth": "truncated",
             "no_pickle.pth": "data.pkl"}
    for name, words in cases.items():
        assert_refused(convert(tmp_path / name, "--out", out), "convert_model.py", words, out,
                       tmp_path, name)
    # A state_dict of another network is named as such (checked on the mapping).
    from colorization.caffe_format import CaffeError
    from colorization.published import zhang_pytorch_model

    for change in ({"extra.weight": np.zeros(3, np.float32)}, {"model1.0.weight": None}):
        other = {**state, **change}
        other = {k: v for k, v in other.items() if v is not None}
        try:
            zhang_pytorch_model(other)
        except CaffeError as e:
            assert "extra.weight" in str(e) or "model1.0.weight" in str(e), str(e)
        else:
            raise AssertionError(f"{change} was converted")


def test_a_zip_bomb_is_read_only_as_far_as_its_tensors_need(tmp_path, monkeypatch):
    """A storage member that inflates far past its tensor's bytes reads the same state
    as the real file, with memory for the tensors only; a pickle member past the
    limit is refused before it is inflated."""
    import tracemalloc

    import colorization.pytorch_format as pf

    def bomb(name, member, extra, chunk):
        with zipfile.ZipFile(CHECKPOINT) as src, zipfile.ZipFile(
                tmp_path / name, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
            for item in src.infolist():
                payload = src.read(item.filename)
                if not item.filename.endswith(member):
                    dst.writestr(item.filename, payload)
                    continue
                with dst.open(item.filename, "w") as f:
                    f.write(payload[:-1] if member == "data.pkl" else payload)
                    for _ in range(extra // len(chunk)):
                        f.write(chunk)
                    if member == "data.pkl":
                        f.write(payload[-1:])  # the pickle's STOP
        return tmp_path / name

    inflated = 256 << 20
    storage_bomb = bomb("storage_bomb.pth", "/data/0", inflated, bytes(1 << 20))
    assert os.path.getsize(storage_bomb) < inflated // 50
    tracemalloc.start()
    state = pf.read_state_dict(str(storage_bomb))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    real = pf.read_state_dict(CHECKPOINT)
    assert state.keys() == real.keys()
    assert all(np.array_equal(state[k], real[k]) for k in real)
    assert peak < 16 << 20, peak  # the tensors are ~0.3 MB; the member is 256 MB

    monkeypatch.setattr(pf, "MAX_PICKLE_BYTES", 1 << 20)
    pickle_bomb = bomb("pickle_bomb.pth", "data.pkl", 2 << 20, b"N0" * (1 << 15))
    out = tmp_path / "m.keras"
    assert_refused(convert(pickle_bomb, "--out", out), "convert_model.py", "zip bomb", out,
                   tmp_path)


def test_an_out_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    from colorization import atomic_io

    folder = tmp_path / "taken.keras"
    folder.mkdir()
    for out, words in ((folder, "is a folder"), (tmp_path / "no" / "m.keras", "does not exist")):
        done = convert(CHECKPOINT, "--out", out)
        assert done.returncode == 2 and words in done.stderr.strip().splitlines()[-1]
        assert "Traceback" not in done.stderr

    def refuse(*_, **__):  # the save fails as on a read-only folder (root writes anywhere)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic_io, "replace_atomic", refuse)
    done = convert(CHECKPOINT, "--out", tmp_path / "m.keras")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "cannot write" in lines[0], lines
    assert "Permission denied" in lines[0] and not (tmp_path / "m.keras").exists()
