"""Every service one `nexus serve` process can host: its contract and its servicer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

from nexus.clustering.v1 import clustering_pb2
from nexus.config import ServiceName
from nexus.execution.v1 import execution_pb2
from nexus.hub.v1 import hub_pb2
from nexus.marketdata.v1 import marketdata_pb2
from nexus.news.v1 import news_pb2
from nexus.portfolio.v1 import portfolio_pb2
from nexus.risk.v1 import risk_pb2
from nexus.services.context import ServiceContext
from nexus.services.execution.servicer import ExecutionServicer
from nexus.services.hub.servicer import HubServicer
from nexus.services.marketdata.servicer import MarketDataServicer
from nexus.services.snn.servicer import SnnAnalysisServicer
from nexus.snn.v1 import snn_pb2

__all__ = ["SERVICES", "ServiceSpec"]


class _Pending:
    """The servicer of a service whose capability has not landed: every RPC
    answers UNIMPLEMENTED, naming itself."""

    def __init__(self, context: ServiceContext) -> None:
        self._ctx = context


@dataclass(frozen=True)
class ServiceSpec:
    """How to host one service: its contract and the factory of its servicer."""

    name: ServiceName
    descriptor: ServiceDescriptor
    servicer: Callable[[ServiceContext], object]


SERVICES: dict[ServiceName, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            ServiceName.HUB, hub_pb2.DESCRIPTOR.services_by_name["HubService"], HubServicer
        ),
        ServiceSpec(
            ServiceName.MARKETDATA,
            marketdata_pb2.DESCRIPTOR.services_by_name["MarketDataService"],
            MarketDataServicer,
        ),
        ServiceSpec(
            ServiceName.EXECUTION,
            execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"],
            ExecutionServicer,
        ),
        ServiceSpec(
            ServiceName.SNN,
            snn_pb2.DESCRIPTOR.services_by_name["SnnAnalysisService"],
            SnnAnalysisServicer,
        ),
        ServiceSpec(
            ServiceName.NEWS, news_pb2.DESCRIPTOR.services_by_name["NewsService"], _Pending
        ),
        ServiceSpec(
            ServiceName.CLUSTERING,
            clustering_pb2.DESCRIPTOR.services_by_name["ClusteringService"],
            _Pending,
        ),
        ServiceSpec(
            ServiceName.PORTFOLIO,
            portfolio_pb2.DESCRIPTOR.services_by_name["PortfolioService"],
            _Pending,
        ),
        ServiceSpec(
            ServiceName.RISK, risk_pb2.DESCRIPTOR.services_by_name["RiskService"], _Pending
        ),
    )
}
