// Fused scaled InfoNCE on the CPU.
//
// A (N, D), P (N, D), R (M, D); a, p, r are the rows after optional L2 normalisation;
// l_i+ = <a_i, p_i>/tau, l_ij = <a_i, r_j>/tau, lse_i = log(exp(l_i+) + sum_j exp(l_ij)),
// loss = mean_i (lse_i - l_i+).
// With pi_ij = exp(l_ij - lse_i) and pi_i+ = exp(l_i+ - lse_i), the mean loss has
//   da_i = ((pi_i+ - 1) p_i + sum_j pi_ij r_j) / (N tau),  dp_i = (pi_i+ - 1) a_i / (N tau),
//   dr_j = sum_i pi_ij a_i / (N tau),
// and the normalisation adds dx = (dx_hat - x_hat <x_hat, dx_hat>) / ||x||.
//
// Rows are split into one chunk per thread (at::parallel_for); a chunk walks its rows in
// blocks of block_rows, holding one (block_rows, M) strip of logits at a time, so extra
// memory is O(threads * (block_rows * M + M * D)) and never N x M. Each chunk accumulates
// its own dR; the chunks are summed in chunk order, so results do not depend on scheduling.
#include <ATen/Parallel.h>

#include <algorithm>

#include "ops.h"

namespace {

struct Normalised {
  at::Tensor rows;      // x_hat (or x itself when normalisation is off)
  at::Tensor inv_norm;  // 1 / max(||x||, 1e-12); undefined when off
};

Normalised normalise(const at::Tensor& x, bool normalize) {
  if (!normalize) return {x, at::Tensor()};
  at::Tensor inv = at::linalg_vector_norm(x, 2, {1}, /*keepdim=*/true).clamp_min(1e-12).reciprocal();
  return {x * inv, inv};
}

// Gradient through x_hat = x / ||x||: dx = (dx_hat - x_hat <x_hat, dx_hat>) * inv_norm.
at::Tensor normalise_backward(const at::Tensor& grad_hat, const Normalised& n) {
  if (!n.inv_norm.defined()) return grad_hat;
  at::Tensor dot = (grad_hat * n.rows).sum(1, /*keepdim=*/true);
  return (grad_hat - n.rows * dot) * n.inv_norm;
}

void check_input(const char* name, const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(x.dim() == 2, name, " must be 2-D, got ", x.dim(), "-D");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, name,
              " must be float32 or float64 (the Python wrapper upcasts fp16/bf16)");
}

}  // namespace

std::vector<at::Tensor> infonce_forward(const at::Tensor& anchors, const at::Tensor& positives,
                                        const at::Tensor& negatives, double temperature, bool normalize,
                                        bool need_grad, int64_t block_rows) {
  check_input("anchors", anchors);
  check_input("positives", positives);
  check_input("negatives", negatives);
  TORCH_CHECK(positives.sizes() == anchors.sizes(), "positives must have the shape of anchors");
  TORCH_CHECK(negatives.size(1) == anchors.size(1), "negatives must have as many columns as anchors");
  TORCH_CHECK(temperature > 0, "temperature must be > 0");
  TORCH_CHECK(block_rows > 0, "block_rows must be > 0");
  const int64_t N = anchors.size(0), M = negatives.size(0);
  // detach: worker threads do not inherit the caller's no-grad mode, and out= ops refuse
  // tensors that require grad.
  const Normalised a = normalise(anchors.detach().contiguous(), normalize);
  const Normalised p = normalise(positives.detach().contiguous(), normalize);
  const Normalised r = normalise(negatives.detach().contiguous(), normalize);
  const at::Tensor pos_logit = (a.rows * p.rows).sum(1) / temperature;
  at::Tensor lse = at::empty({N}, anchors.options());
  const int64_t blocks = (N + block_rows - 1) / block_rows;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), blocks));
  const int64_t rows_per_chunk = ((blocks + chunks - 1) / chunks) * block_rows;
  at::Tensor grad_a_hat, grad_r_parts, pos_coef;
  if (need_grad) {
    grad_a_hat = at::empty_like(a.rows);
    grad_r_parts = at::zeros({chunks, M, anchors.size(1)}, anchors.options());
    pos_coef = at::empty({N}, anchors.options());
  }
  const at::Tensor r_t = r.rows.t();

  const double inv_tau = 1.0 / temperature;
  // Inside the parallel region ATen ops run single-threaded (and vectorised) on one strip.
  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    at::Tensor strip = at::empty({block_rows, M}, a.rows.options());
    for (int64_t c = chunk_begin; c < chunk_end; ++c) {
      const int64_t row_end = std::min(N, (c + 1) * rows_per_chunk);
      for (int64_t r0 = c * rows_per_chunk; r0 < row_end; r0 += block_rows) {
        const int64_t b = std::min(block_rows, row_end - r0);
        at::Tensor logits = strip.narrow(0, 0, b);
        const at::Tensor a_blk = a.rows.narrow(0, r0, b);
        const at::Tensor pos_blk = pos_logit.narrow(0, r0, b);
        at::mm_out(logits, a_blk, r_t).mul_(inv_tau);
        // online-safe log-sum-exp over {l_i+} U {l_ij}: shift by the row maximum
        const at::Tensor row_max = at::maximum(std::get<0>(logits.max(1)), pos_blk);
        logits.sub_(row_max.unsqueeze(1)).exp_();
        const at::Tensor partition = logits.sum(1).add_((pos_blk - row_max).exp_());
        const at::Tensor lse_blk = row_max + partition.log();
        lse.narrow(0, r0, b).copy_(lse_blk);
        if (!need_grad) continue;
        logits.mul_(partition.mul(N).reciprocal_().unsqueeze(1));  // pi_ij / N
        pos_coef.narrow(0, r0, b).copy_((pos_blk - lse_blk).exp_().sub_(1).div_(N));
        // da_hat = (coef * p + pi @ r) / tau ; dr_hat (this chunk) += pi^T @ a / tau
        at::Tensor grad_a_blk = grad_a_hat.narrow(0, r0, b);
        at::mm_out(grad_a_blk, logits, r.rows);
        grad_a_blk.add_(p.rows.narrow(0, r0, b) * pos_coef.narrow(0, r0, b).unsqueeze(1)).mul_(inv_tau);
        grad_r_parts[c].addmm_(logits.t(), a_blk, /*beta=*/1, /*alpha=*/inv_tau);
      }
    }
  });

  at::Tensor loss = (lse - pos_logit).mean();
  if (!need_grad) return {loss, at::Tensor(), at::Tensor(), at::Tensor()};
  const at::Tensor grad_p_hat = a.rows * (pos_coef / temperature).unsqueeze(1);
  const at::Tensor grad_r_hat = grad_r_parts.sum(0);
  return {loss, normalise_backward(grad_a_hat, a), normalise_backward(grad_p_hat, p), normalise_backward(grad_r_hat, r)};
}
