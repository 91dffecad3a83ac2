"""The console: Textual app, CLI entry point and headless runner (the only textual importer)."""
