"""Loading the ground-truth mask, checked against its image."""
from __future__ import annotations

import numpy as np
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

#: Values a mask may hold: 0 (background), 1 (referred object), 255 (ignored).
MASK_VALUES = (0, 1, 255)


@TRANSFORMS.register_module()
class LoadRefSegAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` with checks whose errors name the mask file.

    The mask is read with mmseg's code (same decoding, same ``gt_seg_map``),
    then checked:

    * it exists and decodes (a missing, empty or truncated file is an error
      naming it, not a bare decoder message);
    * it is one channel ``(H, W)`` of the image's ORIGINAL size
      (``ori_shape``, set by ``LoadImageFromFile``; checked when the image
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
