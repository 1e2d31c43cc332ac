/// @file kvbm/registry.hpp
/// The block registry a KV cache manager keeps: one live *registration* per block hash,
/// shared by every holder of that block through a `BlockRegistrationHandle`, carrying
/// typed attachments (the events manager attaches the `EventReleaseHandle` that sends the
/// block's `Remove`). When the last handle goes the hash leaves the registry first and the
/// attachments are released after, outside every registry lock.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/recycling_allocator.hpp>
#include <kvbm/detail/schedule_point.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>

#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN

template <SequenceHash H>
class BlockRegistrationHandle;
template <SequenceHash H>
class BlockRegistry;

namespace detail {

// One attachment: a type-erased box in its registration's singly linked list (in
// attachment order). The first box that fits lives inside the registration (`in_place`),
// so the usual registration (one release handle) allocates nothing for its attachments.
struct AttachmentBase {
    AttachmentBase(const std::type_info& t, bool u) noexcept : type(t), unique(u) {}
    AttachmentBase(const AttachmentBase&) = delete;
    AttachmentBase& operator=(const AttachmentBase&) = delete;
    virtual ~AttachmentBase() = default;

    std::type_index type;
    bool unique;
    bool in_place = false;
    AttachmentBase* next = nullptr;
};

template <class T>
struct AttachmentBox final : AttachmentBase {
    template <class U>
    AttachmentBox(U&& v, bool u) : AttachmentBase(typeid(T), u), value(std::forward<U>(v)) {}
    T value;
};

// Destroys a box and frees it unless it lives in its registration.
inline void destroy_attachment(AttachmentBase* box) noexcept {
    if (box == nullptr) {
        return;
    }
    if (box->in_place) {
        box->~AttachmentBase();
    } else {
        delete box;
    }
}

template <SequenceHash H>
class Registration;

template <SequenceHash H>
struct RegistryEntry {
    // Identity of the registration this entry belongs to, so a dying registration never
    // erases an entry that is not its own.
    const Registration<H>* owner = nullptr;
    // Expired from the moment the last handle goes: from then on the hash is not in the
    // registry for lookups, while the entry itself stays until the attachments are
    // released, so that a new registration of the same hash waits for the old `Remove`.
    std::weak_ptr<Registration<H>> live;
};

template <SequenceHash H>
struct RegistryState {
    using map_type = std::unordered_map<H, RegistryEntry<H>>;
    // Erased map nodes kept for the next registrations (a cache churns blocks: reusing the
    // node saves an allocation and a free per block). Bounded: at most this many are kept.
    static constexpr std::size_t max_spare_nodes = 1024;

    std::mutex mutex;
    std::condition_variable released;  // a dying registration finished releasing
    map_type entries;
    std::vector<typename map_type::node_type> spare;
    std::function<void(const BlockRegistrationHandle<H>&)> on_new;  // fixed at construction

    // Under `mutex`: adds the entry of a new registration, in a spare node if there is one.
    void insert(const H& hash, RegistryEntry<H> entry) {
        if (spare.empty()) {
            entries.emplace(hash, std::move(entry));
            return;
        }
        auto node = std::move(spare.back());
        spare.pop_back();
        node.key() = hash;
        node.mapped() = std::move(entry);
        entries.insert(std::move(node));
    }

    // Under `mutex`: erases an entry, keeping its node (emptied) for reuse.
    void recycle(typename map_type::iterator it) {
        if (spare.size() >= max_spare_nodes) {
            entries.erase(it);
            return;
        }
        auto node = entries.extract(it);
        node.mapped() = RegistryEntry<H>{};  // drop the weak reference now
        try {
            spare.push_back(std::move(node));
        } catch (...) {  // no room to keep it: the node is freed as it goes out of scope
        }
    }
};

template <SequenceHash H>
class Registration {
public:
    Registration(const H& hash, std::shared_ptr<RegistryState<H>> state) : m_hash(hash), m_state(std::move(state)) {}
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

    // Runs once the last handle is gone, i.e. once the hash has already left the registry
    // for every lookup (its weak_ptr expired). Releases the attachments with no lock held
    // (an attachment's destructor may use the registry, or send on a channel; and nobody
    // else can reach them any more, the last handle being gone), then drops the entry and
    // wakes a registration of the same hash that waits for it.
    ~Registration() {
        KVBM_SCHEDULE_POINT();
        for (AttachmentBase* box = std::exchange(m_head, nullptr); box != nullptr;) {
            destroy_attachment(std::exchange(box, box->next));
        }
        KVBM_SCHEDULE_POINT();
        {
            std::lock_guard lock(m_state->mutex);
            if (auto it = m_state->entries.find(m_hash); it != m_state->entries.end() && it->second.owner == this) {
                m_state->recycle(it);
            }
        }
        m_state->released.notify_all();
    }

    [[nodiscard]] const H& hash() const noexcept { return m_hash; }

