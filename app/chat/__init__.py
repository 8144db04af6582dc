"""Chats: the session, the history and its migrations, settings, slash commands."""
