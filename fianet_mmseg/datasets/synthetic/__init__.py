"""A small synthetic referring data set in the RRSIS-D release layout.

Aerial-like scenes (textured grass / soil / asphalt) hold 2-5 disjoint objects
of six categories (vehicle, storage tank, airplane, ship, tennis court,
building) in six colours and three sizes. Every object gets one reference
whose expression names the category plus the fewest of colour, size and
position that make it the only match in its image, e.g. "The storage tank",
"The red vehicle", "A large airplane", "The small blue ship on the right".

Positions are image regions of the object centre (the centre of its mask's
bounding box): thirds of the width (left / center / right) and of the height
(top / middle / bottom). A centre closer than ``REGION_MARGIN`` (share of the
image side) to a third's border has no region on that axis: position words
neither describe nor exclude it, so every position word is unambiguous.

Written files (as the release, see docs/data_preparation.md)::

    ROOT/rrsisd/refs(unc).p              # pickle: list of reference dicts
    ROOT/rrsisd/instances.json           # images, annotations, categories
    ROOT/images/rrsisd/JPEGImages/<5-digit id>.jpg
    ROOT/synthetic_meta.json             # not in the release: object attributes

``synthetic_meta.json`` keeps what the release format cannot: each object's
colour and size and the attributes each expression names (for tests and
analysis).

Modules: :mod:`.objects` (categories, colours, sizes, regions, shapes),
:mod:`.expressions` (the attributes that single out an object, their words),
:mod:`.scene` (placing and painting the objects of one image), :mod:`.release`
(:func:`generate_synthetic_rrsisd`: the files). Command line:
``data_prep/synthetic.py``; ``tools/run_demo.py`` trains and tests on it.
"""
from .expressions import choose_attributes, expression_text
from .objects import CATEGORIES, COLOURS, SIZES, Category, SceneObject, rasterise, region_of
from .release import META_FILE, generate_synthetic_rrsisd

__all__ = ['CATEGORIES', 'COLOURS', 'META_FILE', 'SIZES', 'Category', 'SceneObject',
           'choose_attributes', 'expression_text', 'generate_synthetic_rrsisd', 'rasterise',
           'region_of']
