"""The console: the Textual app (screens, widgets, views, messages) and the CLI with one
module per command. Only the UI modules import textual; the plant host lives in runtime/."""
