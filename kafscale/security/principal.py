"""Principals, as Kafka spells them: ``User:NAME``, and how a client
certificate's subject becomes one (Kafka's ``ssl.principal.mapping.rules``)."""

import re
from dataclasses import dataclass

ANONYMOUS = "User:ANONYMOUS"
"""The principal of a connection that did not authenticate (PLAINTEXT, or
SSL without a client certificate), as Kafka names it."""


def user(name):
    """The principal of the user ``name``."""
    return "User:" + name


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern | None  # None: DEFAULT, the subject as it is
    replacement: str = ""
    case: str = ""  # "L", "U" or ""

    def apply(self, subject):
        if self.pattern is None:
            return subject
        match = self.pattern.fullmatch(subject)
        if match is None:
            return None
        name = match.expand(self.replacement)
        return name.lower() if self.case == "L" else name.upper() if self.case == "U" else name


_RULE = re.compile(r"RULE:((?:\\/|[^/])*)/((?:\\/|[^/])*)/([LU]?)")


class SubjectMapping:
    """Kafka's ``ssl.principal.mapping.rules``: ``RULE:pattern/replacement/[L|U]``
    rules, comma-separated, and ``DEFAULT``, tried in order; the first whose
    pattern matches the whole subject (RFC 4514, ``CN=alice,O=Example``)
    names the user. ``$1`` in a replacement is the pattern's first group.
    No rule matching is an error, as in Kafka."""

    def __init__(self, rules="DEFAULT"):
        self._rules = []
        text = rules.strip()
        while text:
            if text.startswith("DEFAULT"):
                self._rules.append(_Rule(None))
                text = text[len("DEFAULT"):]
            else:
                match = _RULE.match(text)
                if match is None:
                    raise ValueError(f"invalid principal mapping rule at {text!r}")
                pattern, replacement, case = (part.replace("\\/", "/") for part in match.groups())
                self._rules.append(_Rule(re.compile(pattern), re.sub(r"\$(\d+)", r"\\g<\1>", replacement), case))
                text = text[match.end():]
            text = text.strip()
            if text.startswith(","):
                text = text[1:].strip()
            elif text:
                raise ValueError(f"invalid principal mapping rule at {text!r}")
        if not self._rules:
            raise ValueError("no principal mapping rule")

    def principal(self, subject):
        """-> ``User:NAME`` for the certificate subject ``subject``. Raises
        ValueError when no rule matches."""
        for rule in self._rules:
            name = rule.apply(subject)
            if name is not None:
                return user(name)
        raise ValueError(f"no principal mapping rule matches {subject!r}")
