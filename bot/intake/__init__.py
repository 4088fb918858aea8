"""The intake feature: Mautic's webhook deliveries in, consent evidence and alerts out.

Read in the order work flows:

- ``writer``: the webhook's group commit (raw deliveries, durable before answered) and the processing
  turn that keeps processing out of the webhook's way.
- ``split``: deliveries → inbox rows (one per event, deduplicated), or dead letters.
- ``process``: pending rows → consent records, withdrawals and findings; the sweep for stranded rows.
- ``alerts``: findings → alerts (bursts fold into one), posted and refreshed in the privacy channel.
- ``decisions``: an approver's decision on an alert, and the job that carries it out in Mautic.
- ``history``: ``/privacy consent <email>``.
- Pure parts: ``events`` (Mautic's envelopes), ``rules`` (consent verdicts), ``blocks`` (Block Kit),
  ``ids`` (job kinds, decisions, Slack ids), ``inbox`` (an inbox row as processing reads it).
"""
