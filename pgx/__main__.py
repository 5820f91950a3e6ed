import sys

from pgx.cli import main

sys.exit(main())
