"""The server's hooks for this app directory (Bokeh reads app_hooks.py beside main.py,
under `panel serve app/` and `bokeh serve app/` alike): the app cannot choose the
address the server listens on (every interface unless --address says otherwise), so
it refuses what comes from another machine instead."""

from tornado.ioloop import IOLoop
from tornado.web import HTTPError

from entropice.dashboard.page import refusal


def close_connection(request):
    """Close the connection a request came on. Panel asks this hook about a websocket
    only once the handshake is done, and a refusal raised then stops the session but
    leaves the socket open (Panel's handler closes it on no error of ours): tornado's
    connection of the request (``HTTPServerRequest.server_connection``, whose
    ``close`` is public) is closed instead, so a script that opened the socket is cut
    off at once rather than left waiting."""
    connection = getattr(request, "server_connection", None)
    if connection is not None and hasattr(connection, "close"):
        IOLoop.current().add_callback(connection.close)


def process_request(request) -> dict:
    """Refuse (HTTP 403, before any session or cube is made) a page request, and under
    Panel a websocket too (its connection closed), from a client not on this machine,
    unless the dashboard is exposed deliberately ($ENTROPICE_ALLOW_REMOTE=1 with a
    login; see ``refusal``). main.py's ``build`` checks the session's client again for
    whatever skips this."""
    if refusal(request):
        if request.headers.get("Upgrade", "").lower() == "websocket":
            close_connection(request)
        raise HTTPError(403, reason="Entropice serves this machine only")
    return {}
