"""`python -m cli ...` runs the `ragtune` command."""

import sys

from cli.main import main

sys.exit(main())
