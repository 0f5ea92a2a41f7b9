#!/usr/bin/env python3
"""A TCP proxy that delays every byte sent to the target by a fixed time.

Usage: latency-proxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS

Each chunk a client sends is forwarded DELAY_MS after it arrived (order
kept); answers come back at once. Put in front of a local S3-compatible
server, it gives every request the round trip of a distant store (real S3
PUTs take tens of ms) while the server itself stays as fast as it is, so
a benchmark sees what latency, not capacity, does to the write path.
"""
import asyncio
import sys


async def forward(reader, writer, delay_s):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def pump():
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                arrived, data = item
                wait = arrived + delay_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    task = asyncio.create_task(pump())
    try:
        while data := await reader.read(1 << 16):
            queue.put_nowait((loop.time(), data))
    except ConnectionError:
        pass
    queue.put_nowait(None)
    await task


async def main():
    listen_port = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    delay_s = float(sys.argv[3]) / 1000.0

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            forward(client_reader, server_writer, delay_s),
            forward(server_reader, client_writer, 0.0),
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
