"""Load a model saved by real Keras 3 and check that Kestrel predicts the same numbers.

By default it reads `seq_mlp.keras` from the project's own real-Keras fixtures
(`tests/fixtures/keras3`, made by `tests/fixtures/make_keras_fixtures.py`), with the input
batch and Keras' own predictions saved beside it.
The loaded model keeps Keras' compile settings, so it can be trained further.

    python examples/load_keras_file.py --path tests/fixtures/keras3/seq_mlp.keras --epochs 2
"""
import argparse
from pathlib import Path

import numpy as np

import kestrel as keras

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "keras3"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=FIXTURES / "seq_mlp.keras",
                        help="a .keras or .h5 file with NAME.x.npy / NAME.y.npy beside it")
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs of further training on the saved batch (0: none)")
    parser.add_argument("--quick", action="store_true", help="at most one epoch")
    args = parser.parse_args()
    epochs = min(args.epochs, 1) if args.quick else args.epochs
    stem = args.path.name.split(".")[0]
    x_path, y_path = args.path.with_name(f"{stem}.x.npy"), args.path.with_name(f"{stem}.y.npy")
    if not (args.path.exists() and x_path.exists() and y_path.exists()):
        raise SystemExit(f"Need {args.path} with {x_path.name} and {y_path.name} beside it; "
                         "pass --path to point at another Keras file.")

    model = keras.models.load_model(args.path)
    model.summary()
    x, keras_predictions = np.load(x_path), np.load(y_path)
    predictions = model.predict(x, verbose=0)
    print("Kestrel:", " ".join(f"{v:.5f}" for v in predictions[0, :4]), "...")
    print("Keras:  ", " ".join(f"{v:.5f}" for v in keras_predictions[0, :4]), "...")
    print(f"max |kestrel - keras| = {np.abs(predictions - keras_predictions).max():.3g} "
          f"over {predictions.size} values")

    if epochs and getattr(model, "optimizer", None) is not None:
        labels = keras_predictions.argmax(-1)  # the saved model's own classes as targets
        history = model.fit(x, labels, epochs=epochs, batch_size=16, verbose=0)
        print(f"fine-tuned {epochs} epoch(s) with Keras' compile settings "
              f"({type(model.optimizer).__name__}): loss {history.history['loss'][-1]:.4f}")


if __name__ == "__main__":
    main()
