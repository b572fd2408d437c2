"""An LSTM sentiment classifier on generated "reviews" of variable length.

Token 0 is padding: `Embedding(mask_zero=True)` builds a mask so the LSTM skips the padded
steps, as in Keras.

    python examples/lstm_text.py --epochs 3
"""
import argparse

import numpy as np

import kestrel as keras
from kestrel import layers

POSITIVE = ["great", "good", "fun", "love"]
NEGATIVE = ["awful", "bad", "boring", "hate"]
NEUTRAL = ["the", "movie", "plot", "actor", "was", "and", "a", "scene", "music", "end",
           "story", "it", "very", "quite", "long", "short"]
VOCAB = ["<pad>"] + POSITIVE + NEGATIVE + NEUTRAL
MAX_LEN = 16


def make_reviews(n, rng):
    """Token sequences padded with 0 after the text, and labels (1 = positive)."""
    index = {word: i for i, word in enumerate(VOCAB)}
    x = np.zeros((n, MAX_LEN), dtype="int64")
    y = rng.integers(0, 2, n)
    for row, label in enumerate(y):
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        words = list(rng.choice(NEUTRAL, rng.integers(3, MAX_LEN - 4)))
        words += list(rng.choice(own, rng.integers(2, 4))) + list(rng.choice(other, 1))
        rng.shuffle(words)
        x[row, :len(words)] = [index[w] for w in words]
    return x, y.astype("float32")


def build_model():
    return keras.Sequential([
        keras.Input(shape=(MAX_LEN,), dtype="int64"),
        layers.Embedding(len(VOCAB), 16, mask_zero=True),
        layers.LSTM(16),
        layers.Dense(1, activation="sigmoid"),
    ], name="review_lstm")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one epoch on 256 reviews")
    args = parser.parse_args()
    epochs = 1 if args.quick else args.epochs

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = make_reviews(256 if args.quick else 2000, rng)
    x_test, y_test = make_reviews(200, rng)
    model = build_model()
    model.summary()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, validation_split=0.1, verbose=2)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss: {loss:.4f} - test accuracy: {accuracy:.4f}")
    sample = " ".join(VOCAB[t] for t in x_test[0] if t)
    score = float(model.predict(x_test[:1], verbose=0)[0, 0])
    print(f'"{sample}" -> positive with probability {score:.2f} (label {int(y_test[0])})')


if __name__ == "__main__":
    main()
