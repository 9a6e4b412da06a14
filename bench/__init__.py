"""Benchmarks of the deployer: where its speed and call-count targets live (never in timed tests).

Run them all with `make bench` (or `.venv/bin/python -m bench` from the repository root after
`make build`); that prints a summary and rewrites BENCHMARKS.md. Each section is one function
returning a plain dict, so a smoke test can run it with tiny counts:

| module        | function          | measures                                                          |
|---------------|-------------------|-------------------------------------------------------------------|
| startup       | plan_startup      | `deployer plan` process wall time vs `python -c pass`; no boto3   |
| cold_import   | cold_imports      | import of each built function vs `import boto3`, fresh processes  |
| aws_calls     | aws_calls         | AWS operations per event and per stage deployment (moto in process) |
| latency       | handler_latency   | on_push / on_build latency vs one GetItem round trip (moto server) |

Figures are ratios measured in one run (the machine is shared and noisy); absolute numbers are
given for information only.
"""
