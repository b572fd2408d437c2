"""The ground floor of serialization: the object registry, config (de)serialization,
bounded parsing and safe mode. Layers, losses and the rest build on it; `kestrel.saving`
(files) stands above models."""
