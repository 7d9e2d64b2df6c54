"""The component's entry point: componentize-py exports this module's WitWorld."""

from chat import Chat
from warden_sdk import export_game

WitWorld = export_game(Chat)
