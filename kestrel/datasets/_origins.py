"""Where Keras downloads its datasets from, and their published hashes."""
TF_KERAS_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
CIFAR10 = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
