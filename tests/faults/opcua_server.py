"""A real asyncua server for the fault-injection suite, run as its own process so that a test can
SIGKILL it: `Cell.Ticks` counts up every 100 ms (a subscribed tag with a new value at 10 Hz),
`Cell.Started` holds the process's start time in epoch ms (a polled tag that tells one run of
the server from the next).

`python tests/faults/opcua_server.py PORT` prints `{"port": n, "started": ms}` once it listens
(PORT 0: any), then one JSON line for each session it creates and each subscription it creates
or deletes, with the subscriptions live after it: what the server saw, for the test to assert on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import orjson
from asyncua import ua
from asyncua.server.server import Server

NAMESPACE = "urn:edgecell:faults"
TICKS = "Cell.Ticks"
STARTED = "Cell.Started"
TICK_PERIOD_S = 0.1


def node_id(name: str, namespace_index: int = 2) -> str:
    """The NodeId string of one of the server's nodes (its namespace is registered first: 2)."""
    return f"ns={namespace_index};s={name}"


# The tags a device config reads from this server (tests/faults/daemon.py, opcua_device).
SUBSCRIBED = {"ticks": node_id(TICKS)}
POLLED = {"started": node_id(STARTED)}


def _report(event: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(event) + b"\n")
    sys.stdout.flush()


def _observe(server: Server) -> None:
    """Report every CreateSession, CreateSubscription and DeleteSubscriptions the server
    handles, by wrapping the internal services that carry them out."""
    iserver = server.iserver
    subscriptions = iserver.subscription_service
    create_session = iserver.create_session
    create_subscription = subscriptions.create_subscription
    delete_subscriptions = subscriptions.delete_subscriptions

    def live_of(session_id: ua.NodeId) -> int:
        return sum(1 for s in subscriptions.subscriptions.values() if s.session_id == session_id)

    def counting_session(*args: Any, **kwargs: Any) -> Any:
        session = create_session(*args, **kwargs)
        _report({"event": "session", "name": session.name})
        return session

    async def counting_subscription(
        params: ua.CreateSubscriptionParameters, callback: Any, session_id: ua.NodeId,
        *args: Any, **kwargs: Any,
    ) -> ua.CreateSubscriptionResult:
        result = await create_subscription(params, callback, session_id, *args, **kwargs)
        _report(
            {
                "event": "subscription_created",
                "id": result.SubscriptionId,
                "session": session_id.to_string(),
                "live": len(subscriptions.subscriptions),
                "live_of_session": live_of(session_id),
            }
        )
        return result

    async def counting_delete(ids: list[int]) -> list[ua.StatusCode]:
        results = await delete_subscriptions(ids)
        _report(
            {"event": "subscriptions_deleted", "ids": ids, "live": len(subscriptions.subscriptions)}
        )
        return results

    iserver.create_session = counting_session  # type: ignore[method-assign]
    subscriptions.create_subscription = counting_subscription  # type: ignore[method-assign]
    subscriptions.delete_subscriptions = counting_delete  # type: ignore[method-assign]


async def _serve(port: int) -> None:
    started_ms = time.time() * 1000
    server = Server()
    await server.init()
    server.disable_clock(True)
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    index = await server.register_namespace(NAMESPACE)
    if node_id(TICKS, index) != SUBSCRIBED["ticks"]:
        raise RuntimeError(f"namespace {NAMESPACE} got index {index}, not the 2 node_id() says")
    cell = await server.nodes.objects.add_object(
        ua.NodeId("Cell", index), ua.QualifiedName("Cell", index)
    )
    ticks = await cell.add_variable(
        ua.NodeId(TICKS, index),
        ua.QualifiedName("Ticks", index),
        ua.Variant(0, ua.VariantType.UInt32),
    )
    await cell.add_variable(
        ua.NodeId(STARTED, index),
        ua.QualifiedName("Started", index),
        ua.Variant(started_ms, ua.VariantType.Double),
    )
    _observe(server)
    await server.start()
    assert server.bserver is not None
    _report({"port": server.bserver.port, "started": started_ms})
    count = 0
    while True:  # until killed
        await asyncio.sleep(TICK_PERIOD_S)
        count += 1
        await ticks.write_value(ua.Variant(count, ua.VariantType.UInt32))


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_serve(int(sys.argv[1])))
