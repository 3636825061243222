"""spark-submit entry point for the 'smoke' job (the code is in multiverse_etl.entrypoints)."""

import sys

from multiverse_etl.entrypoints import main

if __name__ == "__main__":
    sys.exit(main("smoke"))
