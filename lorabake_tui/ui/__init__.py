"""The Textual workbench. Never imports torch: the UI must start fast."""
