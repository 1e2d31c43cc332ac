/// @file kvbm/release.hpp
/// EventReleaseHandle: the RAII token a registered block holds. When the last handle for a
/// block goes away, its destructor publishes `Remove(hash)` on the event channel (Rust:
/// kvbm-logical's `EventReleaseHandle`, whose Drop sends `KvCacheEvent::Remove`).
#pragma once

#include <kvbm/broadcast.hpp>
#include <kvbm/config.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>

#include <utility>

KVBM_NAMESPACE_BEGIN

/// Sends `KvCacheEvent<H>::remove(hash)` exactly once, when destroyed (or assigned over);
/// a moved-from handle sends nothing. Move-only.
///
/// It holds its own Sender, which keeps the channel open: receivers cannot see `closed`
/// while a block is still registered, so a Remove is never lost because the manager (or
/// whoever held the original sender) shut down first. "No receivers" is ignored: nobody is
/// listening, so there is nobody to tell.
///
/// Thread safety: a handle is used by one thread at a time; different handles may be
/// destroyed concurrently (each sends through its own Sender copy).
template <SequenceHash H = PositionalLineageHash>
class EventReleaseHandle {
public:
    using hash_type = H;
    using event_type = KvCacheEvent<H>;

    EventReleaseHandle(H hash, broadcast::Sender<event_type> sender) noexcept(std::is_nothrow_move_constructible_v<H>)
        : m_hash(std::move(hash)), m_sender(std::move(sender)) {}

    EventReleaseHandle(EventReleaseHandle&& other) noexcept(std::is_nothrow_move_constructible_v<H>)
        : m_hash(std::move(other.m_hash)),
          m_sender(std::move(other.m_sender)),
          m_armed(std::exchange(other.m_armed, false)) {}

    /// Releases the block this handle held (sends its Remove), then takes over `other`'s.
    EventReleaseHandle& operator=(EventReleaseHandle&& other) noexcept(std::is_nothrow_move_assignable_v<H>) {
        if (this != &other) {
            release();
            m_hash = std::move(other.m_hash);
            m_sender = std::move(other.m_sender);
            m_armed = std::exchange(other.m_armed, false);
        }
        return *this;
    }

    EventReleaseHandle(const EventReleaseHandle&) = delete;
    EventReleaseHandle& operator=(const EventReleaseHandle&) = delete;

    ~EventReleaseHandle() { release(); }

    /// The block this handle releases.
    [[nodiscard]] const H& hash() const noexcept { return m_hash; }

private:
    void release() noexcept {
        if (std::exchange(m_armed, false)) {
            try {
                // Refused only when there are no receivers: nothing to do.
                (void)m_sender.send(event_type::remove(m_hash));
            } catch (...) {  // only reachable if H's copy throws; never escape a destructor
            }
        }
    }

    H m_hash;
    broadcast::Sender<event_type> m_sender;
    bool m_armed = true;  // false once moved from or released
};

KVBM_NAMESPACE_END
