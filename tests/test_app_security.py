"""Issue 19, 4 and 5: the served dashboard answers this machine only unless exposed
deliberately (with a login), and no link breaks a session.

The servers here listen on every interface and are reached at a non-loopback address of
this machine (its own outward IPv4), a real connection from an address that is not
127.0.0.0/8 or ::1, as another host's would be."""

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import holoviews as hv
import pytest
import small_cube
from bokeh.protocol import Protocol
from bokeh.util.token import generate_jwt_token, generate_session_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from panel.io.location import Location
from servers import free_port, stop
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from entropice.dashboard.link import EXTENT, MAX_EXTENT, MIN_EXTENT, RIGHT, RIGHT_STATE, URL_STATE
from entropice.dashboard.map_view import MapView
from entropice.dashboard.page import ALLOW_REMOTE, App, is_loopback, link_query, refusal
from entropice.dashboard.selection import CMAPS, TABS, Selection
from entropice.dashboard.store import CubeStore

hv.extension("bokeh")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("sec") / "cube.zarr"
    small_cube.build(path)
    return path


# -- who is served ------------------------------------------------------------------------

def test_loopback_addresses():
    for ip in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert is_loopback(ip), ip
    for ip in ("192.0.2.2", "10.0.0.1", "0.0.0.0", "::", "fd00::2", "::ffff:10.0.0.1",
               "localhost", "", None, "127.0.0.1.evil"):
        assert not is_loopback(ip), ip


def test_a_client_elsewhere_needs_the_opt_in_and_a_login(monkeypatch):
    local, remote = SimpleNamespace(remote_ip="127.0.0.1"), SimpleNamespace(remote_ip="10.1.2.3")
    monkeypatch.delenv(ALLOW_REMOTE, raising=False)
    monkeypatch.delenv("PANEL_BASIC_AUTH", raising=False)
    monkeypatch.delenv("PANEL_OAUTH_PROVIDER", raising=False)
    assert refusal(None) is None and refusal(local) is None
    assert "serves this machine only" in refusal(remote)
    assert "serves this machine only" in refusal(SimpleNamespace())  # no address: refused
    monkeypatch.setenv(ALLOW_REMOTE, "1")
    assert "behind a login" in refusal(remote)
    monkeypatch.setenv("PANEL_BASIC_AUTH", "a-long-password")
    assert refusal(remote) is None
    monkeypatch.setenv(ALLOW_REMOTE, "yes")  # 1 and nothing else
    assert refusal(remote) is not None


def outward_ip() -> str | None:
    """This machine's address on its way out (no packet is sent), if it has one."""
    for target in (("192.0.2.1", 9), ("2001:db8::1", 9)):
        family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect(target)
                ip = s.getsockname()[0]
        except OSError:
            continue
        if not is_loopback(ip):
            return ip
    return None


def url(host, port, path="/app"):
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


def get(address, **headers) -> int:
    """The HTTP status of a GET (redirects not followed)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    try:
        with urllib.request.build_opener(NoRedirect).open(
                urllib.request.Request(address, headers=headers), timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def start(args, log, env=None):
    """Start a server (``args`` after the interpreter) on every interface; return
    (process, port) once it answers on 127.0.0.1."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, *[a.replace("PORT", str(port)) for a in args]],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, Path(log).read_text()
        try:
            get(url("127.0.0.1", port))
            return proc, port
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(Path(log).read_text())


def pull_document(host, port, timeout=30) -> str:
    """What a script gets from the app's websocket with a token of its own making and a
    forged Origin (the browser's origin check does not bind a script): the document's
    JSON, or why there is none ("no session", "closed")."""
    async def pull():
        token = generate_jwt_token(generate_session_id(signed=False), signed=False,
                                   extra_payload={"headers": {}, "cookies": {}, "arguments": {}})
        request = HTTPRequest(url(host, port, "/app/ws").replace("http", "ws", 1),
                              headers={"Origin": f"http://localhost:{port}"})
        try:
            ws = await websocket_connect(request, subprotocols=["bokeh", token])
        except Exception as e:  # noqa: BLE001 (a refused handshake, whatever its form)
            return f"closed: {e}"

        async def frames(n):
            out = []
            for _ in range(n):
                m = await asyncio.wait_for(ws.read_message(), timeout)
                if m is None:
                    raise ConnectionError
                out.append(m if isinstance(m, str) else "")
            return out
        try:
            assert json.loads((await frames(3))[0])["msgtype"] == "ACK"
            msg = Protocol().create("PULL-DOC-REQ")
            for part in (msg.header_json, msg.metadata_json, msg.content_json):
                await ws.write_message(part)
            return "".join(await frames(3))
        except TimeoutError:
            return "no session"
        except ConnectionError:
            return "closed"
        finally:
            ws.close()
    # in a thread of its own: the browser tests' playwright runs an event loop here
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(pull())).result()


