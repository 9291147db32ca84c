"""model/actions.plan: which commands fire, where, with which paths, deduplicated."""

from __future__ import annotations

import pytest

from shoal.config.model import ActionSpec
from shoal.model.actions import plan

CONF = ActionSpec(("/srv/www/conf/*.conf",), ("apachectl graceful", "logger -t sync %%"), "/var/log/a.log")
HTACCESS = ActionSpec(("/srv/www/**/.htaccess",), ("logger -t sync %%",), "/var/log/a.log")
EVERY = ActionSpec((), ("echo %% >> /tmp/all",), None)
LOCAL = ActionSpec(("/srv/www",), ("reload-local %%",), None, do_local=True)
LOCAL_ONLY = ActionSpec(("/srv/www",), ("only-here %%",), None, do_local_only=True)
ALL = (CONF, HTACCESS, EVERY, LOCAL, LOCAL_ONLY)

CASES = [
    # (changed paths, local?, expected [(command, logfile)])
    (
        ["/srv/www/conf/a.conf"],
        False,
        [
            ("apachectl graceful", "/var/log/a.log"),
            ("logger -t sync /srv/www/conf/a.conf", "/var/log/a.log"),
            ("echo /srv/www/conf/a.conf >> /tmp/all", None),
            ("reload-local /srv/www/conf/a.conf", None),
        ],
    ),
    # '*' stays in one component without '**'
    (
        ["/srv/www/conf/sub/b.conf"],
        False,
        [
            ("echo /srv/www/conf/sub/b.conf >> /tmp/all", None),
            ("reload-local /srv/www/conf/sub/b.conf", None),
        ],
    ),
    # '**' crosses directories; the shared logger command runs once with both paths
    (
        ["/srv/www/a/b/.htaccess", "/srv/www/conf/x.conf"],
        False,
        [
            ("logger -t sync /srv/www/a/b/.htaccess /srv/www/conf/x.conf", "/var/log/a.log"),
            ("echo /srv/www/a/b/.htaccess /srv/www/conf/x.conf >> /tmp/all", None),
            ("reload-local /srv/www/a/b/.htaccess /srv/www/conf/x.conf", None),
            ("apachectl graceful", "/var/log/a.log"),
        ],
    ),
    # on the node that made the change: only do-local and do-local-only
    (
        ["/srv/www/conf/a.conf"],
        True,
        [
            ("reload-local /srv/www/conf/a.conf", None),
            ("only-here /srv/www/conf/a.conf", None),
        ],
    ),
    (["/srv/other/f"], False, [("echo /srv/other/f >> /tmp/all", None)]),
    (["/srv/other/f"], True, []),
    ([], False, []),
    # names are shell-quoted
    (
        ["/srv/www/it's here; rm -rf x"],
        False,
        [
            ("echo '/srv/www/it'\"'\"'s here; rm -rf x' >> /tmp/all", None),
            ("reload-local '/srv/www/it'\"'\"'s here; rm -rf x'", None),
        ],
    ),
]


@pytest.mark.parametrize(("changed", "local", "want"), CASES)
def test_plan(changed: list[str], local: bool, want: list[tuple[str, str | None]]) -> None:
    got = [(j.command, j.logfile) for j in plan(ALL, changed, local=local)]
    assert sorted(got, key=str) == sorted(want, key=str)


def test_star_does_not_cross_a_slash_without_double_star() -> None:
    only = ActionSpec(("/srv/*.conf",), ("x %%",), None)
    assert plan([only], ["/srv/a.conf"], local=False)[0].paths == ("/srv/a.conf",)
    assert plan([only], ["/srv/d/a.conf"], local=False) == []
