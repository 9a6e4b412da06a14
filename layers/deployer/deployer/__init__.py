"""The deployer: what the six Lambda functions run (the layer ships this package alone). The
`deployer` command (`deployer_cli`) and the local stack (`deployer_local`) build on it
(docs/design.md, "Where the code lives")."""

__version__ = "0.1.0"
