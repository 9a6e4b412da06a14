"""Rollouts: what ECS does with a service's `deploymentConfiguration`, worked out before any AWS
call, in the standard library alone (`deployer plan` imports these modules and must start fast; the
functions call `validate` before deploying).

- `model`: what they share: ECS's limits, defaults and enums, `ServiceFacts`, `Finding`, the record type
- `plan`: the rolling update a ROLLING configuration allows, step by step, and whether it can finish
- `validate`: every rule of a `deploymentConfiguration`, ECS's and the deployer's policy
- `traffic`: the steps of BLUE_GREEN, LINEAR and CANARY, and their warnings

This package imports none of them: a caller imports the module it uses.
"""
