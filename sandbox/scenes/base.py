"""What a demo scene is, and the narrator that prints what a person in the channel would see."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.harness import Sandbox


@dataclass
class Narrator:
    """Prints narration, the answers a user sees privately, and the channel's new or changed messages."""

    box: Sandbox
    quiet: bool = False
    _seen: dict[str, int] = field(default_factory=dict)  # message key -> edits seen
    _responses_seen: int = 0
    lines: list[str] = field(default_factory=list)

    def _print(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)

    def title(self, text: str) -> None:
        self._print()
        self._print("=" * 78)
        self._print(text)
        self._print("=" * 78)

    def say(self, text: str) -> None:
        if not self.quiet:
            self._print(f"\n▶ {text}")

    def private(self, who: str, text: str) -> None:
        """An answer only the invoking user sees (ack text or ephemeral message)."""
        self._print(_indent(f"(only {who} sees) {text}", "  │ "))

    def show_answer(self, who: str, result: Any) -> None:
        body = result.render(self.box.slack.names).strip() if hasattr(result, "render") else ""
        if body:
            self.private(who, body)
        self.show_responses(who)

    def show_responses(self, who: str) -> None:
        from sandbox.slack import render_message

        responses = self.box.slack.responses
        for response in responses[self._responses_seen:]:
            self.private(who, render_message(response.json, names=self.box.slack.names))
        self._responses_seen = len(responses)

    def show_channel(self) -> None:
        """Print channel messages and thread replies that are new or were edited since last time."""
        from sandbox.slack import render_message

        slack = self.box.slack

        def render(message: Any) -> str:
            return render_message(message, names=slack.names)

        for message in slack.messages(self.box.channel):
            self._show(message, render, prefix="  ")
            for reply in slack.thread(self.box.channel, message.ts):
                self._show(reply, render, prefix="      ↳ ")

    def _show(self, message: Any, render: Callable[[Any], str], *, prefix: str) -> None:
        key = f"{message.channel}:{message.ts}"
        edits = len(getattr(message, "history", []) or [])
        if key in self._seen and self._seen[key] == edits:
            return
        label = "updated" if key in self._seen else "new"
        self._seen[key] = edits
        self._print(_indent(f"[#privacy-ops, {label}] " + render(message), prefix))


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


SceneRun = Callable[["Sandbox", Narrator], Awaitable[None]]


@dataclass(frozen=True)
class Scene:
    title: str
    run: SceneRun
