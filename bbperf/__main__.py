"""``python -m bbperf`` runs the CLI."""

import sys

from bbperf.cli import main

sys.exit(main())
