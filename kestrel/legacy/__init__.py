"""`keras.legacy`: the Keras 2 serialization names Keras 3 keeps."""
from kestrel.legacy import saving
