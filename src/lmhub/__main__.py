"""``python -m lmhub``: the ``lmhub`` command (what ``torchrun -m lmhub train ...`` runs on each
rank)."""

import sys

from lmhub.cli.main import main

sys.exit(main())
