"""The browser demo (``demo/web_demo.py``): the page's work without gradio
(:mod:`.segmenter`) and the gradio page over it (:mod:`.app`, gradio imported lazily)."""
from .app import build_app, launch, require_gradio
from .segmenter import (
    DISPLAY_SIDE,
    MAX_UPLOAD_MB,
    SOURCE_CRS,
    Segmenter,
    display_overlay,
    highlight_phrases,
    parse_ints,
    text_table,
)

__all__ = ['DISPLAY_SIDE', 'MAX_UPLOAD_MB', 'SOURCE_CRS', 'Segmenter', 'build_app',
           'display_overlay', 'highlight_phrases', 'launch', 'parse_ints', 'require_gradio',
           'text_table']
