"""The main screen and the modal screens (help, confirm, file path)."""
