"""Releases: `model` (the states, the records, the transitions a release may make; no AWS) and
`store` (`ReleaseStore`, the releases in DynamoDB: conditional writes, indexes, service locks).

This package imports neither: a caller imports the module it uses.
"""
