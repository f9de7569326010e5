"""`python -m fleet.bench`: see `fleet.bench.cli`."""

import sys

from fleet.bench.cli import main

sys.exit(main())
