"""The component's entry point: componentize-py exports this module's WitWorld."""

from game import Hello
from warden_sdk import export_game

WitWorld = export_game(Hello)
