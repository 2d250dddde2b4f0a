"""Messages and the service of Centrifugo's proxy protocol (``proxy.proto``).

Every message of ``centrifugal.centrifugo.proxy`` is a betterproto2 dataclass with a
straight-line codec, compiled on first use from the generated field table: ``bytes(msg)``
encodes, ``Msg.parse(data)`` decodes (raising :class:`centrifugo_types.DecodeError` on
malformed input). ``CentrifugoProxyStub`` is the grpclib client and ``CentrifugoProxyBase``
the grpclib service base of ``CentrifugoProxy``; they and the other service classes
(``SERVICE_CLASSES``) are imported on first use, so that the messages alone do not load
grpclib.
"""

from typing import TYPE_CHECKING

from ._generated.proxy import *  # noqa: F403
from ._generated.proxy import SERVICE_CLASSES
from ._generated.proxy import __all__ as _MESSAGES
from ._lazy import lazy_attributes

if TYPE_CHECKING:
    from ._generated.proxy_grpc import *  # noqa: F403
else:  # hidden from type checkers: they see the import above
    __getattr__, __dir__ = lazy_attributes(
        globals(), "centrifugo_types._generated.proxy_grpc", SERVICE_CLASSES
    )

__all__ = [*_MESSAGES, *SERVICE_CLASSES]
