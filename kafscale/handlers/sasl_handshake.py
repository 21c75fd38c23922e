"""SaslHandshake, v0-1: the client picks its SASL mechanism; the answer
lists the mechanisms the listener offers.

Versions: after v0 the mechanism's tokens come as bare size-prefixed frames
(the connection passes them on); after v1, in SaslAuthenticate requests.

Departures from Kafka: none that a client sees.
"""

from kafscale.handlers.errors import REFUSALS, kafka_error
from kafscale.protocol.errors import ErrorCode


async def handle(request):
    authentication = request.authentication
    if authentication is None:
        # A listener without SASL: as Kafka answers there.
        return {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": []}
    try:
        authentication.handshake(request.body["mechanism"], bare_tokens=request.api_version == 0)
    except REFUSALS as e:
        return {"error_code": kafka_error(e).code, "mechanisms": list(authentication.mechanisms)}
    return {"error_code": ErrorCode.NONE, "mechanisms": list(authentication.mechanisms)}
