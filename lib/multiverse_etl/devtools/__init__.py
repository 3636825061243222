"""Development tools: a local S3 endpoint for the demo and the tests (needs the dev extra)."""
