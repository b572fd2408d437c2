"""Keras 2's symbolic training API: `optimizer.get_updates(loss, params)` gives the update that
`K.function(inputs, outputs, updates)` applies after each call, as the custom GAN loops of
2017 trained (`train = K.function([real], [loss], Adam().get_updates(params, [], loss))`).
"""
from __future__ import annotations


class GradientUpdate:
    """One step of `optimizer` on `params` down the gradients of the symbolic `loss`; the
    gradients are symbolic too, for `K.function` to compute with its outputs."""

    def __init__(self, optimizer, loss, params):
        import kestrel.backend.keras2 as keras2

        self.optimizer, self.params = optimizer, list(params)
        self.gradients = keras2.gradients(loss, self.params)

    def apply(self, gradients) -> None:
        self.optimizer.apply(gradients, self.params)


class Keras2Updates:
    """`get_updates` and `get_gradients` for `Optimizer`."""

    def get_updates(self, *args, **kwargs) -> list:
        """`[update]` for `K.function(..., updates=...)`: Keras 2.1+'s
        `get_updates(loss, params)` or Keras 2.0's `get_updates(params, constraints, loss)`."""
        if len(args) == 3:
            params, _, loss = args
        else:
            named = dict(zip(("loss", "params"), args), **kwargs)
            loss, params = named.get("loss"), named.get("params")
        if loss is None or params is None:
            raise TypeError(f"{type(self).__name__}.get_updates takes `loss` and `params` "
                            f"(Keras 2.0: `params, constraints, loss`). Received: "
                            f"args={args}, kwargs={sorted(kwargs)}")
        return [GradientUpdate(self, loss, params)]

    def get_gradients(self, loss, params) -> list:
        """The symbolic gradients of `loss` with respect to `params` (`K.gradients`)."""
        import kestrel.backend.keras2 as keras2

        return keras2.gradients(loss, params)
