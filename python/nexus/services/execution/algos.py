"""Execution algorithms: parent orders sliced into child orders over time.

The domain side of `ExecuteAlgo` (no gRPC types here). A parent order has a
schedule — when each child order leaves and how much of the parent should be
done by then — and a runner that sends the children through the Rust engine
(so each one passes the pre-trade checks, venue selection and the FIX session
like any other order) and keeps the transaction-cost analysis.

Schedules:

* TWAP: equal slices at equal intervals over the window (optional jitter of
  each slice time, a fraction of the interval).
* VWAP: slices weighted by a historical intraday volume profile: the share of
  volume in each time-of-day bucket over the last stored days. FX quotes carry
  no traded volume, so their profile counts ticks (the usual proxy); futures
  trades count traded size.
* Implementation shortfall: the Almgren-Chriss optimal trajectory for a risk
  aversion lambda, temporary impact eta and permanent impact gamma, with the
  volatility measured from the recent quotes. Prices are fractions of the
  arrival price, quantities the parent's units, time seconds. lambda -> 0 gives
  TWAP; a larger lambda trades faster at the start.

Each child is a limit IOC at the touch (the ask for a buy, the bid for a sell),
never beyond the parent's limit price, and for VWAP at most
`max_participation` of the size shown there: what does not fill at once rolls
into the next slice, and the last slice asks for everything left; what that
misses (the market moved away) is asked for again at the new touch every
`CATCH_UP_S` until the window ends. The parent ends
COMPLETED when filled, EXPIRED when the window ends first, CANCELED by
`cancel` or the kill switch, FAILED after repeated refusals of its children.

A parent survives a restart of the service (`AlgoStore`): its state is written
on every change, and a parent still running is `suspend`ed at stop and
`resume`d at start, from the first slice it had not sent; one whose window
ended meanwhile ends EXPIRED (or COMPLETED) with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import logging
import math
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AlgoKind",
    "AlgoOrder",
    "AlgoSpec",
    "AlgoState",
    "AlgoStore",
    "Quote",
    "allocate",
    "implementation_shortfall_weights",
    "intraday_profile",
    "profile_weights",
    "twap_times",
    "volatility_per_sqrt_second",
]

#: Consecutive refused children after which the parent fails.
MAX_REFUSALS = 3
#: How long a child IOC may take to end before the runner stops waiting for it.
CHILD_TIMEOUT_S = 5.0
#: After the last slice, how often what is left is asked for again at the new
#: touch until the window ends (at most a quarter of the window).
CATCH_UP_S = 0.25
#: Terminal order statuses (of the engine's order dicts).
_DONE = frozenset({"filled", "canceled", "rejected", "expired", "replaced"})

log = logging.getLogger("nexus.execution.algos")


class AlgoKind(enum.Enum):
    """The execution algorithm of a parent order."""

    TWAP = "twap"
    VWAP = "vwap"
    IMPLEMENTATION_SHORTFALL = "implementation_shortfall"


class AlgoState(enum.Enum):
    """Where a parent order is."""

    RUNNING = "running"
    COMPLETED = "completed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    FAILED = "failed"


@dataclass(frozen=True)
class Quote:
    """A top of book (price and size mantissas; sizes 0 when unknown) and when
    it was seen (wall clock, ns)."""

    bid: int
    ask: int
    ts_ns: int
    bid_size: int = 0
    ask_size: int = 0

    @property
    def mid(self) -> float:
        """The mid price (mantissa units)."""
        return (self.bid + self.ask) / 2


# -- schedules --------------------------------------------------------------


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Splits `total` units by `weights` into integers that sum to `total`.

    Rounds the cumulative target, not each slice, so rounding never drifts.
    """
    if total < 0:
        raise ValueError(f"total must not be negative, got {total}")
    if not weights or any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError("weights must be finite, non-negative and not empty")
    mass = math.fsum(weights)
    if mass <= 0:
        raise ValueError("weights must not all be zero")
    out, done, cumulative = [], 0, 0.0
    for w in weights:
        cumulative += w
        target = round(total * min(cumulative / mass, 1.0))
        out.append(target - done)
        done = target
    out[-1] += total - done
    return out


def twap_times(
    start_ns: int, end_ns: int, slices: int, jitter: float = 0.0, rng: random.Random | None = None
) -> list[int]:
    """Slice times: the start of each of `slices` equal intervals, each moved
    later by up to `jitter` of an interval (uniform), never past the window."""
    if slices < 1:
        raise ValueError(f"slices must be at least 1, got {slices}")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    if end_ns <= start_ns:
        raise ValueError("the window must end after it starts")
    step = (end_ns - start_ns) / slices
    rng = rng or random.SystemRandom()
    return [
        start_ns + int(step * (k + (rng.random() * jitter if jitter else 0.0)))
        for k in range(slices)
    ]


