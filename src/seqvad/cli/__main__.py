"""``python -m seqvad.cli``: the ``seqvad`` command."""

import sys

from seqvad.cli import main

sys.exit(main())
