"""Help and usage texts show their placeholders as typed: Slack reads a bare ``<email>`` as a link, so the
texts escape them (bot.slack.blocks.escape), and the stand-in renders them as Slack would."""

from __future__ import annotations

from bot.slack.blocks import escape
from sandbox.harness import ALICE, BOB, Sandbox


def test_escape_writes_slacks_three_control_characters_as_entities() -> None:
    assert escape("a & <b> <!channel>") == "a &amp; &lt;b&gt; &lt;!channel&gt;"
    assert escape("plain text, «quotes» and 'apostrophes'") == "plain text, «quotes» and 'apostrophes'"


async def test_help_shows_every_usage_as_typed(box: Sandbox) -> None:
    result = await box.command(ALICE, "help")  # the answer's blocks are validated by the stand-in

    shown = result.render(box.slack.names)
    for usage in ("dsar <email> [received=YYYY-MM-DD] [regime=gdpr|ccpa] [note]",
                  "erase <email> [received=YYYY-MM-DD] [regime=gdpr|ccpa] [note]",
                  "rectify <email> [received=YYYY-MM-DD] [regime=gdpr|ccpa] <field>=<value> … [note]",
                  "restrict <email> [received=YYYY-MM-DD] [regime=gdpr|ccpa] [note]",
                  "optout <email> [received=YYYY-MM-DD] [note]",
                  "object <email> [received=YYYY-MM-DD] [regime=gdpr|ccpa] [note]",
                  "status <id>", "consent <email>", "digest retention|compliance"):
        assert f"`/privacy {usage}`" in shown, usage
    assert "<email>" not in result.text  # escaped on the wire: &lt;email&gt;


async def test_usage_errors_and_unknown_names_show_as_typed(box: Sandbox) -> None:
    missing = await box.command(ALICE, "dsar")
    rectify = await box.command(ALICE, "rectify jane@example.com")
    status = await box.command(ALICE, "status twelve")
    consent = await box.command(BOB, "consent nobody")
    unknown = await box.command(ALICE, "fro<b>nicate")

    assert "Use `/privacy dsar <email> [received=YYYY-MM-DD] [regime=gdpr|ccpa] [note]`" in missing.render()
    assert "`/privacy rectify <email> [received=YYYY-MM-DD] [regime=gdpr|ccpa] <field>=<value> … [note]`" \
        in rectify.render()
    assert "Use `/privacy status <id>`" in status.render()
    assert "Usage: `/privacy consent <email>`" in consent.render()
    assert "I don't know `/privacy fro<b>nicate`" in unknown.render(box.slack.names)
