"""Log-probs (and entropy) of chosen tokens from hidden states and the LM head, without [tokens, vocab] logits.

Every trainer that backpropagates through a language-model head needs log_softmax(h @ W.T / T) at the
sampled or labelled tokens: GRPO ratios and reference log-probs (train_rl.py), an SFT loss. Written plainly
that holds float32 logits, their log-softmax and their gradient for every token of a micro-batch: 16 bytes x
151,936 per token, 37 GB for one 16K-token response. `token_logprobs` makes the logits a chunk of rows at a
time and drops them; backward makes each chunk again (one more head matmul) and turns it into the gradients
of the hidden states and the head straight away (the fused linear + cross-entropy of Liger Kernel, in plain
PyTorch). Peak memory is a few [chunk_rows, vocab] buffers whatever the length; results equal the plain form
to round-off (1e-10 in float64, tests/test_model.py).

Called through the model so that FSDP2 has gathered the head: model(ids, head_at=..., targets=...).
`response_logprobs` is that call for (prompt, response) rows, packed: the GRPO ratio (train_rl.py) and the
SFT loss (sft.py) both use it.
"""
import torch

LOGPROB_CHUNK_ROWS = 512  # rows of logits alive at once: 512 x 151,936 x 4 B = 0.3 GB in float32
# On a CPU, chunks this small: glibc's malloc gives a buffer over its mmap threshold (at most 32 MB) straight
# from the kernel and back on free, so a 0.3 GB chunk is page-faulted afresh by every matmul and exp that
# makes one; under 32 MB the heap reuses it. 27 rows at Qwen3's vocabulary: the head runs 1.65x faster
# (2,200 tokens, forward + backward with entropy, 2 cores).
CPU_CHUNK_BYTES = 16 * 2**20


