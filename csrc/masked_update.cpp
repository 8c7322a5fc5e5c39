// Saliency-masked SGD and AdamW on the CPU: one pass over memory per tensor, split across
// threads with at::parallel_for. The saliency w is stored as bool (hard mask), packed bits
// (hard, 1 bit per coordinate, least significant bit first), uint8 (soft, q / 255) or floating
// (soft, in [0, 1]); a coordinate with w == 0 is skipped, so neither its parameter nor its
// state is written. fp16/bf16 parameters are stepped in fp32 with fp32 state and rounded once
// when stored. Semantics: docs/method.md and wsscl_fast/reference.py.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <string>

#include "ops.h"

namespace {

constexpr int64_t kGrain = 32768;

// Saliency of coordinate i in the maths type acc_t, one reader type per storage, so that each
// inner loop is compiled for its own storage (no per-element branch on the storage kind).
template <typename acc_t>
struct HardWeights {
  const bool* mask;
  acc_t operator[](int64_t i) const { return static_cast<acc_t>(mask[i]); }
};
template <typename acc_t>
struct PackedWeights {
  const uint8_t* bits;
  acc_t operator[](int64_t i) const { return static_cast<acc_t>((bits[i >> 3] >> (i & 7)) & 1); }
};
template <typename acc_t>
struct QuantisedWeights {
  const uint8_t* q;
  acc_t operator[](int64_t i) const { return static_cast<acc_t>(static_cast<float>(q[i]) / 255.0f); }
};
template <typename acc_t>
struct SoftWeights {
  const acc_t* w;
  acc_t operator[](int64_t i) const { return w[i]; }
};

// Calls step(weights) with the reader for saliency tensor w in ``storage``.
template <typename acc_t, typename Step>
void with_weights(const at::Tensor& w, const std::string& storage, const Step& step) {
  if (storage == "bits") {
    step(PackedWeights<acc_t>{w.data_ptr<uint8_t>()});
  } else if (storage == "uint8") {
    step(QuantisedWeights<acc_t>{w.data_ptr<uint8_t>()});
  } else if (w.scalar_type() == at::kBool) {
    step(HardWeights<acc_t>{w.data_ptr<bool>()});
  } else {
    const at::Tensor converted = w.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    step(SoftWeights<acc_t>{converted.data_ptr<acc_t>()});
  }
}

void check_saliency_list(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& saliencies,
                         const std::string& storage) {
  TORCH_CHECK(storage == "dense" || storage == "bits" || storage == "uint8",
              "storage must be 'dense', 'bits' or 'uint8', got '", storage, "'");
  TORCH_CHECK(params.size() == saliencies.size(), "saliencies must have one tensor per parameter");
  for (size_t k = 0; k < params.size(); ++k) {
    const at::Tensor& w = saliencies[k];
    TORCH_CHECK(w.is_contiguous() && w.device().is_cpu(), "saliencies[", k, "] must be a contiguous CPU tensor");
    if (storage == "bits") {
      TORCH_CHECK(w.scalar_type() == at::kByte && w.numel() == (params[k].numel() + 7) / 8, "saliencies[", k,
                  "] must hold the packed mask: ", (params[k].numel() + 7) / 8, " uint8 bytes");
    } else {
      TORCH_CHECK(w.sizes() == params[k].sizes(), "saliencies[", k, "] does not match its parameter's shape");
      TORCH_CHECK(storage == "dense" || w.scalar_type() == at::kByte, "saliencies[", k, "] must be uint8");
    }
  }
}

void check_tensor_list(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& others,
                       const char* name) {
  TORCH_CHECK(params.size() == others.size(), name, " must have one tensor per parameter");
  for (size_t k = 0; k < params.size(); ++k) {
    TORCH_CHECK(others[k].sizes() == params[k].sizes(), name, "[", k, "] does not match its parameter's shape");
    TORCH_CHECK(others[k].is_contiguous() && params[k].is_contiguous(), name, "[", k, "] and its parameter must be contiguous");
    TORCH_CHECK(params[k].device().is_cpu() && others[k].device().is_cpu(), "the cpp backend needs CPU tensors");
  }
}

}  // namespace

