/// @file kvbm/registry.hpp
/// The block registry a KV cache manager keeps: one live *registration* per block hash,
/// shared by every holder of that block through a `BlockRegistrationHandle`, carrying
/// typed attachments (the events manager attaches the `EventReleaseHandle` that sends the
/// block's `Remove`). When the last handle goes the hash leaves the registry first and the
/// attachments are released after, outside every registry lock.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/detail/schedule_point.hpp>
#include <kvbm/events.hpp>
#include <kvbm/hash.hpp>

#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
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

struct AttachmentBase {
    AttachmentBase() = default;
    AttachmentBase(const AttachmentBase&) = delete;
    AttachmentBase& operator=(const AttachmentBase&) = delete;
    virtual ~AttachmentBase() = default;
};

template <class T>
struct AttachmentBox final : AttachmentBase {
    template <class U>
    explicit AttachmentBox(U&& v) : value(std::forward<U>(v)) {}
    T value;
};

struct AttachmentSlot {
    std::type_index type;
    bool unique;
    std::unique_ptr<AttachmentBase> box;
};

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
    std::mutex mutex;
    std::condition_variable released;  // a dying registration finished releasing
    std::unordered_map<H, RegistryEntry<H>> entries;
    std::function<void(const BlockRegistrationHandle<H>&)> on_new;  // fixed at construction
};

template <SequenceHash H>
class Registration {
public:
    Registration(const H& hash, std::shared_ptr<RegistryState<H>> state) : m_hash(hash), m_state(std::move(state)) {}
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

    // Runs once the last handle is gone, i.e. once the hash has already left the registry
    // for every lookup (its weak_ptr expired). Releases the attachments with no registry
    // lock held (an attachment's destructor may use the registry, or send on a channel),
    // then drops the entry and wakes a registration of the same hash that waits for it.
    ~Registration() {
        std::vector<AttachmentSlot> attachments;
        {
            std::lock_guard lock(m_mutex);
            attachments.swap(m_attachments);
        }
        attachments.clear();
        {
            std::lock_guard lock(m_state->mutex);
            if (auto it = m_state->entries.find(m_hash); it != m_state->entries.end() && it->second.owner == this) {
                m_state->entries.erase(it);
            }
        }
        m_state->released.notify_all();
    }

    [[nodiscard]] const H& hash() const noexcept { return m_hash; }

    template <class T>
    void attach(T&& value, bool unique) {
        using V = std::remove_cvref_t<T>;
        auto box = std::make_unique<AttachmentBox<V>>(std::forward<T>(value));
        std::unique_ptr<AttachmentBase> previous;  // destroyed after the lock is released
        {
            std::lock_guard lock(m_mutex);
            if (unique) {
                if (auto* slot = find_unique(typeid(V))) {
                    previous = std::exchange(slot->box, std::move(box));
                    return;
                }
            }
            m_attachments.push_back(AttachmentSlot{typeid(V), unique, std::move(box)});
        }
    }

    template <class T>
    bool detach_unique() {
        std::unique_ptr<AttachmentBase> previous;
        {
            std::lock_guard lock(m_mutex);
            for (auto it = m_attachments.begin(); it != m_attachments.end(); ++it) {
                if (it->unique && it->type == typeid(T)) {
                    previous = std::move(it->box);
                    m_attachments.erase(it);
                    break;
                }
            }
        }
        return previous != nullptr;
    }

    template <class T, class F>
    bool with_unique(F& f) {
        std::lock_guard lock(m_mutex);
        auto* slot = find_unique(typeid(T));
        if (slot == nullptr) {
            return false;
        }
        f(static_cast<AttachmentBox<T>*>(slot->box.get())->value);
        return true;
    }

    template <class T, class F>
    std::size_t for_each(F& f) {
        std::lock_guard lock(m_mutex);
        std::size_t n = 0;
        for (auto& slot : m_attachments) {
            if (!slot.unique && slot.type == typeid(T)) {
                f(static_cast<AttachmentBox<T>*>(slot.box.get())->value);
                ++n;
            }
        }
        return n;
    }

private:
    AttachmentSlot* find_unique(const std::type_info& type) {
        for (auto& slot : m_attachments) {
            if (slot.unique && slot.type == type) {
                return &slot;
            }
        }
        return nullptr;
    }

    const H m_hash;
    const std::shared_ptr<RegistryState<H>> m_state;
    std::mutex m_mutex;  // guards m_attachments
    std::vector<AttachmentSlot> m_attachments;
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
                KVBM_SCHEDULE_POINT();
                st.released.wait(lock);  // the previous registration is releasing: its Remove first
            }
            reg = std::make_shared<detail::Registration<H>>(hash, m_state);
            st.entries.emplace(hash, detail::RegistryEntry<H>{reg.get(), reg});
        }
        handle_type handle(std::move(reg));
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
