"""One sample per referring expression, read from the converters' JSONL files."""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..utils.jsonl import read_jsonl

REQUIRED_KEYS = ('img_path', 'seg_map_path', 'expression')
#: The data info key holding a sample's line number in the JSONL file.
LINE_KEY = 'ann_line'


def with_context(err: Exception, context: str) -> Exception:
    """``err`` again, as the same type when possible, its message prefixed with ``context``.

    Falls back to a ``RuntimeError`` for exception types that cannot be built
    from one message.
    """
    try:
        return type(err)(f'{context}: {err}')
    except Exception:  # types that need other arguments
        return RuntimeError(f'{context}: {type(err).__name__}: {err}')


@DATASETS.register_module()
class RefSegDataset(BaseSegDataset):
    """Referring segmentation samples: (image, expression, binary mask).

    ``ann_file`` is a JSONL file written by ``data_prep/{rrsisd,refsegrs}.py``:
    one JSON object per line with at least ``img_path``, ``seg_map_path`` and
    ``expression``; ``ref_id``, ``sent_id``, ``image_id``, ``category`` are
    carried along as metainfo. Masks hold 0 (background) and 1 (object).
    A pair (``ref_id``, ``sent_id``) may occur only once in a file.

    Errors name the file and line: of a malformed line when the file is read,
    and of the sample when a pipeline step fails on it (the message then also
    names the step and the sample's image).

    Paths: an absolute ``img_path`` / ``seg_map_path`` is used as it is; a
    relative one is joined to the folder of the JSONL file (the converters
    write their JSONL files into their output folder, so with the configs'
    ``data_root`` + ``ann_file='train.jsonl'`` that folder is ``data_root``).
    The join is not normalised, so ``..`` is resolved by the file system from
    the folder's real location, as the converters computed it; converted data
    moved together with its images (or converted with ``--copy-images``)
    needs only a new ``data_root``.

    Args:
        ann_file (str): The JSONL file (joined with ``data_root`` if relative).
        shuffle_expressions (bool): Grounding control: give every sample the
            expression of another sample of the split (a fixed permutation
            drawn with ``shuffle_seed``; images and masks stay). A model that
            uses the text scores far lower with it.
        shuffle_seed (int): Seed of that permutation. Default: 0.
        **kwargs: :class:`BaseSegDataset` arguments (``data_root``,
            ``pipeline``, ``test_mode``, ``indices``...).
    """

    METAINFO = dict(classes=('background', 'object'), palette=[[0, 0, 0], [255, 64, 64]])

    def __init__(self, ann_file: str, shuffle_expressions: bool = False, shuffle_seed: int = 0,
                 **kwargs) -> None:
        self.shuffle_expressions = shuffle_expressions
        self.shuffle_seed = shuffle_seed
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(ann_file=ann_file, img_suffix='', seg_map_suffix='', **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse the JSONL annotation file into mmseg data infos."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'{type(self).__name__}: annotation file {self.ann_file} '
                                    'does not exist (convert the data set with data_prep/)')
        base_dir = osp.dirname(osp.abspath(self.ann_file))  # relative paths start here
        data_list = []
        seen: Dict[Tuple[Any, Any], int] = {}  # (ref_id, sent_id) -> line
        for line_no, where, record in read_jsonl(self.ann_file):
            missing = [key for key in REQUIRED_KEYS if key not in record]
            if missing:
                raise KeyError(f'{where}: missing field(s) {missing}')
            if not str(record['expression']).strip():
                raise ValueError(f'{where}: field "expression" is empty')
            self._check_unique_ids(record, line_no, seen)
            info = dict(record)
            info[LINE_KEY] = line_no
            info['img_path'] = osp.join(base_dir, record['img_path'])
            info['seg_map_path'] = osp.join(base_dir, record['seg_map_path'])
            info.setdefault('category', None)
            info.setdefault('ref_id', len(data_list))
            info.update(label_map=self.label_map, reduce_zero_label=self.reduce_zero_label,
                        seg_fields=[])
            data_list.append(info)
        if not data_list:
            raise ValueError(f'{self.ann_file}: no samples')
        if self.shuffle_expressions:
            order = np.random.default_rng(self.shuffle_seed).permutation(len(data_list))
            expressions = [data_list[i]['expression'] for i in order]
            for info, expression in zip(data_list, expressions):
                info['original_expression'] = info['expression']
                info['expression'] = expression
        return data_list

    def _check_unique_ids(self, record: dict, line_no: int,
                          seen: Dict[Tuple[Any, Any], int]) -> None:
        """Raise if the record's (``ref_id``, ``sent_id``) came on an earlier line."""
        if 'ref_id' not in record or 'sent_id' not in record:
            return
        key = (record['ref_id'], record['sent_id'])
        try:
            first = seen.setdefault(key, line_no)
        except TypeError:  # an unhashable id (a list, ...)
            raise ValueError(f'{self.ann_file}, line {line_no}: fields "ref_id" / "sent_id" '
                             f'must be numbers or strings, got {key!r}') from None
        if first != line_no:
            raise ValueError(f'{self.ann_file}, lines {first} and {line_no}: duplicate '
                             f'(ref_id, sent_id) = {key}')

    def prepare_data(self, idx: int) -> Optional[dict]:
        """Run the pipeline on sample ``idx``; an error names the file, line and step.

        The steps run in order as in mmengine's ``Compose`` (None from a step
        ends it with None); an exception is raised again with the JSONL file,
        the sample's line, its image and the failing step in its message.
        """
        data = self.get_data_info(idx)
        where = f'{self.ann_file}, line {data.get(LINE_KEY, "?")}'
        image = str(data.get('img_path'))
        for step in getattr(self.pipeline, 'transforms', [self.pipeline]):
            try:
                data = step(data)
            except Exception as err:
                named = '' if image in str(err) else f' (image {image})'
                raise with_context(err, f'{where}{named}, step {type(step).__name__}') from err
            if data is None:
                return None
        return data
