"""Subclassing: a custom layer with its own weights inside a subclassed Model.

The Keras guide's pattern: `Layer.build` creates weights with `add_weight`, `Model.__init__`
creates layers, `call(inputs, training=None)` is the forward pass. Weights saved with
`save_weights` load into a fresh instance. The model is also a `torch.nn.Module`.

    python examples/subclassed_model.py --epochs 10
"""
import argparse
import os
import tempfile

import numpy as np
from sklearn.datasets import load_digits

import kestrel as keras
from kestrel import layers


class Linear(keras.layers.Layer):
    """`inputs @ w + b`, with weights created once the input size is known."""

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True, name="kernel")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True,
                                 name="bias")

    def call(self, inputs):
        return inputs @ self.w + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class DigitClassifier(keras.Model):
    """Two custom Linear layers with dropout between them."""

    def __init__(self, hidden=64, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.num_classes = num_classes
        self.linear_1 = Linear(hidden)
        self.dropout = layers.Dropout(0.2)
        self.linear_2 = Linear(num_classes)

    def call(self, inputs, training=None):
        x = keras.activations.relu(self.linear_1(inputs))
        x = self.dropout(x, training=training)
        return keras.activations.softmax(self.linear_2(x))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="one epoch on 300 samples")
    args = parser.parse_args()
    epochs = 1 if args.quick else args.epochs

    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")[:300 if args.quick else None]
    y = digits.target.astype("int64")[:len(x)]
    split = int(0.8 * len(x))

    model = DigitClassifier(name="digit_classifier")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:split], y[:split], batch_size=32, epochs=epochs, verbose=2)
    model.summary()
    n_torch = sum(p.numel() for p in model.parameters())
    print(f"torch sees {n_torch} parameters; Keras counts {model.count_params()}")
    loss, accuracy = model.evaluate(x[split:], y[split:], verbose=0)
    print(f"test loss: {loss:.4f} - test accuracy: {accuracy:.4f}")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "classifier.weights.h5")
        model.save_weights(path)
        clone = DigitClassifier.from_config(model.get_config())
        clone.build((None, x.shape[1]))
        clone.load_weights(path)
    same = np.allclose(clone.predict(x[split:], verbose=0), model.predict(x[split:], verbose=0))
    print(f"reloaded weights give the same predictions: {same}")


if __name__ == "__main__":
    main()
