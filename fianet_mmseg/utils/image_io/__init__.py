"""One image reader for every entry point: an image file -> the model's 8-bit RGB image.

:func:`read_image` (a file) and :func:`decode_image` (a file's bytes) are how
this project turns an image file into the model's input. The Python API (a
path given to ``inference_model``, :func:`~fianet_mmseg.apis.raster_input.read_geotiff`),
``demo/image_demo.py`` (one image and batches), ``demo/web_demo.py``, the
visualiser and the failure gallery, and the data sets' image loader
(``LoadRefSegImage`` in the configs: ``tools/train.py``, ``tools/test.py``) all
call them, so one file gives the same pixels everywhere (docs/inference.md,
"How images are read").

Conventions:

* Decoders. Pillow decodes what it decodes losslessly: 8-bit images (JPEG,
  8-bit PNG / TIFF / BMP / WebP, palette images; ``Image.open``, then
  ``convert('RGB')`` for palette and CMYK images, as the reference decodes)
  and one-band 16-bit, 32-bit and float images. OpenCV
  (``cv2.IMREAD_UNCHANGED``) decodes 16-bit RGB / RGBA PNGs and TIFFs of 1, 3
  or 4 samples of 16 or 32 bits or floats; a TIFF is taken from OpenCV only
  when the channels it returns match the file's tags (OpenCV folds some
  multi-band TIFFs into one channel). GDAL (rasterio, the extra ``geo``)
  reads the rest (more than 4 bands, ...) and every window or bbox; without
  rasterio such a file is an ``ImportError`` naming it and
  ``pip install "fianet-mmseg[geo]"``. Georeferencing comes from rasterio
  when it is installed.
* Channels are bands numbered from 1 in file order (R, G, B, A). Default: one
  colour band is grey, repeated to R, G, B; of three or more colour bands the
  first three are R, G, B. ``bands`` chooses others (three, or one for grey).
* Alpha is dropped: it is not a colour. A pixel whose alpha is 0 has no data,
  as has a pixel equal to a TIFF's nodata value (GDAL's ``GDAL_NODATA`` tag) in
  a selected band, and a NaN / inf. No-data pixels stay out of the stretch
  statistics and are black in the model's image.
* Bit depth: :func:`stretch_to_uint8`, as for
  GeoTIFFs (``stretch='auto'``): 8-bit data as it is, other data stretched per
  band between the 2nd and 98th percentiles of its valid pixels.
* EXIF orientation is ignored: pixels are used in the order they are stored,
  as the reference (``Image.open`` without ``exif_transpose``), GDAL and the
  training data protocol use them; a rotated view would also no longer match
  a georeferenced pixel grid. (``cv2.imread`` with its default flag and
  ``mmcv.imread`` rotate by the tag: this project does not read images with
  them.)

Modules: :mod:`.reader` (:func:`read_image`, :func:`decode_image`),
:mod:`.decoders` (Pillow and OpenCV), :mod:`.headers` (PNG header, TIFF tags),
:mod:`.raster` (GDAL through rasterio: windows, bboxes, the rest),
:mod:`.stretch` (bands to 8 bit), :mod:`.geo_image` (:class:`GeoImage`). Every
name is importable from ``fianet_mmseg.utils.image_io``.
"""

from .decoders import (
    PILLOW_8BIT_MODES,
    PILLOW_DEEP_MODES,
    DecodedChannels,
    decode_channels,
    decode_with_opencv,
    decode_with_pillow,
    to_geo_image,
)
from .geo_image import TIFF_SUFFIXES, GeoImage, PathType, Window, is_tiff
from .headers import png_header, tiff_tags
from .raster import (
    GEO_INSTALL_HINT,
    RasterOpenError,
    open_raster,
    rasterio_available,
    read_raster,
    require_rasterio,
)
from .reader import decode_image, read_image
from .stretch import (
    DEFAULT_PERCENTILES,
    STRETCH_MODES,
    check_bands,
    stretch_to_uint8,
    to_model_image,
)

__all__ = ['DEFAULT_PERCENTILES', 'GEO_INSTALL_HINT', 'PILLOW_8BIT_MODES', 'PILLOW_DEEP_MODES',
           'STRETCH_MODES', 'TIFF_SUFFIXES', 'DecodedChannels', 'GeoImage', 'PathType',
           'RasterOpenError', 'Window', 'check_bands', 'decode_channels', 'decode_image',
           'decode_with_opencv', 'decode_with_pillow', 'is_tiff', 'open_raster', 'png_header',
           'rasterio_available', 'read_image', 'read_raster', 'require_rasterio',
           'stretch_to_uint8', 'tiff_tags', 'to_geo_image', 'to_model_image']
