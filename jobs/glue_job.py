"""AWS Glue entry point: Glue job parameters (--job, --env, ...) to the same jobs as spark-submit."""

import sys

from multiverse_etl.entrypoints import main
from multiverse_etl.errors import EtlError
from multiverse_etl.glue import glue_argv

if __name__ == "__main__":
    try:
        job, argv = glue_argv(sys.argv)
    except EtlError as exc:  # e.g. a secret passed as a job parameter: refused in one line
        print(f"glue job: error: {exc.user_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(main(job, argv))
