"""The app's screens: the chat screen and the dialogs."""
