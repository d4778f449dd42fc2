/* Win32 probes for the Windows test suite (not part of the package).
 *
 * Built by `npm run test:win` (scripts/win/Makefile, target test-helper)
 * into .wine-ci/build/sipc_wintest.node; on a real Windows machine build it
 * with any C compiler and point SIPC_WINTEST_ADDON at it. Plain Node-API C:
 *
 *   isWine()                      -> string (Wine version) | null
 *   currentUserSid()              -> "S-1-5-..."
 *   pipeDacl(pipeName)            -> { error, sddl }: opens the pipe (as a
 *                                    client, READ_CONTROL) and reads its DACL
 *   normalizeDacl(sddl)           -> canonical ACE list, generic rights mapped
 *                                    with the file mapping, or null if invalid
 *   tryOpen(pipeName)             -> Win32 error of CreateFileW(read|write), 0
 *   createPipe(name, first, max[, sddl])
 *                                 -> { error, id }: a bare instance (with
 *                                    that security descriptor if given)
 *   closePipe(id)
 *   busyServerStart(name, holdMs) -> id; a one-instance pipe server thread: its
 *                                    first client holds the only instance for
 *                                    holdMs, then it serves one pkt-line
 *                                    request with "pong"
 *   busyServerResult(id)          -> null while running, then a status string
 *   threadCount(pid)              -> threads of process `pid` now (Toolhelp
 *                                    snapshot), or -1
 *   asOther(pipeName)             -> { token, create, open }: what a principal
 *                                    that only the DACL's Everyone entry
 *                                    matches may do. The thread impersonates a
 *                                    restricted copy of the process token (its
 *                                    user, Administrators and SYSTEM deny-only),
 *                                    adds an instance to the pipe
 *                                    (CreateNamedPipeW, not the first) and
 *                                    opens it as a client (read | write).
 *                                    Win32 errors, 0 = done; token: making or
 *                                    impersonating the token
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <tlhelp32.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>

#define MAX_HANDLES 64

static HANDLE g_pipes[MAX_HANDLES];

typedef struct {
  wchar_t name[300];
  DWORD hold_ms;
  volatile LONG done;
  char result[256];
  HANDLE thread;
} BusyServer;

static BusyServer* g_busy[MAX_HANDLES];

static napi_value Str(napi_env env, const char* s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value Num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

static napi_value Null(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

static napi_value WideStr(napi_env env, const wchar_t* w) {
  napi_value v;
  napi_create_string_utf16(env, (const char16_t*)w, NAPI_AUTO_LENGTH, &v);
  return v;
}

static int ArgWide(napi_env env, napi_callback_info info, size_t index, wchar_t* out, size_t cap) {
  size_t argc = 4;
  napi_value argv[4];
  size_t len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (index >= argc) return 0;
  if (napi_get_value_string_utf16(env, argv[index], (char16_t*)out, cap, &len) != napi_ok) return 0;
  return 1;
}

static double ArgNum(napi_env env, napi_callback_info info, size_t index) {
  size_t argc = 4;
  napi_value argv[4];
  double d = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (index < argc) napi_get_value_double(env, argv[index], &d);
  return d;
}

static napi_value IsWine(napi_env env, napi_callback_info info) {
  typedef const char*(__cdecl * WineVersion)(void);
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  WineVersion fn = ntdll ? (WineVersion)(void*)GetProcAddress(ntdll, "wine_get_version") : NULL;
  (void)info;
  return fn ? Str(env, fn()) : Null(env);
}

static napi_value CurrentUserSid(napi_env env, napi_callback_info info) {
  HANDLE token;
  BYTE buffer[512];
  DWORD len = 0;
  LPWSTR text = NULL;
  napi_value v;
  (void)info;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) return Null(env);
  if (!GetTokenInformation(token, TokenUser, buffer, sizeof buffer, &len) ||
      !ConvertSidToStringSidW(((TOKEN_USER*)buffer)->User.Sid, &text)) {
    CloseHandle(token);
    return Null(env);
  }
  CloseHandle(token);
  v = WideStr(env, text);
  LocalFree(text);
  return v;
}

static napi_value PipeDacl(napi_env env, napi_callback_info info) {
  wchar_t name[300];
  napi_value obj;
  HANDLE h;
  PSECURITY_DESCRIPTOR sd = NULL;
  PACL dacl = NULL;
  DWORD err;
  LPWSTR text = NULL;
  napi_create_object(env, &obj);
  if (!ArgWide(env, info, 0, name, 300)) return obj;
  h = CreateFileW(name, READ_CONTROL, 0, NULL, OPEN_EXISTING, 0, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    napi_set_named_property(env, obj, "error", Num(env, GetLastError()));
    return obj;
  }
  err = GetSecurityInfo(h, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL, &sd);
  CloseHandle(h);
  napi_set_named_property(env, obj, "error", Num(env, err));
  if (err == 0 &&
      ConvertSecurityDescriptorToStringSecurityDescriptorW(sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &text, NULL)) {
    napi_set_named_property(env, obj, "sddl", WideStr(env, text));
    LocalFree(text);
  }
  if (sd) LocalFree(sd);
  return obj;
}

/* "A:0x001f01ff:S-1-5-18;D:..." with generic rights mapped as for files
 * (which is what a pipe's DACL means), so that "GA" and "FA" compare equal
 * whether or not the system mapped them when it stored the descriptor. */