void masked_sgd_step(std::vector<at::Tensor> params, std::vector<at::Tensor> grads,
                     std::vector<at::Tensor> saliencies, std::vector<at::Tensor> momentum_buffers, double lr,
                     double momentum, double weight_decay, bool nesterov, std::string storage) {
  check_tensor_list(params, grads, "grads");
  check_saliency_list(params, saliencies, storage);
  if (momentum != 0) check_tensor_list(params, momentum_buffers, "momentum_buffers");
  for (size_t k = 0; k < params.size(); ++k) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, params[k].scalar_type(), "masked_sgd_step", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      TORCH_CHECK(grads[k].scalar_type() == params[k].scalar_type(), "grads[", k, "] must have its parameter's dtype");
      TORCH_CHECK(momentum == 0 || momentum_buffers[k].scalar_type() == c10::CppTypeToScalarType<acc_t>::value,
                  "momentum_buffers[", k, "] must be ", c10::CppTypeToScalarType<acc_t>::value);
      scalar_t* p = params[k].data_ptr<scalar_t>();
      const scalar_t* g = grads[k].data_ptr<scalar_t>();
      acc_t* buf = momentum != 0 ? momentum_buffers[k].data_ptr<acc_t>() : nullptr;
      const acc_t lr_ = lr, mu = momentum, wd = weight_decay;
      with_weights<acc_t>(saliencies[k], storage, [&](const auto& w) {
        at::parallel_for(0, params[k].numel(), kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            const acc_t wi = w[i];
            if (!(wi > 0)) continue;
            const acc_t pi = static_cast<acc_t>(p[i]);
            const acc_t d = static_cast<acc_t>(g[i]) + wd * pi;
            acc_t u = d;
            if (buf) {
              buf[i] = mu * buf[i] + d;
              u = nesterov ? d + mu * buf[i] : buf[i];
            }
            p[i] = static_cast<scalar_t>(pi - lr_ * (wi * u));
          }
        });
      });
    });
  }
}

void masked_adamw_step(std::vector<at::Tensor> params, std::vector<at::Tensor> grads,
                       std::vector<at::Tensor> saliencies, std::vector<at::Tensor> exp_avgs,
                       std::vector<at::Tensor> exp_avg_sqs, std::vector<int64_t> steps, double lr, double beta1,
                       double beta2, double eps, double weight_decay, std::string storage) {
  check_tensor_list(params, grads, "grads");
  check_saliency_list(params, saliencies, storage);
  check_tensor_list(params, exp_avgs, "exp_avgs");
  check_tensor_list(params, exp_avg_sqs, "exp_avg_sqs");
  TORCH_CHECK(steps.size() == params.size(), "steps must have one count per parameter");
  for (size_t k = 0; k < params.size(); ++k) {
    const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(steps[k]));
    const double bias_correction2_sqrt = std::sqrt(1 - std::pow(beta2, static_cast<double>(steps[k])));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, params[k].scalar_type(), "masked_adamw_step", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      TORCH_CHECK(grads[k].scalar_type() == params[k].scalar_type(), "grads[", k, "] must have its parameter's dtype");
      TORCH_CHECK(exp_avgs[k].scalar_type() == c10::CppTypeToScalarType<acc_t>::value &&
                      exp_avg_sqs[k].scalar_type() == c10::CppTypeToScalarType<acc_t>::value,
                  "exp_avgs[", k, "] and exp_avg_sqs[", k, "] must be ", c10::CppTypeToScalarType<acc_t>::value);
      scalar_t* p = params[k].data_ptr<scalar_t>();
      const scalar_t* g = grads[k].data_ptr<scalar_t>();
      acc_t* m = exp_avgs[k].data_ptr<acc_t>();
      acc_t* v = exp_avg_sqs[k].data_ptr<acc_t>();
      // 1 - beta in double, as torch.optim does: in fp32, 1 - 0.9999f is off by 1.7e-4 relative
      const acc_t one_minus_b1 = 1 - beta1, b2 = beta2, one_minus_b2 = 1 - beta2, eps_ = eps;
      const acc_t decay = lr * weight_decay;
      const acc_t step_size = lr / bias_correction1, bc2 = bias_correction2_sqrt;
      with_weights<acc_t>(saliencies[k], storage, [&](const auto& w) {
        at::parallel_for(0, params[k].numel(), kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            const acc_t wi = w[i];
            if (!(wi > 0)) continue;
            const acc_t gi = static_cast<acc_t>(g[i]);
            const acc_t pi = static_cast<acc_t>(p[i]) * (1 - decay * wi);
            m[i] += one_minus_b1 * (gi - m[i]);
            v[i] = b2 * v[i] + one_minus_b2 * gi * gi;
            p[i] = static_cast<scalar_t>(pi - step_size * (wi * (m[i] / (std::sqrt(v[i]) / bc2 + eps_))));
          }
        });
      });
    });
  }
}
