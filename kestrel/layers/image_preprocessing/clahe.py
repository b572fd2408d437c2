"""Contrast Limited Adaptive Histogram Equalization (CLAHE), batched on the images' device."""
from __future__ import annotations

import torch

from kestrel.layers.image_preprocessing.base import ImageLayer, check_value_range, rescale
from kestrel.layers.layer import register_layer

_LEVELS = 256


@register_layer()
class ContrastLimitedAdaptiveHistogramEqualization(ImageLayer):
    """Equalizes each tile of a `tile_grid_size` grid with its own clipped histogram, blending
    neighbouring tiles' mappings bilinearly (in training and at inference, as Keras).

    Args:
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        clip_limit: histogram bins are clipped at `clip_limit * tile_pixels / 256`, rounded
            down to a whole count as Keras' torch backend does, and the excess is spread evenly
            over all bins; 0 or less disables clipping. Defaults to 4.0.
        tile_grid_size: `(rows, cols)` of tiles. Defaults to `(8, 8)`.
        data_format: `"channels_last"` (default) or `"channels_first"`.

    Example:
        >>> clahe = ContrastLimitedAdaptiveHistogramEqualization(tile_grid_size=(2, 2))
        >>> clahe(torch.randint(0, 256, (1, 16, 16, 3)).float()).shape
        torch.Size([1, 16, 16, 3])
    """

    def __init__(self, value_range=(0, 255), clip_limit=4.0, tile_grid_size=(8, 8),
                 data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.value_range = check_value_range(self, value_range)
        self.clip_limit = clip_limit
        if not (isinstance(tile_grid_size, (tuple, list)) and len(tile_grid_size) == 2 and all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in tile_grid_size)):
            raise ValueError(f"{type(self).__name__} '{self.name}': tile_grid_size must be two "
                             f"positive integers. Received: tile_grid_size={tile_grid_size!r:.80}")
        self.tile_grid_size = tuple(tile_grid_size)

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_first":
            images = images.movedim(1, -1)
        pixels = rescale(images, self.value_range, (0, 255))
        height, width = pixels.shape[1:3]
        grid_h, grid_w = self.tile_grid_size
        tile_h, tile_w = -(-height // grid_h), -(-width // grid_w)
        padded = _pad_edges(pixels, tile_h * grid_h, tile_w * grid_w)
        levels = padded.to(torch.int32).clamp(0, _LEVELS - 1).long()
        lut = self._tile_mappings(levels, tile_h, tile_w)
        out = _blend(lut, levels, tile_h, tile_w)[:, :height, :width]
        out = rescale(out.to(images.dtype), (0, 255), self.value_range)
        return out.movedim(-1, 1) if self.data_format == "channels_first" else out

    def _tile_mappings(self, levels, tile_h: int, tile_w: int) -> torch.Tensor:
        """Each tile's equalizing map `(batch, rows + 2, cols + 2, channels, 256)`, the grid
        extended by one edge tile on every side."""
        batch, _, _, channels = levels.shape
        grid_h, grid_w = self.tile_grid_size
        tiles = levels.reshape(batch, grid_h, tile_h, grid_w, tile_w, channels)
        tiles = tiles.permute(0, 1, 3, 5, 2, 4).reshape(-1, tile_h * tile_w)
        hist = torch.zeros(tiles.shape[0], _LEVELS, device=levels.device)
        hist.scatter_add_(1, tiles, torch.ones_like(tiles, dtype=hist.dtype))
        area = float(tile_h * tile_w)
        if self.clip_limit > 0:
            clipped = hist.clamp(max=float(int(self.clip_limit * area / _LEVELS)))
            hist = clipped + (hist - clipped).sum(1, keepdim=True) / _LEVELS
        cdf = hist.cumsum(1)
        low = cdf.amin(1, keepdim=True)
        span = area - low
        lut = ((cdf - low) * 255.0 / torch.where(span == 0, 1.0, span)).clamp(0, 255)
        lut = lut.reshape(batch, grid_h, grid_w, channels, _LEVELS)
        lut = torch.cat([lut[:, :1], lut, lut[:, -1:]], 1)
        return torch.cat([lut[:, :, :1], lut, lut[:, :, -1:]], 2)

    def get_config(self):
        return {**super().get_config(), "value_range": list(self.value_range),
                "clip_limit": self.clip_limit, "tile_grid_size": list(self.tile_grid_size)}


def _pad_edges(images, height: int, width: int) -> torch.Tensor:
    """`images` grown to `height x width` at the bottom/right by repeating the last row and
    column (Keras asks for symmetric padding, which its torch backend performs this way)."""
    rows = torch.arange(height, device=images.device).clamp(max=images.shape[1] - 1)
    cols = torch.arange(width, device=images.device).clamp(max=images.shape[2] - 1)
    if (height, width) != tuple(images.shape[1:3]):
        images = images[:, rows][:, :, cols]
    return images


def _blend(lut, levels, tile_h: int, tile_w: int) -> torch.Tensor:
    """Every pixel's value mapped by its four nearest tiles' maps, bilinearly weighted."""
    batch, height, width, channels = levels.shape
    rows, cols = lut.shape[1], lut.shape[2]

    def neighbours(size, tile, count):
        position = (torch.arange(size, device=lut.device, dtype=torch.float32) - tile / 2) / tile + 1
        first = position.floor()
        return (first.clamp(0, count - 1).long(), (first + 1).clamp(0, count - 1).long(),
                position - first)

    y0, y1, wy = neighbours(height, tile_h, rows)
    x0, x1, wx = neighbours(width, tile_w, cols)
    flat = lut.reshape(-1)
    b = torch.arange(batch, device=lut.device).view(-1, 1, 1, 1) * rows
    c = torch.arange(channels, device=lut.device).view(1, 1, 1, -1)

    def at(y, x):
        tile = ((b + y.view(1, -1, 1, 1)) * cols + x.view(1, 1, -1, 1)) * channels + c
        return flat[tile * _LEVELS + levels]

    wy, wx = wy.view(1, -1, 1, 1), wx.view(1, 1, -1, 1)
    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return top * (1 - wy) + bottom * wy