static napi_value NormalizeDacl(napi_env env, napi_callback_info info) {
  static wchar_t sddl[4096];
  PSECURITY_DESCRIPTOR sd = NULL;
  BOOL present = FALSE, defaulted = FALSE;
  PACL dacl = NULL;
  GENERIC_MAPPING mapping = {FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_GENERIC_EXECUTE, FILE_ALL_ACCESS};
  char out[8192];
  size_t used = 0;
  DWORD i;
  out[0] = 0;
  if (!ArgWide(env, info, 0, sddl, 4096)) return Null(env);
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL)) return Null(env);
  if (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted) || !present || dacl == NULL) {
    LocalFree(sd);
    return Str(env, present ? "(null dacl)" : "(no dacl)");
  }
  for (i = 0; i < dacl->AceCount; i++) {
    ACE_HEADER* header;
    ACCESS_MASK mask;
    PSID sid;
    LPSTR sid_text = NULL;
    char type;
    if (!GetAce(dacl, i, (LPVOID*)&header)) continue;
    if (header->AceType == ACCESS_ALLOWED_ACE_TYPE) {
      mask = ((ACCESS_ALLOWED_ACE*)header)->Mask;
      sid = &((ACCESS_ALLOWED_ACE*)header)->SidStart;
      type = 'A';
    } else if (header->AceType == ACCESS_DENIED_ACE_TYPE) {
      mask = ((ACCESS_DENIED_ACE*)header)->Mask;
      sid = &((ACCESS_DENIED_ACE*)header)->SidStart;
      type = 'D';
    } else {
      continue;
    }
    MapGenericMask(&mask, &mapping);
    mask &= ~(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL);
    if (!ConvertSidToStringSidA(sid, &sid_text)) continue;
    used += (size_t)snprintf(out + used, sizeof out - used, "%s%c:0x%08lx:%s", used ? ";" : "", type,
                             (unsigned long)mask, sid_text);
    LocalFree(sid_text);
    if (used >= sizeof out) break;
  }
  LocalFree(sd);
  return Str(env, out);
}

static napi_value TryOpen(napi_env env, napi_callback_info info) {
  wchar_t name[300];
  HANDLE h;
  if (!ArgWide(env, info, 0, name, 300)) return Num(env, -1);
  h = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
  if (h == INVALID_HANDLE_VALUE) return Num(env, GetLastError());
  CloseHandle(h);
  return Num(env, 0);
}

static napi_value JsCreatePipe(napi_env env, napi_callback_info info) {
  wchar_t name[300];
  napi_value obj;
  int first = ArgNum(env, info, 1) != 0;
  DWORD max = (DWORD)ArgNum(env, info, 2);
  wchar_t sddl[512];
  SECURITY_ATTRIBUTES sa;
  PSECURITY_DESCRIPTOR sd = NULL;
  DWORD err;
  HANDLE h;
  int i;
  napi_create_object(env, &obj);
  if (!ArgWide(env, info, 0, name, 300)) return obj;
  if (ArgWide(env, info, 3, sddl, 512) &&
      !ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL)) {
    napi_set_named_property(env, obj, "error", Num(env, GetLastError()));
    return obj;
  }
  sa.nLength = sizeof sa;
  sa.lpSecurityDescriptor = sd;
  sa.bInheritHandle = FALSE;
  h = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                       PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, max ? max : PIPE_UNLIMITED_INSTANCES, 1024,
                       1024, 0, sd ? &sa : NULL);
  err = GetLastError();
  if (sd) LocalFree(sd);
  if (h == INVALID_HANDLE_VALUE) {
    napi_set_named_property(env, obj, "error", Num(env, err));
    return obj;
  }
  for (i = 0; i < MAX_HANDLES; i++) {
    if (g_pipes[i] == NULL) {
      g_pipes[i] = h;
      napi_set_named_property(env, obj, "error", Num(env, 0));
      napi_set_named_property(env, obj, "id", Num(env, i));
      return obj;
    }
  }
  CloseHandle(h);
  napi_set_named_property(env, obj, "error", Num(env, ERROR_TOO_MANY_OPEN_FILES));
  return obj;
}

