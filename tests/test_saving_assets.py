"""Layer assets (lookup vocabularies) live in `.keras` archives under `assets/<layer path>/`."""
import json
import zipfile

import numpy as np

import kestrel


def _model_with_lookup():
    lookup = kestrel.layers.IntegerLookup()
    lookup.adapt(np.array([7, 7, 3, 9, 9, 9]))
    x = kestrel.Input((1,), dtype="int64")
    return kestrel.Model(x, lookup(x)), lookup


def test_vocabulary_written_where_keras_puts_assets(tmp_path):
    model, lookup = _model_with_lookup()
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        member = "assets/layers/integer_lookup/vocabulary.txt"  # Keras' path, not the name
        assert member in archive.namelist()
        words = archive.read(member).decode().splitlines()
    assert words == [str(w) for w in lookup.get_vocabulary()]


def test_vocabulary_read_from_assets_when_the_config_has_none(tmp_path):
    model, lookup = _model_with_lookup()
    model.save(tmp_path / "m.keras")
    # Keras writes adapted vocabularies only as assets: drop it from the config.
    with zipfile.ZipFile(tmp_path / "m.keras") as src, \
            zipfile.ZipFile(tmp_path / "assets_only.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["class_name"] == "IntegerLookup":
                        layer["config"]["vocabulary"] = None
                        layer["config"].pop("idf_weights", None)
                data = json.dumps(config)
            dst.writestr(item, data)
    restored = kestrel.models.load_model(tmp_path / "assets_only.keras")
    x = np.array([[9], [7], [3], [42]])
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())
