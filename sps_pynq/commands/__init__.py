"""CLI subcommands: one module per subcommand, each with `NAME`, `HELP`, `add_arguments(parser)`, `run(args)`.

The CLI discovers every module in this package, so adding a subcommand touches no other file.
"""
