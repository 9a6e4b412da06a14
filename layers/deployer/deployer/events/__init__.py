"""Models of the events the deployer consumes and emits, one module per source, and the one way to
parse them.

- `envelope`: the EventBridge envelope and the field types the sources share
- `codecommit`, `codebuild`, `ecs`: AWS's events (Powertools ships no models for them: these are ours)
- `deployer_bus`: the deployer's own events on its bus (approvals, rollbacks, release transitions)
- `parse`: `parse_event`, which turns a refusal into `BadInput` without echoing the event

Every model pins its `source`, `detail-type` and `detail` to one kind of event, so a model refuses
any other kind. Unknown fields are ignored, because AWS adds fields to its events without notice.
Known fields are typed strictly enough that garbage is refused at the edge (commit ids are 40 hex
digits, names are bounded), while a field nothing reads is typed loosely, so that a change AWS makes
to it cannot make the deployer drop an event it needs.

This package imports none of them: a caller imports the module it uses, and a function builds the
models of the events it handles and no other.
"""
