# Linux-only N-API addon: setsockopt/getsockopt for TCP sockets (sockopt.cc), and spawning
# short commands without fork() (spawn.cc).
# Built by native/build.mjs; a failed build is not fatal (lanes fall back to kernel autotuning).
{
  "targets": [
    {
      "target_name": "sockopt",
      "sources": ["sockopt.cc", "spawn.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-fexceptions", "-Wall", "-Wextra"]
    }
  ]
}
