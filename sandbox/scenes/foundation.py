"""The foundation's scenes: the health check, help, and a refusal outside the privacy channel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.harness import ALICE, OTHER_CHANNEL
from sandbox.scenes.base import Narrator, Scene

if TYPE_CHECKING:
    from sandbox.harness import Sandbox


async def health(box: Sandbox, say: Narrator) -> None:
    say.say("An operator checks the service: GET /healthz")
    async with box.http.get(f"{box.url}/healthz") as response:
        say.private("the operator", f"HTTP {response.status} {await response.text()}")


async def help_command(box: Sandbox, say: Narrator) -> None:
    say.say("Alice types `/privacy help` in #privacy-ops")
    say.show_answer("Alice", await box.command(ALICE, "help"))
    say.say("Alice mistypes a sub-command: `/privacy dsr jane@example.com`")
    say.show_answer("Alice", await box.command(ALICE, "dsr jane@example.com"))
    say.say("Alice tries `/privacy help` in #random")
    say.show_answer("Alice", await box.command(ALICE, "help", channel=OTHER_CHANNEL))


SCENES = [Scene("Health check", health), Scene("Getting help", help_command)]
