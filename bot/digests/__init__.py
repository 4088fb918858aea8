"""Digests: the pure rules behind the retention and compliance digests, the form audit and the schedule.

Nothing here does I/O except :mod:`bot.digests.service`, which gathers the figures from Mautic and the
bot's own tables; everything else takes plain data and returns plain data.
"""
