#!/usr/bin/env python3
"""Keep notebooks/ko and notebooks/zh in line with notebooks/en (see dldna/i18n.py).

    python scripts/sync_translations.py                      # copy code, add placeholders
    python scripts/sync_translations.py --check              # stale cells; exit 1 on drift
    python scripts/sync_translations.py --mark-translated notebooks/ko/10_04_x.ipynb \\
        [--cells cell-03 cell-07]                            # record what was translated
"""

import sys

from dldna.i18n import main

if __name__ == "__main__":
    sys.exit(main())
