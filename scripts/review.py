#!/usr/bin/env python3
"""Decide on payments held by fraud review: `python scripts/review.py --help` (paystream_ops.review)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

from paystream_ops.review import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
