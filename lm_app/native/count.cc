// build-dict's word counter: the normalisation rule and the counting in one pass over the bytes.
//
// Why: in Python, counting costs a bytes object and a dict update per word,
// which holds build-dict well below the speed at which the page cache hands
// over the file.  Here each byte is looked at once and each word is one probe
// of an open-addressing table whose keys live in one arena.
//
// The rule is lm_app/text.py's, on bytes (the Python side passes text that is
// already lowercased wherever lowercasing is not plain ASCII):
//   words mode:   'A'-'Z' lowered; bytes outside [a-z '-] and the newline are
//                 deleted (they do not split words); ' ' and '\n' split; a
//                 word that starts with '-' is dropped.
//   pretokenized: split on ASCII whitespace, tokens kept as they are (the
//                 <eos> of each line is counted by the caller).
// A plain C ABI (no TensorFlow), loaded with ctypes: build-dict never imports TensorFlow.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Entry {
  uint64_t hash;
  uint64_t offset;  // of the key in the arena
  uint32_t length;
  int64_t count;  // 0: empty slot
};

class Counter {
 public:
  Counter() : slots_(1 << 16) {}

  void add(const char* key, uint32_t length, int64_t n) {
    const uint64_t h = hash(key, length);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Entry& e = slots_[i];
      if (e.count == 0) {
        e = Entry{h, arena_.size(), length, n};
        arena_.append(key, length);
        if (++used_ * 2 > slots_.size()) grow();
        return;
      }
      if (e.hash == h && e.length == length && std::memcmp(arena_.data() + e.offset, key, length) == 0) {
        e.count += n;
        return;
      }
    }
  }

  // The keys joined by '\n' (no key holds one: both modes split on it) and their counts.
  int64_t size() const { return used_; }
  int64_t key_bytes() const { return static_cast<int64_t>(arena_.size()) + used_; }
  void dump(char* keys, int64_t* counts) const {
    for (const Entry& e : slots_) {
      if (e.count == 0) continue;
      std::memcpy(keys, arena_.data() + e.offset, e.length);
      keys += e.length;
      *keys++ = '\n';
      *counts++ = e.count;
    }
  }

 private:
  static uint64_t hash(const char* p, uint32_t n) {  // FNV-1a, then a final mix for the low bits
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
  }

  void grow() {
    std::vector<Entry> old(slots_.size() * 2);
    old.swap(slots_);
    const size_t mask = slots_.size() - 1;
    for (const Entry& e : old) {
      if (e.count == 0) continue;
      size_t i = e.hash & mask;
      while (slots_[i].count != 0) i = (i + 1) & mask;
      slots_[i] = e;
    }
  }

  std::vector<Entry> slots_;
  std::string arena_;
  int64_t used_ = 0;
};

// What each byte does under the words rule: 0 delete, 1 split, else the byte it becomes.
struct WordsTable {
  unsigned char action[256];
  WordsTable() {
    for (int b = 0; b < 256; ++b) action[b] = 0;
    for (int b = 'a'; b <= 'z'; ++b) action[b] = b;
    for (int b = 'A'; b <= 'Z'; ++b) action[b] = b - 'A' + 'a';
    action[static_cast<int>('\'')] = '\'';
    action[static_cast<int>('-')] = '-';
    action[static_cast<int>(' ')] = 1;
    action[static_cast<int>('\n')] = 1;
  }
};

const WordsTable kWords;

bool ascii_space(unsigned char b) { return b == ' ' || (b >= '\t' && b <= '\r'); }

}  // namespace

extern "C" {

void* lm_app_counter_new() { return new Counter(); }

void lm_app_counter_free(void* counter) { delete static_cast<Counter*>(counter); }

// Count the tokens of data[0, n); a word may not straddle two calls (the caller passes whole lines,
// or pieces cut at a space).
void lm_app_counter_add(void* handle, const char* data, int64_t n, int pretokenized) {
  Counter& counter = *static_cast<Counter*>(handle);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(data);
  if (pretokenized) {
    int64_t start = -1;
    for (int64_t i = 0; i <= n; ++i) {
      const bool space = i == n || ascii_space(p[i]);
      if (!space && start < 0) start = i;
      if (space && start >= 0) {
        counter.add(data + start, static_cast<uint32_t>(i - start), 1);
        start = -1;
      }
    }
    return;
  }
  // A token is a run of bytes between splits.  Most are already normalised (lowercase letters,
  // apostrophes, hyphens) and are counted where they lie; the others are rewritten first.
  std::string word;
  int64_t i = 0;
  while (i < n) {
    while (i < n && kWords.action[p[i]] == 1) ++i;
    const int64_t start = i;
    bool plain = true;
    for (; i < n; ++i) {
      const unsigned char a = kWords.action[p[i]];
      if (a == 1) break;
      plain &= a == p[i] && a > 1;  // a NUL byte is deleted, not kept as it is
    }
    if (start == i) break;
    const char* key = data + start;
    uint32_t length = static_cast<uint32_t>(i - start);
    if (!plain) {
      word.clear();
      for (int64_t j = start; j < i; ++j) {
        if (kWords.action[p[j]]) word.push_back(static_cast<char>(kWords.action[p[j]]));
      }
      key = word.data();
      length = static_cast<uint32_t>(word.size());
    }
    if (length && key[0] != '-') counter.add(key, length, 1);
  }
}

int64_t lm_app_counter_size(void* counter) { return static_cast<Counter*>(counter)->size(); }

int64_t lm_app_counter_key_bytes(void* counter) { return static_cast<Counter*>(counter)->key_bytes(); }

void lm_app_counter_dump(void* counter, char* keys, int64_t* counts) {
  static_cast<Counter*>(counter)->dump(keys, counts);
}

}  // extern "C"
