"""Keras 1 call forms that Keras 2 converted (`kestrel.layers.keras1_args`): each Keras 1 form
gives the config of its Keras 2 form (in Kestrel, and in real Keras 3 where the class exists),
with Keras 2's warning; duplicates raise Keras 2's TypeError; fit and the generator methods
take `nb_epoch`, `samples_per_epoch`, `val_samples`, ..."""
import inspect
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402  (the trusted reference)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402

RNG = np.random.default_rng(0)
UPDATE = r"Update your `{}` call to the Keras 2 API: "

# (class, Keras 1 args, Keras 1 kwargs, Keras 2 args, Keras 2 kwargs, Keras 2's warning call)
CASES = [
    ("Dense", (), dict(output_dim=3, init="uniform", W_regularizer="l2", b_regularizer="l1",
                       W_constraint="non_neg", b_constraint="max_norm", bias=True),
     (3,), dict(kernel_initializer="uniform", kernel_regularizer="l2", bias_regularizer="l1",
                kernel_constraint="non_neg", bias_constraint="max_norm", use_bias=True),
     '`Dense(units=3, kernel_initializer="uniform", kernel_regularizer="l2", '
     'bias_regularizer="l1", kernel_constraint="non_neg", bias_constraint="max_norm", '
     'use_bias=True)`'),
    ("Dropout", (), dict(p=0.5), (0.5,), {}, "`Dropout(rate=0.5)`"),
    ("GaussianDropout", (), dict(p=0.3), (0.3,), {}, "`GaussianDropout(rate=0.3)`"),
    ("SpatialDropout1D", (), dict(p=0.2), (0.2,), {}, "`SpatialDropout1D(rate=0.2)`"),
    ("SpatialDropout2D", (), dict(p=0.2, dim_ordering="th"),
     (0.2,), dict(data_format="channels_first"),
     '`SpatialDropout2D(rate=0.2, data_format="channels_first")`'),
    ("SpatialDropout3D", (), dict(p=0.2, dim_ordering="tf"),
     (0.2,), dict(data_format="channels_last"), None),
    ("GaussianNoise", (), dict(sigma=0.1), (0.1,), {}, "`GaussianNoise(stddev=0.1)`"),
    ("PReLU", (), dict(init="ones"), (), dict(alpha_initializer="ones"),
     '`PReLU(alpha_initializer="ones")`'),
    ("Embedding", (5, 3), dict(init="ones", W_regularizer="l2", W_constraint="non_neg"),
     (5, 3), dict(embeddings_initializer="ones", embeddings_regularizer="l2",
                  embeddings_constraint="non_neg"),
     '`Embedding(5, 3, embeddings_initializer="ones", embeddings_regularizer="l2", '
     'embeddings_constraint="non_neg")`'),
    ("BatchNormalization", (), dict(beta_init="ones", gamma_init="zeros", mode=0),
     (), dict(beta_initializer="ones", gamma_initializer="zeros"),
     '`BatchNormalization(beta_initializer="ones", gamma_initializer="zeros")`'),
    ("SimpleRNN", (), dict(output_dim=4, init="ones", inner_init="zeros", W_regularizer="l2",
                           U_regularizer="l1", b_regularizer="l2", dropout_W=0.1,
                           dropout_U=0.2),
     (4,), dict(kernel_initializer="ones", recurrent_initializer="zeros",
                kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l2",
                dropout=0.1, recurrent_dropout=0.2), None),
    ("GRU", (), dict(output_dim=4, inner_activation="hard_sigmoid", dropout_W=0.1),
     (4,), dict(recurrent_activation="hard_sigmoid", dropout=0.1), None),
    ("LSTM", (), dict(output_dim=4, inner_init="orthogonal", dropout_W=0.2, dropout_U=0.2,
                      consume_less="gpu", forget_bias_init="one"),
     (4,), dict(recurrent_initializer="orthogonal", dropout=0.2, recurrent_dropout=0.2,
                unit_forget_bias=True),
     '`LSTM(unit_forget_bias=True, units=4, recurrent_initializer="orthogonal", dropout=0.2, '
     'recurrent_dropout=0.2, implementation=2)`'),
    ("MaxPooling1D", (), dict(pool_length=3, stride=1, border_mode="same"),
     (3, 1, "same"), {}, '`MaxPooling1D(pool_size=3, strides=1, padding="same")`'),
    ("AveragePooling1D", (), dict(pool_length=2), (2,), {}, None),
    ("MaxPooling2D", (), dict(pool_size=(2, 2), border_mode="valid", dim_ordering="th"),
     ((2, 2),), dict(padding="valid", data_format="channels_first"),
     '`MaxPooling2D(pool_size=(2, 2), padding="valid", data_format="channels_first")`'),
    ("AveragePooling2D", ((3, 3),), dict(border_mode="same"), ((3, 3), None, "same"), {},
     None),
    ("MaxPooling3D", (), dict(dim_ordering="tf"), (), dict(data_format="channels_last"), None),
    ("AveragePooling3D", ((2, 2, 2),), dict(dim_ordering="th"),
     ((2, 2, 2),), dict(data_format="channels_first"), None),
    ("GlobalMaxPooling2D", (), dict(dim_ordering="th"), (), dict(data_format="channels_first"),
     '`GlobalMaxPooling2D(data_format="channels_first")`'),
    ("GlobalAveragePooling2D", (), dict(dim_ordering="tf"),
     (), dict(data_format="channels_last"), None),
    ("GlobalMaxPooling3D", (), dict(dim_ordering="th"), (), dict(data_format="channels_first"),
     None),
    ("GlobalAveragePooling3D", (), dict(dim_ordering="th"),
     (), dict(data_format="channels_first"), None),
    ("UpSampling1D", (), dict(length=3), (3,), {}, "`UpSampling1D(size=3)`"),
    ("UpSampling2D", ((2, 3),), dict(dim_ordering="th"),
     ((2, 3),), dict(data_format="channels_first"), None),
    ("UpSampling3D", (), dict(dim_ordering="tf"), (), dict(data_format="channels_last"), None),
    ("ZeroPadding2D", (1,), dict(dim_ordering="th"), (1,), dict(data_format="channels_first"),
     '`ZeroPadding2D(1, data_format="channels_first")`'),
    ("ZeroPadding3D", (2,), dict(dim_ordering="tf"), (2,), dict(data_format="channels_last"),
     None),
    ("Cropping2D", (((1, 0), (0, 2)),), dict(dim_ordering="th"),
     (((1, 0), (0, 2)),), dict(data_format="channels_first"), None),
    ("Cropping3D", (), dict(dim_ordering="th"), (), dict(data_format="channels_first"), None),
    ("Conv1D", (), dict(nb_filter=4, filter_length=3, subsample_length=2, border_mode="causal",
                        init="ones", W_regularizer="l2", b_constraint="non_neg", bias=True),
     (4, 3), dict(strides=2, padding="causal", kernel_initializer="ones",
                  kernel_regularizer="l2", bias_constraint="non_neg"),
     '`Conv1D(filters=4, kernel_size=3, strides=2, padding="causal", '
     'kernel_initializer="ones", kernel_regularizer="l2", bias_constraint="non_neg", '
     'use_bias=True)`'),
    ("Conv2D", (4, 3, 2), dict(border_mode="same", subsample=(2, 2), dim_ordering="tf"),
     (4, (3, 2)), dict(strides=(2, 2), padding="same", data_format="channels_last"),
     '`Conv2D(4, (3, 2), strides=(2, 2), padding="same", data_format="channels_last")`'),
    ("Conv2D", (4, 3), dict(nb_col=2), (4, (3, 2)), {}, "`Conv2D(4, (3, 2))`"),
    ("Conv2D", (4,), dict(nb_row=3, nb_col=2, init="he_normal"),
     (4, (3, 2)), dict(kernel_initializer="he_normal"), None),
    ("Conv2D", (), dict(nb_filter=4, nb_row=3, nb_col=2), (4, (3, 2)), {},
     "`Conv2D(kernel_size=(3, 2), filters=4)`"),
    ("Conv3D", (4, 3, 2, 1), dict(dim_ordering="th"),
     (4, (3, 2, 1)), dict(data_format="channels_first"),
     '`Conv3D(4, (3, 2, 1), data_format="channels_first")`'),
    ("Conv3D", (4, 3, 2), dict(kernel_dim3=1), (4, (3, 2, 1)), {}, None),
    ("Conv3D", (4, 3), dict(kernel_dim2=2, kernel_dim3=1), (4, (3, 2, 1)), {}, None),
    ("Conv3D", (), dict(nb_filter=4, kernel_dim1=3, kernel_dim2=2, kernel_dim3=1),
     (4, (3, 2, 1)), {}, None),
    ("SeparableConv2D", (4, 3, 3), dict(init="ones", border_mode="same", bias=False),
     (4, (3, 3)), dict(depthwise_initializer="ones", pointwise_initializer="ones",
                       padding="same", use_bias=False), None),
    ("Conv2DTranspose", (4, 3, 3, (None, 8, 8, 4)), dict(subsample=(2, 2), border_mode="same"),
     (4, (3, 3)), dict(strides=(2, 2), padding="same"),
     '`Conv2DTranspose(4, (3, 3), strides=(2, 2), padding="same")`'),
    ("Conv2DTranspose", (4,), dict(nb_row=3, nb_col=3, output_shape=(None, 5, 5, 4)),
     (4, (3, 3)), {}, None),
    ("ConvLSTM2D", (), dict(nb_filter=4, nb_row=3, nb_col=3, inner_init="zeros",
                            U_regularizer="l2", inner_activation="hard_sigmoid",
                            dropout_W=0.1, dropout_U=0.2, forget_bias_init="one",
                            dim_ordering="tf"),
     (4, (3, 3)), dict(recurrent_initializer="zeros", recurrent_regularizer="l2",
                       recurrent_activation="hard_sigmoid", dropout=0.1,
                       recurrent_dropout=0.2, unit_forget_bias=True,
                       data_format="channels_last"), None),
]


