/*
** embed.h — the embedding layer: the C host API of
** include/trio_asyncio.h (running on a host's libuv loop, stepping from a
** host's main loop, guest runs, calls posted from other threads).  Built
** on engine/ only: it plugs into the engine through ta_host_hooks and the
** engine's list of owned handles.
*/
#ifndef TA_EMBED_H
#define TA_EMBED_H

#include "engine/engine.h"

int ta_open_embed(lua_State *L);

#endif
