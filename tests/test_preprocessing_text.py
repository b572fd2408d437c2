"""keras.preprocessing.text (Keras 2): Tokenizer index order, matrices in every mode, JSON round
trip and hashing, against Keras 3's legacy text module (same semantics) and hand-worked values."""
import doctest
import os

import numpy as np
import pytest

from kestrel.preprocessing import text
from kestrel.preprocessing.text import (Tokenizer, hashing_trick, one_hot,
                                        text_to_word_sequence, tokenizer_from_json)

TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "Dog and cat; cat and dog",
         "A bird"]


@pytest.fixture(scope="module")
def legacy():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    from keras.src.legacy.preprocessing import text as legacy_text

    return legacy_text


def test_doctests():
    assert doctest.testmod(text).failed == 0


def test_word_index_by_count_ties_by_first_appearance():
    tok = Tokenizer()
    tok.fit_on_texts(TEXTS)
    # counts: cat 3, the 3, dog 3, and 2, then singletons in order of appearance
    assert list(tok.word_index)[:4] == ["the", "cat", "dog", "and"]
    assert list(tok.word_index)[4:] == ["sat", "on", "mat", "ate", "my", "homework", "a", "bird"]
    assert tok.index_word[1] == "the" and tok.document_count == 4
    assert tok.word_counts["cat"] == 3 and tok.word_docs["cat"] == 2


def test_sequences_with_num_words_and_oov(legacy):
    for kwargs in ({}, {"num_words": 4}, {"num_words": 4, "oov_token": "<unk>"},
                   {"oov_token": "<unk>", "lower": False}, {"char_level": True}):
        ours, ref = Tokenizer(**kwargs), legacy.Tokenizer(**kwargs)
        ours.fit_on_texts(TEXTS)
        ref.fit_on_texts(TEXTS)
        assert ours.word_index == ref.word_index
        probe = TEXTS + ["the unknown cat"]
        assert ours.texts_to_sequences(probe) == ref.texts_to_sequences(probe)
        seqs = ref.texts_to_sequences(probe)
        assert ours.sequences_to_texts(seqs) == ref.sequences_to_texts(seqs)
    tok = Tokenizer(num_words=3, oov_token="<unk>")
    tok.fit_on_texts(["a a a b b c"])
    assert tok.word_index == {"<unk>": 1, "a": 2, "b": 3, "c": 4}
    assert tok.texts_to_sequences(["a b c z"]) == [[2, 1, 1, 1]]
    assert tok.sequences_to_texts([[2, 3]]) == ["a <unk>"]


@pytest.mark.parametrize("mode", ["binary", "count", "tfidf", "freq"])
def test_texts_to_matrix_matches_keras(legacy, mode):
    for kwargs in ({}, {"num_words": 5}):
        ours, ref = Tokenizer(**kwargs), legacy.Tokenizer(**kwargs)
        ours.fit_on_texts(TEXTS)
        ref.fit_on_texts(TEXTS)
        probe = TEXTS + ["", "cat cat dog"]
        np.testing.assert_allclose(ours.texts_to_matrix(probe, mode=mode),
                                   ref.texts_to_matrix(probe, mode=mode))


def test_matrix_modes_by_hand():
    tok = Tokenizer()
    tok.fit_on_texts(["a a b", "b c"])  # a:2 b:2 c:1 -> a=1, b=2, c=3
    assert tok.texts_to_matrix(["a a b"], mode="count").tolist() == [[0, 2, 1, 0]]
    assert tok.texts_to_matrix(["a a b"], mode="binary").tolist() == [[0, 1, 1, 0]]
    np.testing.assert_allclose(tok.texts_to_matrix(["a a b"], mode="freq"), [[0, 2 / 3, 1 / 3, 0]])
    tfidf = tok.texts_to_matrix(["a a b"], mode="tfidf")
    np.testing.assert_allclose(tfidf[0, 1], (1 + np.log(2)) * np.log(1 + 2 / 2))
    np.testing.assert_allclose(tfidf[0, 2], np.log(1 + 2 / 3))


def test_fit_on_sequences_and_errors():
    tok = Tokenizer(num_words=4)
    tok.fit_on_sequences([[1, 2], [2, 3, 3]])
    assert tok.document_count == 2 and tok.index_docs[2] == 2
    np.testing.assert_allclose(tok.sequences_to_matrix([[3, 3]], mode="tfidf")[0, 3],
                               (1 + np.log(2)) * np.log(1 + 2 / 2))
    with pytest.raises(ValueError, match="num_words"):
        Tokenizer().texts_to_matrix(["a"])
    with pytest.raises(ValueError, match="mode"):
        tok.sequences_to_matrix([[1]], mode="bogus")
    with pytest.raises(ValueError, match="tfidf"):
        Tokenizer(num_words=3).sequences_to_matrix([[1]], mode="tfidf")
    with pytest.raises(TypeError, match="unrecognized"):
        Tokenizer(foo=1)


def test_json_round_trip_matches_keras(legacy):
    tok = Tokenizer(num_words=6, oov_token="?")
    tok.fit_on_texts(TEXTS)
    ours = tokenizer_from_json(tok.to_json())
    assert ours.word_index == tok.word_index and ours.index_word == tok.index_word
    assert ours.texts_to_sequences(TEXTS) == tok.texts_to_sequences(TEXTS)
    np.testing.assert_allclose(ours.texts_to_matrix(TEXTS, "tfidf"),
                               tok.texts_to_matrix(TEXTS, "tfidf"))
    theirs = legacy.tokenizer_from_json(tok.to_json())  # Keras reads our JSON
    assert theirs.texts_to_sequences(TEXTS) == tok.texts_to_sequences(TEXTS)
    ref = legacy.Tokenizer(num_words=6, oov_token="?")
    ref.fit_on_texts(TEXTS)
    assert tokenizer_from_json(ref.to_json()).word_index == tok.word_index  # and we read theirs


def test_word_sequence_and_hashing(legacy):
    sample = "Hello, World!\tfoo--bar  Baz"
    assert text_to_word_sequence(sample) == ["hello", "world", "foo", "bar", "baz"]
    assert text_to_word_sequence(sample, lower=False, filters="", split=",") == \
        ["Hello", " World!\tfoo--bar  Baz"]
    assert hashing_trick(sample, 13, hash_function="md5") == \
        legacy.hashing_trick(sample, 13, hash_function="md5")
    assert one_hot(sample, 7) == legacy.one_hot(sample, 7)
    assert all(1 <= i < 7 for i in one_hot(sample, 7))
    assert hashing_trick("a b", 5, analyzer=str.split, hash_function=len) == [2, 2]
