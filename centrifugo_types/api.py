"""Messages and the service of Centrifugo's server API (``api.proto``).

Every message of ``centrifugal.centrifugo.api`` is a betterproto2 dataclass with a
straight-line codec, compiled on first use from the generated field table: ``bytes(msg)``
encodes, ``Msg.parse(data)`` decodes (raising :class:`centrifugo_types.DecodeError` on
malformed input). ``CentrifugoApiStub`` is the grpclib client of ``CentrifugoApi``
(Centrifugo's gRPC server API).
"""

from ._generated.api import *  # noqa: F403
from ._generated.api import __all__ as __all__
