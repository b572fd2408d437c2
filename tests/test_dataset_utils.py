"""Dataset helpers: directory indexing, splits and image loading compared with Keras' own
TensorFlow-free functions (`index_directory`, `get_training_or_validation_split`, the PIL image
loader, the torch path of `split_dataset`); tf.data-only parts against documented behaviour."""
import os
import wave

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.utils import dataset_utils as keras_du  # noqa: E402
from keras.src.utils import image_dataset_utils as keras_images  # noqa: E402
from PIL import Image  # noqa: E402

import kestrel  # noqa: E402
from kestrel.utils.dataset_utils import BatchDataset, index_directory, split_dataset  # noqa: E402
from kestrel.utils.directory_datasets import (audio_dataset_from_directory,  # noqa: E402
                                              image_dataset_from_directory,
                                              text_dataset_from_directory)
from kestrel.utils.timeseries_dataset import timeseries_dataset_from_array  # noqa: E402

SIZES = {"cat": [(6, 9), (8, 8), (5, 7)], "dog": [(9, 6), (7, 7)], "emu": [(4, 10)]}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.RandomState(0)
    for label, sizes in SIZES.items():
        (root / label).mkdir()
        for i, (h, w) in enumerate(sizes):
            pixels = rng.randint(0, 256, (h, w, 3)).astype("uint8")
            Image.fromarray(pixels).save(root / label / f"img_{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.png").write_bytes((root / "cat" / "img_0.png").read_bytes())
    return str(root)


def _keras_index(directory, formats, **kwargs):
    return keras_du.index_directory(directory, "inferred", formats, verbose=False, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(shuffle=False), dict(shuffle=True, seed=7),
                                    dict(shuffle=False, class_names=["emu", "cat"])])
def test_index_directory_matches_keras(image_dir, kwargs):
    ours = index_directory(image_dir, "inferred", (".png",), verbose=False, **kwargs)
    ref = _keras_index(image_dir, (".png",), **kwargs)
    assert ours[0] == ref[0] and ours[2] == ref[2]
    np.testing.assert_array_equal(ours[1], ref[1])


def test_image_batches_match_keras_loader(image_dir):
    ds = image_dataset_from_directory(image_dir, image_size=(5, 6), batch_size=4,
                                      shuffle=False, verbose=False)
    assert ds.class_names == ["cat", "dog", "emu"] and len(ds) == 2
    paths, labels, _ = _keras_index(image_dir, keras_images.ALLOWLIST_FORMATS, shuffle=False)
    assert ds.file_paths == paths
    images, got_labels = zip(*ds)
    images, got_labels = torch.cat(images), torch.cat(got_labels)
    assert images.shape == (6, 5, 6, 3) and images.dtype == torch.float32
    assert got_labels.dtype == torch.int32 and got_labels.tolist() == list(labels)
    for image, path in zip(images, paths):
        ref = keras_images._load_image_grain(path, (5, 6), 3, "bilinear", "channels_last")
        np.testing.assert_allclose(image.numpy(), np.asarray(ref), atol=1e-3)


@pytest.mark.parametrize("kwargs,channels", [
    (dict(color_mode="grayscale", crop_to_aspect_ratio=True), 1),
    (dict(color_mode="rgba", pad_to_aspect_ratio=True, interpolation="nearest"), 4),
    (dict(data_format="channels_first"), 3)])
def test_image_options_match_keras_loader(image_dir, kwargs, channels):
    ds = image_dataset_from_directory(image_dir, image_size=6, batch_size=None, shuffle=False,
                                      label_mode=None, verbose=False, **kwargs)
    image = next(iter(ds))
    args = dict(image_size=(6, 6), num_channels=channels,
                interpolation=kwargs.get("interpolation", "bilinear"),
                data_format=kwargs.get("data_format", "channels_last"),
                crop_to_aspect_ratio=kwargs.get("crop_to_aspect_ratio", False),
                pad_to_aspect_ratio=kwargs.get("pad_to_aspect_ratio", False))
    ref = keras_images._load_image_grain(ds.file_paths[0], **args)
    assert tuple(image.shape) == tuple(ref.shape)
    np.testing.assert_allclose(image.numpy(), np.asarray(ref), atol=1e-3)


def test_label_modes_and_validation_subsets_match_keras(image_dir):
    train, val = image_dataset_from_directory(image_dir, image_size=(4, 4), batch_size=2,
                                              label_mode="categorical", seed=3,
                                              validation_split=0.34, subset="both",
                                              verbose=False)
    paths, labels, _ = _keras_index(image_dir, keras_images.ALLOWLIST_FORMATS, seed=3)
    ref_train = keras_du.get_training_or_validation_split(paths, labels, 0.34, "training")
    ref_val = keras_du.get_training_or_validation_split(paths, labels, 0.34, "validation")
    assert train.file_paths == ref_train[0] and val.file_paths == ref_val[0]
    assert [y.argmax(-1).tolist() for _, y in val] == [list(ref_val[1][:2])]
    only_val = image_dataset_from_directory(image_dir, image_size=(4, 4), seed=3,
                                            validation_split=0.34, subset="validation",
                                            verbose=False)
    assert only_val.file_paths == ref_val[0]
    two = image_dataset_from_directory(image_dir, image_size=(4, 4), label_mode="binary",
                                       class_names=["cat", "dog"], shuffle=False, verbose=False)
    _, y = next(iter(two))
    assert y.shape == (5, 1) and y.dtype == torch.float32 and y[:, 0].tolist() == [0] * 3 + [1] * 2


def test_image_dataset_errors(image_dir):
    with pytest.raises(ValueError, match="seed"):
        image_dataset_from_directory(image_dir, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="exactly 2"):
        image_dataset_from_directory(image_dir, label_mode="binary", verbose=False)
    with pytest.raises(ValueError, match="color_mode"):
        image_dataset_from_directory(image_dir, color_mode="cmyk")
    with pytest.raises(ValueError, match="class_names"):
        image_dataset_from_directory(image_dir, class_names=["cow"], verbose=False)
    with pytest.raises(ValueError, match="No images"):  # no class folders in "cat"
        image_dataset_from_directory(os.path.join(image_dir, "cat"), verbose=False)


