"""`kestrel.visualization`: boxes and masks drawn on images, and image galleries (Keras 3 API)."""
from kestrel.visualization.draw_bounding_boxes import draw_bounding_boxes
from kestrel.visualization.draw_segmentation_masks import draw_segmentation_masks
