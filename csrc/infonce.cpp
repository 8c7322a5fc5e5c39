// Fused scaled InfoNCE on the CPU.
//
// A (N, D), P (N, D), R (M, D); with normalisation inv_x = 1 / max(||x||, 1e-12) per row
// (otherwise 1); tau the temperature:
//   l_i+ = <a_i, p_i> inv_a inv_p / tau,  l_ij = <a_i, r_j> inv_a inv_r / tau,
//   lse_i = log(exp(l_i+) + sum_j exp(l_ij)),  loss = mean_i (lse_i - l_i+).
// With c = 1/N, g_ij = c exp(l_ij - lse_i) and g_i+ = c (exp(l_i+ - lse_i) - 1), the mean loss has
//   dA_i = inv_a/tau (sum_j g_ij inv_r_j r_j + g_i+ inv_p p_i) - a_i inv_a^2 (sum_j g_ij l_ij + g_i+ l_i+)
//   dP_i = g_i+ (inv_p inv_a / tau a_i - inv_p^2 l_i+ p_i)
//   dR_j = inv_r/tau sum_i g_ij inv_a_i a_i - r_j inv_r^2 sum_i g_ij l_ij
// (without normalisation the inv_* are 1 and the second terms vanish). The normalised rows are
// never materialised: the norms are folded into the logits strip.
//
// Rows are split into one chunk per thread (at::parallel_for); a chunk walks its rows in
// blocks of block_rows, holding two (block_rows, M) strips at a time, so extra memory is
// O(threads * (block_rows * M + M * D)) and never N x M. Each chunk accumulates its own dR
// part; the parts are summed in chunk order, so results do not depend on thread scheduling.
#include <ATen/Parallel.h>

#include <algorithm>

#include "ops.h"

namespace {

at::Tensor inverse_norms(const at::Tensor& x, bool normalize) {
  if (!normalize) return at::ones({x.size(0)}, x.options());
  return at::linalg_vector_norm(x, 2, {1}).clamp_min_(1e-12).reciprocal_();
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
  const int64_t N = anchors.size(0), M = negatives.size(0), D = anchors.size(1);
  // detach: worker threads do not inherit the caller's no-grad mode, and out= ops refuse
  // tensors that require grad.
  const at::Tensor a = anchors.detach().contiguous(), p = positives.detach().contiguous();
  const at::Tensor r = negatives.detach().contiguous(), r_t = r.t();
  const at::Tensor inv_a = inverse_norms(a, normalize), inv_p = inverse_norms(p, normalize);
  const at::Tensor inv_r = inverse_norms(r, normalize).unsqueeze(0);  // (1, M)
  const double inv_tau = 1.0 / temperature, c = 1.0 / N;
  const at::Tensor pos = (a * p).sum(1).mul_(inv_a).mul_(inv_p).mul_(inv_tau);
  at::Tensor lse = at::empty({N}, a.options());

  const int64_t blocks = (N + block_rows - 1) / block_rows;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), blocks));
  const int64_t rows_per_chunk = ((blocks + chunks - 1) / chunks) * block_rows;
  at::Tensor grad_a, grad_p, grad_r_parts, proj_r_parts;
  if (need_grad) {
    grad_a = at::empty_like(a);
    grad_p = at::empty_like(p);
    grad_r_parts = at::zeros({chunks, M, D}, a.options());  // sum_i g_ij inv_a_i a_i, per chunk
    proj_r_parts = at::zeros({chunks, M}, a.options());     // sum_i g_ij l_ij, per chunk
  }

  // Inside the parallel region ATen ops run single-threaded (and vectorised) on one strip.
  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    at::Tensor logits_strip = at::empty({block_rows, M}, a.options());
    at::Tensor grad_strip = at::empty({block_rows, M}, a.options());
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      const int64_t row_end = std::min(N, (chunk + 1) * rows_per_chunk);
      for (int64_t r0 = chunk * rows_per_chunk; r0 < row_end; r0 += block_rows) {
        const int64_t b = std::min(block_rows, row_end - r0);
        const at::Tensor a_blk = a.narrow(0, r0, b), pos_blk = pos.narrow(0, r0, b);
        const at::Tensor inv_a_blk = inv_a.narrow(0, r0, b).unsqueeze(1);  // (b, 1)
        at::Tensor logits = logits_strip.narrow(0, 0, b), grads = grad_strip.narrow(0, 0, b);
        at::mm_out(logits, a_blk, r_t).mul_(inv_a_blk * inv_tau).mul_(inv_r);
        // log-sum-exp over {l_i+} U {l_ij}, shifted by the row maximum
        const at::Tensor row_max = at::maximum(std::get<0>(logits.max(1)), pos_blk).unsqueeze(1);
        at::sub_out(grads, logits, row_max).exp_();
        const at::Tensor partition = grads.sum(1).add_((pos_blk.unsqueeze(1) - row_max).exp_().squeeze(1));
        const at::Tensor lse_blk = row_max.squeeze(1) + partition.log();
        lse.narrow(0, r0, b).copy_(lse_blk);
        if (!need_grad) continue;
        grads.mul_(partition.reciprocal().mul_(c).unsqueeze(1));  // g_ij
        const at::Tensor grad_pos = (pos_blk - lse_blk).exp_().sub_(1).mul_(c);  // g_i+
        grad_r_parts[chunk].addmm_(grads.t(), a_blk * inv_a_blk, /*beta=*/1, /*alpha=*/1);
        logits.mul_(grads);  // g_ij l_ij
        const at::Tensor proj_a = logits.sum(1).add_(grad_pos * pos_blk);
        proj_r_parts[chunk].add_(logits.sum(0));
        grads.mul_(inv_r);
        const at::Tensor p_blk = p.narrow(0, r0, b), inv_p_blk = inv_p.narrow(0, r0, b).unsqueeze(1);
        at::Tensor grad_a_blk = grad_a.narrow(0, r0, b);
        at::mm_out(grad_a_blk, grads, r);
        grad_a_blk.add_(p_blk * (grad_pos.unsqueeze(1) * inv_p_blk)).mul_(inv_a_blk * inv_tau);
        const at::Tensor pos_coef = grad_pos.unsqueeze(1);
        at::Tensor grad_p_blk = grad_p.narrow(0, r0, b);
        at::mul_out(grad_p_blk, a_blk, pos_coef * inv_p_blk * inv_a_blk * inv_tau);
        if (normalize) {
          grad_a_blk.sub_(a_blk * (inv_a_blk * inv_a_blk * proj_a.unsqueeze(1)));
          grad_p_blk.sub_(p_blk * (pos_coef * inv_p_blk * inv_p_blk * pos_blk.unsqueeze(1)));
        }
      }
    }
  });

  at::Tensor loss = (lse - pos).mean();
  if (!need_grad) return {loss, at::Tensor(), at::Tensor(), at::Tensor()};
  const at::Tensor inv_r_col = inv_r.squeeze(0).unsqueeze(1);  // (M, 1)
  at::Tensor grad_r = grad_r_parts.sum(0).mul_(inv_r_col * inv_tau);
  if (normalize) grad_r.sub_(r * (inv_r_col * inv_r_col * proj_r_parts.sum(0).unsqueeze(1)));
  return {loss, grad_a, grad_p, grad_r};
}
