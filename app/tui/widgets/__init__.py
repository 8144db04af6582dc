"""The app's widgets: each a piece of the chat screen."""
