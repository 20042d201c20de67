"""Captions to text-encoder states as kohya does it for SD 1.x: 75/150/225 tokens read in
chunks of 75 (each chunk wrapped in BOS/EOS and encoded alone, then stitched), and clip skip
taken as final_layer_norm(hidden_states[-clip_skip])."""

from __future__ import annotations

import torch

CHUNK = 75  # tokens per chunk between BOS and EOS


def tokenize(tokenizer, captions: list[str], max_token_length: int) -> torch.Tensor:
    """(batch, chunks, 77) token ids."""
    if max_token_length not in (75, 150, 225):
        raise ValueError(f"max_token_length must be 75, 150 or 225 (got {max_token_length})")
    length = max_token_length + 2
    ids = tokenizer(captions, padding="max_length", truncation=True, max_length=length,
                    return_tensors="pt").input_ids
    if max_token_length == CHUNK:
        return ids.unsqueeze(1)
    chunks = []
    for i in range(1, length - 1, CHUNK):
        chunks.append(torch.cat([ids[:, :1], ids[:, i:i + CHUNK], ids[:, -1:]], dim=1))
    return torch.stack(chunks, dim=1)


def encode(text_encoder, ids: torch.Tensor, clip_skip: int) -> torch.Tensor:
    """States for the UNet: (batch, 77) for 75 tokens, (batch, 2 + 75 * chunks) above."""
    b, n, length = ids.shape
    core = getattr(text_encoder, "module", text_encoder)  # under DDP: the wrapped model
    flat = ids.reshape(b * n, length).to(core.device)
    if clip_skip <= 1:
        states = text_encoder(flat).last_hidden_state
    else:
        out = text_encoder(flat, output_hidden_states=True)
        inner = getattr(core, "text_model", core)
        norm = inner.final_layer_norm
        hidden = out.hidden_states[-clip_skip].to(norm.weight.dtype)
        # outside the model's own forward: autocast may hand it fp32 states and bf16 weights
        with torch.autocast(hidden.device.type, enabled=False):
            states = norm(hidden)
    states = states.reshape(b, n * length, -1)
    if n == 1:
        return states
    # keep the first BOS, each chunk's middle, and the last EOS
    parts = [states[:, :1]]
    for k in range(n):
        start = k * length + 1
        parts.append(states[:, start:start + CHUNK])
    parts.append(states[:, -1:])
    return torch.cat(parts, dim=1)
