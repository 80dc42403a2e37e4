"""W5 memory peer: N idle TCP connections on 127.0.0.1 with uvloop (or
asyncio) transports, both ends in this process; the same shape as
bench/w5_idle_memory.lua asyncio.  usage: w5_idle_memory.py {uvloop|asyncio} N"""
import asyncio
import sys

kind, N = sys.argv[1], int(sys.argv[2])


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    transports = []
    for _ in range(N):
        t, _p = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        transports.append(t)
    await asyncio.sleep(0.25)
    for t in transports:
        t.close()
    server.close()


if kind == "uvloop":
    import uvloop
    uvloop.install()
asyncio.run(main())
print(f"W5 idle connections {kind} N={N}")
