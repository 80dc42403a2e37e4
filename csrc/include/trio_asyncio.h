/*
** trio_asyncio.h — the contract for C hosts embedding trio-asyncio.
*/
#ifndef TRIO_ASYNCIO_H
#define TRIO_ASYNCIO_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The C module behind require "trio_asyncio.core". */
int luaopen_trio_asyncio_core(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
