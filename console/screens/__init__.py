"""Screens pushed over the main view: equipment detail, help, dialogs."""
