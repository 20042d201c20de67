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


def encode(text_encoder, ids: torch.Tensor, clip_skip: int, *, dedupe: bool = True
           ) -> torch.Tensor:
    """States for the UNet: (batch, 77) for 75 tokens, (batch, 2 + 75 * chunks) above.
    `dedupe`: equal 77-token rows are encoded once (False when the encoder is random, e.g.
    LoRA dropout while training: each row must draw its own mask)."""
    b, n, length = ids.shape
    core = getattr(text_encoder, "module", text_encoder)  # under DDP: the wrapped model
    flat = ids.reshape(b * n, length)
    # each 77-token row is encoded on its own, so equal rows give equal states: a caption
    # shorter than the limit leaves whole chunks of padding, identical; encode each once
    uniq, inverse = torch.unique(flat, dim=0, return_inverse=True) if dedupe else (flat, None)
    if uniq.shape[0] == flat.shape[0]:
        uniq, inverse = flat, None
    states = _encode_rows(text_encoder, core, uniq.to(core.device), clip_skip)
    if inverse is not None:
        states = states[inverse.to(states.device)]
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


def _encode_rows(text_encoder, core, flat: torch.Tensor, clip_skip: int) -> torch.Tensor:
    """(rows, 77, width) states of (rows, 77) ids, clip skip applied."""
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
    return states
