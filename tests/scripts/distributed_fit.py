"""Run under torchrun (or alone): trains a small model and writes its results to OUT_DIR.

Usage: distributed_fit.py OUT_DIR [--crash]
"""
import json
import os
import sys

import numpy as np

import kestrel as keras
from kestrel.layers import Dense, Input


def main(out_dir: str, crash: bool) -> None:
    keras.distribution.initialize()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    rank = int(os.environ.get("RANK", 0))
    if crash and rank == 1:
        raise RuntimeError("rank 1 fails on purpose")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 5)).astype("float32")
    y = rng.integers(0, 3, size=(70,))
    keras.utils.set_random_seed(rank + 1)  # different init per rank: fit must broadcast rank 0's
    model = keras.Sequential([Input(shape=(5,)), Dense(8, activation="relu"), Dense(3)])
    if rank == 0 or "RANK" not in os.environ:
        np.savez(os.path.join(out_dir, "init.npz"), *model.get_weights())
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                        validation_split=0.2)
    results = {"history": history.history,
               "evaluate": model.evaluate(x, y, batch_size=32, verbose=0),
               "predict": model.predict(x, batch_size=32).tolist()}
    tag = f"rank{rank}" if "RANK" in os.environ else "single"
    np.savez(os.path.join(out_dir, f"{tag}.npz"), *model.get_weights())
    with open(os.path.join(out_dir, f"{tag}.json"), "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(sys.argv[1], "--crash" in sys.argv)