def _config(layer) -> dict:
    return {key: value for key, value in layer.get_config().items() if key != "name"}


@pytest.mark.parametrize("case", CASES, ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)])
def test_keras1_form_gives_the_keras2_config(case):
    name, args1, kwargs1, args2, kwargs2, shown = case
    ours_class = getattr(kestrel.layers, name)
    with pytest.warns(UserWarning, match=UPDATE.format(name)) as caught:
        keras1_form = ours_class(*args1, **kwargs1)
    if shown is not None:
        assert f"Update your `{name}` call to the Keras 2 API: {shown}" in \
            [str(warning.message) for warning in caught]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Keras 2 form converts nothing
        keras2_form = ours_class(*args2, **kwargs2)
    assert _config(keras1_form) == _config(keras2_form)
    theirs = _config(getattr(keras.layers, name)(*args2, **kwargs2))
    assert {key: _config(keras1_form).get(key) for key in theirs} == theirs


@pytest.mark.parametrize("alias,name,kwargs", [
    ("Convolution1D", "Conv1D", dict(nb_filter=2, filter_length=3)),
    ("Convolution2D", "Conv2D", dict(nb_filter=2, nb_row=3, nb_col=3)),
    ("Convolution3D", "Conv3D", dict(nb_filter=2, kernel_dim1=3, kernel_dim2=3, kernel_dim3=3)),
    ("Deconvolution2D", "Conv2DTranspose", dict(nb_filter=2, nb_row=3, nb_col=3)),
    ("SeparableConvolution2D", "SeparableConv2D", dict(nb_filter=2, nb_row=3, nb_col=3))])