static napi_value JsClosePipe(napi_env env, napi_callback_info info) {
  int i = (int)ArgNum(env, info, 0);
  if (i >= 0 && i < MAX_HANDLES && g_pipes[i] != NULL) {
    CloseHandle(g_pipes[i]);
    g_pipes[i] = NULL;
  }
  return Null(env);
}

static int ReadPktRequest(HANDLE h) {
  /* Reads pkt-lines until "0000"; returns the number of payload bytes or -1. */
  char header[5];
  char payload[65536];
  int total = 0;
  for (;;) {
    DWORD got = 0, want, off = 0;
    unsigned len;
    while (off < 4) {
      if (!ReadFile(h, header + off, 4 - off, &got, NULL) || got == 0) return -1;
      off += got;
    }
    header[4] = 0;
    if (sscanf(header, "%4x", &len) != 1) return -1;
    if (len == 0) return total;
    if (len < 4 || len > 65520) return -1;
    want = len - 4;
    off = 0;
    while (off < want) {
      if (!ReadFile(h, payload + off, want - off, &got, NULL) || got == 0) return -1;
      off += got;
    }
    total += (int)want;
  }
}

static DWORD WINAPI BusyThread(LPVOID arg) {
  BusyServer* s = (BusyServer*)arg;
  DWORD written;
  HANDLE h = CreateNamedPipeW(s->name, PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 1, 1024,
                              1024, 0, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    snprintf(s->result, sizeof s->result, "create failed %lu", GetLastError());
  } else if (!ConnectNamedPipe(h, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) {
    snprintf(s->result, sizeof s->result, "first connect failed %lu", GetLastError());
  } else {
    /* The only instance is taken: everyone else sees ERROR_PIPE_BUSY. */
    Sleep(s->hold_ms);
    DisconnectNamedPipe(h);
    if (!ConnectNamedPipe(h, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) {
      snprintf(s->result, sizeof s->result, "second connect failed %lu", GetLastError());
    } else {
      int n = ReadPktRequest(h);
      if (n < 0) {
        snprintf(s->result, sizeof s->result, "bad request");
      } else if (!WriteFile(h, "0008pong0000", 12, &written, NULL)) {
        snprintf(s->result, sizeof s->result, "write failed %lu", GetLastError());
      } else {
        FlushFileBuffers(h);
        snprintf(s->result, sizeof s->result, "served");
      }
      DisconnectNamedPipe(h);
    }
  }
  if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
  InterlockedExchange(&s->done, 1);
  return 0;
}

static napi_value BusyServerStart(napi_env env, napi_callback_info info) {
  int i;
  for (i = 0; i < MAX_HANDLES; i++) {
    if (g_busy[i] == NULL) break;
  }
  if (i == MAX_HANDLES) return Num(env, -1);
  g_busy[i] = (BusyServer*)calloc(1, sizeof(BusyServer));
  ArgWide(env, info, 0, g_busy[i]->name, 300);
  g_busy[i]->hold_ms = (DWORD)ArgNum(env, info, 1);
  g_busy[i]->thread = CreateThread(NULL, 0, BusyThread, g_busy[i], 0, NULL);
  return Num(env, i);
}

static napi_value BusyServerResult(napi_env env, napi_callback_info info) {
  int i = (int)ArgNum(env, info, 0);
  napi_value v;
  if (i < 0 || i >= MAX_HANDLES || g_busy[i] == NULL) return Str(env, "no such server");
  if (!g_busy[i]->done) return Null(env);
  WaitForSingleObject(g_busy[i]->thread, INFINITE);
  CloseHandle(g_busy[i]->thread);
  v = Str(env, g_busy[i]->result);
  free(g_busy[i]);
  g_busy[i] = NULL;
  return v;
}

static napi_value ThreadCount(napi_env env, napi_callback_info info) {
  DWORD pid = (DWORD)ArgNum(env, info, 0);
  THREADENTRY32 entry;
  int count = 0;
  HANDLE snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
  if (snapshot == INVALID_HANDLE_VALUE) return Num(env, -1);
  entry.dwSize = sizeof entry;
  if (Thread32First(snapshot, &entry)) {
    do {
      if (entry.th32OwnerProcessID == pid) count++;
      entry.dwSize = sizeof entry;
    } while (Thread32Next(snapshot, &entry));
  }
  CloseHandle(snapshot);
  return Num(env, count);
}

/* The process token with its user, Administrators and SYSTEM made
 * deny-only: such a token still matches Everyone, but no allow entry for
 * those three. Returns a Win32 error (0: *out is the token). */
static DWORD MakeOtherToken(HANDLE* out) {
  HANDLE process_token = NULL;
  BYTE user[256];
  BYTE admins[SECURITY_MAX_SID_SIZE], system[SECURITY_MAX_SID_SIZE];
  DWORD len = 0, admins_len = sizeof admins, system_len = sizeof system;
  SID_AND_ATTRIBUTES disable[3];
  DWORD err = 0;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ASSIGN_PRIMARY, &process_token)) {
    return GetLastError();
  }
  if (!GetTokenInformation(process_token, TokenUser, user, sizeof user, &len) ||
      !CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, admins, &admins_len) ||
      !CreateWellKnownSid(WinLocalSystemSid, NULL, system, &system_len)) {
    err = GetLastError();
  } else {
    disable[0].Sid = ((TOKEN_USER*)user)->User.Sid;
    disable[1].Sid = admins;
    disable[2].Sid = system;
    disable[0].Attributes = disable[1].Attributes = disable[2].Attributes = 0;
    if (!CreateRestrictedToken(process_token, 0, 3, disable, 0, NULL, 0, NULL, out)) err = GetLastError();
  }
  CloseHandle(process_token);
  return err;
}