def implementation_shortfall_weights(
    slices: int,
    duration_s: float,
    *,
    sigma: float,
    risk_aversion: float,
    temporary_impact: float,
    permanent_impact: float,
) -> list[float]:
    """Share of the parent traded in each slice on the Almgren-Chriss trajectory.

    Holdings after slice j are x_j = X sinh(kappa (T - t_j)) / sinh(kappa T)
    with t_j = j tau, tau = T / slices and kappa from
    2 (cosh(kappa tau) - 1) / tau^2 = lambda sigma^2 / eta~,
    eta~ = eta - gamma tau / 2 (Almgren & Chriss 2000, section 3).
    """
    if slices < 1:
        raise ValueError(f"slices must be at least 1, got {slices}")
    if not duration_s > 0:
        raise ValueError(f"duration must be positive, got {duration_s}")
    for name, value in (
        ("sigma", sigma),
        ("risk_aversion", risk_aversion),
        ("temporary_impact", temporary_impact),
        ("permanent_impact", permanent_impact),
    ):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and not negative, got {value}")
    tau = duration_s / slices
    eta_tilde = temporary_impact - permanent_impact * tau / 2
    if temporary_impact <= 0 or eta_tilde <= 0:
        raise ValueError(
            "temporary_impact must be positive and exceed permanent_impact * interval / 2"
        )
    kappa_tilde_sq = risk_aversion * sigma * sigma / eta_tilde
    if kappa_tilde_sq == 0:
        return [1.0 / slices] * slices  # no risk aversion: the straight line (TWAP)
    kappa = math.acosh(1 + kappa_tilde_sq * tau * tau / 2) / tau
    if kappa * duration_s > 700:  # sinh overflows: everything in the first slice
        return [1.0] + [0.0] * (slices - 1)
    denominator = math.sinh(kappa * duration_s)
    holdings = [math.sinh(kappa * (duration_s - j * tau)) / denominator for j in range(slices + 1)]
    return [max(holdings[j] - holdings[j + 1], 0.0) for j in range(slices)]


