"""One module per `deployer` subcommand, each with `register(parser)`; `deployer_cli.SUBCOMMANDS`
names them, and a module is imported only when its subcommand runs."""
