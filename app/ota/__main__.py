"""`python -m app.ota`: the update commands, as the rollback and updater units run them."""

import sys

from app.ota.cli import main

sys.exit(main())