    template <class T>
    void attach(T&& value, bool unique) {
        using V = std::remove_cvref_t<T>;
        using Box = AttachmentBox<V>;
        AttachmentBase* previous = nullptr;  // destroyed after the lock is released
        {
            std::unique_lock lock(m_mutex);
            AttachmentBase* box = nullptr;
            if constexpr (sizeof(Box) <= in_place_size && alignof(Box) <= alignof(std::max_align_t)) {
                // The first box that fits is moved into the registration (under the lock, so
                // only one claims the room). The room is never reused, so a box destroyed
                // outside the lock can never overlap a new one.
                if (!m_in_place_used) {
                    box = ::new (static_cast<void*>(m_in_place)) Box(std::forward<T>(value), unique);
                    box->in_place = true;
                    m_in_place_used = true;
                }
            }
            if (box == nullptr) {
                lock.unlock();  // allocate outside the lock
                box = new Box(std::forward<T>(value), unique);
                lock.lock();
            }
            AttachmentBase** link = &m_head;
            for (; *link != nullptr; link = &(*link)->next) {
                if (unique && (*link)->unique && (*link)->type == typeid(V)) {
                    previous = *link;  // replaced in its place
                    box->next = previous->next;
                    break;
                }
            }
            *link = box;
        }
        destroy_attachment(previous);
    }

    template <class T>
    bool detach_unique() {
        AttachmentBase* previous = nullptr;
        {
            std::lock_guard lock(m_mutex);
            for (AttachmentBase** link = &m_head; *link != nullptr; link = &(*link)->next) {
                if ((*link)->unique && (*link)->type == typeid(T)) {
                    previous = std::exchange(*link, (*link)->next);
                    break;
                }
            }
        }
        destroy_attachment(previous);
        return previous != nullptr;
    }

    template <class T, class F>
    bool with_unique(F& f) {
        std::lock_guard lock(m_mutex);
        for (AttachmentBase* box = m_head; box != nullptr; box = box->next) {
            if (box->unique && box->type == typeid(T)) {
                f(static_cast<AttachmentBox<T>*>(box)->value);
                return true;
            }
        }
        return false;
    }

    template <class T, class F>
    std::size_t for_each(F& f) {
        std::lock_guard lock(m_mutex);
        std::size_t n = 0;
        for (AttachmentBase* box = m_head; box != nullptr; box = box->next) {
            if (!box->unique && box->type == typeid(T)) {
                f(static_cast<AttachmentBox<T>*>(box)->value);
                ++n;
            }
        }
        return n;
    }

private:
    // Room for the first attachment, enough for an EventReleaseHandle of a 128-bit hash.
    static constexpr std::size_t in_place_size = 64;

    const H m_hash;
    const std::shared_ptr<RegistryState<H>> m_state;
    std::mutex m_mutex;                // guards the list from m_head
    AttachmentBase* m_head = nullptr;  // owned boxes, in attachment order
    bool m_in_place_used = false;      // guarded by m_mutex
    alignas(std::max_align_t) std::byte m_in_place[in_place_size];
};

}  // namespace detail

/// A shared handle to one registration of a block hash. Copies share the registration;
/// the registration ends when the last copy is destroyed: the hash leaves the registry,
/// then the attachments are destroyed (in unspecified order, with no registry lock held).
///
/// Thread-safety: distinct handle objects may be used from any threads, including copies
/// of one another; the attachment operations lock the registration. A single handle object
/// follows the rules of std::shared_ptr (const members concurrently, no concurrent writes).
template <SequenceHash H = PositionalLineageHash>
class BlockRegistrationHandle {
public:
    using hash_type = H;

    [[nodiscard]] const H& hash() const noexcept { return m_reg->hash(); }

    /// Attaches `value` as *the* attachment of type `std::remove_cvref_t<T>`, replacing
    /// (and so destroying, after the attachment lock is released) any previous one.
    template <class T>
    void attach_unique(T&& value) const {
        m_reg->attach(std::forward<T>(value), true);
    }

    /// Adds `value` to the attachments of its type; every one lives until the registration
    /// ends. Unique and multiple attachments of one type are kept apart.
    template <class T>
    void attach(T&& value) const {
        m_reg->attach(std::forward<T>(value), false);
    }

    /// Destroys the unique attachment of type T now; false if there was none.
    template <class T>
    bool detach_unique() const {
        return m_reg->template detach_unique<T>();
    }

    /// Calls `f(T&)` on the unique attachment of type T under the registration's lock;
    /// false if there is none. `f` must not use this registration's attachments.
    template <class T, class F>
    bool with_unique(F&& f) const {
        return m_reg->template with_unique<T>(f);
    }

    /// Calls `f(T&)` on each multiple attachment of type T, in attachment order, under the
    /// registration's lock; returns how many there were.
    template <class T, class F>
    std::size_t for_each(F&& f) const {
        return m_reg->template for_each<T>(f);
    }

    template <class T>
    [[nodiscard]] bool has_unique() const {
        return with_unique<T>([](const T&) {});
    }

