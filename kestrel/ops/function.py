"""`kestrel.Function`: a graph of ops and layers between symbolic inputs and outputs."""
from __future__ import annotations


class Function:
    """Call the computation recorded between `inputs` and `outputs` on real tensors.

    A functional model without training machinery, as Keras' `Function`:

        x = keras.Input((3,)); fn = keras.Function(x, keras.ops.sum(x * 2, axis=-1))
        fn(torch.ones(2, 3))  # tensor([6., 6.])
    """

    def __init__(self, inputs, outputs, name: str | None = None):
        from kestrel.models.functional import Functional

        self._graph = Functional(inputs=inputs, outputs=outputs, name=name)
        self.name = self._graph.name
        self.inputs, self.outputs = inputs, outputs

    @property
    def operations(self) -> list:
        return list(self._graph.layers)

    def __call__(self, inputs):
        return self._graph(inputs)

    def compute_output_spec(self, inputs):
        return self._graph(inputs)
