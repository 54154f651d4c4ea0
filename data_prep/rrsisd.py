"""Convert an RRSIS-D release into fianet-mmseg annotations.

Usage (from the repository root)::

    python data_prep/rrsisd.py --src /data/RRSIS-D --out data/rrsisd
        [--overwrite] [--copy-images | --absolute-paths] [--skip-bad] [--no-verify-images]

Image paths in the records are relative to ``--out`` unless ``--absolute-paths``; ``--overwrite``
replaces an earlier conversion as a whole once the new one has succeeded; ``--skip-bad`` leaves
out malformed records and counts them by reason. See
``fianet_mmseg/datasets/converters/rrsisd.py`` and ``common.py`` for the rules.
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
