"""`python -m bot` runs the ragbot CLI."""

import sys

from bot.cli import main

sys.exit(main())
