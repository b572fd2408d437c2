"""Train Keras-style models on scikit-learn's bundled digits (8x8 images, 10 classes).

Run with `make demo`. Three ways to build the same classifier: Sequential, functional, and a
subclassed Model, each trained with fit() and a validation split.
"""
import numpy as np
from sklearn.datasets import load_digits

import kestrel as keras
from kestrel import layers


def load_data():
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int64")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


class SimpleMLP(keras.Model):
    """The subclassing example from the Keras docs."""

    def __init__(self, use_bn=False, use_dp=False, num_classes=10):
        super().__init__(name="mlp")
        self.use_bn = use_bn
        self.use_dp = use_dp
        self.num_classes = num_classes
        self.dense1 = layers.Dense(32, activation="relu")
        self.dense2 = layers.Dense(num_classes, activation="softmax")
        if self.use_dp:
            self.dp = layers.Dropout(0.5)
        if self.use_bn:
            self.bn = layers.BatchNormalization(axis=-1)

    def call(self, inputs):
        x = self.dense1(inputs)
        if self.use_dp:
            x = self.dp(x)
        if self.use_bn:
            x = self.bn(x)
        return self.dense2(x)


def build_models():
    sequential = keras.Sequential([
        keras.Input(shape=(64,)),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ], name="sequential_mlp")

    inputs = keras.Input(shape=(64,), name="pixels")
    hidden = layers.Dense(64, activation="relu")(inputs)
    hidden = layers.BatchNormalization()(hidden)
    outputs = layers.Dense(10, activation="softmax", name="digit")(hidden)
    functional = keras.Model(inputs=inputs, outputs=outputs, name="functional_mlp")

    return [sequential, functional, SimpleMLP(use_bn=True, use_dp=True)]


def main():
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_data()
    for model in build_models():
        print(f"\n=== {model.name} ===")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        history = model.fit(x_train, y_train, batch_size=32, epochs=10, validation_split=0.1,
                            verbose=1)
        model.summary()
        print("History:", {k: [round(v, 4) for v in vals] for k, vals in history.history.items()})
        loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        print(f"test loss {loss:.4f}  test accuracy {accuracy:.4f}")
        predictions = model.predict(x_test[:8], verbose=0).argmax(axis=-1)
        print("predicted:", predictions.tolist())
        print("true:     ", y_test[:8].tolist())


if __name__ == "__main__":
    main()
