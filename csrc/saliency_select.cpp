// Saliency selection on the CPU: the global k-th largest score without a sort (two-pass radix
// select over ordered 32-bit keys, 16 bits per pass, per-thread histograms), then the hard mask
// (bool or packed bits) or the soft weights in one pass per tensor.
// Semantics: saliency_threshold_ref / saliency_from_scores_ref in wsscl_fast/reference.py.
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <string>

#include "ops.h"

namespace {

constexpr int64_t kGrain = 65536;
constexpr int64_t kBins = 1 << 16;

// Monotone map float -> uint32: a < b as floats iff key(a) < key(b) as unsigned integers.
inline uint32_t ordered_key(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

inline float key_value(uint32_t key) {
  const uint32_t bits = (key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

// Histogram of (key >> shift) & 0xFFFF over the scores whose key >> 16 equals `prefix`
// (every score when prefix < 0), summed over threads.
std::vector<int64_t> histogram(const std::vector<at::Tensor>& scores, int shift, int64_t prefix) {
  const int threads = at::get_num_threads();
  std::vector<int64_t> per_thread(static_cast<size_t>(threads) * kBins, 0);
  for (const at::Tensor& tensor : scores) {
    const float* x = tensor.data_ptr<float>();
    at::parallel_for(0, tensor.numel(), kGrain, [&](int64_t begin, int64_t end) {
      int64_t* hist = per_thread.data() + static_cast<size_t>(at::get_thread_num()) * kBins;
      for (int64_t i = begin; i < end; ++i) {
        const uint32_t key = ordered_key(x[i]);
        if (prefix >= 0 && static_cast<int64_t>(key >> 16) != prefix) continue;
        ++hist[(key >> shift) & 0xFFFFu];
      }
    });
  }
  std::vector<int64_t> total(kBins, 0);
  for (int t = 0; t < threads; ++t)
    for (int64_t b = 0; b < kBins; ++b) total[b] += per_thread[static_cast<size_t>(t) * kBins + b];
  return total;
}

// The bin holding the element of 0-based ascending rank `rank`; `rank` becomes its rank in the bin.
int64_t select_bin(const std::vector<int64_t>& hist, int64_t& rank) {
  for (int64_t b = 0; b < kBins; ++b) {
    if (rank < hist[b]) return b;
    rank -= hist[b];
  }
  TORCH_CHECK(false, "saliency_threshold: rank beyond the histogram (scores changed during selection?)");
}

void check_scores(const std::vector<at::Tensor>& scores) {
  for (size_t k = 0; k < scores.size(); ++k) {
    TORCH_CHECK(scores[k].scalar_type() == at::kFloat && scores[k].is_contiguous() && scores[k].device().is_cpu(),
                "scores[", k, "] must be a contiguous float32 CPU tensor");
  }
}

}  // namespace

double saliency_threshold(std::vector<at::Tensor> scores, int64_t k) {
  check_scores(scores);
  int64_t n = 0;
  for (const at::Tensor& t : scores) n += t.numel();
  TORCH_CHECK(1 <= k && k <= n, "k must lie in [1, ", n, "], got ", k);
  int64_t rank = n - k;  // the k-th largest is the (n - k)-th smallest, 0-based
  const int64_t high = select_bin(histogram(scores, 16, -1), rank);
  const int64_t low = select_bin(histogram(scores, 0, high), rank);
  return key_value(static_cast<uint32_t>((high << 16) | low));
}

std::vector<at::Tensor> saliency_emit(std::vector<at::Tensor> scores, double threshold, bool hard,
                                      std::string storage) {
  check_scores(scores);
  TORCH_CHECK(hard ? (storage == "dense" || storage == "bits") : (storage == "dense" || storage == "uint8"),
              "storage '", storage, "' does not hold ", hard ? "hard masks" : "soft weights");
  const float t = static_cast<float>(threshold);
  std::vector<at::Tensor> out;
  for (const at::Tensor& tensor : scores) {
    const float* g = tensor.data_ptr<float>();
    const int64_t n = tensor.numel();
    if (hard && storage == "bits") {
      at::Tensor bits = at::empty({(n + 7) / 8}, tensor.options().dtype(at::kByte));
      uint8_t* b = bits.data_ptr<uint8_t>();
      at::parallel_for(0, bits.numel(), kGrain / 8, [&](int64_t begin, int64_t end) {
        for (int64_t byte = begin; byte < end; ++byte) {
          uint8_t packed = 0;
          for (int64_t j = 0; j < 8 && byte * 8 + j < n; ++j) packed |= static_cast<uint8_t>(g[byte * 8 + j] >= t) << j;
          b[byte] = packed;
        }
      });
      out.push_back(bits);
    } else if (hard) {
      at::Tensor mask = at::empty_like(tensor, tensor.options().dtype(at::kBool));
      bool* m = mask.data_ptr<bool>();
      at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) m[i] = g[i] >= t;
      });
      out.push_back(mask);
    } else {
      const bool quantise = storage == "uint8";
      at::Tensor weights = at::empty_like(tensor, tensor.options().dtype(quantise ? at::kByte : at::kFloat));
      float* soft = quantise ? nullptr : weights.data_ptr<float>();
      uint8_t* quantised = quantise ? weights.data_ptr<uint8_t>() : nullptr;
      at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const float w = g[i] >= t ? 1.0f : std::min(std::max(g[i] / t, 0.0f), 1.0f);
          if (soft) {
            soft[i] = w;
          } else {
            float q = std::min(std::floor(w * 255.0f + 0.5f), 255.0f);
            if (w > 0 && q < 1) q = 1;  // keep every nonzero weight nonzero
            quantised[i] = static_cast<uint8_t>(q);
          }
        }
      });
      out.push_back(weights);
    }
  }
  return out;
}
