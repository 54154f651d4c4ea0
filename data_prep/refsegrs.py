"""Convert a RefSegRS release into fianet-mmseg annotations.

Usage (from the repository root)::

    python data_prep/refsegrs.py --src /data/RefSegRS --out data/refsegrs
        [--overwrite] [--copy-images | --absolute-paths] [--skip-bad] [--no-verify-images]

Image paths in the records are relative to ``--out`` unless ``--absolute-paths``; ``--overwrite``
replaces an earlier conversion as a whole once the new one has succeeded; ``--skip-bad`` leaves
out malformed records and counts them by reason. See
``fianet_mmseg/datasets/converters/refsegrs.py`` and ``common.py`` for the rules.
"""
import sys

from fianet_mmseg.datasets.converters.common import run_cli
from fianet_mmseg.datasets.converters.refsegrs import convert_refsegrs

LAYOUT = 'output_phrase_{train,val,test}.txt, images/<id>.tif, masks/<id>.tif'


def main(argv=None) -> int:
    """Run the converter; returns the exit status (0 on success)."""
    return run_cli(convert_refsegrs, 'RefSegRS', LAYOUT, argv)


if __name__ == '__main__':
    sys.exit(main())
