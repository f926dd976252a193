"""`python -m controller` is the same as the `edgecell` console script."""

from controller.cli import main

raise SystemExit(main())
