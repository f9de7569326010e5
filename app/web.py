"""The app factory: routes and wiring, no I/O. `make_app` is all a test needs to serve the app."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import tornado.web

from app.handlers import benchmark, fault, health, notes, openapi, slow
from app.handlers.base import NotFoundHandler
from app.handlers.status_page import StatusAssetHandler, StatusJsonHandler, StatusPageHandler
from app.lifecycle import Lifecycle
from app.watchdog import Watchdog

HERE = Path(__file__).parent
access_log = logging.getLogger("fleet.access")


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    port: int


def make_app(
    settings,
    store,
    *,
    blocking,
    port: int,
    lifecycle: Lifecycle | None = None,
    watchdog: Watchdog | None = None,
    metrics=None,
) -> tornado.web.Application:
    routes = [
        (r"/healthz", health.HealthHandler),
        (r"/readyz", health.ReadyHandler),
        (r"/api/notes", notes.NotesHandler),
        (r"/api/notes/([^/]+)", notes.NoteHandler),
    ]
    if settings.benchmarks_on:  # FLEET_BENCHMARK_ENDPOINTS: off in production unless asked for (README "Security")
        routes += [
            (r"/json", benchmark.JsonHandler),
            (r"/plaintext", benchmark.PlaintextHandler),
            (r"/db", benchmark.DbHandler),
            (r"/queries", benchmark.QueriesHandler),
            (r"/updates", benchmark.UpdatesHandler),
            (r"/fortunes", benchmark.FortunesHandler),
        ]
    if settings.faults:
        routes.append((r"/fault/block", fault.BlockHandler))
        # A slow request that does not block the loop: what the drain test keeps in flight (app/handlers/slow.py).
        routes.append((r"/fault/sleep", slow.SleepHandler))
    if settings.status_page:
        routes += [
            (r"/status", StatusPageHandler),
            (r"/status\.json", StatusJsonHandler),
            # The page's script and stylesheet are files: nginx's Content-Security-Policy forbids inline ones.
            (r"/(status\.(?:js|css))", StatusAssetHandler, {"path": str(HERE / "static")}),
            (r"/openapi\.json", openapi.OpenApiHandler),  # the notes API's OpenAPI document (app/openapi.py)
        ]
    lifecycle = lifecycle or Lifecycle()
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        template_path=str(HERE / "templates"),
        log_function=log_request,
        # Dependencies, read by BaseHandler's properties.
        app_settings=settings,
        store=store,
        blocking=blocking,
        process=ProcessInfo(port=port),
        lifecycle=lifecycle,
        # The handlers of the requests in flight (BaseHandler adds itself, log_request removes it): the requests the
        # stall shedder (app/shedding.py) may send to another process while this one's loop is blocked.
        in_flight=lifecycle.requests,
        # app.server starts one inside the loop; an app built without one reports zero lag.
        watchdog=watchdog or Watchdog(settings.watchdog_ms / 1000),
        # app.metrics.Metrics (app.server creates it); None: nothing is counted.
        metrics=metrics,
        # TFB forbids compression; nginx is the place to add it for real traffic.
        compress_response=False,
        # For set_signed_cookie/get_signed_cookie; production refuses a placeholder (app/settings.py).
        cookie_secret=settings.secret_key,
    )


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The one per-request hook (Tornado calls it once from finish()): the request leaves the in-flight set, is
    counted in the metrics, and is logged if it failed (nginx keeps the access log; here only what an operator must
    see: errors, and every request at DEBUG)."""
    settings = handler.settings
    settings["in_flight"].discard(handler)
    metrics = settings["metrics"]
    if metrics is not None:
        metrics.observe_request(handler)
    status = handler.get_status()
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.DEBUG
    if access_log.isEnabledFor(level):
        request = handler.request
        duration_ms = round(1000 * request.request_time(), 1)
        fields = {"status": status, "method": request.method, "path": request.path, "duration_ms": duration_ms}
        # Named explicitly: a 405 is logged before BaseHandler.prepare has set the request's context.
        fields["request_id"] = getattr(handler, "request_id", None)
        access_log.log(level, "%d %s %s %.1fms", status, request.method, request.uri, duration_ms, extra=fields)
