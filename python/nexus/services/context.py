"""What the launcher hands every servicer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from google.protobuf.descriptor import ServiceDescriptor

from nexus.config import ServiceName, Settings
from nexus.rpc import RpcCounters

__all__ = ["ServiceContext"]


@dataclass
class ServiceContext:
    """Settings, call counters, start time and the services hosted beside this one."""

    settings: Settings
    counters: RpcCounters = field(default_factory=RpcCounters)
    started_ns: int = field(default_factory=time.time_ns)
    hosted: dict[ServiceName, tuple[ServiceDescriptor, object]] = field(default_factory=dict)
