"""keras.distillation: Distiller and its losses, compared with real Keras 3 (torch backend)."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras as real  # noqa: E402  (the trusted reference)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel as ks  # noqa: E402
from kestrel.distillation import (  # noqa: E402
    DistillationLoss,
    Distiller,
    FeatureDistillation,
    LogitsDistillation,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 4)).astype("float32")
Y = RNG.integers(0, 3, size=(16,))


def _mlp(lib, name, hidden, heads=("out",), sequential=False):
    """A teacher or student: Dense(hidden) 'feat' -> Dense(6) 'feat2' -> one Dense(3) per
    head. Teacher and student differ in `hidden`; 'feat2' (6 units) can be distilled."""
    layers = [lib.layers.Dense(hidden, activation="relu", name="feat"),
              lib.layers.Dense(6, activation="tanh", name="feat2")]
    if sequential:
        return lib.Sequential([lib.Input((4,)), *layers, lib.layers.Dense(3, name="out")],
                              name=name)
    inputs = lib.Input((4,))
    h = layers[1](layers[0](inputs))
    outs = [lib.layers.Dense(3, name=head)(h) for head in heads]
    return lib.Model(inputs, outs if len(outs) > 1 else outs[0], name=name)


def _pair(name, hidden, **kwargs):
    """The same model in Keras and in Kestrel, with the same weights."""
    keras_model = _mlp(real, name, hidden, **kwargs)
    ours = _mlp(ks, name, hidden, **kwargs)
    ours.set_weights(keras_model.get_weights())
    return keras_model, ours


def _distillers(make_losses, heads=("out",), sequential=False, **kwargs):
    """(Keras Distiller, Kestrel Distiller) from `make_losses(lib)`."""
    kt, ot = _pair("teacher", 10, heads=heads, sequential=sequential)
    kst, ost = _pair("student", 5, heads=heads, sequential=sequential)
    theirs = real.distillation.Distiller(kt, kst, make_losses(real), **kwargs)
    ours = Distiller(ot, ost, make_losses(ks), **kwargs)
    return theirs, ours


def _loss_values(model, x, y):
    """compute_loss on one batch, then the three loss trackers."""
    xt = torch.as_tensor(x)
    yt = [torch.as_tensor(v) for v in y] if isinstance(y, list) else torch.as_tensor(y)
    total = model.compute_loss(x=xt, y=yt, y_pred=model(xt))
    trackers = (model.student_loss_tracker, model.distillation_loss_tracker,
                model.total_loss_tracker)
    values = [float(total.detach())] + [float(t.result()) for t in trackers]
    assert np.isfinite(values).all()
    return values


def _labels_loss(lib):
    """The student loss of the tests (the students output logits)."""
    return lib.losses.SparseCategoricalCrossentropy(from_logits=True)


LOSS_CASES = {
    "logits_default": lambda lib: lib.distillation.LogitsDistillation(temperature=2.0),
    "logits_kl_object": lambda lib: lib.distillation.LogitsDistillation(
        temperature=4.0, loss=lib.losses.KLDivergence()),
    "logits_cce": lambda lib: lib.distillation.LogitsDistillation(
        temperature=3.0, loss=lib.losses.CategoricalCrossentropy(from_logits=True)),
    "feature_layers": lambda lib: lib.distillation.FeatureDistillation(
        "mse", teacher_layer_name="feat2", student_layer_name="feat2"),
    "feature_final": lambda lib: lib.distillation.FeatureDistillation("cosine_similarity"),
    "several": lambda lib: [lib.distillation.LogitsDistillation(temperature=5.0,
                                                               loss=lib.losses.KLDivergence()),
                            lib.distillation.FeatureDistillation("mae", "feat2", "feat2"),
                            lib.distillation.FeatureDistillation("mse", None, None)],
}


@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_compute_loss_matches_keras(case):
    weights = {"distillation_loss_weights": [1.0, 0.5, 2.0]} if case == "several" else {}
    theirs, ours = _distillers(LOSS_CASES[case], student_loss_weight=0.3, **weights)
    for model, lib in ((theirs, real), (ours, ks)):
        model.compile(optimizer="sgd", loss=_labels_loss(lib))
    np.testing.assert_allclose(_loss_values(ours, X, Y), _loss_values(theirs, X, Y),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sequential", [False, True])
def test_fit_matches_keras_weights_and_logs(sequential):
    def losses(lib):
        return [lib.distillation.LogitsDistillation(temperature=2.0,
                                                    loss=lib.losses.KLDivergence()),
                lib.distillation.FeatureDistillation("mse", "feat2", "feat2")]

    theirs, ours = _distillers(losses, sequential=sequential,
                               distillation_loss_weights=[1.0, 0.25])
    teacher_before = [w.copy() for w in ours.teacher.get_weights()]
    logs = []
    for model, lib in ((theirs, real), (ours, ks)):
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss=_labels_loss(lib),
                      metrics=["accuracy"])
        logs.append(model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0).history)
    for mine, ref in zip(ours.student.get_weights(), theirs.student.get_weights()):
        assert np.isfinite(mine).all()
        np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-5)
    for mine, before in zip(ours.teacher.get_weights(), teacher_before):
        np.testing.assert_array_equal(mine, before)  # the teacher stays frozen
    assert set(logs[1]) == set(logs[0])
    for key in logs[0]:
        assert np.isfinite(logs[1][key]).all()
        np.testing.assert_allclose(logs[1][key], logs[0][key], rtol=1e-5)
    assert len(ours.trainable_weights) == len(ours.student.trainable_weights)
    np.testing.assert_allclose(ours.predict(X, verbose=0), theirs.predict(X, verbose=0),
                               rtol=1e-5, atol=1e-6)
    mine = ours.evaluate(X, Y, verbose=0, return_dict=True)
    ref = theirs.evaluate(X, Y, verbose=0, return_dict=True)
    assert set(mine) == set(ref)
    for key in ref:
        assert mine[key] == pytest.approx(ref[key], rel=1e-5)


def test_multi_output_with_none_entries_matches_keras():
    def losses(lib):
        return [lib.distillation.LogitsDistillation(temperature=2.0,
                                                    loss=[lib.losses.KLDivergence(), None]),
                lib.distillation.FeatureDistillation(loss=[None, "mse"])]

    theirs, ours = _distillers(losses, heads=("a", "b"), student_loss_weight=0.4)
    for model, lib in ((theirs, real), (ours, ks)):
        model.compile(optimizer="sgd", loss=[lib.losses.MeanAbsoluteError(),
                                             lib.losses.MeanSquaredError()])
    # Keras keeps the compiled list as a TrackedList, which its own tree.map_structure then
    # refuses against a plain list of labels: give it a plain list (a Keras quirk).
    object.__setattr__(theirs, "_student_loss", list(theirs._student_loss))
    y = [RNG.normal(size=(16, 3)).astype("float32") for _ in range(2)]
    expected = _loss_values(theirs, X, y)
    np.testing.assert_allclose(_loss_values(ours, X, y), expected, rtol=1e-5)
    # Loss names give each output's mean too (Keras sums the per-sample values of all
    # outputs there, which grows with the batch size).
    ours.compile(optimizer="sgd", loss=["mae", "mse"])
    np.testing.assert_allclose(_loss_values(ours, X, y), expected, rtol=1e-5)


def test_student_loss_weight_extremes_and_no_labels():
    theirs, ours = _distillers(LOSS_CASES["logits_default"], student_loss_weight=1.0)
    for model, lib in ((theirs, real), (ours, ks)):
        model.compile(optimizer="sgd", loss=_labels_loss(lib))
    np.testing.assert_allclose(_loss_values(ours, X, Y), _loss_values(theirs, X, Y), rtol=1e-5)
    _, ours = _distillers(LOSS_CASES["logits_default"], student_loss_weight=0.0)
    ours.compile(optimizer="sgd", loss="mse")
    x = torch.as_tensor(X)
    only_distill = ours.compute_loss(x=x, y=None, y_pred=ours(x))
    assert float(ours.student_loss_tracker.result()) == 0.0
    assert float(only_distill) == pytest.approx(float(ours.distillation_loss_tracker.result()))


def test_logits_distillation_maths():
    teacher = torch.tensor([[1.0, 2.0, 0.5]])
    student = torch.tensor([[0.2, 1.0, 0.1]])
    loss = LogitsDistillation(temperature=2.0, loss=ks.losses.KLDivergence())
    p, q = torch.softmax(teacher / 2, -1), torch.softmax(student / 2, -1)
    expected = (p * (p / q).log()).sum() * 4.0
    assert float(loss.compute_loss(teacher, student)) == pytest.approx(float(expected), rel=1e-5)


def _error(build):
    """The exception `build()` raises."""
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    return info.value


class _Sub:
    """Subclassed teacher/student for both libraries (no symbolic inputs)."""

    @staticmethod
    def make(lib):
        class Sub(lib.Model):
            def __init__(self):
                super().__init__()
                self.dense = lib.layers.Dense(3)

            def call(self, x):
                return self.dense(x)

        model = Sub()
        model(np.zeros((1, 4), "float32"))
        return model


ERROR_CASES = {
    "teacher_not_model": (lambda lib, t, s: lib.distillation.Distiller(
        "teacher", s, lib.distillation.LogitsDistillation()), "Teacher must be a keras.Model"),
    "loss_weight_range": (lambda lib, t, s: lib.distillation.Distiller(
        t, s, lib.distillation.LogitsDistillation(), student_loss_weight=1.5),
        "student_loss_weight must be between 0.0 and 1.0, got 1.5"),
    "losses_none": (lambda lib, t, s: lib.distillation.Distiller(t, s, None),
                    "'distillation_losses' cannot be `None`"),
    "weights_count": (lambda lib, t, s: lib.distillation.Distiller(
        t, s, [lib.distillation.LogitsDistillation()], distillation_loss_weights=[1.0, 2.0]),
        "Number of distillation_loss_weights (2) must match number of distillation_losses (1)"),
    "unknown_layer": (lambda lib, t, s: lib.distillation.Distiller(
        t, s, lib.distillation.FeatureDistillation("mse", "nope", "feat")),
        "In teacher model: "),
    "subclassed_with_names": (lambda lib, t, s: lib.distillation.Distiller(
        _Sub.make(lib), s, lib.distillation.FeatureDistillation("mse", "feat", "feat")),
        "The teacher model(s) appear to be subclassed"),
    "temperature": (lambda lib, t, s: lib.distillation.LogitsDistillation(temperature=0),
                    "temperature must be positive"),
    "temperature_type": (lambda lib, t, s: lib.distillation.LogitsDistillation(temperature="3"),
                         "temperature must be a number"),
    "all_none_logits": (lambda lib, t, s: lib.distillation.LogitsDistillation(loss=[None]),
                        "At least one loss must be non-`None`."),
    "all_none_feature": (lambda lib, t, s: lib.distillation.FeatureDistillation(loss=None),
                         "must contain at least one non-`None` value"),
    "unknown_loss": (lambda lib, t, s: lib.distillation.FeatureDistillation(loss="nope"),
                     "nope"),
    "output_shapes": (lambda lib, t, s: lib.distillation.Distiller(
        t, lib.Sequential([lib.Input((4,)), lib.layers.Dense(5)]),
        lib.distillation.LogitsDistillation()), "Teacher and student output shapes are "
                                                "incompatible"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_match_keras(case):
    build, fragment = ERROR_CASES[case]
    kt, ot = _pair("teacher", 10)
    kst, ost = _pair("student", 5)
    ref = _error(lambda: build(real, kt, kst))
    mine = _error(lambda: build(ks, ot, ost))
    assert type(mine) is type(ref)
    assert fragment in str(ref) and fragment in str(mine)


def test_compile_errors_and_subclassed_final_outputs():
    sub_teacher, sub_student = _Sub.make(ks), _Sub.make(ks)
    distiller = Distiller(sub_teacher, sub_student, FeatureDistillation("mse"))
    with pytest.raises(ValueError, match="'loss' cannot be `None`"):
        distiller.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="metrics must be a list or tuple"):
        distiller.compile(optimizer="sgd", loss="mse", metrics="mae")
    distiller.compile(optimizer="sgd", loss="mse")
    history = distiller.fit(X, RNG.normal(size=(16, 3)).astype("float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["total_loss"][0])


def test_custom_distillation_loss_must_return_a_scalar():
    class PerSample(DistillationLoss):
        def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
            return ((teacher_outputs - student_outputs) ** 2).mean(-1)

    _, ours = _distillers(lambda lib: LogitsDistillation())
    ours.distillation_losses = [PerSample()]
    ours.compile(optimizer="sgd", loss=_labels_loss(ks))
    with pytest.raises(ValueError, match="returned a non-scalar loss with shape"):
        _loss_values(ours, X, Y)


def test_get_config_matches_keras_and_round_trips():
    theirs, ours = _distillers(LOSS_CASES["several"], distillation_loss_weights=[1.0, 0.5, 2.0],
                               student_loss_weight=0.2)
    mine, ref = ours.get_config(), theirs.get_config()
    assert set(mine) == set(ref)
    for key in ("name", "distillation_loss_weights", "student_loss_weight"):
        assert mine[key] == ref[key]
    for m, r in zip(mine["distillation_losses"], ref["distillation_losses"]):
        assert (m["module"], m["class_name"]) == (r["module"], r["class_name"])
        assert set(m["config"]) == set(r["config"])
    rebuilt = Distiller.from_config(mine)
    rebuilt.student.set_weights(ours.student.get_weights())
    rebuilt.teacher.set_weights(ours.teacher.get_weights())
    assert [type(d) for d in rebuilt.distillation_losses] == \
        [LogitsDistillation, FeatureDistillation, FeatureDistillation]
    assert isinstance(rebuilt.distillation_losses[0].loss, ks.losses.KLDivergence)
    assert not rebuilt.teacher.trainable
    for model in (ours, rebuilt):
        model.compile(optimizer="sgd", loss=_labels_loss(ks))
    np.testing.assert_allclose(_loss_values(rebuilt, X, Y), _loss_values(ours, X, Y), rtol=1e-6)


def test_keras_file_round_trip(tmp_path):
    _, ours = _distillers(LOSS_CASES["several"], distillation_loss_weights=[1.0, 0.5, 2.0])
    ours.compile(optimizer=ks.optimizers.SGD(0.05), loss=_labels_loss(ks), metrics=["accuracy"])
    ours.fit(X, Y, epochs=1, verbose=0)
    path = str(tmp_path / "distiller.keras")
    ours.save(path)
    loaded = ks.saving.load_model(path)
    assert isinstance(loaded, Distiller) and loaded.compiled
    for a, b in ((loaded.teacher, ours.teacher), (loaded.student, ours.student)):
        for mine, ref in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(mine, ref)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), ours.predict(X, verbose=0))
    mine = loaded.evaluate(X, Y, verbose=0, return_dict=True)
    ref = ours.evaluate(X, Y, verbose=0, return_dict=True)
    for key in ref:
        assert mine[key] == pytest.approx(ref[key], rel=1e-6)


def test_public_names():
    assert ks.distillation.Distiller is Distiller
    assert set(ks.distillation.__all__) >= {"Distiller", "DistillationLoss",
                                            "FeatureDistillation", "LogitsDistillation"}


def test_saved_distiller_loads_in_a_fresh_process(tmp_path):
    """`kestrel.distillation` is imported on demand by the loader."""
    import subprocess
    import sys

    script = (
        "import numpy as np, kestrel as keras\n"
        "from kestrel.distillation import Distiller, LogitsDistillation\n"
        "def m(n):\n"
        "    i = keras.Input((4,))\n"
        "    return keras.Model(i, keras.layers.Dense(3, name=n)(i))\n"
        "d = Distiller(teacher=m('t'), student=m('s'), distillation_losses=LogitsDistillation("
        "loss=keras.losses.KLDivergence()))\n"
        "d.compile('sgd', loss='sparse_categorical_crossentropy')\n"
        "d.predict(np.ones((1, 4), 'float32'), verbose=0)\n"
        f"d.save({str(tmp_path / 'd.keras')!r})\n")
    subprocess.run([sys.executable, "-c", script], check=True)
    loaded = subprocess.run(
        [sys.executable, "-c", "import kestrel; m = kestrel.saving.load_model("
         f"{str(tmp_path / 'd.keras')!r}); print(type(m).__module__, type(m).__name__)"],
        check=True, capture_output=True, text=True)
    assert loaded.stdout.split() == ["kestrel.distillation.distiller", "Distiller"]
