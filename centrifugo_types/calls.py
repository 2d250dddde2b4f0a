"""Typed proxy calls: one class per event of Centrifugo's proxy, transport-neutral.

The call classes of the events (``ConnectCall``, ``RpcCall``, ...) are generated from proxy.proto
on the bases below, so they exist exactly for the events of the schema. See the bases'
module for what a call offers; everything here is also importable from :mod:`centrifugo_types`.
"""

from ._call import (
    AnyCall,
    BidirectionalStreamCall,
    DisconnectableCall,
    JsonPayload,
    Metadata,
    ProxyCall,
    RejectableCall,
    StreamCall,
    UnidirectionalStreamCall,
)
from ._generated import proxy_calls as _proxy_calls
from ._generated.proxy_calls import *  # noqa: F403
from ._generated.proxy_calls import CALL_CLASSES

__all__ = [
    "CALL_CLASSES",
    "AnyCall",
    "BidirectionalStreamCall",
    "DisconnectableCall",
    "JsonPayload",
    "Metadata",
    "ProxyCall",
    "RejectableCall",
    "StreamCall",
    "UnidirectionalStreamCall",
]
__all__ += _proxy_calls.__all__