def test_fit_consumes_directory_dataset_and_dataloader(image_dir):
    ds = image_dataset_from_directory(image_dir, image_size=(8, 8), batch_size=4, seed=1,
                                      verbose=False)
    model = kestrel.Sequential([kestrel.Input((8, 8, 3)), kestrel.layers.Rescaling(1 / 255),
                                kestrel.layers.Flatten(), kestrel.layers.Dense(3)])
    model.compile("sgd", kestrel.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    loader = ds.dataloader(num_workers=1)
    assert isinstance(loader, torch.utils.data.DataLoader)
    assert sum(len(x) for x, _ in loader) == 6
    ordered = image_dataset_from_directory(image_dir, image_size=(8, 8), shuffle=False,
                                           batch_size=4, verbose=False)
    first, again = next(iter(ordered))[0], next(iter(ordered.dataloader()))[0]
    torch.testing.assert_close(first, again)


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("texts")
    for label, texts in {"neg": ["bad", "awful film"], "pos": ["great", "héllo wörld"]}.items():
        (root / label).mkdir()
        for i, text in enumerate(texts):
            (root / label / f"{i}.txt").write_text(text, encoding="utf-8")
    (root / "pos" / "skip.md").write_text("ignored")
    return str(root)


def test_text_dataset(text_dir):
    ds = text_dataset_from_directory(text_dir, batch_size=3, shuffle=False, max_length=5,
                                     verbose=False)
    texts, labels = zip(*ds)
    assert isinstance(texts[0], np.ndarray)
    assert list(np.concatenate(texts)) == ["bad", "awful", "great", "h\u00e9ll"]
    assert torch.cat(labels).tolist() == [0, 0, 1, 1]
    paths, _, names = _keras_index(text_dir, (".txt",), seed=5)
    shuffled = text_dataset_from_directory(text_dir, seed=5, verbose=False, label_mode=None)
    assert shuffled.file_paths == paths and shuffled.class_names is None
    vectorize = kestrel.layers.TextVectorization(output_mode="int")
    vectorize.adapt(np.concatenate([t for t, _ in ds]))
    assert vectorize(next(iter(ds))[0]).shape[0] == 3


def _write_wav(path, samples, rate=8000):
    with wave.open(str(path), "wb") as f:
        f.setnchannels(samples.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.astype("<i2").tobytes())


def test_audio_dataset(tmp_path):
    clips = {"no": [np.array([[1000], [-2000], [32767]]), np.array([[5], [6]])],
             "yes": [np.array([[-32768], [0], [7], [8]])]}
    for label, items in clips.items():
        (tmp_path / label).mkdir()
        for i, clip in enumerate(items):
            _write_wav(tmp_path / label / f"{i}.wav", clip)
    ds = audio_dataset_from_directory(str(tmp_path), batch_size=3, shuffle=False,
                                      verbose=False)
    audio, labels = next(iter(ds))
    assert audio.shape == (3, 4, 1) and labels.tolist() == [0, 0, 1]
    np.testing.assert_allclose(audio[0, :, 0].numpy(), [1000 / 32768, -2000 / 32768,
                                                        32767 / 32768, 0.0])
    assert audio[2, 0, 0].item() == -1.0
    fixed = audio_dataset_from_directory(str(tmp_path), output_sequence_length=2,
                                         shuffle=False, verbose=False)
    assert next(iter(fixed))[0].shape == (3, 2, 1)
    ragged = audio_dataset_from_directory(str(tmp_path), ragged=True, shuffle=False,
                                          verbose=False)
    assert [len(a) for a in next(iter(ragged))[0]] == [3, 2, 4]
    with pytest.raises(ValueError, match="ragged"):
        audio_dataset_from_directory(str(tmp_path), ragged=True, output_sequence_length=3)


def test_timeseries_matches_keras_documented_windows():
    data = np.arange(100)
    ds = timeseries_dataset_from_array(data, data[10:], sequence_length=10, sampling_rate=2,
                                       sequence_stride=3, batch_size=4, start_index=1,
                                       end_index=60)
    windows, targets = zip(*ds)
    windows, targets = torch.cat(windows), torch.cat(targets)
    starts = np.arange(0, 59 - 18, 3)
    np.testing.assert_array_equal(windows.numpy(), [data[1 + s:1 + s + 20:2] for s in starts])
    np.testing.assert_array_equal(targets.numpy(), data[11:][starts])
    assert len(ds) == len(starts) // 4 + 1
    shuffled = timeseries_dataset_from_array(data, None, 5, batch_size=None, shuffle=True,
                                             seed=2)
    got = sorted(int(w[0]) for w in shuffled)
    assert got == list(range(96))
    with pytest.raises(ValueError, match="sampling_rate"):
        timeseries_dataset_from_array(data, None, 5, sampling_rate=0)


def test_split_dataset_matches_keras_torch_path():
    import keras

    x, y = np.arange(20, dtype="float32").reshape(10, 2), np.arange(10)
    left, right = split_dataset((x, y), left_size=0.7, shuffle=True, seed=4)
    ref_left, ref_right = keras.utils.split_dataset((x, y), left_size=0.7, shuffle=True,
                                                    seed=4, preferred_backend="torch")
    assert list(left.indices) == list(ref_left.indices)
    assert list(right.indices) == list(ref_right.indices)
    left, right = split_dataset(np.arange(10), right_size=3)
    assert [int(v[0]) for v in left] == list(range(7)) and len(right) == 3
    batched = BatchDataset(torch.utils.data.TensorDataset(torch.arange(6)), batch_size=2)
    assert [len(s) for s in split_dataset(batched, left_size=2)] == [2, 4]
    with pytest.raises(ValueError, match="left_size"):
        split_dataset(np.arange(4), left_size=1.5)
    with pytest.raises(TypeError, match="dataset"):
        split_dataset("abc", left_size=0.5)
