"""`nginx -t` accepts the module's directives and rejects bad values by name."""

import pytest

from servers import Nginx, free_port

GOOD_LOCATION = """\
        location / {
            ferrocorn_pass unix:/tmp/ferrocorn-config-test.sock;
            ferrocorn_param SCRIPT_NAME /app;
            ferrocorn_param HTTPS $https if_not_empty;
            ferrocorn_connect_timeout 5s;
            ferrocorn_send_timeout 10s;
            ferrocorn_read_timeout 2m;
            ferrocorn_buffering off;
            ferrocorn_buffer_size 16k;
            ferrocorn_buffers 16 16k;
        }
        location /tcp/ {
            ferrocorn_pass 127.0.0.1:9000;
        }
        location /pool/ {
            if ($arg_x) {
                ferrocorn_pass pool;
            }
            ferrocorn_pass pool;
        }
"""

POOL = """\
    upstream pool {
        server 127.0.0.1:9001;
    }
"""


def check(scratch, locations, http_extra=POOL):
    return Nginx(scratch, "conf", free_port(), locations, http_extra).check_config()


def test_every_directive_is_accepted(scratch):
    code, output = check(scratch, GOOD_LOCATION)
    assert code == 0, output
    assert "test is successful" in output


BAD = {
    "empty-unix-path": ("location / { ferrocorn_pass unix:; }", "ferrocorn_pass"),
    "bad-buffers-size": (
        "location / { ferrocorn_pass unix:/tmp/x.sock; ferrocorn_buffers 8 zz; }",
        "ferrocorn_buffers",
    ),
    "bad-buffering-flag": (
        "location / { ferrocorn_pass unix:/tmp/x.sock; ferrocorn_buffering maybe; }",
        "ferrocorn_buffering",
    ),
    "bad-timeout": (
        "location / { ferrocorn_pass unix:/tmp/x.sock; ferrocorn_read_timeout soon; }",
        "ferrocorn_read_timeout",
    ),
    "param-without-value": (
        "location / { ferrocorn_pass unix:/tmp/x.sock; ferrocorn_param ONLY_NAME; }",
        "ferrocorn_param",
    ),
    "duplicate-pass": (
        "location / { ferrocorn_pass unix:/tmp/x.sock; ferrocorn_pass unix:/tmp/y.sock; }",
        "ferrocorn_pass",
    ),
}


@pytest.mark.parametrize("location,directive", BAD.values(), ids=BAD.keys())
def test_bad_directive_fails_naming_it(scratch, location, directive):
    code, output = check(scratch, "        %s\n" % location)
    assert code != 0, output
    assert "[emerg]" in output, output
    assert directive in output, output
    # Rejected for its value, not because the module failed to load or register it.
    assert "unknown directive" not in output, output
    assert "load_module" not in output and "dlopen" not in output and "dlsym" not in output, output
