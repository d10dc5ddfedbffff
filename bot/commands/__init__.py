"""`/care` subcommands: one module per group, each exposing ``subcommands(care)``."""
