"""A real Django site, unchanged, deployed the way a user would: nginx + ferrocorn, under a prefix.

The project (tests/apps/djangosite) has the admin, SQLite, a CSRF-protected
form, an upload and a page behind login. The fixture migrates it into a
fresh directory, collects its static files and creates a superuser, like a
deploy script; nginx serves /app/static/ and /app/media/ itself (`alias`)
and hands the rest of /app/ to ferrocorn with `ferrocorn_param SCRIPT_NAME
/app;`. Every URL Django generates must carry the prefix.
"""

import hashlib
import html
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import django
import pytest
import requests

from servers import APPS_DIR, DIST, Ferrocorn, Nginx, free_port

SITE_DIR = APPS_DIR / "djangosite"
ADMIN_PASSWORD = "correct horse battery staple"
ADMIN_STATIC = Path(django.__file__).parent / "contrib" / "admin" / "static"

SITE_LOCATIONS = """\
        location /app/static/ {{
            alias {data}/static/;
            include {mime_types};
        }}
        location /app/media/ {{
            alias {data}/media/;
        }}
        location /app/ {{
            ferrocorn_pass unix:{sock};
            ferrocorn_param SCRIPT_NAME /app;
        }}
"""


class DjangoSite:
    def __init__(self, nginx, ferrocorn, data):
        self.nginx = nginx
        self.ferrocorn = ferrocorn
        self.data = data
        self.port = nginx.port
        self.host = "127.0.0.1:%d" % nginx.port

    def url(self, path):
        return self.nginx.url(path)


def manage(env, *args):
    """Runs manage.py like a deploy script does; fails the fixture with its output."""
    result = subprocess.run(
        [sys.executable, str(SITE_DIR / "manage.py"), *args],
        env={**os.environ, **env},
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, "manage.py %s failed:\n%s%s" % (
        " ".join(args),
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


@pytest.fixture(scope="module")
def site(workdir, module_servers):
    data = Path(tempfile.mkdtemp(prefix="django-", dir=workdir))
    os.chmod(data, 0o755)  # nginx's `nobody` reads static/ and media/
    env = {"FERROCORN_DJANGO_DATA": str(data), "DJANGO_SETTINGS_MODULE": "djangosite.settings"}
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput")
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
    )
    ferrocorn = module_servers(
        Ferrocorn(
            workdir,
            "django",
            "djangosite.wsgi:application",
            extra_args=["--virtualenv", sys.prefix, "--pythonpath", str(SITE_DIR)],
            env=env,
        )
    )
    locations = SITE_LOCATIONS.format(data=data, sock=ferrocorn.sock, mime_types=DIST / "conf" / "mime.types")
    nginx = module_servers(Nginx(workdir, "nginx-django", free_port(), locations))
    return DjangoSite(nginx, ferrocorn, data)


def csrf_token(page):
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, "no CSRF token in the page:\n%s" % page.text[:2000]
    return match.group(1)


def log_in(site, session, next_path):
    """Logs in through the admin's login form; returns the response to the POST."""
    login_page = session.get(site.url("/app/admin/login/?next=%s" % next_path), timeout=30)
    assert login_page.status_code == 200
    return session.post(
        site.url("/app/admin/login/?next=%s" % next_path),
        data={
            "csrfmiddlewaretoken": csrf_token(login_page),
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "next": next_path,
        },
        allow_redirects=False,
        timeout=30,
    )


def test_urls_django_generates_carry_the_prefix(site):
    response = requests.get(site.url("/app/whereami/?q=1"), timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "script_name": "/app",
        "path": "/app/whereami/",
        "path_info": "/whereami/",
        "host": site.host,
        "is_secure": False,
        "absolute_uri": "http://%s/app/whereami/?q=1" % site.host,
        "reverse_notes": "/app/notes/",
        "static_css": "/app/static/admin/css/base.css",
        "admin_login": "/app/admin/login/",
    }


def test_forwarded_host_and_proto_from_a_load_balancer(site):
    """A TLS-terminating balancer in front of nginx: Django trusts X-Forwarded-Host/-Proto (settings say so)."""
    response = requests.get(
        site.url("/app/whereami/?q=1"),
        headers={"X-Forwarded-Host": "public.example", "X-Forwarded-Proto": "https"},
        timeout=30,
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["host"] == "public.example"
    assert seen["is_secure"] is True
    assert seen["absolute_uri"] == "https://public.example/app/whereami/?q=1"


def test_disallowed_host_is_refused_by_django(site):
    response = requests.get(site.url("/app/whereami/"), headers={"Host": "evil.example"}, timeout=30)
    assert response.status_code == 400


def test_append_slash_redirect_keeps_the_prefix(site):
    response = requests.get(site.url("/app/notes"), allow_redirects=False, timeout=30)
    assert response.status_code == 301
    assert response.headers["Location"] == "/app/notes/"


def test_unknown_page_is_djangos_404(site):
    response = requests.get(site.url("/app/no-such-page/"), timeout=30)
    assert response.status_code == 404
    assert b"Not Found" in response.content


def test_static_files_are_served_by_nginx_byte_for_byte(site):
    for name in ("admin/css/base.css", "admin/js/core.js", "admin/img/icon-yes.svg"):
        response = requests.get(site.url("/app/static/" + name), timeout=30)
        assert response.status_code == 200, name
        assert response.content == (ADMIN_STATIC / name).read_bytes(), name
        # nginx's static handler, not Django (which serves no static files with DEBUG off)
        assert "Last-Modified" in response.headers and "ETag" in response.headers
    assert requests.get(site.url("/app/static/admin/css/base.css"), timeout=30).headers["Content-Type"] == "text/css"


def test_csrf_protected_form_post_then_redirect(site):
    session = requests.Session()
    form = session.get(site.url("/app/notes/"), timeout=30)
    assert form.status_code == 200
    assert 'action="/app/notes/"' in form.text
    token = csrf_token(form)
    assert "csrftoken" in session.cookies

    refused = session.post(site.url("/app/notes/"), data={"text": "no token"}, timeout=30)
    assert refused.status_code == 403
    assert "CSRF verification failed" in refused.text

    text = "Zoë says <b>a & b</b>"
    posted = session.post(
        site.url("/app/notes/"), data={"csrfmiddlewaretoken": token, "text": text}, allow_redirects=False, timeout=30
    )
    assert posted.status_code == 302
    assert posted.headers["Location"] == "/app/notes/"
    listing = session.get(site.url("/app/notes/"), timeout=30)
    assert "<li>%s</li>" % html.escape(text, quote=True) in listing.text
    assert "no token" not in listing.text


@pytest.mark.parametrize("size", [1000, 3 * 1024 * 1024], ids=["in-memory", "temp-file"])
def test_file_upload_is_stored_and_served_back_by_nginx(site, size):
    """Over FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), Django streams the upload to a temp file."""
    session = requests.Session()
    token = csrf_token(session.get(site.url("/app/upload/"), timeout=30))
    payload = os.urandom(size)
    response = session.post(
        site.url("/app/upload/"),
        data={"csrfmiddlewaretoken": token},
        files={"file": ("report %d.bin" % size, payload, "application/octet-stream")},
        timeout=60,
    )
    assert response.status_code == 200
    stored = response.json()
    assert stored["size"] == size
    assert stored["sha256"] == hashlib.sha256(payload).hexdigest()
    assert stored["in_memory"] is (size < 2621440)
    assert stored["url"].startswith("/app/media/uploads/report%%20%d" % size)  # nginx decodes %20 for alias
    assert (site.data / "media" / stored["name"]).read_bytes() == payload
    served = requests.get(site.url(stored["url"]), timeout=60)
    assert served.status_code == 200
    assert served.content == payload


def test_login_redirects_back_to_the_page_that_asked(site):
    session = requests.Session()
    guarded = session.get(site.url("/app/private/"), allow_redirects=False, timeout=30)
    assert guarded.status_code == 302
    assert guarded.headers["Location"] == "/app/admin/login/?next=/app/private/"

    logged_in = log_in(site, session, "/app/private/")
    assert logged_in.status_code == 302, logged_in.text[:2000]
    assert logged_in.headers["Location"] == "/app/private/"
    assert "sessionid" in session.cookies
    page = session.get(site.url(logged_in.headers["Location"]), timeout=30)
    assert page.status_code == 200
    assert "Hello admin, you are logged in." in page.text


def test_wrong_password_stays_on_the_login_form(site):
    session = requests.Session()
    login_page = session.get(site.url("/app/admin/login/"), timeout=30)
    response = session.post(
        site.url("/app/admin/login/"),
        data={"csrfmiddlewaretoken": csrf_token(login_page), "username": "admin", "password": "wrong"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.text
    assert "sessionid" not in session.cookies


def test_admin_through_nginx_add_a_note(site):
    session = requests.Session()
    assert log_in(site, session, "/app/admin/").headers["Location"] == "/app/admin/"
    index = session.get(site.url("/app/admin/"), timeout=30)
    assert index.status_code == 200
    assert "Site administration" in index.text
    assert 'href="/app/static/admin/css/base.css"' in index.text
    assert 'href="/app/admin/notes/note/"' in index.text

    add_form = session.get(site.url("/app/admin/notes/note/add/"), timeout=30)
    assert add_form.status_code == 200
    added = session.post(
        site.url("/app/admin/notes/note/add/"),
        data={"csrfmiddlewaretoken": csrf_token(add_form), "text": "added in the admin", "_save": "Save"},
        allow_redirects=False,
        timeout=30,
    )
    assert added.status_code == 302, added.text[:3000]
    assert added.headers["Location"] == "/app/admin/notes/note/"
    listing = session.get(site.url("/app/admin/notes/note/"), timeout=30)
    assert "added in the admin" in listing.text
    assert "added in the admin" in requests.get(site.url("/app/notes/"), timeout=30).text

    logged_out = session.post(
        site.url("/app/admin/logout/"), data={"csrfmiddlewaretoken": csrf_token(listing)}, timeout=30
    )
    assert logged_out.status_code == 200
    again = session.get(site.url("/app/admin/"), allow_redirects=False, timeout=30)
    assert again.status_code == 302
    assert again.headers["Location"] == "/app/admin/login/?next=/app/admin/"
