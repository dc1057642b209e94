"""The server's hooks for this app directory (Bokeh reads app_hooks.py beside main.py,
under `panel serve app/` and `bokeh serve app/` alike): the app cannot choose the
address the server listens on (every interface unless --address says otherwise), so
it refuses what comes from another machine instead."""

from tornado.web import HTTPError

from entropice.dashboard.page import refusal


def process_request(request) -> dict:
    """Refuse (HTTP 403, before any session or cube is made) a page request, and under
    Panel a websocket too, from a client not on this machine, unless the dashboard is
    exposed deliberately ($ENTROPICE_ALLOW_REMOTE=1 with a login; see ``refusal``).
    main.py's ``build`` checks the session's client again for whatever skips this."""
    if refusal(request):
        raise HTTPError(403, reason="Entropice serves this machine only")
    return {}
