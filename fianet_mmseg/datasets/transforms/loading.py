"""Loading the image (the project's one reader) and the ground-truth mask, checked against it."""
from __future__ import annotations

from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from ...utils.image_io import decode_image

#: Values a mask may hold: 0 (background), 1 (referred object), 255 (ignored).
MASK_VALUES = (0, 1, 255)


@TRANSFORMS.register_module()
class LoadRefSegImage(LoadImageFromFile):
    """Load an image file with the project's reader, as every inference entry point does.

    :func:`fianet_mmseg.utils.image_io.decode_image` decodes the file's bytes
    (read through ``mmengine.fileio``, so ``backend_args`` work):

    * 8-bit files (the reference's JPEG / TIFF data sets) with Pillow, EXIF
      orientation ignored: ``Image.open`` and the RGB array, byte for byte
      what the reference's ``Image.open(...).convert('RGB')`` gives (and what
      ``LoadImageFromFile(imdecode_backend='pillow',
      color_type='color_ignore_orientation')`` gave);
    * 16-bit, 32-bit and float files stretched per band to 8 bit like
      GeoTIFFs (2nd-98th percentile of the valid pixels, nodata and alpha 0
      out of the statistics), where mmcv's Pillow decoding saturates them:
      a data set of such images then trains and tests on the pixels the
      demos and the API show the model;
    * grey images repeated to RGB, 4 bands: the first three, alpha dropped.

    Added keys: ``img`` ((H, W, 3) uint8 BGR, float32 with ``to_float32``),
    ``img_shape``, ``ori_shape``.

    Args:
        to_float32 (bool): Convert the image to float32.
        ignore_empty (bool): Return None instead of raising for an unreadable
            file.
        backend_args (dict, optional): ``mmengine.fileio`` backend arguments.
    """

    def __init__(self, to_float32: bool = False, ignore_empty: bool = False,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(to_float32=to_float32, ignore_empty=ignore_empty,
                         backend_args=backend_args)

    def transform(self, results: dict) -> Optional[dict]:
        """Read ``results['img_path']`` into ``results['img']``."""
        path = results['img_path']
        try:
            content = fileio.get(path, backend_args=self.backend_args)
            image = decode_image(content, str(path)).bgr
        except Exception:
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            image = image.astype(np.float32)
        results['img'] = image
        results['img_shape'] = image.shape[:2]
        results['ori_shape'] = image.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(to_float32={self.to_float32}, '
                f'ignore_empty={self.ignore_empty}, backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadRefSegAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` with checks whose errors name the mask file.

    The mask is read with mmseg's code (same decoding, same ``gt_seg_map``),
    then checked:

    * it exists and decodes (a missing, empty or truncated file is an error
      naming it, not a bare decoder message);
    * it is one channel ``(H, W)`` of the image's ORIGINAL size
      (``ori_shape``, set by ``LoadRefSegImage``; checked when the image
      was loaded first, as in the configs). ``Resize`` would otherwise bring
      a mask of another size to the input size without a word, out of
      register with its image;
    * its values are in :data:`MASK_VALUES`.

    Required keys: ``seg_map_path``, ``seg_fields``, ``reduce_zero_label``;
    optional ``ori_shape`` and ``img_path`` (for the size check and the
    messages). Added keys: ``gt_seg_map`` (uint8, (H, W)).

    Args:
        **kwargs: Arguments of mmseg's ``LoadAnnotations`` (``imdecode_backend``,
            ``backend_args``, ``reduce_zero_label``).

    Raises:
        FileNotFoundError: The mask file does not exist.
        ValueError: It cannot be decoded, has several channels, another size
            than its image, or other values than :data:`MASK_VALUES`.
    """

    def transform(self, results: dict) -> dict:
        """Load ``gt_seg_map`` with mmseg's code (its public ``transform``), then check it."""
        path = results['seg_map_path']
        image = results.get('img_path')
        of_image = f' (the mask of image {image})' if image else ''
        try:
            results = super().transform(results)
        except FileNotFoundError as err:
            raise FileNotFoundError(f'mask file {path} does not exist{of_image}') from err
        except AssertionError:  # mmseg's reduce_zero_label check: a config matter
            raise
        except Exception as err:  # PIL / cv2 decoding errors of empty or broken files
            raise ValueError(f'cannot decode mask file {path}{of_image}: '
                             f'{type(err).__name__}: {err}') from err
        mask = results['gt_seg_map']
        if mask.ndim != 2:
            raise ValueError(f'mask file {path}{of_image} has shape {mask.shape}; expected '
                             'one channel, (H, W)')
        ori_shape = results.get('ori_shape')
        if ori_shape is not None and tuple(mask.shape) != tuple(ori_shape[:2]):
            raise ValueError(f'mask file {path} is {mask.shape[0]}x{mask.shape[1]} (HxW), '
                             f'its image {image} is {ori_shape[0]}x{ori_shape[1]}')
        unexpected = mask[~np.isin(mask, MASK_VALUES)]
        if unexpected.size:
            values = np.unique(unexpected)
            shown = ', '.join(str(v) for v in values[:8]) + (', ...' if len(values) > 8 else '')
            raise ValueError(f'mask file {path}{of_image} holds the value(s) {shown} in '
                             f'{unexpected.size} pixel(s); a mask holds 0 (background), '
                             '1 (object) or 255 (ignored)')
        return results
