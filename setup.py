"""multiverse-etl: `pip install -e .[dev]` for development, a wheel/zip of lib/ for EMR and Glue."""

from setuptools import find_packages, setup

# AWS Glue 5.1 / Amazon EMR 7.13. `make test-spark4` installs the Spark 4 line instead.
SPARK = ["pyspark==3.5.6", "delta-spark==3.3.2"]
# What the tests, benchmarks, demo and notebook need besides Spark. aiohttp: the tests' HTTP servers and the
# fault-injecting S3 proxy (multiverse_etl.devtools.s3_faults); the extractor has its own HTTP client (wire.py).
TEST = [
    "aiohttp>=3.9,<4",
    "requests>=2.31",
    "chispa==0.12.0",
    "pytest>=8",
    "pytest-timeout>=2.3",
    "pytest-xdist==3.8.0",  # tests/support/spark_worker.py subclasses its load-scope scheduler
    "hypothesis>=6.100",
    "moto[server]>=5.0",
    "fastapi>=0.110",
    "python-multipart>=0.0.9",
    "uvicorn[standard]>=0.29",
    "nbclient>=0.10",
    "nbformat>=5.10",
    "ipykernel>=6",
    "matplotlib>=3.8",
]
# Lint and type checks (`make lint`, run by `make test` before the suite).
LINT = ["ruff==0.17.6", "mypy==2.4.1", "types-PyYAML"]

setup(
    name="multiverse-etl",
    version="0.1.0",
    description="Exports the Multiverse sample API into an S3 data lake of Delta tables.",
    python_requires=">=3.10",
    # `support` (tests/support): the helpers the tests and bench/ share, importable wherever the project is installed.
    # Only multiverse_etl is deployed (submit.build_lib_zip zips lib/multiverse_etl).
    package_dir={"": "lib", "sample_api": "sample_api", "support": "tests/support"},
    packages=find_packages("lib") + ["sample_api", "support"],
    install_requires=[
        "boto3>=1.36",
        "pyyaml>=6",
        "orjson>=3.9",
    ],
    extras_require={"spark": SPARK, "test": TEST, "dev": SPARK + TEST + LINT},
)
