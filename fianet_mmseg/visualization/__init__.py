"""Overlays of referring segmentation (demo, analysis and mmseg's visualisation hook)."""
from .refseg_visualizer import (
    RefSegVisualizer,
    as_image_mask,
    draw_caption,
    draw_mask,
    locate_phrases,
    mask_iou,
    render_comparison,
    render_prediction,
)

__all__ = ['RefSegVisualizer', 'as_image_mask', 'draw_caption', 'draw_mask', 'locate_phrases',
           'mask_iou', 'render_comparison', 'render_prediction']