@pytest.fixture(scope="module")
def remote_ip():
    ip = outward_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    return ip


def test_panel_serve_refuses_other_machines(cube, remote_ip, tmp_path):
    """`panel serve app/ --address 0.0.0.0`: 127.0.0.1 gets the page and the document;
    from the machine's outward address the page is 403 (a forged Origin and Host do not
    help) and a websocket of a script's own making is closed without a session (not
    left open, waiting: the 15 s a reply is waited for would give "no session")."""
    proc, port = start(["-m", "panel", "serve", "app", "--address", "0.0.0.0", "--port",
                        "PORT", "--args", "--cube", str(cube)], tmp_path / "log",
                       env={ALLOW_REMOTE: ""})
    try:
        assert get(url("127.0.0.1", port)) == 200
        assert "pred_any" in pull_document("127.0.0.1", port)
        assert get(url(remote_ip, port)) == 403
        assert get(url(remote_ip, port), Origin=f"http://localhost:{port}",
                   Host=f"localhost:{port}") == 403
        assert get(url(remote_ip, port, "/app/autoload.js?bokeh-autoload-element=x")) == 403
        assert pull_document(remote_ip, port, timeout=15).startswith("closed")
        assert "pred_any" in pull_document("127.0.0.1", port)  # the server still serves
    finally:
        stop(proc)
    log = (tmp_path / "log").read_text()
    assert f"a request from {remote_ip} refused" in log


def test_panel_serve_exposed_deliberately_asks_for_a_login(cube, remote_ip, tmp_path):
    """ENTROPICE_ALLOW_REMOTE=1 with --basic-auth: another machine is sent to the login
    page, and served once logged in."""
    proc, port = start(["-m", "panel", "serve", "app", "--address", "0.0.0.0", "--port",
                        "PORT", "--basic-auth", "a-long-password", "--cookie-secret",
                        "0123456789abcdef0123456789abcdef", "--args", "--cube", str(cube)],
                       tmp_path / "log", env={ALLOW_REMOTE: "1"})
    try:
        assert get(url(remote_ip, port)) == 302  # to /login
        jar = urllib.request.HTTPCookieProcessor()
        opener = urllib.request.build_opener(jar)
        opener.open(url(remote_ip, port, "/login"), urlencode(
            {"username": "me", "password": "a-long-password"}).encode(), timeout=60)
        with opener.open(url(remote_ip, port), timeout=60) as r:
            assert r.status == 200 and "Entropice" in r.read().decode()
    finally:
        stop(proc)


def test_entropice_app_refuses_other_machines(cube, remote_ip, tmp_path):
    """`entropice app --address 0.0.0.0`: a session from another machine holds a refusal
    and nothing of the cube; 127.0.0.1 gets the dashboard. With ENTROPICE_ALLOW_REMOTE=1
    it does not start (it has no login)."""
    proc, port = start(["-m", "entropice", "app", "--cube", str(cube), "--address",
                        "0.0.0.0", "--port", "PORT"], tmp_path / "log", env={ALLOW_REMOTE: ""})
    try:
        assert "pred_any" in pull_document("127.0.0.1", port)
        doc = pull_document(remote_ip, port)
        assert "served to the machine it runs on only" in doc
        assert "pred_any" not in doc and str(cube) not in doc
    finally:
        stop(proc)
    out = subprocess.run([sys.executable, "-m", "entropice", "app", "--cube", str(cube)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, ALLOW_REMOTE: "1"})
    assert out.returncode == 1 and "has no login" in out.stderr


# -- no link breaks a session -------------------------------------------------------------

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "NaN", "Infinity", "1e400", "-1e400", "1e308",
                     "0", "-0", "1", "-1", "0.5", "2e7", "-2e7", "2.0000001e7", "1" * 400,
                     "0x10", "1_000", " 1", "1e-320"]),
    st.integers(-10**30, 10**30).map(str))
BRUSHES = st.one_of(
    st.recursive(st.one_of(st.none(), st.booleans(), st.floats(), st.integers(),
                           st.text(max_size=8),
                           st.sampled_from(["era5_tdd_sum", "dem_slope_mean", "pred_any"])),
                 lambda inner: st.lists(inner, max_size=7) | st.dictionaries(
                     st.text(max_size=4), inner, max_size=3), max_leaves=12).map(
        lambda v: json.dumps(v, allow_nan=True)),
    st.tuples(st.floats(allow_nan=True, allow_infinity=True),
              st.floats(allow_nan=True, allow_infinity=True)).map(
        lambda v: json.dumps(["era5_tdd_sum", "dem_slope_mean", v[0], v[1], v[1], v[0]])),
    st.sampled_from(["[", "[" * 600 + "]" * 600, '{"a": [1, [2, [3]]]}', ""]))
