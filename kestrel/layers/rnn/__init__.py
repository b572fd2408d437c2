"""Recurrent layers: cells, the generic RNN loop, SimpleRNN/LSTM/GRU and the RNN wrappers."""
from kestrel.layers.rnn.bidirectional import Bidirectional
from kestrel.layers.rnn.cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from kestrel.layers.rnn.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, ConvLSTMCell
from kestrel.layers.rnn.cudnn_recurrent import CuDNNGRU, CuDNNLSTM
from kestrel.layers.rnn.gru import GRU
from kestrel.layers.rnn.lstm import LSTM
from kestrel.layers.rnn.rnn import RNN
from kestrel.layers.rnn.simple_rnn import SimpleRNN
from kestrel.layers.rnn.time_distributed import TimeDistributed

__all__ = ["Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "ConvLSTMCell", "CuDNNGRU", "CuDNNLSTM", "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "SimpleRNN",
           "SimpleRNNCell", "StackedRNNCells", "TimeDistributed"]
