"""Typed keys of the aiohttp application: set by the app factory, read by the HTTP views.

This module imports nothing of the project at run time (only for type checking), so any layer may
import it without creating a cycle: the entry point that fills the keys sits above the handlers that
read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import aiohttp
    from slack_bolt.async_app import AsyncApp
    from sqlalchemy.ext.asyncio import AsyncEngine

    from bot.intake.spool import SpoolingIntake
    from bot.intake.writer import DeliveryWriter
    from bot.services import Services
    from bot.settings import Settings
    from handlers.limits import ReadGate
    from storage.db import SessionFactory

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
SESSIONS: web.AppKey[SessionFactory] = web.AppKey("sessions")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
SERVICES: web.AppKey[Services] = web.AppKey("services")
BOLT: web.AppKey[AsyncApp] = web.AppKey("bolt")
INTAKE_WRITER: web.AppKey[DeliveryWriter] = web.AppKey("intake_writer")
INTAKE: web.AppKey[SpoolingIntake] = web.AppKey("intake")  # the webhook's one way to keep a delivery
READ_GATE: web.AppKey[ReadGate] = web.AppKey("read_gate")
