// Saliency-masked SGD and AdamW on the CPU: one pass over memory per tensor, split across
// threads with at::parallel_for. The saliency w is bool (hard mask) or floating (soft, in
// [0, 1]); a coordinate with w == 0 is skipped, so neither its parameter nor its state is
// written. Semantics: ../shared/METHOD.md and wsscl_fast/reference.py.
#include <ATen/Parallel.h>

#include <cmath>

#include "ops.h"

namespace {

constexpr int64_t kGrain = 32768;

// Saliency of coordinate i as the parameter's scalar type.
template <typename scalar_t>
struct Weights {
  const bool* hard = nullptr;
  const scalar_t* soft = nullptr;
  scalar_t operator[](int64_t i) const { return hard ? static_cast<scalar_t>(hard[i]) : soft[i]; }
};

template <typename scalar_t>
Weights<scalar_t> weights_of(const at::Tensor& w, at::Tensor& converted) {
  if (w.scalar_type() == at::kBool) return {w.data_ptr<bool>(), nullptr};
  converted = w.to(c10::CppTypeToScalarType<scalar_t>::value).contiguous();
  return {nullptr, converted.data_ptr<scalar_t>()};
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
                     double momentum, double weight_decay, bool nesterov) {
  check_tensor_list(params, grads, "grads");
  check_tensor_list(params, saliencies, "saliencies");
  if (momentum != 0) check_tensor_list(params, momentum_buffers, "momentum_buffers");
  for (size_t k = 0; k < params.size(); ++k) {
    AT_DISPATCH_FLOATING_TYPES(params[k].scalar_type(), "masked_sgd_step", [&] {
      at::Tensor converted;
      const Weights<scalar_t> w = weights_of<scalar_t>(saliencies[k], converted);
      scalar_t* p = params[k].data_ptr<scalar_t>();
      const scalar_t* g = grads[k].data_ptr<scalar_t>();
      scalar_t* buf = momentum != 0 ? momentum_buffers[k].data_ptr<scalar_t>() : nullptr;
      const scalar_t lr_ = lr, mu = momentum, wd = weight_decay;
      at::parallel_for(0, params[k].numel(), kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const scalar_t wi = w[i];
          if (!(wi > 0)) continue;
          const scalar_t d = g[i] + wd * p[i];
          scalar_t u = d;
          if (buf) {
            buf[i] = mu * buf[i] + d;
            u = nesterov ? d + mu * buf[i] : buf[i];
          }
          p[i] -= lr_ * (wi * u);
        }
      });
    });
  }
}

void masked_adamw_step(std::vector<at::Tensor> params, std::vector<at::Tensor> grads,
                       std::vector<at::Tensor> saliencies, std::vector<at::Tensor> exp_avgs,
                       std::vector<at::Tensor> exp_avg_sqs, std::vector<int64_t> steps, double lr, double beta1,
                       double beta2, double eps, double weight_decay) {
  check_tensor_list(params, grads, "grads");
  check_tensor_list(params, saliencies, "saliencies");
  check_tensor_list(params, exp_avgs, "exp_avgs");
  check_tensor_list(params, exp_avg_sqs, "exp_avg_sqs");
  TORCH_CHECK(steps.size() == params.size(), "steps must have one count per parameter");
  for (size_t k = 0; k < params.size(); ++k) {
    const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(steps[k]));
    const double bias_correction2_sqrt = std::sqrt(1 - std::pow(beta2, static_cast<double>(steps[k])));
    AT_DISPATCH_FLOATING_TYPES(params[k].scalar_type(), "masked_adamw_step", [&] {
      at::Tensor converted;
      const Weights<scalar_t> w = weights_of<scalar_t>(saliencies[k], converted);
      scalar_t* p = params[k].data_ptr<scalar_t>();
      const scalar_t* g = grads[k].data_ptr<scalar_t>();
      scalar_t* m = exp_avgs[k].data_ptr<scalar_t>();
      scalar_t* v = exp_avg_sqs[k].data_ptr<scalar_t>();
      // 1 - beta in double, as torch.optim does: in fp32, 1 - 0.9999f is off by 1.7e-4 relative
      const scalar_t one_minus_b1 = 1 - beta1, b2 = beta2, one_minus_b2 = 1 - beta2, eps_ = eps;
      const scalar_t decay = lr * weight_decay;
      const scalar_t step_size = lr / bias_correction1, bc2 = bias_correction2_sqrt;
      at::parallel_for(0, params[k].numel(), kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const scalar_t wi = w[i];
          if (!(wi > 0)) continue;
          p[i] *= 1 - decay * wi;
          m[i] += one_minus_b1 * (g[i] - m[i]);
          v[i] = b2 * v[i] + one_minus_b2 * g[i] * g[i];
          p[i] -= step_size * (wi * (m[i] / (std::sqrt(v[i]) / bc2 + eps_)));
        }
      });
    });
  }
}
