"""NumPy versions of Keras' recurrent equations (Keras weight layout, Keras gate order).

Written from the Keras documentation's formulas, independently of Kestrel's code, so that the
recurrent layer tests have a trusted reference.
"""
from __future__ import annotations

import numpy as np


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def simple_rnn_step(kernel, recurrent_kernel, bias, activation=np.tanh):
    def step(x, states):
        h = activation(x @ kernel + states[0] @ recurrent_kernel + bias)
        return h, [h]
    return step


def lstm_step(kernel, recurrent_kernel, bias):
    """Gates i, f, c, o: c' = f*c + i*tanh(g), h' = o*tanh(c')."""
    def step(x, states):
        h, c = states
        z = x @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        return h, [h, c]
    return step


def gru_step(kernel, recurrent_kernel, bias, reset_after=True):
    """Gates z, r, h; h' = z*h + (1-z)*hh."""
    def step(x, states):
        h = states[0]
        k_z, k_r, k_h = np.split(kernel, 3, axis=-1)
        r_z, r_r, r_h = np.split(recurrent_kernel, 3, axis=-1)
        if reset_after:
            b_in, b_rec = bias
        else:
            b_in, b_rec = bias, np.zeros_like(bias)
        bi_z, bi_r, bi_h = np.split(b_in, 3)
        br_z, br_r, br_h = np.split(b_rec, 3)
        z = sigmoid(x @ k_z + bi_z + h @ r_z + br_z)
        r = sigmoid(x @ k_r + bi_r + h @ r_r + br_r)
        if reset_after:
            hh = np.tanh(x @ k_h + bi_h + r * (h @ r_h + br_h))
        else:
            hh = np.tanh(x @ k_h + bi_h + (r * h) @ r_h)
        h = z * h + (1 - z) * hh
        return h, [h]
    return step


def run(step, x, states, mask=None, go_backwards=False, zero_output_for_mask=False):
    """Keras' loop: masked steps keep the states and repeat the previous output (or zeros).

    Returns (outputs in reading order (batch, time, units), final states).
    """
    x = np.asarray(x, np.float64)
    steps = range(x.shape[1])
    order = list(steps)[::-1] if go_backwards else list(steps)
    outputs, previous = [], None
    for t in order:
        out, new = step(x[:, t], states)
        if previous is None:
            previous = np.zeros_like(out)
        if mask is not None:
            keep = mask[:, t][:, None].astype(bool)
            out = np.where(keep, out, 0.0 if zero_output_for_mask else previous)
            new = [np.where(keep, n, s) for n, s in zip(new, states)]
        states, previous = new, out
        outputs.append(out)
    return np.stack(outputs, 1), states
