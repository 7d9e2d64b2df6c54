"""{{name}}: a Warden plugin. It greets whoever writes to it and counts greetings.

Test: `PYTHONPATH={{sdk}}/guest-sdk/python:. python -m pytest`. Build:
`PYTHONPATH={{sdk}}/guest-sdk/python python -m warden_sdk.build . -o {{name}}.wasm`, then put the file into
a `warden serve --dev` plugin directory (docs/plugins.md, "Plugins in Python")."""

from dataclasses import dataclass

from warden_sdk import Game


@dataclass
class Hello(Game):
    greeted: int = 0

    def on_message(self, ctx, player, name):
        self.greeted += 1
        ctx.send(player, f"hello, {name} (greeting #{self.greeted})")
