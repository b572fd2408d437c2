"""`keras.optimizers.legacy`: TF-Keras 2.11+'s legacy optimizer names, as Kestrel's optimizers.

Keras 2 scripts wrote `tf.keras.optimizers.legacy.Adam(...)`; their maths equals the current
optimizers', so the same classes serve both names.
"""
from kestrel.optimizers.adam import Adam
from kestrel.optimizers.adaptive import Adagrad, RMSprop
from kestrel.optimizers.ftrl import Ftrl
from kestrel.optimizers.optimizer import Optimizer
from kestrel.optimizers.sgd import SGD

__all__ = ["Adagrad", "Adam", "Ftrl", "Optimizer", "RMSprop", "SGD"]