def intraday_profile(times_ns: Sequence[int], sizes: Sequence[float], bucket_s: int) -> list[float]:
    """Share of volume in each time-of-day bucket (UTC) of `bucket_s` seconds.

    `sizes` are traded sizes, or ones to count ticks.
    """
    if bucket_s <= 0 or 86_400 % bucket_s:
        raise ValueError(f"bucket_s must divide a day, got {bucket_s}")
    buckets = [0.0] * (86_400 // bucket_s)
    for ts, size in zip(times_ns, sizes, strict=True):
        buckets[(ts // 1_000_000_000) % 86_400 // bucket_s] += size
    total = math.fsum(buckets)
    return [b / total for b in buckets] if total > 0 else buckets


def profile_weights(
    profile: Sequence[float], slice_times_ns: Sequence[int], end_ns: int
) -> list[float]:
    """Weight of each slice: the profile's mass over its interval (until the next
    slice, or the end), read by time of day; uniform where the profile is empty."""
    if not profile:
        raise ValueError("empty profile")
    bucket_ns = 86_400 * 1_000_000_000 // len(profile)
    bounds = [*slice_times_ns, end_ns]
    weights = []
    for a, b in itertools.pairwise(bounds):
        mass, t = 0.0, a
        while t < b:  # walk the buckets the interval overlaps
            in_day = t % (86_400 * 1_000_000_000)
            k = in_day // bucket_ns
            step = min(b - t, (k + 1) * bucket_ns - in_day)
            mass += profile[k] * step / bucket_ns
            t += step
        weights.append(mass)
    if math.fsum(weights) <= 0:
        return [1.0] * len(weights)
    return weights


def volatility_per_sqrt_second(quotes: Sequence[Quote]) -> float:
    """Volatility of the mid's log returns per square root of a second."""
    pairs = [(a, b) for a, b in itertools.pairwise(quotes) if b.ts_ns > a.ts_ns]
    if len(pairs) < 2:
        return 0.0
    returns = [math.log(b.mid / a.mid) for a, b in pairs]
    seconds = (pairs[-1][1].ts_ns - pairs[0][0].ts_ns) / 1e9
    return math.sqrt(math.fsum(r * r for r in returns) / seconds) if seconds > 0 else 0.0


# -- the runner ---------------------------------------------------------------


@dataclass(frozen=True)
class AlgoSpec:
    """A parent order as accepted (mantissas at the instrument's scales)."""

    algo_id: str
    kind: AlgoKind
    symbol: str
    side: str  # "buy" or "sell"
    quantity: int
    slice_times_ns: tuple[int, ...]
    slice_quantities: tuple[int, ...]
    end_ns: int
    limit_price: int | None = None
    venues: tuple[str, ...] = ()
    #: Most of the size shown on the far side one child may take, in (0, 1];
    #: 0 for no cap.
    max_participation: float = 0.0


@dataclass
class AlgoOrder:
    """A running parent order: sends its children through `engine`.

    `engine` is the Rust ExecutionEngine (or anything with its `submit`,
    `order`, `orders`, `reports_since` and `last_sequence` methods); `quote`
    returns the latest top of book of the symbol, or None; `on_child` hears the
    order id of each child as it is sent; `on_change` hears that the state
    changed (a child sent, fills booked, the parent ended), to persist it.
    """

    spec: AlgoSpec
    engine: Any
    quote: Callable[[], Quote | None]
    on_child: Callable[[int], None] = lambda _order_id: None
    on_change: Callable[[], None] = lambda: None
    state: AlgoState = AlgoState.RUNNING
    error: str = ""
    arrival_mid: float | None = None
    children: list[int] = field(default_factory=list)
    filled: int = 0
    notional: float = 0.0  # sum of fill quantity x price (mantissas)
    fees: int = 0
    market_mid_sum: float = 0.0
    market_mid_count: int = 0
    _cancel: asyncio.Event = field(default_factory=asyncio.Event)
    _cursor: int = 0
    _refusals: int = 0
    #: The first slice not sent yet.
    _next_slice: int = 0
    _task: asyncio.Task[None] | None = None

    def to_record(self) -> dict[str, Any]:
        """The parent as plain JSON data: the accepted spec, progress, children
        and the inputs of its cost analysis."""
        spec = asdict(self.spec)
        spec["kind"] = self.spec.kind.value
        return {
            "spec": spec,
            "state": self.state.value,
            "error": self.error,
            "arrival_mid": self.arrival_mid,
            "children": list(self.children),
            "filled": self.filled,
            "notional": self.notional,
            "fees": self.fees,
            "market_mid_sum": self.market_mid_sum,
            "market_mid_count": self.market_mid_count,
            "cursor": self._cursor,
            "refusals": self._refusals,
            "next_slice": self._next_slice,
        }

    @classmethod
    def from_record(
        cls,
        record: dict[str, Any],
        engine: Any,
        quote: Callable[[], Quote | None],
        on_child: Callable[[int], None] = lambda _order_id: None,
        on_change: Callable[[], None] = lambda: None,
    ) -> AlgoOrder:
        """A parent from `to_record`'s data (not running: see `resume`)."""
        raw = dict(record["spec"])
        raw["kind"] = AlgoKind(raw["kind"])
        for name in ("slice_times_ns", "slice_quantities", "venues"):
            raw[name] = tuple(raw[name])
        algo = cls(
            spec=AlgoSpec(**raw),
            engine=engine,
            quote=quote,
            on_child=on_child,
            on_change=on_change,
            state=AlgoState(record["state"]),
            error=str(record["error"]),
            arrival_mid=record["arrival_mid"],
            children=[int(c) for c in record["children"]],
            filled=int(record["filled"]),
            notional=float(record["notional"]),
            fees=int(record["fees"]),
            market_mid_sum=float(record["market_mid_sum"]),
            market_mid_count=int(record["market_mid_count"]),
        )
        algo._cursor = int(record["cursor"])
        algo._refusals = int(record["refusals"])
        algo._next_slice = int(record["next_slice"])
        return algo

    async def suspend(self) -> None:
        """Stops the runner without ending the parent (the service is stopping
        and will resume it); its state stays RUNNING."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=CHILD_TIMEOUT_S)

    def resume(self, now_ns: int) -> None:
        """Takes up a parent restored RUNNING after a restart.

        Children the engine holds under this parent's ClOrdIDs are adopted
        (one sent just before the stop may not have been recorded), fills
        reported since the last save are booked, and the runner goes on from
        the first slice not sent; slices whose time passed meanwhile roll into
        it. A parent whose window has ended is ended instead: COMPLETED when
        filled, else EXPIRED, with the reason.
        """
        if self.state is not AlgoState.RUNNING:
            return
        pattern = re.compile(re.escape(self.spec.algo_id) + r"-(\d+)$")
        for order in self.engine.orders():
            found = pattern.match(str(order.get("original_client_order_id", "")))
            if found is None:
                continue
            order_id = int(order["order_id"])
            if order_id not in self.children:
                self.children.append(order_id)
                self.on_child(order_id)
            self._next_slice = max(self._next_slice, int(found.group(1)))
        self._book_fills()
        children = [self.engine.order(c) for c in self.children]
        filled = sum(int(c["filled"]) for c in children if c is not None)
        if filled != self.filled:  # the report log no longer reaches back: the orders say
            self.filled = filled
            self.notional = float(
                sum(int(c["filled"]) * int(c["average_price"] or 0) for c in children if c)
            )
        if self.filled >= self.spec.quantity:
            self.state = AlgoState.COMPLETED
        elif now_ns >= self.spec.end_ns:
            self.state = AlgoState.EXPIRED
            self.error = "the window ended while the service was down"
        else:
            self._task = asyncio.create_task(self._run(), name=f"algo-{self.spec.algo_id}")
        self.on_change()

    @property
    def average_price(self) -> float | None:
        """Average fill price (mantissa units), None before the first fill."""
        return self.notional / self.filled if self.filled else None

    @property
    def slippage_bps(self) -> float:
        """Cost against the arrival mid in bps (positive = paid more / sold lower)."""
        if self.average_price is None or not self.arrival_mid:
            return 0.0
        sign = 1.0 if self.spec.side == "buy" else -1.0
        return sign * (self.average_price - self.arrival_mid) / self.arrival_mid * 1e4

    @property
    def market_mid(self) -> float | None:
        """Tick-weighted mean mid over the window so far (the market benchmark)."""
        return self.market_mid_sum / self.market_mid_count if self.market_mid_count else None

    @property
    def fill_rate(self) -> float:
        """Filled / parent quantity."""
        return self.filled / self.spec.quantity

    def on_quote(self, quote: Quote) -> None:
        """Adds a quote seen during the window to the market benchmark."""
        if self.state is AlgoState.RUNNING:
            self.market_mid_sum += quote.mid
            self.market_mid_count += 1

    def start(self) -> asyncio.Task[None]:
        """Starts the runner task."""
        self._cursor = int(self.engine.last_sequence())
        self._task = asyncio.create_task(self._run(), name=f"algo-{self.spec.algo_id}")
        self.on_change()
        return self._task

    async def cancel(self, why: str = "cancelled") -> None:
        """Stops sending children; the parent ends CANCELED (if still running)."""
        if self.state is AlgoState.RUNNING:
            self.error = why
            self._cancel.set()
            if self._task is not None:
                await asyncio.wait({self._task}, timeout=CHILD_TIMEOUT_S + 1)

    async def _sleep_until(self, when_ns: int) -> bool:
        """Waits for `when_ns` (wall clock); False if cancelled meanwhile."""
        delay = (when_ns - time.time_ns()) / 1e9
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cancel.wait(), timeout=delay)
        return not self._cancel.is_set()

    def _child_order(self, quote: Quote | None, want: int) -> tuple[int, int] | None:
        """Price and quantity of a child for `want`: the touch on the far side,
        within the parent's limit and participation cap; None when there is no
        market, it is beyond the limit, or too little is shown."""
        if quote is None:
            return None
        spec = self.spec
        buy = spec.side == "buy"
        price, shown = (quote.ask, quote.ask_size) if buy else (quote.bid, quote.bid_size)
        limit = spec.limit_price
        if limit is not None and ((buy and price > limit) or (not buy and price < limit)):
            return None
        if spec.max_participation > 0 and shown > 0:
            want = min(want, int(shown * spec.max_participation))
        return (price, want) if want > 0 else None

    async def _run(self) -> None:
        spec = self.spec
        try:
            if self.arrival_mid is None:
                first = self.quote()
                self.arrival_mid = first.mid if first is not None else None
            target = 0
            last = len(spec.slice_times_ns) - 1
            for k, (due, planned) in enumerate(
                zip(spec.slice_times_ns, spec.slice_quantities, strict=True)
            ):
                target += planned
                if k < self._next_slice:  # sent before a restart
                    continue
                if not await self._sleep_until(due):
                    break
                want = (spec.quantity if k == last else target) - self.filled
                if want > 0 and not await self._send_child(k, want):
                    break
                if self.filled >= spec.quantity or self.state is AlgoState.FAILED:
                    break
            await self._finish()
        except Exception as err:  # the parent records why and stops
            self.error = f"{type(err).__name__}: {err}"
            self.state = AlgoState.FAILED
        if self.state is not AlgoState.RUNNING:
            self.on_change()

    async def _finish(self) -> None:
        """After the slices: catches up what is left, then ends the parent."""
        await self._catch_up()  # nothing when the parent failed
        if self.state is AlgoState.FAILED:
            return
        if self.filled >= self.spec.quantity:
            self.state = AlgoState.COMPLETED
        elif self._cancel.is_set():
            self.state = AlgoState.CANCELED
        else:
            await self._sleep_until(self.spec.end_ns)
            self.state = AlgoState.CANCELED if self._cancel.is_set() else AlgoState.EXPIRED

    async def _catch_up(self) -> None:
        """After the last slice: asks for what is left at the new touch every
        `CATCH_UP_S` (a quarter of the window at most) until filled, cancelled,
        failed, or the window ends."""
        spec = self.spec
        start_ns = spec.slice_times_ns[0] if spec.slice_times_ns else spec.end_ns
        pause_ns = max(int(min(CATCH_UP_S * 1e9, (spec.end_ns - start_ns) / 4)), 1_000_000)
        k = max(self._next_slice, len(spec.slice_times_ns))
        while self.filled < spec.quantity and self.state is AlgoState.RUNNING:
            due = time.time_ns() + pause_ns
            if due >= spec.end_ns or not await self._sleep_until(due):
                return
            if not await self._send_child(k, spec.quantity - self.filled):
                return
            k += 1

    async def _send_child(self, k: int, want: int) -> bool:
        """Sends slice `k` as a child for `want` and books its fills; False to stop."""
        quote = self.quote()
        if quote is not None and self.arrival_mid is None:
            self.arrival_mid = quote.mid
        order = self._child_order(quote, want)
        if order is None:
            return True  # no market, beyond the limit or too little shown: rolls on
        price, want = order
        spec = self.spec
        # Sent from the loop (the engine releases the GIL and only writes to the
        # session): the quote it is priced on is the venue's until it has left,
        # as the replayed quotes are fed from this loop too.
        child = self.engine.submit(
            f"{spec.algo_id}-{k + 1}",
            spec.symbol,
            spec.side,
            "limit",
            want,
            price,
            "ioc",
            list(spec.venues) or None,
        )
        self.children.append(int(child["order_id"]))
        self._next_slice = k + 1
        self.on_child(int(child["order_id"]))
        self.on_change()
        if child["status"] == "rejected":
            if child.get("reject_reason") == "kill_switch":
                self.error = "the kill switch is engaged"
                self._cancel.set()
                return False
            self._refusals += 1
            why = f"{child.get('reject_reason')} {child.get('text') or ''}".strip()
            self.error = f"child refused: {why}"
            if self._refusals >= MAX_REFUSALS:
                self.state = AlgoState.FAILED
                return False
            return True
        self._refusals = 0
        await self._await_child(int(child["order_id"]))
        return True

    async def _await_child(self, order_id: int) -> None:
        """Waits for a child IOC to end, then books its fills and fees."""
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        delay = 0.0005
        while time.monotonic() < deadline:
            order = self.engine.order(order_id)
            if order is None or order["status"] in _DONE:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
        self._book_fills()
        self.on_change()

    def _book_fills(self) -> None:
        """Reads the report log since the last look; books the children's fills."""
        mine = set(self.children)
        while True:
            reports = self.engine.reports_since(self._cursor, 1000)
            if not reports:
                return
            for r in reports:
                self._cursor = int(r["sequence"])
                if r["exec_type"] != "trade" or int(r["order"]["order_id"]) not in mine:
                    continue
                qty = int(r["last_quantity"] or 0)
                self.filled += qty
                self.notional += qty * int(r["last_price"] or 0)
                self.fees += int(r["commission"] or 0)


class AlgoStore:
    """The parents of the execution service in one JSON file, rewritten whole
    (a temporary file, fsynced, renamed over it) on every change.

    A file that does not read is moved aside (`<name>.corrupt-<ns>`) and
    logged with the reason, never silently dropped; the service then starts
    without parents.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, Any]]:
        """The stored records by algo id (with `request`: the accepted request,
        base64 protobuf), or none."""
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or data.get("version") != 1:
                raise ValueError("not an algo store (version 1)")
            algos = data["algos"]
            if not isinstance(algos, dict):
                raise ValueError("algos is not an object")
            return algos
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError) as err:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time_ns()}")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            log.error(
                "algo store unreadable, moved aside; starting without algo orders",
                extra={"path": str(self.path), "aside": str(aside), "reason": str(err)},
            )
            return {}

    def save(self, algos: dict[str, dict[str, Any]]) -> None:
        """Replaces the stored records with `algos`, atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": 1, "algos": algos}, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise
