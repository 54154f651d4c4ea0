"""Convert an RRSIS-D release into fianet-mmseg annotations.

Usage (from the repository root)::

    python data_prep/rrsisd.py --src /data/RRSIS-D --out data/rrsisd [--copy-images]

See ``fianet_mmseg/datasets/converters/rrsisd.py`` for the rules.
"""
import sys

from fianet_mmseg.datasets.converters.common import run_cli
from fianet_mmseg.datasets.converters.rrsisd import convert_rrsisd

LAYOUT = 'rrsisd/refs(unc).p, rrsisd/instances.json, images/rrsisd/JPEGImages/<file>.jpg'


def main(argv=None) -> int:
    """Run the converter; returns the exit status (0 on success)."""
    return run_cli(convert_rrsisd, 'RRSIS-D', LAYOUT, argv)


if __name__ == '__main__':
    sys.exit(main())
