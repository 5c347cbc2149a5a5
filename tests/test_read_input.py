import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import read_input
from colorization.example_codec import decode_lab8


def stored_examples(data_dir, split):
    files = read_input.split_files(data_dir, split)
    out = []
    for raw in tf.data.TFRecordDataset(files):
        f = tf.train.Example.FromString(raw.numpy()).features.feature
        out.append((decode_lab8(f["image/encoded"].bytes_list.value[0]),
                    f["image/class/label"].int64_list.value[0]))
    return out


def numpy_model_io(lab8, crop):
    """Independent reference: centre crop, L = lab8/255, ab = 2x2 block mean / 255."""
    top = (lab8.shape[0] - crop) // 2
    c = lab8[top:top + crop, top:top + crop].astype(np.float64) / 255.0
    ab = c[..., 1:].reshape(crop // 2, 2, crop // 2, 2, 2).mean((1, 3))
    return c[..., :1], ab


def test_eval_pipeline_matches_numpy_reference_in_order(scenes_dataset):
    ds = read_input.make_dataset(scenes_dataset, "val", batch_size=4, training=False)
    got = [(x, y) for x, y in ds]
    ref = stored_examples(scenes_dataset, "val")
    flat_x = np.concatenate([x.numpy() for x, _ in got])
    flat_ab = np.concatenate([y["ab"].numpy() for _, y in got])
    flat_label = np.concatenate([y["scene"].numpy() for _, y in got])
    assert len(flat_x) == len(ref)
    for k, (lab8, label) in enumerate(ref):
        lightness, ab = numpy_model_io(lab8, 224)
        np.testing.assert_allclose(flat_x[k], lightness, atol=1e-6)
        np.testing.assert_allclose(flat_ab[k], ab, atol=1e-6)
        assert flat_label[k] == label


def test_training_batches_have_the_model_shapes(scenes_dataset):
    ds = read_input.make_dataset(scenes_dataset, "train", batch_size=8, training=True, seed=1)
    x, y = next(iter(ds))
    assert x.shape == (8, 224, 224, 1) and x.dtype == tf.float32
    assert y["ab"].shape == (8, 112, 112, 2) and y["ab"].dtype == tf.float32
    assert y["scene"].shape == (8,) and y["scene"].dtype == tf.int32
    assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    assert set(y["scene"].numpy()) <= {0, 1, 2, 3}
    # Random crops differ from the centre crop for at least one example.
    lab8 = stored_examples(scenes_dataset, "train")
    centre = {numpy_model_io(e, 224)[0].tobytes() for e, _ in lab8}
    assert any(xi.numpy().astype(np.float64).tobytes() not in centre for xi in x)


def test_training_repeats_and_eval_is_one_pass(scenes_dataset):
    n_val = len(stored_examples(scenes_dataset, "val"))
    ds = read_input.make_dataset(scenes_dataset, "val", batch_size=64, training=False)
    assert sum(int(x.shape[0]) for x, _ in ds) == n_val
    train = read_input.make_dataset(scenes_dataset, "train", batch_size=64, training=True)
    assert len([b for _, b in zip(range(5), train, strict=False)]) == 5  # 96 examples, 5 x 64 drawn


def test_preprocessing_is_the_same_eagerly_and_inside_tf_data(scenes_dataset):
    files = read_input.split_files(scenes_dataset, "train")
    serialized = next(iter(tf.data.TFRecordDataset(files)))
    seed = tf.constant([3, 11], tf.int64)

    def pipeline(s):
        lab8, label = read_input.parse_example(s)
        crop = read_input.train_crop(lab8, seed, 224)
        return read_input.to_model_io(crop[None], label[None], True)

    eager_x, eager_y = pipeline(serialized)
    graph_x, graph_y = next(iter(tf.data.Dataset.from_tensors(serialized).map(pipeline)))
    np.testing.assert_array_equal(eager_x.numpy(), graph_x.numpy())
    np.testing.assert_array_equal(eager_y["ab"].numpy(), graph_y["ab"].numpy())
    centre = read_input.center_crop(read_input.parse_example(serialized)[0], 224)
    graph_centre = next(iter(tf.data.Dataset.from_tensors(serialized).map(
        lambda s: read_input.center_crop(read_input.parse_example(s)[0], 224))))
    np.testing.assert_array_equal(centre.numpy(), graph_centre.numpy())


def test_missing_or_unfinished_dataset_says_to_run_input_create(tmp_path, scenes_dataset):
    with pytest.raises(read_input.DatasetError, match="input_create.py"):
        read_input.make_dataset(str(tmp_path / "nothing"), "train")
    (tmp_path / "half").mkdir()
    for f in glob.glob(os.path.join(scenes_dataset, "*.tfrecord")):
        os.symlink(f, tmp_path / "half" / os.path.basename(f))
    with pytest.raises(read_input.DatasetError, match="input_create.py"):
        read_input.make_dataset(str(tmp_path / "half"), "train")


def test_show_writes_a_picture(tmp_path, scenes_dataset):
    assert read_input.main([scenes_dataset, "--split", "val", "--show",
                            str(tmp_path / "s.png")]) == 0
    import cv2
    image = cv2.imread(str(tmp_path / "s.png"))
    assert image is not None and image.shape[0] > 100 and image.std() > 10
