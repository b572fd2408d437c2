"""keras.io vision examples (part d: ConvMixer, MLP-Mixer, MobileViT, CaiT, Barlow Twins, EDSR,
distillation, PointNet, RandAugment, NNCLR, masked image modeling, EfficientNet fine-tuning):
the same code runs with Kestrel and with real Keras (torch backend) and agrees.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _augmenting_dataset(lib, x, y, reads):
    """A PyDataset that augments each batch it returns (convmixer's input pipeline)."""
    flip = lib.layers.RandomFlip("horizontal")

    class Batches(lib.utils.PyDataset):
        def __len__(self):
            return len(x) // 2

        def __getitem__(self, index):
            reads.append(index)
            rows = slice(2 * index, 2 * index + 2)
            return flip(x[rows]), y[rows]

        def on_epoch_end(self):
            reads.append("end")

    return Batches()


def test_fit_on_shuffled_py_dataset_reads_batches_as_keras():
    """convmixer: fit(PyDataset) shuffles batch order with Python's `random` and, at the first
    fit after compile, reads one batch to build; reads, augmentation draws and losses agree."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (10, 4, 4, 1)).astype("float32")
    y = rng.integers(0, 2, (10, 1))
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        reads = []
        model = k.Sequential([k.Input((4, 4, 1)), k.layers.Flatten(), k.layers.Dense(2)])
        model.compile("sgd", k.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(_augmenting_dataset(k, x, y, reads), epochs=2, verbose=0)
        got[lib] = reads, history.history["loss"]
    assert got[kestrel][0] == got[keras][0]
    np.testing.assert_allclose(got[kestrel][1], got[keras][1], rtol=1e-5)
