"""`kestrel.ops.image`: Keras' image ops, registered as `image.<name>` (not flat in
`kestrel.ops`): colour, size, padding, patches and filters in `image_basic`, resampling warps
in `image_warp`, `scale_and_translate` in `image_scale`."""
from kestrel.ops.image_basic import *  # noqa: F401,F403
from kestrel.ops.image_basic import __all__ as _basic_names
from kestrel.ops.image_scale import *  # noqa: F401,F403
from kestrel.ops.image_scale import __all__ as _scale_names
from kestrel.ops.image_warp import *  # noqa: F401,F403
from kestrel.ops.image_warp import __all__ as _warp_names

__all__ = [*_basic_names, *_scale_names, *_warp_names]
