"""`python -m bench` (what `bash scripts/bench` runs)."""

import sys

from bench.run import main

sys.exit(main())
