"""One module per `loopline` command; each exposes register(subparsers)."""
