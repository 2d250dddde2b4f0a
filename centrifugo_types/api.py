"""Messages and the service of Centrifugo's server API (``api.proto``).

Every message of ``centrifugal.centrifugo.api`` is a betterproto2 dataclass with a
straight-line codec, compiled on first use from the generated field table: ``bytes(msg)``
encodes, ``Msg.parse(data)`` decodes (raising :class:`centrifugo_types.DecodeError` on
malformed input). ``CentrifugoApiStub`` is the grpclib client of ``CentrifugoApi``
(Centrifugo's gRPC server API); it and the other service classes (``SERVICE_CLASSES``) are
imported on first use, so that the messages alone do not load grpclib.
"""

from typing import TYPE_CHECKING

from ._generated.api import *  # noqa: F403
from ._generated.api import SERVICE_CLASSES
from ._generated.api import __all__ as _MESSAGES
from ._lazy import lazy_attributes

if TYPE_CHECKING:
    from ._generated.api_grpc import *  # noqa: F403
else:  # hidden from type checkers: they see the import above
    __getattr__, __dir__ = lazy_attributes(
        globals(), "centrifugo_types._generated.api_grpc", SERVICE_CLASSES
    )

__all__ = [*_MESSAGES, *SERVICE_CLASSES]
