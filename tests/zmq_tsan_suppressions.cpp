// Linked into the ZeroMQ tests. libzmq is not built with ThreadSanitizer: it hands message
// buffers between its threads through its own lock-free queues, which TSan cannot see, so
// it reports the memcpy calls inside libzmq as races. Those reports are about libzmq's
// internals, not kvbm; kvbm's own synchronization stays checked. Has no effect without TSan.
// TSan's own hook: its name is fixed by the sanitizer runtime.
// NOLINTNEXTLINE(bugprone-reserved-identifier,readability-identifier-naming)
extern "C" const char* __tsan_default_suppressions();
// libsodium does CURVE's crypto on libzmq's I/O thread (decrypting into the buffer handed
// over the same way). Debian's cpp-httplib is a compiled library without TSan too: its
// worker threads' hand-offs are invisible (test_hub_client runs kvbm-hub's server).
// NOLINTNEXTLINE(bugprone-reserved-identifier,readability-identifier-naming)
extern "C" const char* __tsan_default_suppressions() {
    return "called_from_lib:libzmq.so\ncalled_from_lib:libsodium.so\ncalled_from_lib:libcpp-httplib.so\n";
}
