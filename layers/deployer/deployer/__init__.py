"""The deployer: domain logic shared by every Lambda function and the `deployer` command."""

__version__ = "0.1.0"
