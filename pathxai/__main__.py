"""``python -m pathxai`` runs the CLI."""

import sys

from pathxai.cli import main

sys.exit(main())
