"""`python -m app` is the `wattsmart-gateway` command."""

import sys

from app.cli import main

sys.exit(main())