def test_keras1_class_names_take_keras1_arguments(alias, name, kwargs):
    with pytest.warns(UserWarning, match=UPDATE.format(name)):
        layer = getattr(kestrel.layers, alias)(border_mode="same", **kwargs)
    assert (layer.filters, layer.padding, layer.kernel_size[0]) == (2, "same", 3)


def test_removed_and_dropped_arguments_warn_as_keras2():
    with pytest.warns(UserWarning, match="The `dropout` argument is no longer support in "
                                         "`Embedding`. You can apply a "):
        embedding = kestrel.layers.Embedding(5, 3, dropout=0.2)
    assert _config(embedding) == _config(keras.layers.Embedding(5, 3))
    with pytest.warns(UserWarning, match="The `forget_bias_init` argument has been ignored. "
                                         r"Use `unit_forget_bias=True` instead"):
        lstm = kestrel.layers.LSTM(4, forget_bias_init="zero")
    assert lstm.get_config()["unit_forget_bias"] is True  # Keras 2's default, unchanged
    with pytest.warns(UserWarning, match="The `input_dim` and `input_length` arguments in "
                                         "recurrent layers are deprecated."):
        gru = kestrel.layers.GRU(4, input_dim=3, input_length=5)
    assert gru._batch_input_shape == (None, 5, 3)
    with pytest.warns(UserWarning, match=UPDATE.format("Conv1D")):
        conv = kestrel.layers.Conv1D(2, 3, input_dim=4)
    assert conv._batch_input_shape == (None, None, 4)
    with pytest.warns(UserWarning, match=r"Update your `InputLayer` call"):
        input_layer = kestrel.layers.InputLayer(shape=(3,), input_dtype="float64")
    assert input_layer.get_config()["dtype"] == "float64"


