// wsscl_fast C++ CPU path: the kernels that registration.cpp registers with the dispatcher.
#pragma once
#include <torch/extension.h>

#include <string>
#include <vector>

// Scaled InfoNCE forward on CPU float/double tensors, without the N x M matrix.
// Returns {loss, dA, dP, dR}; the gradients are those of the mean loss (grad_output = 1)
// and are undefined tensors when need_grad is false.
std::vector<at::Tensor> infonce_forward(const at::Tensor& anchors, const at::Tensor& positives,
                                        const at::Tensor& negatives, double temperature, bool normalize,
                                        bool need_grad, int64_t block_rows);

// Saliency-masked SGD over a list of tensors, in place (semantics: docs/method.md).
// storage: "dense" (bool or floating saliency), "bits" (packed hard mask) or "uint8" (q / 255).
void masked_sgd_step(std::vector<at::Tensor> params, std::vector<at::Tensor> grads,
                     std::vector<at::Tensor> saliencies, std::vector<at::Tensor> momentum_buffers, double lr,
                     double momentum, double weight_decay, bool nesterov, std::string storage);

// Saliency-masked AdamW over a list of tensors, in place; steps are the 1-based per-tensor counts.
void masked_adamw_step(std::vector<at::Tensor> params, std::vector<at::Tensor> grads,
                       std::vector<at::Tensor> saliencies, std::vector<at::Tensor> exp_avgs,
                       std::vector<at::Tensor> exp_avg_sqs, std::vector<int64_t> steps, double lr, double beta1,
                       double beta2, double eps, double weight_decay, std::string storage);

// The k-th largest of all scores (float32 CPU tensors) by radix select, without sorting.
double saliency_threshold(std::vector<at::Tensor> scores, int64_t k);

// Saliency from scores and a threshold t, one tensor per score tensor: hard 1[g >= t] as bool
// ("dense") or packed bits ("bits"); soft w = clamp(g / t, 0, 1) as float32 ("dense")
// or uint8 q = max(1, floor(255 w + 1/2)) for w > 0 ("uint8").
std::vector<at::Tensor> saliency_emit(std::vector<at::Tensor> scores, double threshold, bool hard,
                                      std::string storage);
