"""AWS Glue entry point: Glue job parameters (--job, --env, ...) to the same jobs as spark-submit."""

import sys

from multiverse_etl.entrypoints import main
from multiverse_etl.glue import glue_argv

if __name__ == "__main__":
    job, argv = glue_argv(sys.argv)
    sys.exit(main(job, argv))