def token_logprobs(hidden, weight, targets, temperature: float = 1.0, with_entropy: bool = False,
                   chunk_rows: int | None = None):
    """hidden [N, H] @ weight [V, H].T / temperature -> log_softmax at `targets` [N], and the entropy [N].
    Logits in (at least) float32, chunk_rows rows at a time. Returns (logp [N], entropy [N] or None),
    float32 (float64 for float64 inputs); gradients flow to hidden, weight and (with_entropy) the entropy."""
    if chunk_rows is None:
        chunk_rows = LOGPROB_CHUNK_ROWS
        if hidden.device.type == "cpu":
            chunk_rows = max(1, min(chunk_rows, CPU_CHUNK_BYTES // (weight.shape[0] * 4)))
    logp, entropy = _TokenLogProbs.apply(hidden, weight, targets, float(temperature), bool(with_entropy), chunk_rows)
    return logp, (entropy if with_entropy else None)


def _chunk_logits(hidden, weight, temperature):
    """[n, H] -> logits / temperature [n, V] in float32 or wider (bf16 matmul, as an nn.Linear in bf16 would)."""
    logits = hidden @ weight.t()
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return logits.div_(temperature)  # a fresh tensor either way: in place


class _TokenLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, with_entropy, chunk_rows):
        n = hidden.shape[0]
        out_dtype = torch.promote_types(hidden.dtype, torch.float32)
        logp = torch.empty(n, dtype=out_dtype, device=hidden.device)
        lse = torch.empty(n, dtype=out_dtype, device=hidden.device)
        entropy = torch.zeros(n, dtype=out_dtype, device=hidden.device)
        for a in range(0, n, chunk_rows):
            b = min(a + chunk_rows, n)
            # One exp per logit: log p = z - max - log s with s = sum exp(z - max), and the entropy from the
            # same exponentials, H = log s - sum(e * (z - max)) / s (logsumexp plus a separate exp for the
            # entropy make three passes of exp over [c, V]: on a CPU the head's cost is mostly those passes).
            log_p = _chunk_logits(hidden[a:b], weight, temperature)  # [c, V] logits z
            z_max = log_p.amax(dim=-1, keepdim=True)
            log_p.sub_(z_max)  # z - max <= 0: exp cannot overflow
            e = log_p.exp()  # [c, V]
            s = e.sum(dim=-1, keepdim=True)
            log_s = s.log()
            lse[a:b] = (z_max + log_s)[:, 0]
            if with_entropy:
                entropy[a:b] = (log_s - torch.linalg.vecdot(e, log_p)[:, None] / s)[:, 0]
            del e
            log_p.sub_(log_s)  # log p
            logp[a:b] = log_p.gather(-1, targets[a:b, None])[:, 0]
        ctx.save_for_backward(hidden, weight, targets, lse, entropy)
        ctx.temperature, ctx.chunk_rows = temperature, chunk_rows
        # one chunk only: keep its log p for backward instead of making it again (the same peak as a chunk)
        ctx.kept_log_p = log_p if n <= chunk_rows and any(ctx.needs_input_grad[:2]) else None
        ctx.set_materialize_grads(False)
        if not with_entropy:
            ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):
        hidden, weight, targets, lse, entropy = ctx.saved_tensors
        grad_hidden = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        if grad_logp is None and grad_entropy is None:
            return grad_hidden, grad_weight, None, None, None, None
        for a in range(0, hidden.shape[0], ctx.chunk_rows):
            b = min(a + ctx.chunk_rows, hidden.shape[0])
            log_p = ctx.kept_log_p  # [c, V]
            if log_p is None:  # recompute this chunk's log p
                log_p = _chunk_logits(hidden[a:b], weight, ctx.temperature).sub_(lse[a:b, None])
            ctx.kept_log_p = None
            p = log_p.exp()
            # in place on the two [c, V] buffers; 1 / T (the chain rule through z / T) is folded into the
            # [c] factors rather than a pass over [c, V]
            if grad_entropy is not None:  # dH / dz = -p * (log p + H)
                grad_z = log_p.add_(entropy[a:b, None]).mul_(p).mul_(-grad_entropy[a:b, None] / ctx.temperature)
                if grad_logp is not None:  # d logp_t / dz = onehot(t) - p
                    grad_z.sub_(p.mul_(grad_logp[a:b, None] / ctx.temperature))
            else:
                grad_z = p.mul_(-grad_logp[a:b, None] / ctx.temperature)
            if grad_logp is not None:
                grad_z.scatter_add_(-1, targets[a:b, None], grad_logp[a:b, None] / ctx.temperature)
            del p, log_p
            grad_z = grad_z.to(weight.dtype)  # the matmuls run in the weight's dtype
            if grad_hidden is not None:
                grad_hidden[a:b] = grad_z @ weight
            if grad_weight is not None:  # accumulated chunk by chunk in the weight's dtype (as Liger does)
                grad_weight.addmm_(grad_z.t(), hidden[a:b].to(weight.dtype))
        return grad_hidden, grad_weight, None, None, None, None


def response_logprobs(model, prompts: list[list[int]], responses: list[list[int]], temperature: float,
                      with_entropy: bool | str = False):
    """One packed forward over prompt + response of each row; log-probs of the response tokens under
    logits / temperature, and their entropy (with_entropy "grad": in the graph, True: detached). The head runs
    only where a response token is predicted, a chunk of rows at a time (`token_logprobs`): no
    [N, vocab] logits, whatever the response length.
    Returns logp [N], entropy [N] or None, seq_ids [N] (row of each token), N = response tokens."""
    device = next(model.parameters()).device
    ids, lens, head_at, targets, seq_ids, offset = [], [], [], [], [], 0
    for i, (prompt, response) in enumerate(zip(prompts, responses)):
        p, a = len(prompt), len(response)
        ids += prompt + response
        lens.append(p + a)
        head_at += range(offset + p - 1, offset + p + a - 1)  # position j predicts token j + 1
        targets += response
        seq_ids += [i] * a
        offset += p + a
    logp, entropy = model(torch.tensor(ids, device=device)[None], seq_lens=lens,
                          head_at=torch.tensor(head_at, device=device), targets=torch.tensor(targets, device=device),
                          temperature=temperature, with_entropy=bool(with_entropy))  # [N], [N] or None
    if entropy is not None and with_entropy != "grad":  # a metric unless --entropy-coef > 0: out of the graph
        entropy = entropy.detach()
    return logp, entropy, torch.tensor(seq_ids, device=device)
