"""What each function does with its event, given its dependencies (`deployer.deps.Deps`). Handlers
are wiring: they parse the event and call one function here, which returns what happened and why
(an outcome) so handlers, the local runner and tests can print it.

One module per event:
- `push`: a push starts releases (OnPushFunction, OnWebhookFunction)
- `build`: a finished build deploys the first stage (OnBuildFunction)
- `deployment`: ECS's deployment, hook and task events (OnDeploymentFunction)
- `approval`: an approval decided, approvals expired (OnApprovalFunction)
- `rollback`: a rollback requested (OnApprovalFunction, `deployer rollback`)

and what they share:
- `progress`: the next step after any step (next stage, approval, hand-over of services, clean-up)
- `answers`: the words a Slack user who clicked is told
- `publishing`: every transition on the deployer's bus
- `common`: the build's variables, outcomes, lookups

This package imports none of them: a caller imports the module it uses.
"""