    /// How many handles share this registration right now (a hint under concurrency).
    [[nodiscard]] long use_count() const noexcept { return m_reg.use_count(); }

    /// Two handles are equal when they share one registration.
    friend bool operator==(const BlockRegistrationHandle&, const BlockRegistrationHandle&) = default;

private:
    friend class BlockRegistry<H>;
    explicit BlockRegistrationHandle(std::shared_ptr<detail::Registration<H>> reg) noexcept : m_reg(std::move(reg)) {}

    std::shared_ptr<detail::Registration<H>> m_reg;
};

/// Something told about every *new* registration (not about further handles to a live
/// one): the events manager, which emits `Create` and attaches the release handle.
template <class O, class H>
concept RegistrationObserver = requires(O& o, const BlockRegistrationHandle<H>& handle) {
    o.on_block_registered(handle);
};

/// The set of live registrations, keyed by hash. Copies of a BlockRegistry share one
/// registry. Every member is thread-safe.
///
/// Ordering guarantee: events of one hash reach a channel in the order of the
/// registrations' lives. A registration of a hash whose previous registration is still
/// releasing its attachments waits for that release, so the old `Remove` is always sent
/// before the new `Create`. (Hence an attachment's destructor must not register the hash it
/// belonged to.)
template <SequenceHash H = PositionalLineageHash>
class BlockRegistry {
public:
    using hash_type = H;
    using handle_type = BlockRegistrationHandle<H>;

    /// A registry nobody observes.
    BlockRegistry() : m_state(std::make_shared<detail::RegistryState<H>>()) {}

    /// A registry that calls `observer->on_block_registered(handle)` for every new
    /// registration, before `register_hash` returns, on the registering thread, with no
    /// registry lock held. The registry keeps the observer alive.
    template <class O>
    requires RegistrationObserver<O, H>
    explicit BlockRegistry(std::shared_ptr<O> observer) : BlockRegistry() {
        if (observer) {
            m_state->on_new = [obs = std::move(observer)](const handle_type& h) { obs->on_block_registered(h); };
        }
    }

    /// Registers `hash`: returns the live registration of it if there is one (no observer
    /// call), otherwise creates one and tells the observer. Blocks only while a previous
    /// registration of the same hash is releasing its attachments.
    [[nodiscard]] handle_type register_hash(const H& hash) const {
        auto& st = *m_state;
        std::shared_ptr<detail::Registration<H>> reg;
        {
            std::unique_lock lock(st.mutex);
            for (;;) {
                auto it = st.entries.find(hash);
                if (it == st.entries.end()) {
                    break;
                }
                if (auto live = it->second.live.lock()) {
                    return handle_type(std::move(live));
                }
                KVBM_SCHEDULE_POINT_NAMED("registry.wait_for_release");
                st.released.wait(lock);  // the previous registration is releasing: its Remove first
            }
            // From the thread's cache of registration blocks: see detail::BlockCache.
            reg = std::allocate_shared<detail::Registration<H>>(detail::RecyclingAllocator<detail::Registration<H>>{},
                                                                hash, m_state);
            st.insert(hash, detail::RegistryEntry<H>{reg.get(), reg});
        }
        handle_type handle(std::move(reg));
        KVBM_SCHEDULE_POINT();
        if (st.on_new) {
            st.on_new(handle);
        }
        return handle;
    }

    /// The live registration of `hash`, if any (never creates one).
    [[nodiscard]] std::optional<handle_type> find(const H& hash) const {
        std::lock_guard lock(m_state->mutex);
        if (auto it = m_state->entries.find(hash); it != m_state->entries.end()) {
            if (auto live = it->second.live.lock()) {
                return handle_type(std::move(live));
            }
        }
        return std::nullopt;
    }

    [[nodiscard]] bool contains(const H& hash) const {
        std::lock_guard lock(m_state->mutex);
        auto it = m_state->entries.find(hash);
        return it != m_state->entries.end() && !it->second.live.expired();
    }

    /// The hashes of the live registrations at one instant (unordered).
    [[nodiscard]] std::vector<H> snapshot() const { return snapshot_of(*m_state); }

    /// A callable returning `snapshot()` that does not keep the registry alive: once the
    /// registry and all its registrations are gone it returns an empty vector (the truth).
    [[nodiscard]] std::function<std::vector<H>()> snapshot_function() const {
        return [weak = std::weak_ptr<detail::RegistryState<H>>(m_state)] {
            if (auto state = weak.lock()) {
                return snapshot_of(*state);
            }
            return std::vector<H>{};
        };
    }

private:
    static std::vector<H> snapshot_of(detail::RegistryState<H>& st) {
        std::vector<H> out;
        std::lock_guard lock(st.mutex);
        out.reserve(st.entries.size());
        for (const auto& [hash, entry] : st.entries) {
            if (!entry.live.expired()) {
                out.push_back(hash);
            }
        }
        return out;
    }

    std::shared_ptr<detail::RegistryState<H>> m_state;
};

KVBM_NAMESPACE_END