static napi_value AsOther(napi_env env, napi_callback_info info) {
  wchar_t name[300];
  napi_value obj;
  HANDLE token = NULL, h;
  DWORD err;
  napi_create_object(env, &obj);
  if (!ArgWide(env, info, 0, name, 300)) return obj;
  err = MakeOtherToken(&token);
  if (err == 0 && !ImpersonateLoggedOnUser(token)) err = GetLastError();
  napi_set_named_property(env, obj, "token", Num(env, err));
  if (token) CloseHandle(token);
  if (err != 0) return obj;
  h = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT,
                       PIPE_UNLIMITED_INSTANCES, 1024, 1024, 0, NULL);
  napi_set_named_property(env, obj, "create", Num(env, h == INVALID_HANDLE_VALUE ? GetLastError() : 0));
  if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
  h = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
  napi_set_named_property(env, obj, "open", Num(env, h == INVALID_HANDLE_VALUE ? GetLastError() : 0));
  if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
  if (!RevertToSelf()) abort(); /* the JS thread must never go on as another principal */
  return obj;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"isWine", NULL, IsWine, NULL, NULL, NULL, napi_default, NULL},
      {"currentUserSid", NULL, CurrentUserSid, NULL, NULL, NULL, napi_default, NULL},
      {"pipeDacl", NULL, PipeDacl, NULL, NULL, NULL, napi_default, NULL},
      {"normalizeDacl", NULL, NormalizeDacl, NULL, NULL, NULL, napi_default, NULL},
      {"tryOpen", NULL, TryOpen, NULL, NULL, NULL, napi_default, NULL},
      {"createPipe", NULL, JsCreatePipe, NULL, NULL, NULL, napi_default, NULL},
      {"closePipe", NULL, JsClosePipe, NULL, NULL, NULL, napi_default, NULL},
      {"busyServerStart", NULL, BusyServerStart, NULL, NULL, NULL, napi_default, NULL},
      {"busyServerResult", NULL, BusyServerResult, NULL, NULL, NULL, napi_default, NULL},
      {"threadCount", NULL, ThreadCount, NULL, NULL, NULL, napi_default, NULL},
      {"asOther", NULL, AsOther, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
