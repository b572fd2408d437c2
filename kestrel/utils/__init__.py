"""Utilities: summaries, seeding, sessions, progress bars, data helpers."""
from kestrel.models.summary import print_summary
from kestrel.utils.session import clear_session, set_random_seed
from kestrel.utils.progbar import Progbar
from kestrel.utils.py_dataset import PyDataset, Sequence
from kestrel.utils.file_utils import get_file
from kestrel.utils.plot_history import plot_history
from kestrel.utils.plot_model import model_to_dot, plot_model
from kestrel.utils.data_utils import pack_x_y_sample_weight, unpack_x_y_sample_weight
from kestrel.utils.numerical_utils import normalize, to_categorical
from kestrel.utils.sequence_utils import pad_sequences
from kestrel.preprocessing._image_io import array_to_img, img_to_array, load_img, save_img
