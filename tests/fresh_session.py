"""A cleared session with seed 0, so Kestrel and Keras number and initialize layers alike."""


def fresh(lib):
    """`lib` (kestrel or keras) after `clear_session(free_memory=False)` and `set_random_seed(0)`."""
    lib.utils.clear_session(free_memory=False)  # no gc pass per test
    lib.utils.set_random_seed(0)
    return lib


def both(replay, *args):
    """`replay(lib, *args)` with real Keras, then with Kestrel, each in a fresh seeded session
    (the caller sets KERAS_BACKEND=torch before Keras is first imported)."""
    import keras

    import kestrel

    return replay(fresh(keras), *args), replay(fresh(kestrel), *args)
