"""Messages and the service of Centrifugo's proxy protocol (``proxy.proto``).

Every message of ``centrifugal.centrifugo.proxy`` is a betterproto2 dataclass with a
straight-line codec, compiled on first use from the generated field table: ``bytes(msg)``
encodes, ``Msg.parse(data)`` decodes (raising :class:`centrifugo_types.DecodeError` on
malformed input). ``CentrifugoProxyStub`` is the grpclib client and ``CentrifugoProxyBase``
the grpclib service base of ``CentrifugoProxy``.
"""

from ._generated.proxy import *  # noqa: F403
from ._generated.proxy import __all__ as __all__
