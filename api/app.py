"""The application factory: given the settings, builds the whole aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from api import (  # noqa: F401  (register routes)
    accesses,
    addons,
    config,
    diagnostics,
    files,
    keys,
    lobby,
    oidc,
    operators,
    ops,
    participants,
    recording_actions,
    recordings,
    roomkit,
    rooms,
    subtitles,
    users,
    webhooks,
)
from api.auth import VERIFIER, JWKSVerifier
from api.config import CONFIG_BODY, frontend_config, openapi_document
from api.frontend import frontend_routes
from api.home import install_home
from api.http import MAX_BODY_BYTES, dumps
from api.middlewares import csrf_cookie_middleware, error_middleware, path_middleware
from api.observability import answer_request_id, init_sentry, request_middleware, sampler_ctx
from api.openapi import REGISTRY
from api.proxy import forwarded_middleware
from api.session import SessionCodec
from coordinator.accesses import AccessService
from coordinator.engines import open_directory
from coordinator.files import FileService
from coordinator.identity import LobbyIds
from coordinator.integrations import Integrations
from coordinator.livekit import LiveKitAdapter
from coordinator.object_storage import ObjectStorage
from coordinator.outbox import OutboxDispatcher, egress_times_from
from coordinator.reconcile import Reconciler
from coordinator.recordings import RecordingLifecycle
from coordinator.rooms import RoomService
from coordinator.sessions import LoginSessions
from coordinator.settings import Settings
from coordinator.telemetry import Metrics, request_id_trace
from storage.engine import close_writes, create_engine, create_sessionmaker


def create_app(settings: Settings) -> web.Application:
    """The application; resources (engine, HTTP session) live in ``cleanup_ctx``."""
    app = web.Application(
        middlewares=[
            request_middleware,
            error_middleware,
            forwarded_middleware,
            path_middleware,
            csrf_cookie_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics(multiprocess_directory=settings.prometheus_multiproc_dir)
    app.on_response_prepare.append(answer_request_id)
    init_sentry(settings)
    app[keys.SESSIONS] = SessionCodec(
        settings.secret_key.get(), max_age=settings.session_cookie_age
    )
    app[keys.OPENAPI] = openapi_document(settings)
    app[CONFIG_BODY] = dumps(frontend_config(settings))
    app[keys.THROTTLES] = keys.Throttles(settings.throttles)
    app[keys.LOBBY_IDS] = LobbyIds(settings.secret_key.get())
    app[keys.INTEGRATION_THROTTLES] = keys.IntegrationThrottles(settings)
    app.cleanup_ctx.append(http_ctx)
    app.cleanup_ctx.append(database_ctx)
    ops.install(app)
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(rooms_ctx)
    app.cleanup_ctx.append(addons.addons_ctx)
    app.cleanup_ctx.append(sampler_ctx)
    app.add_routes(REGISTRY.routes)
    if settings.external_api.enabled:
        from api import external

        app.cleanup_ctx.append(external.external_api_ctx)
        app.add_routes(external.EXTERNAL.routes)
    if settings.frontend_dist_dir:
        app.add_routes(frontend_routes(settings.frontend_dist_dir))
    else:
        install_home(app)
    return app


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession(trace_configs=[request_id_trace()])
    app[keys.HTTP] = session
    app[VERIFIER] = JWKSVerifier(app[keys.SETTINGS], session)
    yield
    await session.close()


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    engine = create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(engine)
    app[keys.SESSIONMAKER] = sessionmaker
    room_service = RoomService(settings, sessionmaker)
    app[keys.ROOMS] = room_service
    app[keys.ACCESSES] = AccessService(sessionmaker, room_service.cache)
    app[keys.LOGIN_SESSIONS] = LoginSessions(sessionmaker, room_service.cache)
    yield
    await close_writes(sessionmaker)
    await engine.dispose()


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """The object-storage client (one per application) and the files service."""
    settings = app[keys.SETTINGS]
    storage = ObjectStorage(settings.s3, presign_endpoint=settings.files.s3_domain_replace)
    await storage.start()
    app[keys.STORAGE] = storage
    app[keys.FILES] = FileService(settings.files, app[keys.SESSIONMAKER], storage)
    yield
    await storage.close()


async def rooms_ctx(app: web.Application) -> AsyncIterator[None]:
    """The LiveKit adapter and the room-actor engine (local, or Ray: DESIGN §3)."""
    settings = app[keys.SETTINGS]
    metrics = app[keys.METRICS]
    adapter = LiveKitAdapter(settings.livekit, app[keys.HTTP], metrics=metrics)
    adapter.observe = app[ops.MONITOR].on_livekit_call
    app[keys.LIVEKIT] = adapter
    integrations = Integrations(settings, app[keys.SESSIONMAKER], adapter)
    app[keys.INTEGRATIONS] = integrations
    lifecycle = RecordingLifecycle(
        settings, app[keys.SESSIONMAKER], adapter, slug_of=app[keys.ROOMS].slug_of
    )
    app[keys.RECORDINGS] = lifecycle
    directory = await open_directory(  # MEET_ENGINE
        settings, adapter, lifecycle, metrics=metrics, events=app[ops.EVENTS]
    )
    app[keys.DIRECTORY] = directory
    app[keys.ROOMS].on_settings_changed = directory.call
    dispatcher = OutboxDispatcher(
        settings,
        app[keys.SESSIONMAKER],
        app[keys.HTTP],
        egress_times=egress_times_from(adapter),
        metrics=metrics,
        storage=app[keys.STORAGE],
    )
    lifecycle.wake_outbox = dispatcher.wake
    app[keys.OUTBOX] = dispatcher
    reconciler = Reconciler(
        app[keys.SESSIONMAKER], directory, settings.recording_reconcile_seconds, media=adapter
    )
    app[keys.RECONCILER] = reconciler
    if settings.background_tasks:
        dispatcher.start()
        reconciler.start()
    yield
    await reconciler.stop()
    await dispatcher.stop()
    await directory.close()
    await integrations.close()
