{
  "targets": [
    {
      "target_name": "wsgate_tunnel",
      "sources": ["native/binding.cc", "native/engine.cc", "native/tunnel.cc", "native/front.cc", "native/wsframe.cc", "native/tls.cc"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "conditions": [["OS!='linux'", {"type": "none"}]]
    }
  ]
}