KEYS = URL_STATE + [RIGHT + n for n in RIGHT_STATE] + ["bokeh-session-id", "other"]
VALUES = st.one_of(NUMBERS, BRUSHES, st.text(max_size=12),
                   st.sampled_from(["", "h3", "healpix", "2", "3", "4", "2021", "2022",
                                    "pred_any", "true", "false", "log", "Boxes", "magma",
                                    "../../etc/passwd", "ü✓\u202e", "\x00", "None"]))


@pytest.fixture(scope="module")
def store(cube):
    return CubeStore(cube)


@pytest.fixture
def app(store):
    return App(selection=Selection(store=store))


def assert_valid(s: Selection):
    """The selection is one the views draw: names from the lists, a box of the run,
    finite ordered colours, an extent of at least the minimum size or none."""
    assert s.grid in s.param.grid.objects and s.level in s.param.level.objects
    assert s.year in s.param.year.objects and s.layer in s.param.layer.objects
    assert s.run in s.param.run.objects or (s.run is None and not s.param.run.objects)
    assert s.box == -1 or 0 <= s.box < s.n_boxes
    assert s.cmap in CMAPS and s.scale in ("linear", "log") and s.tab in TABS
    assert isinstance(s.fit, bool)
    for v in (s.vmin, s.vmax):
        assert v is None or math.isfinite(v)
    if s.vmin is not None and s.vmax is not None:
        assert s.vmin < s.vmax
    extent = [getattr(s, k) for k in EXTENT]
    if extent != [None] * 4:
        assert all(abs(v) <= MAX_EXTENT for v in extent)
        assert extent[1] - extent[0] >= MIN_EXTENT and extent[3] - extent[2] >= MIN_EXTENT
    if s.brush is not None:
        b = s.brush
        assert len(b) == 6 and all(math.isfinite(v) for v in b[2:])
        assert b[2] <= b[3] and b[4] <= b[5]


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=10))
def test_no_link_breaks_a_session(store, query):
    """Whatever a link holds, a page takes it as a served one does (``_sync_url``): its
    checked entries (``App.follow_link``), the URL then kept in step with the selection
    (``App.link_url``), and the browser's own URL arriving through that sync as it
    connects. The selection stays valid, both maps draw, and every entry left out is
    named in the page's notice."""
    app = App(selection=Selection(store=store))
    s = app.selection
    loc = Location(search="?" + urlencode(query))
    kept = app.follow_link(link_query(loc.search))
    loc.search = "?" + urlencode(kept) if kept else ""
    app.link_url(loc)
    loc.search = "?" + urlencode(query)  # the browser's URL, as it connects
    assert_valid(s)
    left_out = [k for k in KEYS[:-2] if k in query and k not in kept]
    assert app.notice.visible == bool(left_out)
    assert all(f"`{k}`" in app.notice.object for k in left_out)
    view = MapView(selection=s)
    assert view._render().Image.I.data.size and "cells" in view.status.object
    if app.compare.other is not None:
        assert_valid(app.compare.other)
        assert MapView(selection=app.compare.other)._render().Image.I.data.size


def test_a_brush_is_checked_whoever_sets_it(app):
    """The URL's sync sets the brush from the browser's URL unchecked by the page: the
    parameter itself takes only two names and four finite ordered numbers."""
    s = app.selection
    for bad in (("era5_tdd_sum", "dem_slope_mean", "a", "b", "c", "d"),
                ("era5_tdd_sum", "dem_slope_mean", 0, 1, math.nan, 1),
                ("era5_tdd_sum", "dem_slope_mean", 2, 1, 0, 1),
                ("era5_tdd_sum", "dem_slope_mean", True, 1, 0, 1),
                ("era5_tdd_sum", "dem_slope_mean", 10**400, 10**401, 0, 1),
                (1, 2, 0, 1, 0, 1), ("a", "b", 0, 1)):
        with pytest.raises(ValueError):
            s.brush = bad
    s.brush = ("era5_tdd_sum", "dem_slope_mean", 0, 1.5, -2, 3)
    s.brush = None


def test_the_notice_names_what_was_left_out_and_not_its_value(app):
    kept = app.follow_link({"box": "inf", "x0": "1", "x1": "1", "y0": "1", "y1": "1",
                            "cmap": "<script>alert(1)</script>", "tab": "Map"})
    assert kept == {"tab": "Map"}
    assert app.notice.visible
    text = app.notice.object
    assert "`box`" in text and "`x0`, `x1`, `y0`, `y1`" in text and "`cmap`" in text
    assert "script" not in text and "inf" not in text
    app.follow_link({"tab": "Map"})
    assert not app.notice.visible
