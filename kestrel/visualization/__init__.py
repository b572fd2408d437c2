"""`kestrel.visualization`: boxes and masks drawn on images, and image galleries (Keras 3 API).

Drawing needs only NumPy (Pillow for box labels); galleries need matplotlib
(`pip install kestrel[viz]`).
"""
from kestrel.visualization.annotated_galleries import (plot_bounding_box_gallery,
                                                       plot_segmentation_mask_gallery)
from kestrel.visualization.draw_bounding_boxes import draw_bounding_boxes
from kestrel.visualization.draw_segmentation_masks import draw_segmentation_masks
from kestrel.visualization.plot_image_gallery import plot_image_gallery

__all__ = ["draw_bounding_boxes", "draw_segmentation_masks", "plot_bounding_box_gallery",
           "plot_image_gallery", "plot_segmentation_mask_gallery"]