@pytest.mark.parametrize("args,kwargs,padding,advice", [
    ((), dict(padding={"top_pad": 1, "left_pad": 2}), ((1, 0), (2, 0)),
     "`padding=(top_pad, bottom_pad, left_pad, right_pad)`."),
    (({"bottom_pad": 1, "right_pad": 3},), {}, ((0, 1), (0, 3)),
     "`padding=((top_pad, bottom_pad), (left_pad, right_pad))`")])
def test_zero_padding2d_dict_padding(args, kwargs, padding, advice):
    message = ("The `padding` argument in the Keras 2 API no longeraccepts dict types. You "
               f"can now input argument as: {advice}")
    with pytest.warns(UserWarning) as caught:
        ours = kestrel.layers.ZeroPadding2D(*args, **kwargs)
    assert [str(warning.message) for warning in caught] == [message]
    assert _config(ours) == _config(keras.layers.ZeroPadding2D(padding))


def test_duplicate_and_refused_arguments():
    with pytest.raises(TypeError, match="For the `units` argument, the layer received both "
                                        "the legacy keyword argument `output_dim` and the "
                                        "Keras 2 keyword argument `units`. Stick to the "
                                        "latter!"):
        kestrel.layers.Dense(output_dim=3, units=4)
    with pytest.raises(TypeError, match="both the legacy keyword argument `p`"):
        kestrel.layers.Dropout(rate=0.1, p=0.2)
    with pytest.raises(TypeError, match="Layer can receive at most 3 positional arguments."):
        kestrel.layers.Conv2D(4, 3, 3, 1, border_mode="same")
    with pytest.raises(TypeError, match="`mode=1` and `mode=2` are no longer supported."):
        kestrel.layers.BatchNormalization(mode=2)
    with pytest.raises(TypeError, match="`Conv3D` received `kernel_dim2=2` without "
                                        "`kernel_dim1`, `kernel_dim3`"):
        kestrel.layers.Conv3D(4, kernel_dim2=2)


def test_keras2_forms_and_introspection_unchanged():
    assert list(inspect.signature(kestrel.layers.Dense).parameters)[:2] == ["units",
                                                                             "activation"]
    assert list(inspect.signature(kestrel.layers.Conv2D).parameters)[:3] == [
        "filters", "kernel_size", "strides"]
    assert kestrel.layers.Dense.__init__.__wrapped__.__name__ == "__init__"
    assert not hasattr(kestrel.layers.Flatten.__init__, "__wrapped__")  # not in the table
    assert "nb_epoch" not in inspect.signature(kestrel.Model.fit).parameters
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv = kestrel.layers.Conv2D(4, (3, 3), 2, "same")  # Keras 3's positional strides
        assert (conv.kernel_size, conv.strides) == ((3, 3), (2, 2))
        # three integers without a Keras 1 keyword: Keras 3's (and tf.keras') strides
        for args, kwargs in (((4, 3, 2), dict(padding="same")), ((4, 3, 3), {})):
            conv = kestrel.layers.Conv2D(*args, **kwargs)
            assert _config(conv) == _config(keras.layers.Conv2D(*args, **kwargs))
            assert (conv.kernel_size, conv.strides) == ((3, 3), (args[2],) * 2)
        assert kestrel.layers.Dense(3, "relu").units == 3
        restored = kestrel.layers.LSTM.from_config(kestrel.layers.LSTM(2).get_config())
    assert restored.units == 2


def test_subclass_warning_names_the_subclass():
    class Wide(kestrel.layers.Dense):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

    with pytest.warns(UserWarning, match=r"Update your `Wide` call .*`Wide\(units=5\)`"):
        assert Wide(output_dim=5).units == 5


def _compiled_model(lib):
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(2)])
    model.compile(lib.optimizers.SGD(0.1), "mse")
    return model


