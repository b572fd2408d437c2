"""tf.keras 2's "save and load models" idioms: weights at TensorFlow-checkpoint paths
(`training_1/cp.ckpt`, `./checkpoints/my_checkpoint`) and `save_format="h5"`. Without
TensorFlow those paths get the Keras 2 HDF5 layout, which `load_weights` reads back."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402

X = np.random.default_rng(0).random((8, 4)).astype("float32")
Y = np.arange(8) % 3


def _model():
    model = kestrel.Sequential([kestrel.layers.Dense(5, activation="relu", input_shape=(4,)),
                                kestrel.layers.Dense(3)])
    model.compile("adam", kestrel.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_checkpoint_callback_and_save_weights_at_tensorflow_checkpoint_paths(tmp_path):
    checkpoint_path = str(tmp_path / "training_1" / "cp.ckpt")
    os.makedirs(os.path.dirname(checkpoint_path))
    callback = kestrel.callbacks.ModelCheckpoint(filepath=checkpoint_path,
                                                 save_weights_only=True, verbose=0)
    model = _model()
    with pytest.warns(UserWarning, match="TensorFlow checkpoints need TensorFlow"):
        model.fit(X, Y, epochs=2, verbose=0, callbacks=[callback])
    fresh = _model()
    fresh.load_weights(checkpoint_path)
    np.testing.assert_allclose(fresh.predict(X, verbose=0), model.predict(X, verbose=0))

    path = str(tmp_path / "checkpoints" / "my_checkpoint")
    os.makedirs(os.path.dirname(path))
    with pytest.warns(UserWarning, match="Keras 2 HDF5 weights layout"):
        model.save_weights(path)
    again = _model()
    again.load_weights(path)
    np.testing.assert_allclose(again.predict(X, verbose=0), model.predict(X, verbose=0))


def test_save_format_h5_writes_hdf5_to_any_path_and_keras3_rules_otherwise(tmp_path):
    model = _model()
    model.fit(X, Y, epochs=1, verbose=0)
    model.save(str(tmp_path / "my_model"), save_format="h5")
    loaded = kestrel.models.load_model(str(tmp_path / "my_model"))
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    with pytest.warns(DeprecationWarning, match="save_format` argument is deprecated"):
        model.save(str(tmp_path / "my_model.h5"), save_format="h5")  # Keras 3 warns too
    restored = kestrel.models.load_model(str(tmp_path / "my_model.h5"))
    np.testing.assert_allclose(restored.predict(X, verbose=0), model.predict(X, verbose=0))
    for lib in (kestrel, keras):  # no SavedModel without TensorFlow, as Keras 3 says
        with pytest.raises(ValueError, match="save_format` argument is deprecated"):
            lib.Sequential([lib.Input((2,)), lib.layers.Dense(1)]).save(
                str(tmp_path / "saved_model"), save_format="tf")
    model.save_weights(str(tmp_path / "w.ckpt"), save_format="h5")
    fresh = _model()
    fresh.load_weights(str(tmp_path / "w.ckpt"))
    np.testing.assert_allclose(fresh.predict(X, verbose=0), model.predict(X, verbose=0))
    with pytest.raises(ValueError, match="Invalid filepath extension for load_weights"):
        fresh.load_weights(str(tmp_path / "missing.ckpt"))
