"""keras.io audio, graph and reinforcement-learning examples (GNN citations, GAT, MPNN,
node2vec, actor-critic, DQN, DDPG, PPO, CTC/transformer ASR, MelGAN, speaker and accent
recognition, STFT): the same code runs with Kestrel and with real Keras (torch backend);
shapes, numbers and training histories agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _node_classifier(k, call_takes_training):
    """gnn_citations: a subclassed model whose `call` takes no `training`, holding the graph
    as attributes; BatchNormalization and Dropout inside its feed-forward blocks."""

    class NodeClassifier(k.Model):
        def __init__(self, features, edges):
            super().__init__()
            self.features, self.edges = features, edges
            self.ffn = k.Sequential([k.layers.BatchNormalization(), k.layers.Dropout(0.5),
                                     k.layers.Dense(4, activation="gelu")])
            self.logits = k.layers.Dense(3)

        def call(self, node_indices):
            x = self.ffn(self.features)
            messages = k.ops.take(x, self.edges[1], axis=0)
            x = x + k.ops.segment_sum(messages, self.edges[0], num_segments=x.shape[0])
            return self.logits(k.ops.take(x, node_indices, axis=0))

    class TrainingNodeClassifier(NodeClassifier):
        def call(self, node_indices, training=None):
            return super().call(node_indices)

    rng = np.random.RandomState(0)
    features = rng.rand(12, 5).astype("float32") * 3
    cls = TrainingNodeClassifier if call_takes_training else NodeClassifier
    return cls(k.ops.convert_to_tensor(features), rng.randint(0, 12, (2, 30)))


def _fit_node_classifier(k, call_takes_training):
    model = _node_classifier(_fresh(k), call_takes_training)
    model.compile(optimizer=k.optimizers.Adam(0.01),
                  loss=k.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = np.arange(12) % 3
    history = model.fit(np.arange(12), labels, batch_size=12, epochs=2, verbose=0)
    return history.history["loss"], model.ffn.layers[0].moving_mean.numpy()


def test_fit_runs_a_model_whose_call_lacks_training_in_inference_mode():
    """Keras' train step calls `model(x)` when `call` takes no `training`: its Dropout and
    BatchNormalization stay in inference (moving stats untouched), unlike a `call` with it."""
    for takes_training in (False, True):
        (ours, our_mean), (theirs, their_mean) = (
            _fit_node_classifier(k, takes_training) for k in (kestrel, keras))
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
        np.testing.assert_allclose(our_mean, their_mean, rtol=1e-5, atol=1e-7)
        assert np.any(our_mean != 0) == takes_training


def _gru_in_training(k, **dropouts):
    _fresh(k)
    layer = k.layers.GRU(3, return_state=True, **dropouts)
    layer.build((2, 3, 4))
    k.utils.set_random_seed(5)
    x = np.random.RandomState(0).rand(2, 3, 4).astype("float32")
    return [k.ops.convert_to_numpy(t) for t in layer(x, training=True)]


def test_gru_per_gate_dropout_masks_meet_the_gates_keras_draws_them_for():
    """gnn_citations' gated update: a GRU with recurrent dropout draws one mask per gate
    (z, r, h); each must scale the same gate as in Keras after set_random_seed."""
    for dropouts in ({"recurrent_dropout": 0.3}, {"dropout": 0.3, "recurrent_dropout": 0.2}):
        ours, theirs = (_gru_in_training(k, **dropouts) for k in (kestrel, keras))
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_stft_spectrogram_on_a_signal_of_unknown_length_builds_as_keras():
    """stft: an `Input((None, 1))` fed to STFTSpectrogram layers with frames longer than any
    placeholder; the output shapes come from the layer's own shape rule, as in Keras."""
    shapes = []
    for k in (kestrel, keras):
        inputs = _fresh(k).layers.Input((None, 1))
        outs = [k.layers.STFTSpectrogram(mode=mode, frame_length=40, frame_step=15,
                                         padding=padding, expand_dims=expand)(inputs)
                for mode, padding, expand in (("log", "valid", False), ("stft", "same", True))]
        fixed = k.layers.STFTSpectrogram(frame_length=40, frame_step=15, data_format=
                                         "channels_first").compute_output_shape((2, 3, 100))
        shapes.append([tuple(o.shape) for o in outs] + [tuple(fixed)])
    assert shapes[0] == shapes[1] == [(None, None, 33), (None, None, 66, 1), (2, 99, 5)]
