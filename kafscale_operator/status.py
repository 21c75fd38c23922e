"""Status conditions, as Kubernetes conventions want them: one per type,
its lastTransitionTime kept while its status stays the same."""

import datetime


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(previous, kind, ok, reason, message, at=None):
    """-> the conditions ``previous`` (a list, maybe None) with ``kind``
    set to ``ok`` (True, False or None for Unknown)."""
    status = {True: "True", False: "False", None: "Unknown"}[ok]
    conditions = [dict(c) for c in previous or [] if c.get("type") != kind]
    old = next((c for c in previous or [] if c.get("type") == kind), None)
    changed = old is None or old.get("status") != status
    conditions.append({"type": kind, "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": (at or now()) if changed else old["lastTransitionTime"]})
    return sorted(conditions, key=lambda c: c["type"])
