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
// (without normalisation the inv_* are 1 and the second terms vanish). With S = G R^ (the dA
// product) and T = G^T A^ (the dR product), where x^ = x inv_x, the projections need no extra
// pass over the strip: sum_j g_ij l_ij = <a^_i, S_i>/tau and sum_i g_ij l_ij = <T_j, r^_j>/tau.
// The (M, D) side is finished in one fused pass (finish_grad_r): at this op's sizes it is
// memory traffic over M x D, not the strip, that costs.
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

// dR_j = inv_r_j/tau T_j - r_j inv_r_j^2 <T_j, r^_j>/tau (normalised) or T_j/tau, with T the sum of
// the per-chunk parts (chunks, M, D) in chunk order; one pass over the rows of R.
template <typename scalar_t>
void finish_grad_r(const at::Tensor& parts, const at::Tensor& r, const at::Tensor& inv_r, double inv_tau,
                   bool normalize, at::Tensor& grad_r) {
  const int64_t chunks = parts.size(0), M = r.size(0), D = r.size(1);
  const scalar_t* T = parts.data_ptr<scalar_t>();
  const scalar_t* R = r.data_ptr<scalar_t>();
  const scalar_t* inv = inv_r.data_ptr<scalar_t>();
  scalar_t* out = grad_r.data_ptr<scalar_t>();
  const scalar_t inv_tau_ = static_cast<scalar_t>(inv_tau);
  at::parallel_for(0, M, 16, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      scalar_t* o = out + j * D;
      const scalar_t* rj = R + j * D;
      for (int64_t d = 0; d < D; ++d) o[d] = T[j * D + d];
      for (int64_t c = 1; c < chunks; ++c) {
        const scalar_t* part = T + (c * M + j) * D;
        for (int64_t d = 0; d < D; ++d) o[d] += part[d];
      }
      const scalar_t scale = inv[j] * inv_tau_;
      if (!normalize) {
        for (int64_t d = 0; d < D; ++d) o[d] *= scale;
        continue;
      }
      scalar_t dot = 0;
#pragma omp simd reduction(+ : dot)  // lets the compiler vectorise (reassociate) this one sum
      for (int64_t d = 0; d < D; ++d) dot += o[d] * rj[d];
      const scalar_t coef = inv[j] * inv[j] * (dot * scale);  // inv_r^2 sum_i g_ij l_ij
      for (int64_t d = 0; d < D; ++d) o[d] = o[d] * scale - rj[d] * coef;
    }
  });
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
  const at::Tensor inv_r = inverse_norms(r, normalize), inv_r_row = inv_r.unsqueeze(0);  // (1, M)
  const double inv_tau = 1.0 / temperature, c = 1.0 / N;
  const at::Tensor pos = (a * p).sum(1).mul_(inv_a).mul_(inv_p).mul_(inv_tau);
  at::Tensor lse = at::empty({N}, a.options());

  const int64_t blocks = (N + block_rows - 1) / block_rows;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), blocks));
  const int64_t rows_per_chunk = ((blocks + chunks - 1) / chunks) * block_rows;
  at::Tensor grad_a, grad_p, grad_r_parts;
  if (need_grad) {
    grad_a = at::empty_like(a);
    grad_p = at::empty_like(p);
    grad_r_parts = at::empty({chunks, M, D}, a.options());  // T = sum_i g_ij a^_i, per chunk
  }

  // Inside the parallel region ATen ops run single-threaded (and vectorised) on one strip; a
  // single chunk runs outside it, so that its GEMMs use every thread.
  auto process = [&](int64_t chunk_begin, int64_t chunk_end) {
    at::Tensor logits_strip = at::empty({block_rows, M}, a.options());
    at::Tensor grad_strip = at::empty({block_rows, M}, a.options());
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      const int64_t row_begin = chunk * rows_per_chunk, row_end = std::min(N, (chunk + 1) * rows_per_chunk);
      if (need_grad && row_begin >= row_end) grad_r_parts[chunk].zero_();  // a chunk left without rows
      for (int64_t r0 = row_begin; r0 < row_end; r0 += block_rows) {
        const int64_t b = std::min(block_rows, row_end - r0);
        const at::Tensor a_blk = a.narrow(0, r0, b), pos_blk = pos.narrow(0, r0, b);
        const at::Tensor inv_a_blk = inv_a.narrow(0, r0, b).unsqueeze(1);  // (b, 1)
        const at::Tensor a_hat = normalize ? a_blk * inv_a_blk : a_blk;
        at::Tensor logits = logits_strip.narrow(0, 0, b), grads = grad_strip.narrow(0, 0, b);
        at::mm_out(logits, a_hat * inv_tau, r_t);
        if (normalize) logits.mul_(inv_r_row);  // l_ij
        // log-sum-exp over {l_i+} U {l_ij}, shifted by the row maximum
        const at::Tensor row_max = at::maximum(std::get<0>(logits.max(1)), pos_blk).unsqueeze(1);
        at::sub_out(grads, logits, row_max).exp_();
        const at::Tensor partition = grads.sum(1).add_((pos_blk.unsqueeze(1) - row_max).exp_().squeeze(1));
        const at::Tensor lse_blk = row_max.squeeze(1) + partition.log();
        lse.narrow(0, r0, b).copy_(lse_blk);
        if (!need_grad) continue;
        grads.mul_(partition.reciprocal().mul_(c).unsqueeze(1));  // g_ij
        const at::Tensor grad_pos = (pos_blk - lse_blk).exp_().sub_(1).mul_(c);  // g_i+
        at::Tensor part = grad_r_parts[chunk];
        if (r0 == row_begin) {
          at::mm_out(part, grads.t(), a_hat);
        } else {
          part.addmm_(grads.t(), a_hat);
        }
        if (normalize) grads.mul_(inv_r_row);  // g_ij inv_r_j
        const at::Tensor p_blk = p.narrow(0, r0, b), inv_p_blk = inv_p.narrow(0, r0, b).unsqueeze(1);
        at::Tensor grad_a_blk = grad_a.narrow(0, r0, b);
        at::mm_out(grad_a_blk, grads, r);  // S_i = sum_j g_ij r^_j
        at::Tensor proj_a;  // sum_j g_ij l_ij + g_i+ l_i+
        if (normalize) proj_a = (a_hat * grad_a_blk).sum(1).mul_(inv_tau).add_(grad_pos * pos_blk);
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
  };
  if (chunks == 1) {
    process(0, 1);
  } else {
    at::parallel_for(0, chunks, 1, process);
  }

  at::Tensor loss = (lse - pos).mean();
  if (!need_grad) return {loss, at::Tensor(), at::Tensor(), at::Tensor()};
  at::Tensor grad_r = at::empty_like(r);
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "infonce_finish_grad_r", [&] {
    finish_grad_r<scalar_t>(grad_r_parts, r, inv_r, inv_tau, normalize, grad_r);
  });
  return {loss, grad_a, grad_p, grad_r};
}
