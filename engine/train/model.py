"""A small decoder-only transformer (GPT) in plain PyTorch.

Pre-norm blocks, causal ``F.scaled_dot_product_attention``, tied input/output
embeddings, learned positions; no dropout by default (proxy runs are short and
determinism matters more). One dataclass config; named sizes for proxies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import InputError


@dataclass(frozen=True)
class GPTConfig:
    """Shape of the model.

    vocab_size: number of token ids (byte-level: 256).
    seq_len: longest context the position table covers.
    n_layer, n_head, d_model: depth, attention heads, width (d_model % n_head == 0).
    dropout: dropout on attention and residual outputs (0 keeps runs deterministic and fast).
    """

    vocab_size: int = 256
    seq_len: int = 128
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise InputError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}.",
                hint="pick a width that is a multiple of the number of heads.",
            )
        if min(self.vocab_size, self.seq_len, self.n_layer, self.n_head, self.d_model) < 1:
            raise InputError("every model dimension must be at least 1.")


# Named proxy sizes: (n_layer, n_head, d_model). Parameter counts with a byte vocabulary
# and seq_len 128: tiny ~0.8M (the RegMix proxy scale), small ~11M, gpt100m ~85M
# (~124M with a 50k vocabulary; for GPUs).
MODEL_SIZES: dict[str, tuple[int, int, int]] = {
    "micro": (2, 2, 64),
    "tiny": (4, 4, 128),
    "small": (6, 6, 384),
    "gpt100m": (12, 12, 768),
}


def config_for(size: str, vocab_size: int, seq_len: int) -> GPTConfig:
    """The config of a named size for a tokenizer's vocabulary and a context length."""
    if size not in MODEL_SIZES:
        raise InputError(f"unknown model size '{size}'.", hint=f"use one of: {', '.join(MODEL_SIZES)}.")
    n_layer, n_head, d_model = MODEL_SIZES[size]
    return GPTConfig(vocab_size=vocab_size, seq_len=seq_len, n_layer=n_layer, n_head=n_head, d_model=d_model)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        shape = (batch, time, self.n_head, width // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).contiguous().view(batch, time, width))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln_mlp = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, 4 * config.d_model, bias=False),
            nn.GELU(),
            nn.Linear(4 * config.d_model, config.d_model, bias=False),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x)))
        return x + self.drop(self.mlp(self.ln_mlp(x)))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.seq_len, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # tied embeddings (Press & Wolf 2017)
        self.apply(self._init_weights)
        # GPT-2's scaled init of residual projections: std 0.02/sqrt(2*n_layer).
        for name, param in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (batch, time, vocab) for token ids (batch, time)."""
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return next_token_loss(self(idx), targets)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (tied weights counted once); non-embedding drops both tables."""
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.tok_emb.weight.numel() + self.pos_emb.weight.numel()
        return total

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N plus attention's 12*L*d*T (PaLM appendix B, as nanoGPT's MFU).

        N counts every weight used in a matrix product, the tied output head included;
        only the position table (a lookup) is left out.
        """
        c = self.config
        matmul_params = self.num_params() - self.pos_emb.weight.numel()
        return 6 * matmul_params + 12 * c.n_layer * c.d_model * c.seq_len


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of (batch, time, vocab) logits against (batch, time) targets, in float32."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)