def test_fit_nb_epoch():
    x = RNG.standard_normal((8, 4)).astype("float32")
    y = RNG.standard_normal((8, 2)).astype("float32")
    model = _compiled_model(kestrel)
    with pytest.warns(UserWarning, match="The `nb_epoch` argument in `fit` has been renamed "
                                         "`epochs`.") as caught:
        history = model.fit(x, y, nb_epoch=3, batch_size=4, verbose=0)
    assert len(history.history["loss"]) == 3
    assert caught[0].filename == __file__  # the warning points at the caller, as Keras 2's
    with pytest.warns(UserWarning):  # Keras 2 let `nb_epoch` win over `epochs`
        history = model.fit(x, y, nb_epoch=2, epochs=5, verbose=0)
    assert len(history.history["loss"]) == 2
    with pytest.raises(TypeError, match="fit\\(\\) got an unexpected keyword argument 'epoch'"):
        model.fit(x, y, epoch=2)
    with pytest.warns(DeprecationWarning) as caught:  # a generator method still points at
        model.fit_generator(_batches([]), steps_per_epoch=1, verbose=0)  # its caller
    assert caught[0].filename == __file__


def _batches(counter):
    while True:
        counter.append(1)
        yield RNG.standard_normal((2, 4)).astype("float32"), np.ones((2, 2), "float32")


class _Batches(kestrel.utils.Sequence):
    """A Sequence with `batch_size`: Keras 2 divided `samples_per_epoch` by it."""
    batch_size = 2

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return np.full((2, 4), index, "float32"), np.ones((2, 2), "float32")


def test_generator_methods_take_keras1_names():
    model = _compiled_model(kestrel)
    drawn = []
    with pytest.warns(UserWarning) as caught:
        history = model.fit_generator(
            _batches(drawn), samples_per_epoch=3, nb_epoch=2, nb_worker=1, pickle_safe=False,
            max_q_size=5, validation_data=_batches([]), nb_val_samples=1, verbose=0)
    messages = [str(warning.message) for warning in caught]
    assert "The semantics of the Keras 2 argument  `steps_per_epoch` is not the same as the " \
           "Keras 1 argument `samples_per_epoch`. `steps_per_epoch` is the number of batches " \
           "to draw from the generator at each epoch. Update your method calls " \
           "accordingly." in messages
    assert any(m.startswith("Update your `fit_generator` call to the Keras 2 API: "
                            "`fit_generator(<generator") and "steps_per_epoch=3" in m
               for m in messages)
    assert len(history.history["loss"]) == 2 and len(drawn) >= 6  # 3 steps a epoch, kept
    assert len(history.history["val_loss"]) == 2
    with pytest.warns(UserWarning, match="Update your `fit_generator` call"):
        steps = model.fit_generator(_Batches(), samples_per_epoch=8, verbose=0)
    assert steps.params["steps"] == 4  # 8 samples // batch_size 2
    with pytest.warns(UserWarning, match=r"`predict_generator\(<generator.*steps=3\)`"):
        predictions = model.predict_generator(_batches([]), val_samples=3)
    assert predictions.shape == (6, 2)
    with pytest.warns(UserWarning, match=r"Update your `evaluate_generator` call"):
        loss = model.evaluate_generator(_batches([]), val_samples=2)
    assert np.isfinite(loss)


def test_keras1_script_runs():
    layers = kestrel.layers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = kestrel.models.Sequential()
        model.add(layers.Convolution2D(4, 3, 3, border_mode="same", input_shape=(8, 8, 1),
                                       dim_ordering="tf", init="he_normal"))
        model.add(layers.Activation("relu"))
        model.add(layers.MaxPooling2D(pool_size=(2, 2), border_mode="valid"))
        model.add(layers.Dropout(p=0.25))
        model.add(layers.Flatten())
        model.add(layers.Dense(output_dim=3, init="uniform"))
        model.add(layers.Activation("softmax"))
        model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
        x = RNG.standard_normal((8, 8, 8, 1)).astype("float32")
        y = np.eye(3, dtype="float32")[RNG.integers(0, 3, 8)]
        history = model.fit(x, y, batch_size=4, nb_epoch=1, verbose=0)
    assert len(history.history["loss"]) == 1
    assert model.output_shape == (None, 3)
    assert [w.shape for w in model.get_weights()] == [(3, 3, 1, 4), (4,), (64, 3), (3,)]
