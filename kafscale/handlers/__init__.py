"""Request handlers: one module per Kafka API, named after the API
(``join_group.py`` answers JoinGroup), each opening with what the API does
here, its versions, and where it departs from Kafka.

Each handler is an ``async def handle(request)`` taking a
:class:`~kafscale.handlers.dispatch.Request` and returning the response body
as a dict (or ``None`` when the protocol wants no answer, as for acks=0
produce). Beside them:

``dispatch``
    The table of API key -> handler and versions; ApiVersions advertises it.
``common``
    What several handlers share: the per-partition answer loop, the lookup
    of a topic by name or id, protocol constants.
``validation``
    The checks several handlers make of a request's shape.
``config_resources``
    What the three config APIs share.
``errors``
    The one translation of the lower layers' refusals into Kafka error codes.
"""
