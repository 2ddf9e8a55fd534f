# A Gunicorn config file, used unchanged by ferrocorn -c.
# Workers start as root here and switch to www-data after fork; the unix
# socket is given to www-data, nginx's workers connect to it.
import multiprocessing

bind = "unix:/run/myproject/app.sock"
workers = multiprocessing.cpu_count() * 2 + 1
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 1000
max_requests_jitter = 100
user = "www-data"
group = "www-data"
pidfile = "/run/myproject/ferrocorn.pid"
errorlog = "/var/log/myproject/error.log"
loglevel = "info"
raw_env = ["DJANGO_SETTINGS_MODULE=myproject.settings"]
forwarded_allow_ips = "*"  # accepted with a warning: nginx passes the client address itself
