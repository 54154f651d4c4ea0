"""Convert a RefSegRS release into fianet-mmseg annotations.

Usage (from the repository root)::

    python data_prep/refsegrs.py --src /data/RefSegRS --out data/refsegrs [--copy-images]

See ``fianet_mmseg/datasets/converters/refsegrs.py`` for the rules.
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
