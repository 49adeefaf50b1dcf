"""`python -m wattsmart_release`: the fleet's release tool."""

import sys

from wattsmart_release.cli import main

sys.exit(main())
