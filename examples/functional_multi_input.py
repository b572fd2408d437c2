"""A functional model with three inputs and two outputs (the Keras guide's ticket triage).

A support ticket has a title, a body (token sequences) and tags (a multi-hot vector). The
model predicts a priority score (sigmoid) and the department to route it to (softmax), with
one loss per named output.

    python examples/functional_multi_input.py --epochs 5 --plot ticket_model.png
"""
import argparse

import numpy as np

import kestrel as keras
from kestrel import layers

NUM_WORDS, NUM_TAGS, NUM_DEPARTMENTS = 200, 12, 4
TITLE_LEN, BODY_LEN = 10, 40


def make_tickets(n, rng):
    """Inputs and targets keyed by name. Department words live in the body; priority grows
    with the first three tags and with "urgent" words (ids 1-9) in the title."""
    title = rng.integers(10, NUM_WORDS, (n, TITLE_LEN))
    body = rng.integers(50, NUM_WORDS, (n, BODY_LEN))
    tags = (rng.random((n, NUM_TAGS)) < 0.2).astype("float32")
    department = rng.integers(0, NUM_DEPARTMENTS, n)
    body[:, :6] = 10 + 10 * department[:, None] + rng.integers(0, 10, (n, 6))
    urgent = rng.random(n) < 0.5
    title[urgent, 0] = rng.integers(1, 10, urgent.sum())
    priority = (0.6 * urgent + 0.4 * tags[:, :3].mean(1)).astype("float32")[:, None]
    inputs = {"title": title, "body": body, "tags": tags}
    return inputs, {"priority": priority, "department": department}


def build_model():
    title = keras.Input(shape=(TITLE_LEN,), dtype="int64", name="title")
    body = keras.Input(shape=(BODY_LEN,), dtype="int64", name="body")
    tags = keras.Input(shape=(NUM_TAGS,), name="tags")
    title_features = layers.GlobalAveragePooling1D()(layers.Embedding(NUM_WORDS, 16)(title))
    body_features = layers.GlobalAveragePooling1D()(layers.Embedding(NUM_WORDS, 16)(body))
    x = layers.concatenate([title_features, body_features, tags])
    x = layers.Dense(32, activation="relu")(x)
    priority = layers.Dense(1, activation="sigmoid", name="priority")(x)
    department = layers.Dense(NUM_DEPARTMENTS, activation="softmax", name="department")(x)
    return keras.Model(inputs=[title, body, tags], outputs=[priority, department],
                       name="ticket_triage")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one epoch on 300 tickets")
    parser.add_argument("--plot", help="also draw the model graph into this image file")
    args = parser.parse_args()
    epochs = 1 if args.quick else args.epochs

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = make_tickets(300 if args.quick else 1500, rng)
    x_test, y_test = make_tickets(300, rng)
    model = build_model()
    model.summary()
    if args.plot:
        keras.utils.plot_model(model, to_file=args.plot, show_shapes=True)
        print(f"model graph written to {args.plot}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss={"priority": "mean_squared_error",
                        "department": "sparse_categorical_crossentropy"},
                  loss_weights={"priority": 1.0, "department": 0.5},
                  metrics={"department": ["accuracy"]})
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, validation_split=0.1, verbose=2)
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    print("test " + " - ".join(f"{name}: {value:.4f}" for name, value in results.items()))
    priority, department = model.predict({k: v[:3] for k, v in x_test.items()}, verbose=0)
    for p, d, true_p, true_d in zip(priority[:, 0], department.argmax(1),
                                    y_test["priority"][:3, 0], y_test["department"][:3]):
        print(f"priority {p:.2f} (true {true_p:.2f}), department {d} (true {true_d})")


if __name__ == "__main__":
    main()
