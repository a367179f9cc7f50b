"""`python -m dblogpack.cli`: the `dblogpack` command."""

import sys

from dblogpack.cli import main

sys.exit(main())
