"""Names shared by the data side and the model side (the lowest layer of the package).

Kept here, below ``text``, ``datasets``, ``models`` and ``evaluation``, so that
none of them imports another just for a constant.
"""

#: Text fields of a sample's ``SegDataSample`` (each a (L,) int64 tensor) and
#: keys of the batched text dict given to :class:`~fianet_mmseg.models.FIANet`
#: (each (B, L)): wordpiece ids and the masks of the three views.
TEXT_KEYS = ('input_ids', 'attention_mask', 'object_mask', 'position_mask')

#: Data field holding the prediction at the network's input size (the
#: reference's evaluation protocol); ``pred_sem_seg`` is at the original size.
INPUT_SIZE_PRED = 'pred_sem_seg_at_input'

#: Data field of a training sample whose black boxes are drawn in the loader but painted on the
#: device (``RandomBlackBoxes(paint=False)`` then ``BatchBlackBoxes``): an (N, 4) int64 tensor
#: of ``(top, left, bottom, right)`` in pixels of the original image (``ori_shape``).
BLACK_BOXES = 'black_boxes'

#: Data field of a training sample whose black boxes are drawn in the loader but painted on the
#: device (``RandomBlackBoxes(paint=False)`` then ``BatchBlackBoxes``): an (N, 4) int64 tensor
#: of ``(top, left, bottom, right)`` in pixels of the original image (``ori_shape``).
BLACK_BOXES = 'black_boxes'
