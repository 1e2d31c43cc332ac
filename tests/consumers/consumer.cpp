// A user's program: links kvbm::kvbm (and kvbm::tokens when KVBM_WITH_TOKENS) and checks
// one known value, so a consumption path that builds but links the wrong thing fails.
#include <kvbm/kvbm.hpp>
#ifdef KVBM_WITH_TOKENS
#include <kvbm/tokens.hpp>
#endif

#include <cstdio>
#include <vector>

int main() {
    static_assert(KVBM_VERSION_MAJOR == 0);
    // The first upstream block (salt 1337, tokens 1..4): its sequence hash and PLH.
    const kvbm::PositionalLineageHash h(14643705804678351452ULL, std::nullopt, 0);
    int failures = h.raw().to_hex32() == "00000000000000000338e4d7fb2dca5c" ? 0 : 1;
#ifdef KVBM_WITH_TOKENS
    const std::vector<kvbm::Token> tokens{1, 2, 3, 4};
    const auto seq = kvbm::TokenBlockSequence::from_slice(tokens, 4, 1337);
    failures += seq.blocks().size() == 1 && seq.blocks()[0].plh == h ? 0 : 1;
#endif
    const kvbm::KvbmCacheEvents<> msg{kvbm::KvCacheEvents<>::create({h}), kvbm::InstanceId{7U}};
    std::printf("%s\n", kvbm::to_display_string(msg).c_str());
    return failures;
}
