"""One sample per referring expression, read from the converters' JSONL files."""
from __future__ import annotations

import json
import os.path as osp
from typing import List

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

REQUIRED_KEYS = ('img_path', 'seg_map_path', 'expression')


@DATASETS.register_module()
class RefSegDataset(BaseSegDataset):
    """Referring segmentation samples: (image, expression, binary mask).

    ``ann_file`` is a JSONL file written by ``data_prep/{rrsisd,refsegrs}.py``:
    one JSON object per line with at least ``img_path``, ``seg_map_path``
    (absolute, or relative to the annotation file's folder) and
    ``expression``; ``ref_id``, ``sent_id``, ``image_id``, ``category`` are
    carried along as metainfo. Masks hold 0 (background) and 1 (object).

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
        base_dir = osp.dirname(osp.abspath(self.ann_file))
        data_list = []
        with open(self.ann_file, encoding='utf-8') as file:
            for line_no, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                where = f'{self.ann_file}, line {line_no}'
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f'{where}: not valid JSON ({err})') from err
                if not isinstance(record, dict):
                    raise ValueError(f'{where}: expected a JSON object')
                missing = [key for key in REQUIRED_KEYS if key not in record]
                if missing:
                    raise KeyError(f'{where}: missing field(s) {missing}')
                if not str(record['expression']).strip():
                    raise ValueError(f'{where}: field "expression" is empty')
                info = dict(record)
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
