"""SaslAuthenticate, v0-2: one step of the SASL exchange the handshake chose
(KIP-152). A failed authentication is answered after
``failed_authentication_delay_ms`` (Kafka's
connection.failed.authentication.delay.ms, so that guessing passwords is
slow), logged with the client's address, and closes the connection once
answered.

Versions: v1 adds session_lifetime_ms (0 here: no re-authentication
deadline); v2 is the first flexible version.

Departures from Kafka: none that a client sees.
"""

from twisted.internet.task import deferLater

from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.log import logger
from kafscale.protocol.errors import ErrorCode
from kafscale.security.sasl import AuthenticationFailed

log = logger("kafscale.handlers.sasl_authenticate")


async def handle(request):
    authentication = request.authentication
    if authentication is None:
        return _answer(ErrorCode.ILLEGAL_SASL_STATE, "this listener does not use SASL")
    try:
        token = await authentication.step(request.body["auth_bytes"])
    except AuthenticationFailed as e:
        log.warn("failed authentication from {client} as {user!r} with {mechanism}: {why}",
                 client=request.client_host, user=e.user, mechanism=authentication.mechanism, why=e)
        await deferLater(request.clock, request.config.failed_authentication_delay_ms / 1000)
        # Tell the client no more than that: which of the user or the
        # password was wrong is for the log.
        return _answer(ErrorCode.SASL_AUTHENTICATION_FAILED,
                       f"Authentication failed during authentication due to invalid credentials with SASL"
                       f" mechanism {authentication.mechanism}")
    except REFUSALS as e:
        error = kafka_error(e)
        return _answer(error.code, error.message)
    if authentication.complete:
        log.debug("{client} authenticated as {principal} with {mechanism}", client=request.client_host,
                 principal=authentication.principal, mechanism=authentication.mechanism)
    return {"error_code": ErrorCode.NONE, "error_message": None, "auth_bytes": token, "session_lifetime_ms": 0}


def _answer(code, message):
    return {"error_code": code, "error_message": message, "auth_bytes": b"", "session_lifetime_ms": 0}
