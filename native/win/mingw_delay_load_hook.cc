// MinGW builds only (scripts/win/Makefile); node-gyp adds its own
// win_delay_load_hook.cc to MSVC builds.
//
// The addon imports the Node-API functions from "node.exe" through a
// delay-load import library. This hook resolves that name to the process
// that loaded the addon, so the addon also works in a renamed node.exe or
// another host that exports Node-API (Electron).
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
// After windows.h.
#include <delayimp.h>
#include <string.h>

static FARPROC WINAPI LoadExeHook(unsigned int event, DelayLoadInfo* info) {
  if (event != dliNotePreLoadLibrary) return nullptr;
  if (_stricmp(info->szDll, "node.exe") != 0) return nullptr;
  return reinterpret_cast<FARPROC>(GetModuleHandleW(nullptr));
}

extern "C" {
PfnDliHook __pfnDliNotifyHook2 = LoadExeHook;
}
