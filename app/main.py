"""The application factory. The lifespan owns every resource: engine, writer, learner."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from app import service_config
from app.api.routes import routes
from app.errors import HANDLERS
from app.keys import Keys
from app.service import Service
from app.settings import Settings
from app.store import configuration
from app.store.db import async_engine
from policies.arguments import DEFAULT_ARGUMENTS, DEFAULT_POLICY_NAME

log = logging.getLogger(__name__)


def create_app(settings: Settings, database_url: str, keys: Keys) -> Starlette:
    """The ASGI app over an already migrated database at `database_url`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = async_engine(database_url)
        try:
            await configuration.ensure_defaults(
                engine, service_config.defaults(), DEFAULT_POLICY_NAME, DEFAULT_ARGUMENTS
            )
            document = await configuration.load_config(engine)
            assert document is not None
            service = Service(settings, keys, engine, database_url, document)
            await service.start()
            app.state.service = service
            # What startup built lives as long as the process: keep it out of the cyclic
            # collector's full passes, which otherwise walk it all and stall requests.
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                await service.stop()
        finally:
            await engine.dispose()

    return Starlette(routes=routes(), exception_handlers=HANDLERS, lifespan=lifespan)  # type: ignore[arg-type]


def app_from_env() -> Starlette:
    """The app of one worker process of `serve --workers N` (the parent set the environment)."""
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not (settings.database_url and settings.api_key and settings.admin_key):
        raise SystemExit("DATABASE_URL, DS_API_KEY and DS_ADMIN_KEY must be set for workers")
    return create_app(settings, settings.database_url, Keys(settings.api_key, settings.admin_key))
