{
  "targets": [
    {
      "target_name": "simple_ipc",
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "sources": [
        "native/core/status.cc",
        "native/core/pkt_line.cc",
        "native/core/client_common.cc",
        "native/core/stale_lock.cc",
        "native/core/connect_policy.cc",
        "native/core/exchange.cc",
        "native/core/conversation.cc",
        "native/addon/addon.cc",
        "native/addon/client_wrap.cc",
        "native/addon/errors.cc",
        "native/addon/server_wrap.cc"
      ],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-fvisibility=hidden", "-fstack-protector-strong"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++14"],
      "conditions": [
        ["OS!='win'", {
          "sources": [
            "native/posix/unix_address.cc",
            "native/posix/socket_util.cc",
            "native/posix/socket_exchange.cc",
            "native/posix/client_posix.cc",
            "native/posix/async_client_posix.cc",
            "native/posix/listener_posix.cc",
            "native/posix/server_posix.cc",
            "native/posix/inherited_listener.cc"
          ]
        }],
        ["OS=='linux'", {
          "sources": ["native/posix/poller_epoll.cc"],
          "ldflags": ["-Wl,-z,relro,-z,now"]
        }],
        ["OS=='mac'", {
          "sources": ["native/posix/poller_poll.cc"],
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
            "MACOSX_DEPLOYMENT_TARGET": "10.15",
            "OTHER_CPLUSPLUSFLAGS": ["-Wall", "-Wextra", "-Wpedantic", "-fstack-protector-strong"]
          }
        }],
        ["OS=='win'", {
          "sources": [
            "native/win/win_util.cc",
            "native/win/pipe_name.cc",
            "native/win/security_win.cc",
            "native/win/client_win.cc",
            "native/win/server_win.cc"
          ],
          "defines": ["UNICODE", "_UNICODE", "_WIN32_WINNT=0x0A00"],
          "libraries": ["-ladvapi32"],
          "msvs_settings": {
            "VCCLCompilerTool": {
              "ExceptionHandling": 1,
              "AdditionalOptions": ["/std:c++17", "/guard:cf", "/sdl", "/W4"]
            },
            "VCLinkerTool": { "AdditionalOptions": ["/guard:cf"] }
          }
        }]
      ]
    }
  ]
}
