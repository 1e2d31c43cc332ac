// A worker that includes the ZeroMQ publisher does not compile the hub: if
// <kvbm/zmq_publisher.hpp> pulled in the index or the ingest, the declarations below would
// clash with theirs and this file would not compile.
#include <kvbm/zmq_publisher.hpp>

namespace kvbm {
inline namespace v0 {
struct PositionalIndex {};
struct HubIngest {};
struct ZmqHub {};
}  // namespace v0
}  // namespace kvbm

static_assert(kvbm::Publisher<kvbm::ZmqPublisher>);
