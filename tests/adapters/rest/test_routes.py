"""The REST routes of the contract, against a real uvicorn server."""

from __future__ import annotations

import asyncio

import httpx

from tests.support import serve, stream


async def test_post_answers_the_stored_message(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        r = await client.post(f"{server.url()}/api/room/lobby", json={"userId": " ann ", "text": "hi"})
        assert r.status_code == 201
        body = r.json()
        assert body["success"] is True
        assert body["message"]["userId"] == "ann"
        assert body["message"]["roomId"] == "lobby"
        assert body["message"]["text"] == "hi"
        assert set(body["message"]) == {"id", "roomId", "userId", "text", "time"}


async def test_go_clients_data_field_is_accepted(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        r = await client.post(f"{server.url()}/api/room/lobby", json={"userId": "go", "data": "from go"})
        assert r.status_code == 201 and r.json()["message"]["text"] == "from go"


async def test_history_room_info_rooms_and_delete(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        base = server.url()
        ids = []
        for i in range(5):
            r = await client.post(f"{base}/api/room/lobby", json={"userId": "ann", "text": f"m{i}"})
            ids.append(r.json()["message"]["id"])
        page = (await client.get(f"{base}/api/room/lobby/messages", params={"limit": 2})).json()
        assert [m["text"] for m in page["messages"]] == ["m3", "m4"]
        page = (await client.get(f"{base}/api/room/lobby/messages?limit=2&after={ids[0]}")).json()
        assert [m["text"] for m in page["messages"]] == ["m1", "m2"]
        page = (await client.get(f"{base}/api/room/lobby/messages?limit=3&before={ids[3]}")).json()
        assert [m["text"] for m in page["messages"]] == ["m0", "m1", "m2"]
        assert (await client.get(f"{base}/api/room/empty/messages")).json() == {"messages": []}

        assert (await client.get(f"{base}/api/room/lobby")).json() == {
            "roomId": "lobby",
            "listeners": 0,
            "lastId": ids[-1],
        }
        async with stream(client, f"{base}/api/stream/quiet"):
            rooms = (await client.get(f"{base}/api/rooms")).json()["rooms"]
            assert rooms == [
                {"roomId": "lobby", "listeners": 0, "lastId": ids[-1]},
                {"roomId": "quiet", "listeners": 1, "lastId": None},
            ]
        r = await client.delete(f"{base}/api/room/lobby")
        assert r.status_code == 200 and r.json() == {"success": True}
        assert (await client.get(f"{base}/api/room/lobby/messages")).json() == {"messages": []}
        assert (await client.get(f"{base}/api/room/lobby")).json()["lastId"] is None


async def test_stream_resumes_by_header_and_by_query(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        base = server.url()
        for room, by_header in (("by-header", True), ("by-query", False)):
            ids = [
                (await client.post(f"{base}/api/room/{room}", json={"userId": "a", "text": f"m{i}"})).json()[
                    "message"
                ]["id"]
                for i in range(3)
            ]
            url = f"{base}/api/stream/{room}" + ("" if by_header else f"?lastEventId={ids[0]}")
            async with stream(client, url, {"Last-Event-ID": ids[0]} if by_header else {}) as sse:
                got = await sse.messages(2)
                assert [e.id for e in got] == ids[1:]
                r = await client.post(f"{base}/api/room/{room}", json={"userId": "a", "text": "live"})
                [live] = await sse.messages(1)
                assert live.json() == r.json()["message"]


async def test_an_empty_last_event_id_header_leaves_the_query_to_resume(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        base = server.url()
        posted = [
            (await client.post(f"{base}/api/room/q", json={"userId": "a", "text": f"m{i}"})).json()["message"]
            for i in range(2)
        ]
        url = f"{base}/api/stream/q?lastEventId={posted[0]['id']}"
        async with stream(client, url, {"Last-Event-ID": ""}) as sse:
            [replayed] = await sse.messages(1)
            assert replayed.json() == posted[1]


async def test_head_on_a_stream_answers_the_headers_and_ends(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        base = server.url()
        r = await client.head(f"{base}/api/stream/heads")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        # The same connection serves the next request: the HEAD response ended.
        assert (await client.get(f"{base}/api/room/heads")).json()["listeners"] == 0


async def test_a_client_that_pipelines_behind_a_stream_and_leaves_frees_its_listener(
    client: httpx.AsyncClient,
) -> None:
    async with serve("rest", keepalive=0.2) as server:
        base = server.url()
        host, port = base.removeprefix("http://").split(":")
        async with stream(client, f"{base}/api/stream/other") as other:
            assert await other.comment(timeout=2) == "connected"
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"GET /api/stream/piped HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            await writer.drain()
            assert await server.listeners_become("piped", 1)
            writer.close()
            # uvicorn tells only the newest request of a hang-up: the stream must hear of it too.
            assert await server.listeners_become("piped", 0, within=2)
            assert (await client.get(f"{base}/api/room/piped")).json()["listeners"] == 0
            # ...and the clock still serves every other stream.
            assert await other.comment(timeout=2) == "keepalive"
            assert await other.comment(timeout=2) == "keepalive"


async def test_resume_from_a_forgotten_id_starts_with_gap(client: httpx.AsyncClient) -> None:
    from roomchat.bootstrap import ServiceSettings

    async with serve("rest", service_settings=ServiceSettings(history=3)) as server:
        base = server.url()
        ids = [
            (await client.post(f"{base}/api/room/r", json={"userId": "a", "text": f"m{i}"})).json()[
                "message"
            ]["id"]
            for i in range(5)
        ]
        async with stream(client, f"{base}/api/stream/r", {"Last-Event-ID": ids[0]}) as sse:
            gap = await sse.next()
            assert gap is not None and gap.event == "gap"
            assert gap.json() == {"lastEventId": ids[0], "oldestId": ids[2]}
            assert [e.id for e in await sse.messages(3)] == ids[2:]


async def test_delete_sends_deleted_and_ends_the_stream(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        base = server.url()
        async with stream(client, f"{base}/api/stream/doomed") as sse:
            await client.delete(f"{base}/api/room/doomed")
            ev = await sse.next()
            assert ev is not None and ev.event == "deleted" and ev.json() == {"roomId": "doomed"}
            assert await sse.next() is None


async def test_idle_stream_gets_keepalive_comments(client: httpx.AsyncClient) -> None:
    async with serve("rest", keepalive=0.1) as server:
        base = server.url()
        async with stream(client, f"{base}/api/stream/idle") as sse:
            r = await client.post(f"{base}/api/room/idle", json={"userId": "a", "text": "x"})
            assert r.status_code == 201
            await sse.messages(1)
            assert await sse.comment(timeout=2) == "keepalive"


async def test_idle_streams_get_one_keepalive_per_interval_not_more(client: httpx.AsyncClient) -> None:
    async with (
        serve("rest", keepalive=0.4) as server,
        stream(client, f"{server.url()}/api/stream/calm") as sse,
    ):
        assert await sse.comment(timeout=2) == "connected"
        assert await sse.comment(timeout=2) == "keepalive"
        started = asyncio.get_running_loop().time()
        for _ in range(2):
            assert await sse.comment(timeout=2) == "keepalive"
        assert asyncio.get_running_loop().time() - started >= 0.7  # two intervals, less timer slack


async def test_stream_headers(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server, client.stream("GET", f"{server.url()}/api/stream/h") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["cache-control"] == "no-cache"


async def test_health_metrics_openapi_and_docs(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        base = server.url()
        health = await client.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        async with stream(client, f"{base}/api/stream/m") as sse:
            await client.post(f"{base}/api/room/m", json={"userId": "a", "text": "x"})
            await sse.messages(1)
            metrics = (await client.get(f"{base}/metrics")).text
        assert 'roomchat_listeners{transport="sse"} 1.0' in metrics
        assert "roomchat_messages_published_total 1.0" in metrics
        assert "roomchat_deliveries_total 1.0" in metrics
        assert "roomchat_listeners_lagged_total 0.0" in metrics
        spec = (await client.get(f"{base}/openapi.json")).json()
        assert spec["openapi"].startswith("3.")
        assert {
            "/api/room/{roomId}",
            "/api/room/{roomId}/messages",
            "/api/stream/{roomId}",
            "/api/rooms",
        } <= set(spec["paths"])
        docs = await client.get(f"{base}/docs")
        assert docs.status_code == 200 and "/openapi.json" in docs.text
        assert "http://" not in docs.text and "https://" not in docs.text  # no CDN
