# Settings of ferrocorn@NAME: copy to /etc/ferrocorn/NAME.conf.py.
# Gunicorn's setting names; see `ferrocorn --help`. The socket comes from
# ferrocorn@NAME.socket (/run/ferrocorn/NAME.sock), so there is no `bind`.
wsgi_app = "myproject.wsgi:application"
chdir = "/srv/myproject"
virtualenv = "/srv/myproject/venv"
workers = 4
timeout = 30
graceful_timeout = 30
max_requests = 1000
max_requests_jitter = 100
raw_env = ["DJANGO_SETTINGS_MODULE=myproject.settings"]
# Errors and the access log go to the journal (journalctl -u ferrocorn@NAME).
accesslog = "-"
