"""Time zone names a job may use: IANA names only, never the host's.

`localtime`, `posixrules`, `Factory` and the `posix/` and `right/` trees are files of the
host's zoneinfo directory: what they mean depends on the machine (the CI runner that
validated is not the server that fires; `right/` zones even count leap seconds).
"""

from __future__ import annotations

HOST_DEPENDENT = frozenset({"localtime", "posixrules", "factory"})


def is_host_dependent(name: str) -> bool:
    """True for zone names whose meaning is the host's configuration, not tzdata's."""
    lowered = name.lower()
    return lowered in HOST_DEPENDENT or lowered.startswith(("posix/", "right/", "/"))
