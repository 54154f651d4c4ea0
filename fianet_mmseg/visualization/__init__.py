"""Overlays of referring segmentation (demo, analysis and mmseg's visualisation hook)."""
from .caption import draw_caption, draw_title
from .masks import as_image_mask, draw_mask
from .overlays import render_comparison, render_prediction
from .phrases import locate_phrases
from .refseg_visualizer import RefSegVisualizer

__all__ = ['RefSegVisualizer', 'as_image_mask', 'draw_caption', 'draw_mask', 'draw_title',
           'locate_phrases', 'render_comparison', 'render_prediction']
