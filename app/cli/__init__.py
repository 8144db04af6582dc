"""The `andon` command line: one module per group of subcommands."""
