"""The Docker-free local stack: built functions kept warm (`workers`), and the template's own
EventBridge rules deciding which of them an event reaches (`router`).

Nothing here runs in Lambda. `deployer_local.localrun` runs one invoke in a fresh interpreter; this
package builds on it for the long-running local stack and the `deployer local` commands.
"""
